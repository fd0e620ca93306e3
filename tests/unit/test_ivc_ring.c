/* libivc's layout and rings (guest-apps/libivc/ivc_ring.c): two or more endpoints in one
 * process over one malloc'ed "shared memory" of exactly S bytes, so that under ASan any
 * access outside it fails the test. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ivc_ring.h"

#define SHM_SIZE (256u * 1024)

struct group {
    uint8_t *shm;
    struct ivc_layout layout;
};

static void group_init(struct group *g, uint64_t size, unsigned peers)
{
    g->shm = calloc(1, size);
    assert_non_null(g->shm);
    assert_int_equal(ivc_layout_init(&g->layout, size, peers), 0);
}

/* Every session gets a nonce of its own, as the backend's are random. */
static uint64_t next_nonce(void)
{
    static uint64_t nonce = 0x1000;
    return ++nonce;
}

static void connect_pair(struct group *g, struct ivc_pair *a, unsigned ida, struct ivc_pair *b,
                         unsigned idb)
{
    ivc_pair_open(a, g->shm, &g->layout, ida, idb, next_nonce());
    assert_int_equal(ivc_pair_poll(a), -EAGAIN); /* the peer has not opened yet */
    ivc_pair_open(b, g->shm, &g->layout, idb, ida, next_nonce());
    assert_int_equal(ivc_pair_poll(b), -EAGAIN); /* acked a, a has not acked b */
    assert_int_equal(ivc_pair_poll(a), 0);
    assert_int_equal(ivc_pair_poll(b), 0);
}

static int send_bytes(struct ivc_pair *p, const void *buf, size_t len)
{
    void *slot;
    int err = ivc_pair_reserve(p, len, &slot);
    if (err)
        return err;
    memcpy(slot, buf, len);
    return ivc_pair_commit(p, len);
}

static long recv_bytes(struct ivc_pair *p, void *buf, size_t size)
{
    const void *msg;
    long len = ivc_pair_peek(p, &msg);
    if (len < 0)
        return len;
    assert_true((size_t)len <= size);
    memcpy(buf, msg, (size_t)len);
    assert_int_equal(ivc_pair_release(p), 0);
    return len;
}

static void fill(uint8_t *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(seed * 31 + i * 7);
}

static void test_layout(void **state)
{
    (void)state;
    struct ivc_layout l;

    assert_int_equal(ivc_layout_init(&l, 1 << 20, 1), -EINVAL);
    assert_int_equal(ivc_layout_init(&l, 1 << 20, 65), -EINVAL);
    assert_int_equal(ivc_layout_init(&l, 16384, 8), -ENOSPC);
    assert_int_equal(ivc_layout_init(&l, 100, 2), -ENOSPC);
    assert_int_equal(ivc_layout_init(&l, 16384, 2), 0);
    assert_int_equal(l.cap, 8192 - IVC_RING_CTL_SIZE);
    for (unsigned peers = 2; peers <= IVC_RING_MAX_PEERS; peers++) {
        uint64_t size = 64ull << 20;
        assert_int_equal(ivc_layout_init(&l, size, peers), 0);
        assert_int_equal(l.cap % IVC_RING_ALIGN, 0);
        /* Regions tile the memory in order, none past the end. */
        uint64_t expected = 0;
        for (unsigned a = 0; a < peers; a++) {
            for (unsigned b = 0; b < peers; b++) {
                if (a == b)
                    continue;
                assert_int_equal(ivc_layout_region(&l, a, b), expected);
                expected += l.region_size;
            }
        }
        assert_true(expected <= size);
    }
}

static void test_order_and_wrap(void **state)
{
    (void)state;
    struct group g;
    struct ivc_pair a, b;
    uint8_t out[3000], in[3000];

    group_init(&g, SHM_SIZE, 2);
    connect_pair(&g, &a, 0, &b, 1);
    /* Many times the capacity, sizes chosen so records land at every alignment. */
    uint64_t sent = 0;
    for (unsigned i = 0; sent < 10 * g.layout.cap; i++) {
        size_t len = (i * 977) % sizeof(out);
        fill(out, len, i);
        assert_int_equal(send_bytes(&a, out, len), 0);
        assert_int_equal(recv_bytes(&b, in, sizeof(in)), (long)len);
        assert_memory_equal(in, out, len);
        sent += len + 8;
    }
    /* And the other way, several in flight. */
    for (unsigned round = 0; round < 50; round++) {
        for (unsigned i = 0; i < 10; i++) {
            fill(out, 100 + i, round + i);
            assert_int_equal(send_bytes(&b, out, 100 + i), 0);
        }
        for (unsigned i = 0; i < 10; i++) {
            fill(out, 100 + i, round + i);
            assert_int_equal(recv_bytes(&a, in, sizeof(in)), 100 + i);
            assert_memory_equal(in, out, 100 + i);
        }
    }
    free(g.shm);
}

