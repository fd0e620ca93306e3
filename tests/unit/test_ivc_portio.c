/* libivc's port I/O backend (guest-apps/libivc/ivc_portio.c) against the real device model:
 * devices/portio.c instances joined through one channel block in this process, each
 * reached through an ivc_port_io table that calls portio_io()/portio_string_io() where a
 * guest would execute in/out. Peers are threads; a hostile peer writes raw frames into its
 * device. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "ivc.h"
#include "ivc_portio.h"
#include "support/portio_channel.h"

#define PEERS   3
#define WAIT_MS 10000

struct fixture {
    void *channel;
    struct portio dev[PEERS];
    struct ivc_port_io io[PEERS];
};

static uint32_t dev_in32(void *opaque, unsigned int offset)
{
    return in32(opaque, offset);
}

static void dev_out32(void *opaque, unsigned int offset, uint32_t value)
{
    out32(opaque, offset, value);
}

/* As KVM hands the instructions to the VMM: rep insl/outsl for whole dwords, else
 * insb/outsb; `rep ins` in exits of at most 1024 bytes that stay within a page of the
 * buffer (the emulator's read-ahead), `rep outs` one element per exit. Each exit is one
 * device call, all or nothing on its own. */
static void dev_ins(void *opaque, unsigned int offset, void *buf, uint32_t len)
{
    uint32_t size = len % 4 == 0 ? 4 : 1;
    for (uint32_t done = 0; done < len;) {
        uintptr_t at = (uintptr_t)buf + done;
        uint32_t chunk = 4096 - (uint32_t)(at % 4096);
        if (chunk > 1024)
            chunk = 1024;
        if (chunk > len - done)
            chunk = len - done;
        chunk -= chunk % size;
        if (chunk == 0)
            chunk = size;
        portio_string_io(opaque, offset, (uint8_t *)buf + done, size, chunk / size, false);
        done += chunk;
    }
}

static void dev_outs(void *opaque, unsigned int offset, const void *buf, uint32_t len)
{
    uint32_t size = len % 4 == 0 ? 4 : 1;
    for (uint32_t done = 0; done < len; done += size)
        portio_string_io(opaque, offset, (uint8_t *)buf + done, size, 1, true);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->channel = test_portio_channel_new();
    for (unsigned int i = 0; i < PEERS; i++) {
        test_portio_join(f->channel, &f->dev[i], i);
        f->io[i] = (struct ivc_port_io){.in32 = dev_in32,
                                        .out32 = dev_out32,
                                        .ins = dev_ins,
                                        .outs = dev_outs,
                                        .opaque = &f->dev[i]};
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    for (unsigned int i = 0; i < PEERS; i++)
        portio_destroy(&f->dev[i]);
    test_portio_channel_free(f->channel);
    free(f);
    return 0;
}

static struct ivc_ctx *open_ctx(struct fixture *f, unsigned int id)
{
    struct ivc_ctx_opts opts = {
        .backend = IVC_PORTIO, .self_id = -1, .flags = IVC_TIMING, .port_io = &f->io[id]};
    struct ivc_ctx *ctx = NULL;
    assert_int_equal(ivc_ctx_open(&ctx, &opts), 0);
    assert_int_equal(ivc_ctx_self(ctx), id);
    return ctx;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void fill(uint8_t *buf, size_t len, unsigned int seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < len; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
}

/* ---- opening both ends at once ---- */

struct opener {
    struct ivc_ctx *ctx;
    unsigned int peer;
    struct ivc_chan *chan;
    int result;
};

static void *open_end(void *arg)
{
    struct opener *o = arg;
    o->result = ivc_open(o->ctx, o->peer, WAIT_MS, &o->chan);
    return NULL;
}

/* Opens a's channel to b's ID and b's to a's, in two threads. */
static void connect_ends(struct ivc_ctx *a, struct ivc_ctx *b, struct ivc_chan **ca,
                         struct ivc_chan **cb)
{
    struct opener other = {.ctx = b, .peer = ivc_ctx_self(a)};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, open_end, &other), 0);
    assert_int_equal(ivc_open(a, ivc_ctx_self(b), WAIT_MS, ca), 0);
    assert_int_equal(pthread_join(thread, NULL), 0);
    assert_int_equal(other.result, 0);
    *cb = other.chan;
}

