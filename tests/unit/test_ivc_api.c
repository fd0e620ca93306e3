/* libivc's public calls over IVC_SHM_MEMORY: peers are threads of this process sharing a
 * malloc'ed region, so the waiting, time-outs, close and argument checks of ivc.c and
 * ivc_shm.c run here without a device. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "ivc.h"

#define MEM_SIZE (512u * 1024)
#define PEERS    4

struct peer {
    uint8_t *mem;
    unsigned self, other;
    int rounds;
    int result;
};

static struct ivc_ctx *open_ctx(uint8_t *mem, unsigned self)
{
    struct ivc_ctx_opts opts = {.backend = IVC_SHM_MEMORY,
                                .peers = PEERS,
                                .self_id = (int)self,
                                .flags = IVC_TIMING,
                                .memory = mem,
                                .memory_size = MEM_SIZE};
    struct ivc_ctx *ctx = NULL;
    assert_int_equal(ivc_ctx_open(&ctx, &opts), 0);
    return ctx;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void fill(uint8_t *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(seed * 13 + i);
}

/* The echoing peer: returns every message, then waits for the other side to close. */
static void *echo_peer(void *arg)
{
    struct peer *p = arg;
    struct ivc_ctx_opts opts = {.backend = IVC_SHM_MEMORY,
                                .peers = PEERS,
                                .self_id = (int)p->self,
                                .memory = p->mem,
                                .memory_size = MEM_SIZE};
    static _Thread_local uint8_t buf[40000];
    struct ivc_ctx *ctx;
    struct ivc_chan *chan;

    p->result = ivc_ctx_open(&ctx, &opts);
    if (p->result)
        return NULL;
    p->result = ivc_open(ctx, p->other, 10000, &chan);
    if (p->result == 0) {
        for (int i = 0; i < p->rounds && p->result == 0; i++) {
            ssize_t len = ivc_recv(chan, buf, sizeof(buf), 10000);
            p->result = len < 0 ? (int)len : ivc_send(chan, buf, (size_t)len, 10000);
        }
        if (p->result == 0)
            p->result = (int)ivc_recv(chan, buf, sizeof(buf), 10000); /* -ECONNRESET */
        ivc_close(chan);
    }
    ivc_ctx_close(ctx);
    return NULL;
}

static void test_echo_blocking(void **state)
{
    (void)state;
    uint8_t *mem = calloc(1, MEM_SIZE);
    struct peer p = {.mem = mem, .self = 1, .other = 0, .rounds = 500};
    static uint8_t out[40000], in[40000];
    pthread_t thread;
    struct ivc_chan *chan;

    assert_non_null(mem);
    struct ivc_ctx *ctx = open_ctx(mem, 0);
    assert_int_equal(pthread_create(&thread, NULL, echo_peer, &p), 0);
    assert_int_equal(ivc_open(ctx, 1, 10000, &chan), 0);
    assert_true(ivc_max_msg(chan) >= sizeof(out));
    for (int i = 0; i < p.rounds; i++) {
        size_t len = (size_t)(i * 7919) % sizeof(out);
        fill(out, len, (unsigned)i);
        assert_int_equal(ivc_send(chan, out, len, IVC_FOREVER), 0);
        assert_int_equal(ivc_recv(chan, in, sizeof(in), IVC_FOREVER), (ssize_t)len);
        assert_memory_equal(in, out, len);
    }
    struct ivc_stats stats;
    ivc_chan_stats(chan, &stats);
    assert_true(stats.ring_ns > 0);
    assert_int_equal(stats.notifies, 0); /* no doorbells without a device */
    ivc_close(chan);
    assert_int_equal(pthread_join(thread, NULL), 0);
    assert_int_equal(p.result, -ECONNRESET); /* the close reached the peer */
    ivc_ctx_close(ctx);
    free(mem);
}

struct opener {
    struct ivc_ctx *ctx;
    unsigned peer;
    struct ivc_chan *chan;
    int result;
};