static void test_full_and_empty(void **state)
{
    (void)state;
    struct group g;
    struct ivc_pair a, b;
    uint8_t buf[1024] = {0};
    const void *msg;

    group_init(&g, SHM_SIZE, 2);
    connect_pair(&g, &a, 0, &b, 1);
    assert_int_equal(ivc_pair_peek(&b, &msg), -EAGAIN);
    unsigned n = 0;
    while (send_bytes(&a, buf, 1000 - 8) == 0)
        n++;
    assert_int_equal(n, g.layout.cap / 1024); /* each record takes 1024 bytes */
    assert_int_equal(send_bytes(&a, buf, 0), -EAGAIN);
    assert_int_equal(recv_bytes(&b, buf, sizeof(buf)), 992);
    assert_int_equal(send_bytes(&a, buf, 992), 0);
    for (unsigned i = 0; i < n; i++)
        assert_int_equal(recv_bytes(&b, buf, sizeof(buf)), 992);
    assert_int_equal(ivc_pair_peek(&b, &msg), -EAGAIN);
    free(g.shm);
}

static void test_zero_copy(void **state)
{
    (void)state;
    struct group g;
    struct ivc_pair a, b;
    void *slot;
    const void *msg;

    group_init(&g, SHM_SIZE, 2);
    connect_pair(&g, &a, 0, &b, 1);
    assert_int_equal(ivc_pair_commit(&a, 0), -EINVAL); /* nothing reserved */
    assert_int_equal(ivc_pair_reserve(&a, 500, &slot), 0);
    memset(slot, 0xAB, 500);
    assert_int_equal(ivc_pair_commit(&a, 600), -EINVAL); /* more than reserved */
    assert_int_equal(ivc_pair_commit(&a, 300), 0);       /* less is fine */
    assert_int_equal(ivc_pair_peek(&b, &msg), 300);
    assert_ptr_equal(msg, slot); /* the very bytes the sender wrote: no copy */
    assert_int_equal(ivc_pair_peek(&b, &msg), -EBUSY);
    ivc_pair_unpeek(&b);
    assert_int_equal(ivc_pair_peek(&b, &msg), 300); /* still first in line */
    assert_int_equal(ivc_pair_release(&b), 0);
    assert_int_equal(ivc_pair_release(&b), -EINVAL);

    /* The largest message fits, wherever the ring stands, once the peer drains it. */
    assert_int_equal(ivc_pair_reserve(&a, a.max_msg + 1, &slot), -EMSGSIZE);
    assert_int_equal(ivc_pair_reserve(&a, a.max_msg, &slot), -EAGAIN); /* pad published */
    assert_int_equal(ivc_pair_peek(&b, &msg), -EAGAIN);                /* pad consumed */
    assert_int_equal(ivc_pair_reserve(&a, a.max_msg, &slot), 0);
    memset(slot, 0x5C, a.max_msg);
    assert_int_equal(ivc_pair_commit(&a, a.max_msg), 0);
    assert_int_equal(ivc_pair_peek(&b, &msg), (long)a.max_msg);
    assert_int_equal(((const uint8_t *)msg)[a.max_msg - 1], 0x5C);
    assert_int_equal(ivc_pair_release(&b), 0);
    free(g.shm);
}

/* Four peers, every ordered pair talking at once: each receives exactly what its peer
 * sent to it, and traffic between 0 and 1 writes nothing outside their two regions. */