/* ---- a peer thread ---- */

struct echo {
    struct ivc_chan *chan;
    int rounds;
    int result;
};

/* Returns every message, then waits for the other side's close. */
static void *echo_peer(void *arg)
{
    struct echo *e = arg;
    uint8_t *buf = malloc(IVC_PORTIO_MAX_MSG);
    e->result = buf ? 0 : -ENOMEM;
    for (int i = 0; i < e->rounds && e->result == 0; i++) {
        ssize_t len = ivc_recv(e->chan, buf, IVC_PORTIO_MAX_MSG, WAIT_MS);
        e->result = len < 0 ? (int)len : ivc_send(e->chan, buf, (size_t)len, WAIT_MS);
    }
    if (e->result == 0)
        e->result = (int)ivc_recv(e->chan, buf, IVC_PORTIO_MAX_MSG, WAIT_MS);
    free(buf);
    return NULL;
}

static void test_messages_both_ways_in_order_and_intact(void **state)
{
    struct fixture *f = *state;
    static const size_t sizes[] = {0,    1,     15,    16,    17,     1000,   4080,
                                   4096, 65520, 65536, 65537, 200000, 300001, IVC_PORTIO_MAX_MSG};
    const int pipelined = 8;
    struct ivc_ctx *a = open_ctx(f, 0), *b = open_ctx(f, 1);
    struct ivc_chan *ca, *cb;
    static uint8_t out[IVC_PORTIO_MAX_MSG], in[IVC_PORTIO_MAX_MSG];

    connect_ends(a, b, &ca, &cb);
    assert_string_equal(ivc_ctx_backend_name(a), "portio");
    assert_int_equal(ivc_max_msg(ca), IVC_PORTIO_MAX_MSG);
    struct echo e = {.chan = cb, .rounds = (int)(sizeof(sizes) / sizeof(sizes[0])) + pipelined};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, echo_peer, &e), 0);

    /* One at a time, from empty to larger than the device's ring and the maximum. */
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        fill(out, sizes[i], (unsigned int)i);
        assert_int_equal(ivc_send(ca, out, sizes[i], WAIT_MS), 0);
        memset(in, 0, sizes[i]);
        assert_int_equal(ivc_recv(ca, in, sizeof(in), WAIT_MS), (ssize_t)sizes[i]);
        assert_memory_equal(in, out, sizes[i]);
    }
    /* Several in flight: they come back in order, none merged or split. */
    for (int i = 0; i < pipelined; i++) {
        fill(out, 1000 + (size_t)i, 100 + (unsigned int)i);
        assert_int_equal(ivc_send(ca, out, 1000 + (size_t)i, WAIT_MS), 0);
    }
    for (int i = 0; i < pipelined; i++) {
        fill(out, 1000 + (size_t)i, 100 + (unsigned int)i);
        assert_int_equal(ivc_recv(ca, in, sizeof(in), WAIT_MS), 1000 + i);
        assert_memory_equal(in, out, 1000 + (size_t)i);
    }
    struct ivc_stats stats;
    ivc_chan_stats(ca, &stats);
    assert_true(stats.ring_ns > 0);
    assert_int_equal(stats.notifies, 0);

    ivc_close(ca);
    assert_int_equal(pthread_join(thread, NULL), 0);
    assert_int_equal(e.result, -ECONNRESET);                      /* the close reached the peer */
    assert_int_equal(in32(&f->dev[0], PORTIO_REG_TX_REFUSED), 0); /* never wrote blindly */
    assert_int_equal(in32(&f->dev[1], PORTIO_REG_RX_UNDERRUN), 0);
    ivc_close(cb);
    ivc_ctx_close(a);
    ivc_ctx_close(b);
}

struct reader {
    struct ivc_chan *chan;
    int count;
    size_t size;
    int result;
};