static void *open_end(void *arg)
{
    struct opener *o = arg;
    o->result = ivc_open(o->ctx, o->peer, 10000, &o->chan);
    return NULL;
}

static void test_nonblocking_and_timeouts(void **state)
{
    (void)state;
    uint8_t *mem = calloc(1, MEM_SIZE);
    uint8_t buf[1000] = {0};
    struct ivc_chan *a, *b, *none;
    const void *msg;

    assert_non_null(mem);
    struct ivc_ctx *ctx0 = open_ctx(mem, 0), *ctx1 = open_ctx(mem, 1);
    uint64_t start = now_ms();
    assert_int_equal(ivc_open(ctx0, 2, 50, &none), -ETIMEDOUT); /* peer 2 never opens */
    assert_true(now_ms() - start >= 50);
    assert_int_equal(ivc_open(ctx0, 1, 0, &a), -ETIMEDOUT); /* 1 has not opened yet */
    struct opener other = {.ctx = ctx1, .peer = 0};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, open_end, &other), 0);
    assert_int_equal(ivc_open(ctx0, 1, 10000, &a), 0);
    assert_int_equal(pthread_join(thread, NULL), 0);
    assert_int_equal(other.result, 0);
    b = other.chan;

    assert_int_equal(ivc_recv(b, buf, sizeof(buf), 0), -EAGAIN);
    assert_int_equal(ivc_recv_ref(b, &msg, 0), -EAGAIN);
    start = now_ms();
    assert_int_equal(ivc_recv(b, buf, sizeof(buf), 60), -ETIMEDOUT);
    uint64_t waited = now_ms() - start;
    assert_true(waited >= 60 && waited < 5000);

    int sent = 0;
    while (ivc_send(a, buf, sizeof(buf), 0) == 0)
        sent++;
    assert_true(sent > 10);
    assert_int_equal(ivc_send(a, buf, sizeof(buf), 0), -EAGAIN);
    assert_int_equal(ivc_send(a, buf, sizeof(buf), 30), -ETIMEDOUT);
    for (int i = 0; i < sent; i++)
        assert_int_equal(ivc_recv(b, buf, sizeof(buf), 0), sizeof(buf));
    assert_int_equal(ivc_recv(b, buf, sizeof(buf), 0), -EAGAIN);
    ivc_close(a);
    ivc_close(b);
    ivc_ctx_close(ctx0);
    ivc_ctx_close(ctx1);
    free(mem);
}

static void test_zero_copy_and_sizes(void **state)
{
    (void)state;
    uint8_t *mem = calloc(1, MEM_SIZE);
    uint8_t small[10];
    struct ivc_chan *a;
    const void *msg;
    void *slot;

    assert_non_null(mem);
    struct ivc_ctx *ctx0 = open_ctx(mem, 0);
    pthread_t thread;
    struct peer p = {.mem = mem, .self = 1, .other = 0, .rounds = 2};
    assert_int_equal(pthread_create(&thread, NULL, echo_peer, &p), 0);
    assert_int_equal(ivc_open(ctx0, 1, 10000, &a), 0);

    assert_int_equal(ivc_send(a, small, ivc_max_msg(a) + 1, 0), -EMSGSIZE);
    assert_int_equal(ivc_reserve(a, 100, &slot, 0), 0);
    fill(slot, 100, 7);
    assert_int_equal(ivc_commit(a, 100), 0);
    assert_int_equal(ivc_recv(a, small, sizeof(small), 5000), -EMSGSIZE); /* stays queued */
    assert_int_equal(ivc_recv_ref(a, &msg, 0), 100);
    assert_int_equal(ivc_recv_ref(a, &msg, 0), -EBUSY);
    uint8_t expected[100];
    fill(expected, sizeof(expected), 7);
    assert_memory_equal(msg, expected, sizeof(expected));
    assert_int_equal(ivc_release(a), 0);
    assert_int_equal(ivc_release(a), -EINVAL);

    /* A message sent before the close is still received, then the close. */
    assert_int_equal(ivc_send(a, small, 3, 0), 0);
    assert_int_equal(ivc_recv(a, small, sizeof(small), 5000), 3);
    ivc_close(a);
    assert_int_equal(pthread_join(thread, NULL), 0);
    assert_int_equal(p.result, -ECONNRESET);
    ivc_ctx_close(ctx0);
    free(mem);
}