static void test_several_peers(void **state)
{
    (void)state;
    enum { P = 4 };
    struct group g;
    struct ivc_pair pairs[P][P];
    uint8_t out[200], in[200];

    group_init(&g, SHM_SIZE, P);
    for (unsigned i = 0; i < P; i++)
        for (unsigned j = i + 1; j < P; j++)
            connect_pair(&g, &pairs[i][j], i, &pairs[j][i], j);
    for (unsigned round = 0; round < 200; round++) {
        for (unsigned i = 0; i < P; i++)
            for (unsigned j = 0; j < P; j++)
                if (i != j) {
                    fill(out, sizeof(out), round * 16 + i * 4 + j);
                    assert_int_equal(send_bytes(&pairs[i][j], out, sizeof(out)), 0);
                }
        for (unsigned i = 0; i < P; i++)
            for (unsigned j = 0; j < P; j++)
                if (i != j) {
                    fill(out, sizeof(out), round * 16 + j * 4 + i);
                    assert_int_equal(recv_bytes(&pairs[i][j], in, sizeof(in)), sizeof(in));
                    assert_memory_equal(in, out, sizeof(in));
                }
    }

    uint8_t *copy = malloc(SHM_SIZE);
    assert_non_null(copy);
    memcpy(copy, g.shm, SHM_SIZE);
    for (unsigned round = 0; round < 100; round++) {
        fill(out, sizeof(out), round);
        assert_int_equal(send_bytes(&pairs[0][1], out, sizeof(out)), 0);
        assert_int_equal(send_bytes(&pairs[1][0], out, sizeof(out)), 0);
        assert_int_equal(recv_bytes(&pairs[1][0], in, sizeof(in)), sizeof(in));
        assert_int_equal(recv_bytes(&pairs[0][1], in, sizeof(in)), sizeof(in));
    }
    uint64_t r01 = ivc_layout_region(&g.layout, 0, 1), r10 = ivc_layout_region(&g.layout, 1, 0);
    for (uint64_t off = 0; off < SHM_SIZE; off++) {
        bool inside = (off >= r01 && off < r01 + g.layout.region_size) ||
                      (off >= r10 && off < r10 + g.layout.region_size);
        if (!inside && g.shm[off] != copy[off])
            fail_msg("byte %#llx outside regions 0->1 and 1->0 changed", (unsigned long long)off);
    }
    free(copy);
    free(g.shm);
}

static void test_close_and_restart(void **state)
{
    (void)state;
    struct group g;
    struct ivc_pair a, b;
    uint8_t buf[64] = {0};

    group_init(&g, SHM_SIZE, 2);
    connect_pair(&g, &a, 0, &b, 1);
    assert_int_equal(send_bytes(&a, buf, 10), 0);
    ivc_pair_close(&a);
    assert_int_equal(ivc_pair_poll(&b), -ECONNRESET);
    assert_int_equal(recv_bytes(&b, buf, sizeof(buf)), -ECONNRESET); /* sticky */

    /* A peer that restarts (new nonce) resets its rings under the old session. */
    connect_pair(&g, &a, 0, &b, 1);
    assert_int_equal(send_bytes(&a, buf, 10), 0);
    assert_int_equal(send_bytes(&a, buf, 10), 0);
    ivc_pair_open(&a, g.shm, &g.layout, 0, 1, next_nonce());
    assert_int_equal(ivc_pair_poll(&b), -ECONNRESET); /* what a waiting backend asks */
    assert_int_equal(recv_bytes(&b, buf, sizeof(buf)), -ECONNRESET);
    free(g.shm);
}

static void test_layout_mismatch(void **state)
{
    (void)state;
    struct group g;
    struct ivc_layout bigger;
    struct ivc_pair a;

    /* Peer 1 thinks the memory is twice as big: its control block says so, and peer 0
     * refuses the session instead of reading where peer 1 believes its ring is. */
    group_init(&g, SHM_SIZE, 2);
    assert_int_equal(ivc_layout_init(&bigger, 2 * SHM_SIZE, 2), 0);
    ivc_pair_open(&a, g.shm, &g.layout, 0, 1, next_nonce());
    atomic_store(&a.rx.ctl->shm_size, bigger.shm_size);
    atomic_store(&a.rx.ctl->tx_nonce, next_nonce());
    assert_int_equal(ivc_pair_poll(&a), -EPROTO);
    free(g.shm);
}

/* Values a hostile peer can write where it may write (its own control fields and data)
 * or anywhere: each must give -EPROTO, never an access outside the memory. */