/* Receives count messages by reference, each checked against its seed. */
static void *ref_reader(void *arg)
{
    struct reader *r = arg;
    uint8_t *expected = malloc(r->size);
    r->result = expected ? 0 : -ENOMEM;
    for (int i = 0; i < r->count && r->result == 0; i++) {
        const void *msg;
        ssize_t len = ivc_recv_ref(r->chan, &msg, WAIT_MS);
        fill(expected, r->size, 500 + (unsigned int)i);
        if (len < 0)
            r->result = (int)len;
        else if ((size_t)len != r->size || memcmp(msg, expected, r->size) != 0)
            r->result = -EBADMSG;
        else
            r->result = ivc_release(r->chan);
    }
    free(expected);
    return NULL;
}

static void test_messages_larger_than_the_ring_flow(void **state)
{
    struct fixture *f = *state;
    struct ivc_ctx *a = open_ctx(f, 0), *b = open_ctx(f, 1);
    struct ivc_chan *ca, *cb;
    struct reader r = {.count = 3, .size = 5 * PORTIO_RING_BYTES + 123};
    uint8_t *out = malloc(r.size);

    assert_non_null(out);
    connect_ends(a, b, &ca, &cb);
    r.chan = cb;
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, ref_reader, &r), 0);
    for (int i = 0; i < r.count; i++) {
        fill(out, r.size, 500 + (unsigned int)i);
        assert_int_equal(ivc_send(ca, out, r.size, IVC_FOREVER), 0);
    }
    assert_int_equal(pthread_join(thread, NULL), 0);
    assert_int_equal(r.result, 0);
    assert_int_equal(ivc_send(ca, out, IVC_PORTIO_MAX_MSG + 1, 0), -EMSGSIZE);
    assert_int_equal(in32(&f->dev[0], PORTIO_REG_TX_REFUSED), 0);
    free(out);
    ivc_close(ca);
    ivc_close(cb);
    ivc_ctx_close(a);
    ivc_ctx_close(b);
}

static void test_nonblocking_says_eagain(void **state)
{
    struct fixture *f = *state;
    struct ivc_ctx *a = open_ctx(f, 0), *b = open_ctx(f, 1);
    struct ivc_chan *ca, *cb;
    uint8_t buf[1000], expected[1000];
    const void *msg;
    void *slot;

    connect_ends(a, b, &ca, &cb);
    assert_int_equal(ivc_recv(cb, buf, sizeof(buf), 0), -EAGAIN);
    assert_int_equal(ivc_recv_ref(cb, &msg, 0), -EAGAIN);
    int sent = 0;
    for (;;) {
        fill(buf, sizeof(buf), (unsigned int)sent);
        int err = ivc_send(ca, buf, sizeof(buf), 0);
        if (err) {
            assert_int_equal(err, -EAGAIN);
            break;
        }
        sent++;
    }
    /* The 64 KiB ring holds as many whole frames as fit, not one more. */
    assert_int_equal(sent, PORTIO_RING_BYTES / (sizeof(buf) + IVC_PIO_HDR));
    assert_int_equal(ivc_reserve(ca, sizeof(buf), &slot, 0), 0);
    memset(slot, 1, sizeof(buf));
    assert_int_equal(ivc_commit(ca, sizeof(buf)), -EAGAIN); /* the reservation stays */
    assert_int_equal(ivc_send(ca, buf, 1, 0), -EBUSY);
    for (int i = 0; i < sent; i++) {
        fill(expected, sizeof(expected), (unsigned int)i);
        assert_int_equal(ivc_recv(cb, buf, sizeof(buf), 0), sizeof(buf));
        assert_memory_equal(buf, expected, sizeof(buf));
    }
    assert_int_equal(ivc_recv(cb, buf, sizeof(buf), 0), -EAGAIN);
    assert_int_equal(ivc_commit(ca, sizeof(buf)), 0); /* now there is room */
    assert_int_equal(ivc_recv(cb, buf, sizeof(buf), 0), sizeof(buf));
    assert_int_equal(buf[999], 1);
    assert_int_equal(in32(&f->dev[0], PORTIO_REG_TX_REFUSED), 0);
    ivc_close(ca);
    ivc_close(cb);
    ivc_ctx_close(a);
    ivc_ctx_close(b);
}