static void test_several_peers(void **state)
{
    (void)state;
    uint8_t *mem = calloc(1, MEM_SIZE);
    struct peer peers[PEERS - 1];
    pthread_t threads[PEERS - 1];
    struct ivc_chan *chans[PEERS - 1];
    uint8_t buf[64];

    assert_non_null(mem);
    struct ivc_ctx *ctx = open_ctx(mem, 0);
    for (unsigned i = 0; i < PEERS - 1; i++) {
        peers[i] = (struct peer){.mem = mem, .self = i + 1, .other = 0, .rounds = 100};
        assert_int_equal(pthread_create(&threads[i], NULL, echo_peer, &peers[i]), 0);
    }
    for (unsigned i = 0; i < PEERS - 1; i++)
        assert_int_equal(ivc_open(ctx, i + 1, 10000, &chans[i]), 0);
    for (int round = 0; round < 100; round++) {
        for (unsigned i = 0; i < PEERS - 1; i++) {
            fill(buf, sizeof(buf), round * 8 + i);
            assert_int_equal(ivc_send(chans[i], buf, sizeof(buf), 5000), 0);
        }
        for (unsigned i = 0; i < PEERS - 1; i++) {
            uint8_t expected[64];
            fill(expected, sizeof(expected), round * 8 + i);
            assert_int_equal(ivc_recv(chans[i], buf, sizeof(buf), 5000), sizeof(buf));
            assert_memory_equal(buf, expected, sizeof(buf));
        }
    }
    for (unsigned i = 0; i < PEERS - 1; i++) {
        ivc_close(chans[i]);
        assert_int_equal(pthread_join(threads[i], NULL), 0);
        assert_int_equal(peers[i].result, -ECONNRESET);
    }
    ivc_ctx_close(ctx);
    free(mem);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    uint8_t *mem = calloc(1, MEM_SIZE);
    struct ivc_ctx_opts opts = {.backend = (enum ivc_backend)42, .self_id = -1};
    struct ivc_ctx *ctx;
    struct ivc_chan *chan;
    uint64_t present;

    assert_non_null(mem);
    assert_int_equal(ivc_ctx_open(&ctx, &opts), -EOPNOTSUPP); /* no such backend */
    opts.backend = IVC_SHM_MEMORY;
    assert_int_equal(ivc_ctx_open(&ctx, &opts), -EINVAL); /* no memory, no ID */
    opts.memory = mem;
    opts.memory_size = 4096;
    opts.self_id = 0;
    assert_int_equal(ivc_ctx_open(&ctx, &opts), -ENOSPC);
    opts.memory_size = MEM_SIZE;
    opts.self_id = PEERS;
    opts.peers = PEERS;
    assert_int_equal(ivc_ctx_open(&ctx, &opts), -ERANGE);
    opts.peers = 1;
    assert_int_equal(ivc_ctx_open(&ctx, &opts), -EINVAL);

    ctx = open_ctx(mem, 0);
    assert_string_equal(ivc_ctx_backend_name(ctx), "shm-memory");
    assert_int_equal(ivc_ctx_self(ctx), 0);
    assert_int_equal(ivc_ctx_peers(ctx, &present), -EOPNOTSUPP);
    assert_int_equal(ivc_open(ctx, 0, 0, &chan), -ERANGE); /* itself */
    assert_int_equal(ivc_open(ctx, PEERS, 0, &chan), -ERANGE);
    assert_int_equal(ivc_open(ctx, 1, -2, &chan), -EINVAL);
    ivc_close(NULL);
    ivc_ctx_close(ctx);
    free(mem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_blocking),       cmocka_unit_test(test_nonblocking_and_timeouts),
        cmocka_unit_test(test_zero_copy_and_sizes), cmocka_unit_test(test_several_peers),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