static void test_hostile_indices(void **state)
{
    (void)state;
    struct group g;
    struct ivc_pair a, b;
    uint8_t buf[256] = {0};
    const void *msg;

    group_init(&g, SHM_SIZE, 2);
    uint64_t cap = g.layout.cap;
    const uint64_t bad_heads[] = {cap + 64, 3, UINT64_MAX & ~63ull, 1ull << 63};
    for (size_t i = 0; i < sizeof(bad_heads) / sizeof(bad_heads[0]); i++) {
        connect_pair(&g, &a, 0, &b, 1);
        atomic_store(&b.rx.ctl->head, bad_heads[i]);
        assert_int_equal(ivc_pair_peek(&b, &msg), -EPROTO);
        assert_int_equal(ivc_pair_peek(&b, &msg), -EPROTO); /* sticky */
        assert_int_equal(ivc_pair_reserve(&b, 1, (void **)&msg), -EPROTO);
    }

    /* head moving back */
    connect_pair(&g, &a, 0, &b, 1);
    assert_int_equal(send_bytes(&a, buf, 100), 0);
    assert_int_equal(recv_bytes(&b, buf, sizeof(buf)), 100);
    atomic_store(&b.rx.ctl->head, 0);
    assert_int_equal(ivc_pair_peek(&b, &msg), -EPROTO);

    /* tail beyond head, misaligned, moving back */
    const uint64_t bad_tails[] = {64 * 100, 5, UINT64_MAX};
    for (size_t i = 0; i < sizeof(bad_tails) / sizeof(bad_tails[0]); i++) {
        connect_pair(&g, &a, 0, &b, 1);
        atomic_store(&a.tx.ctl->tail, bad_tails[i]);
        assert_int_equal(send_bytes(&a, buf, 10), -EPROTO);
    }

    /* record headers: length past the data area, past head, over max, bad kind, bad pad */
    const uint64_t bad_headers[] = {
        (uint64_t)IVC_REC_MSG << 32 | 0xFFFFFFFFu,
        (uint64_t)IVC_REC_MSG << 32 | (uint32_t)(cap - 8),
        (uint64_t)IVC_REC_MSG << 32 | 200, /* only 64 bytes published */
        (uint64_t)7 << 32 | 10,
        (uint64_t)IVC_REC_PAD << 32 | 64, /* a pad at offset 0 */
        (uint64_t)IVC_REC_PAD << 32 | (uint32_t)cap,
    };
    for (size_t i = 0; i < sizeof(bad_headers) / sizeof(bad_headers[0]); i++) {
        connect_pair(&g, &a, 0, &b, 1);
        assert_int_equal(send_bytes(&a, buf, 10), 0);
        memcpy(b.rx.data, &bad_headers[i], 8);
        assert_int_equal(ivc_pair_peek(&b, &msg), -EPROTO);
    }
    free(g.shm);
}

/* Random garbage in the peer's control block and data, over many rounds: every call
 * returns a defined result and every message it hands out lies inside the data area. */
static void test_random_garbage(void **state)
{
    (void)state;
    struct group g;
    struct ivc_pair a, b;
    uint8_t buf[512] = {0};
    const void *msg;
    unsigned seed = 12345;

    group_init(&g, 64 * 1024, 2);
    for (unsigned round = 0; round < 2000; round++) {
        connect_pair(&g, &a, 0, &b, 1);
        for (unsigned i = 0; i < round % 7; i++)
            (void)send_bytes(&a, buf, (round * 13 + i) % sizeof(buf));
        uint8_t *ctl = (uint8_t *)b.rx.ctl;
        for (unsigned i = 0; i < 4; i++) {
            seed = seed * 1103515245 + 12345;
            size_t off = (seed >> 8) % (IVC_RING_CTL_SIZE + 1024);
            ctl[off] = (uint8_t)(seed >> 20);
        }
        for (unsigned i = 0; i < 8; i++) {
            long len = ivc_pair_peek(&b, &msg);
            if (len >= 0) {
                assert_true((const uint8_t *)msg >= b.rx.data);
                assert_true((const uint8_t *)msg + len <= b.rx.data + b.rx.cap);
                assert_int_equal(ivc_pair_release(&b), 0);
            } else {
                assert_true(len == -EAGAIN || len == -EPROTO || len == -ECONNRESET);
            }
        }
    }
    free(g.shm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout),          cmocka_unit_test(test_order_and_wrap),
        cmocka_unit_test(test_full_and_empty),  cmocka_unit_test(test_zero_copy),
        cmocka_unit_test(test_several_peers),   cmocka_unit_test(test_close_and_restart),
        cmocka_unit_test(test_layout_mismatch), cmocka_unit_test(test_hostile_indices),
        cmocka_unit_test(test_random_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