static void *late_sender(void *arg)
{
    struct ivc_chan *chan = arg;
    static const char later[] = "after the timeout";
    struct timespec pause = {.tv_nsec = 100 * 1000000};
    nanosleep(&pause, NULL);
    return (void *)(intptr_t)ivc_send(chan, later, sizeof(later), WAIT_MS);
}

static void test_timeouts_and_a_send_taken_back(void **state)
{
    struct fixture *f = *state;
    struct ivc_ctx *a = open_ctx(f, 0), *b = open_ctx(f, 1);
    struct ivc_chan *ca, *cb;
    static uint8_t big[3 * PORTIO_RING_BYTES];
    uint8_t buf[100];

    connect_ends(a, b, &ca, &cb);
    /* Short (kept to about a millisecond) and long (WAIT registers) timeouts. */
    static const int timeouts[] = {5, 60};
    for (size_t i = 0; i < 2; i++) {
        uint64_t start = now_ms();
        assert_int_equal(ivc_recv(cb, buf, sizeof(buf), timeouts[i]), -ETIMEDOUT);
        uint64_t waited = now_ms() - start;
        assert_true(waited >= (uint64_t)timeouts[i]);
        assert_true(waited < (uint64_t)timeouts[i] + 500);
    }

    /* Nobody reads: the send writes what fits, times out, and the peer never sees that
     * message; the next one arrives whole and first. */
    fill(big, sizeof(big), 3);
    uint64_t start = now_ms();
    assert_int_equal(ivc_send(ca, big, sizeof(big), 50), -ETIMEDOUT);
    assert_true(now_ms() - start >= 50);
    /* Again, with no room at all: it waits in the WAIT register and in 1 ms sleeps, not by
     * spinning on registers. */
    uint32_t exits = in32(&f->dev[0], PORTIO_REG_EXITS);
    assert_int_equal(ivc_send(ca, big, sizeof(big), 50), -ETIMEDOUT);
    assert_true(in32(&f->dev[0], PORTIO_REG_EXITS) - exits < 100);
    /* It did write: chunks until less than a page's worth was free. */
    assert_true(in32(&f->dev[0], PORTIO_REG_TX_SPACE) < PORTIO_WAIT_TX_MIN + IVC_PIO_HDR);
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, late_sender, ca), 0);
    assert_int_equal(ivc_recv(cb, buf, sizeof(buf), WAIT_MS), sizeof("after the timeout"));
    assert_string_equal((char *)buf, "after the timeout");
    void *sent;
    assert_int_equal(pthread_join(thread, &sent), 0);
    assert_int_equal((intptr_t)sent, 0);
    assert_int_equal(ivc_recv(cb, buf, sizeof(buf), 0), -EAGAIN);
    ivc_close(ca);
    ivc_close(cb);
    ivc_ctx_close(a);
    ivc_ctx_close(b);
}

static void test_peer_gone_and_closed_say_econnreset(void **state)
{
    struct fixture *f = *state;
    struct ivc_ctx *a = open_ctx(f, 0), *b = open_ctx(f, 1);
    struct ivc_chan *ca, *cb;
    uint8_t buf[100];
    void *slot;

    /* A close: what came before it first, then -ECONNRESET, at once. */
    connect_ends(a, b, &ca, &cb);
    assert_int_equal(ivc_send(cb, "last words", 10, 0), 0);
    ivc_close(cb);
    assert_int_equal(ivc_recv(ca, buf, sizeof(buf), WAIT_MS), 10);
    uint64_t start = now_ms();
    assert_int_equal(ivc_recv(ca, buf, sizeof(buf), WAIT_MS), -ECONNRESET);
    assert_int_equal(ivc_send(ca, buf, 1, WAIT_MS), -ECONNRESET);
    assert_true(now_ms() - start < 1000);
    ivc_close(ca);

    /* The peer's VM leaves (the broker clears its presence): the same, through STATUS. */
    connect_ends(a, b, &ca, &cb);
    assert_int_equal(ivc_send(cb, "before", 6, 0), 0);
    portio_channel_set_present(f->channel, 1, 0, false);
    assert_int_equal(ivc_recv(ca, buf, sizeof(buf), WAIT_MS), 6);
    start = now_ms();
    assert_int_equal(ivc_recv(ca, buf, sizeof(buf), WAIT_MS), -ECONNRESET);
    assert_true(now_ms() - start < 1000);
    ivc_close(ca);
    ivc_close(cb);

    /* It comes back as a new VM with the same ID: a new channel works, and a sender that
     * is blocked on a full ring when the peer leaves learns it within a wait. */
    portio_channel_set_present(f->channel, 1, 200, true);
    connect_ends(a, b, &ca, &cb);
    while (ivc_send(ca, buf, sizeof(buf), 0) == 0)
        ;
    portio_channel_set_present(f->channel, 1, 0, false);
    start = now_ms();
    assert_int_equal(ivc_send(ca, buf, sizeof(buf), WAIT_MS), -ECONNRESET);
    assert_true(now_ms() - start < 1000);
    assert_int_equal(ivc_reserve(ca, 10, &slot, 0), -ECONNRESET);
    ivc_close(ca);
    ivc_close(cb);
    ivc_ctx_close(a);
    ivc_ctx_close(b);
}

/* ---- a hostile peer ---- */

static void write_raw(struct portio *dev, const void *bytes, uint32_t len)
{
    outs(dev, bytes, len);
}

static void test_hostile_frames_are_protocol_errors(void **state)
{
    struct fixture *f = *state;
    struct ivc_ctx *a = open_ctx(f, 0), *b = open_ctx(f, 1);
    uint8_t buf[256];
    const struct ivc_pio_hdr hostile[] = {
        /* a length above the maximum message */
        {IVC_PIO_MAGIC | IVC_PIO_DATA, 16, IVC_PORTIO_MAX_MSG + 1, 0},
        {IVC_PIO_MAGIC | IVC_PIO_DATA, 0xffffffff, 0xffffffff, 0},
        /* a chunk longer than its message, one past its end, an empty one */
        {IVC_PIO_MAGIC | IVC_PIO_DATA, 20, 10, 0},
        {IVC_PIO_MAGIC | IVC_PIO_DATA, 8, 100, 96},
        {IVC_PIO_MAGIC | IVC_PIO_DATA, 0, 100, 0},
        /* a continuation of nothing */
        {IVC_PIO_MAGIC | IVC_PIO_DATA, 10, 100, 10},
        /* an unknown type, another magic, a malformed HELLO and CLOSE */
        {IVC_PIO_MAGIC | 9, 0, 0, 0},
        {0x12345678, 0, 0, 0},
        {IVC_PIO_MAGIC | IVC_PIO_HELLO, 8, 0, 0},
        {IVC_PIO_MAGIC | IVC_PIO_CLOSE, 4, 0, 0},
    };

    for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
        struct ivc_chan *ca, *cb;
        connect_ends(a, b, &ca, &cb);
        /* b's device carries whatever its guest writes: a header and some bytes. */
        write_raw(&f->dev[1], &hostile[i], sizeof(hostile[i]));
        memset(buf, 0xab, 64);
        write_raw(&f->dev[1], buf, 64);
        assert_int_equal(ivc_recv(ca, buf, sizeof(buf), WAIT_MS), -EPROTO);
        /* Sticky: every later call says so. */
        assert_int_equal(ivc_recv(ca, buf, sizeof(buf), 0), -EPROTO);
        assert_int_equal(ivc_send(ca, buf, 1, 0), -EPROTO);
        ivc_close(ca);
        ivc_close(cb);
    }

    /* A continuation that does not follow on: the first chunk is fine, the second lies. */
    struct ivc_chan *ca, *cb;
    connect_ends(a, b, &ca, &cb);
    struct ivc_pio_hdr first = {IVC_PIO_MAGIC | IVC_PIO_DATA, 10, 30, 0};
    struct ivc_pio_hdr skip = {IVC_PIO_MAGIC | IVC_PIO_DATA, 10, 30, 20};
    write_raw(&f->dev[1], &first, sizeof(first));
    write_raw(&f->dev[1], buf, IVC_PIO_PADDED(10));
    write_raw(&f->dev[1], &skip, sizeof(skip));
    write_raw(&f->dev[1], buf, IVC_PIO_PADDED(10));
    assert_int_equal(ivc_recv(ca, buf, sizeof(buf), WAIT_MS), -EPROTO);
    ivc_close(ca);
    ivc_close(cb);

    /* Random bytes: each call gives a message or an error, never a crash or a hang. */
    for (unsigned int round = 0; round < 200; round++) {
        connect_ends(a, b, &ca, &cb);
        uint8_t junk[200];
        fill(junk, sizeof(junk), round);
        if (round % 2) { /* a valid-looking header first, so the body is parsed too */
            struct ivc_pio_hdr h = {IVC_PIO_MAGIC | (junk[0] % 4), junk[1], junk[2], junk[3] % 8};
            write_raw(&f->dev[1], &h, sizeof(h));
        }
        write_raw(&f->dev[1], junk, sizeof(junk));
        for (int calls = 0; calls < 50; calls++) {
            ssize_t len = ivc_recv(ca, buf, sizeof(buf), 0);
            if (len == -EAGAIN || len == -EPROTO || len == -ECONNRESET)
                break;
            assert_true(len >= 0 || len == -EMSGSIZE);
            if (len == -EMSGSIZE)
                break;
        }
        ivc_close(ca);
        ivc_close(cb);
    }
    ivc_ctx_close(a);
    ivc_ctx_close(b);
}

/* ---- the rest of the API ---- */

static void test_zero_copy_through_bounce_buffers(void **state)
{
    struct fixture *f = *state;
    struct ivc_ctx *a = open_ctx(f, 0), *b = open_ctx(f, 1);
    struct ivc_chan *ca, *cb;
    uint8_t small[10], expected[100];
    const void *msg;
    void *slot;

    connect_ends(a, b, &ca, &cb);
    assert_int_equal(ivc_reserve(ca, 100, &slot, 0), 0);
    assert_int_equal(ivc_send(ca, small, 1, 0), -EBUSY);
    fill(slot, 100, 7);
    assert_int_equal(ivc_commit(ca, 101), -EINVAL);
    assert_int_equal(ivc_commit(ca, 100), 0);
    assert_int_equal(ivc_commit(ca, 100), -EINVAL); /* nothing reserved */
    assert_int_equal(ivc_reserve(ca, IVC_PORTIO_MAX_MSG + 1, &slot, 0), -EMSGSIZE);

    assert_int_equal(ivc_recv(cb, small, sizeof(small), WAIT_MS), -EMSGSIZE); /* stays */
    assert_int_equal(ivc_recv_ref(cb, &msg, 0), 100);
    assert_int_equal(ivc_recv_ref(cb, &msg, 0), -EBUSY);
    assert_int_equal(ivc_recv(cb, small, sizeof(small), 0), -EBUSY);
    fill(expected, sizeof(expected), 7);
    assert_memory_equal(msg, expected, sizeof(expected));
    assert_int_equal(ivc_release(cb), 0);
    assert_int_equal(ivc_release(cb), -EINVAL);
    assert_int_equal(ivc_recv_ref(cb, &msg, 0), -EAGAIN);
    ivc_close(ca);
    ivc_close(cb);
    ivc_ctx_close(a);
    ivc_ctx_close(b);
}

static void test_several_peers_on_one_context(void **state)
{
    struct fixture *f = *state;
    struct ivc_ctx *hub = open_ctx(f, 0), *one = open_ctx(f, 1), *two = open_ctx(f, 2);
    struct ivc_chan *to1, *to2, *from1, *from2;
    uint64_t present;
    char buf[16];

    assert_int_equal(ivc_ctx_peers(hub, &present), 0);
    assert_int_equal(present, 0x7);
    connect_ends(hub, one, &to1, &from1);
    connect_ends(hub, two, &to2, &from2);
    /* The hub's device switches PEER between the channels; nothing crosses over. */
    for (int round = 0; round < 20; round++) {
        assert_int_equal(ivc_send(to1, "to one", 7, 0), 0);
        assert_int_equal(ivc_send(to2, "to two", 7, 0), 0);
        assert_int_equal(ivc_send(from2, "from two", 9, 0), 0);
        assert_int_equal(ivc_send(from1, "from one", 9, 0), 0);
        assert_int_equal(ivc_recv(to1, buf, sizeof(buf), WAIT_MS), 9);
        assert_string_equal(buf, "from one");
        assert_int_equal(ivc_recv(to2, buf, sizeof(buf), WAIT_MS), 9);
        assert_string_equal(buf, "from two");
        assert_int_equal(ivc_recv(from1, buf, sizeof(buf), WAIT_MS), 7);
        assert_string_equal(buf, "to one");
        assert_int_equal(ivc_recv(from2, buf, sizeof(buf), WAIT_MS), 7);
        assert_string_equal(buf, "to two");
    }
    /* Peer 2's VM leaves while the hub talks to peer 1: seen when the hub turns to 2. */
    portio_channel_set_present(f->channel, 2, 0, false);
    assert_int_equal(ivc_send(to1, "still", 6, 0), 0);
    assert_int_equal(ivc_recv(to2, buf, sizeof(buf), WAIT_MS), -ECONNRESET);
    assert_int_equal(ivc_recv(from1, buf, sizeof(buf), WAIT_MS), 6);
    ivc_close(to1);
    ivc_close(to2);
    ivc_close(from1);
    ivc_close(from2);
    ivc_ctx_close(hub);
    ivc_ctx_close(one);
    ivc_ctx_close(two);
}

static void test_bad_arguments_and_absent_peers(void **state)
{
    struct fixture *f = *state;
    struct ivc_port_io incomplete = f->io[0];
    struct ivc_ctx_opts opts = {.backend = IVC_PORTIO, .self_id = -1, .port_io = &incomplete};
    struct ivc_ctx *ctx;
    struct ivc_chan *chan;

    incomplete.outs = NULL;
    assert_int_equal(ivc_ctx_open(&ctx, &opts), -EINVAL);
    opts.port_io = &f->io[1];
    opts.self_id = 0; /* the device says 1 */
    assert_int_equal(ivc_ctx_open(&ctx, &opts), -EINVAL);
    opts.self_id = -1;
    opts.peers = 2;
    opts.port_io = &f->io[2]; /* ID 2 is outside 2 peers */
    assert_int_equal(ivc_ctx_open(&ctx, &opts), -ERANGE);
    opts.port_io = NULL;
    opts.device = "9999:99:99.9"; /* no such device here */
    assert_int_equal(ivc_ctx_open(&ctx, &opts), -ENODEV);

    ctx = open_ctx(f, 0);
    assert_int_equal(ivc_open(ctx, 0, 0, &chan), -ERANGE); /* itself */
    assert_int_equal(ivc_open(ctx, PORTIO_MAX_PEERS, 0, &chan), -ERANGE);
    uint64_t start = now_ms();
    assert_int_equal(ivc_open(ctx, 5, 30, &chan), -ETIMEDOUT); /* absent */
    assert_true(now_ms() - start >= 30);
    assert_int_equal(ivc_open(ctx, 1, 0, &chan), -ETIMEDOUT); /* present, not opening */
    start = now_ms();
    assert_int_equal(ivc_open(ctx, 1, 50, &chan), -ETIMEDOUT);
    assert_true(now_ms() - start >= 50);
    assert_int_equal(in32(&f->dev[0], PORTIO_REG_TX_REFUSED), 0);
    ivc_ctx_close(ctx);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_messages_both_ways_in_order_and_intact),
        T(test_messages_larger_than_the_ring_flow),
        T(test_nonblocking_says_eagain),
        T(test_timeouts_and_a_send_taken_back),
        T(test_peer_gone_and_closed_say_econnreset),
        T(test_hostile_frames_are_protocol_errors),
        T(test_zero_copy_through_bounce_buffers),
        T(test_several_peers_on_one_context),
        T(test_bad_arguments_and_absent_peers),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
