/* The port I/O channel device and its transport, as plain C: two devices in one process
 * share one channel block the way two VMMs share the broker's memfd, and the test is both
 * guests, doing in/out through portio_io() and rep ins/outs through portio_string_io() (and
 * once through a real PCI bus and bus_access_string(), as the exit dispatcher does). */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices/bus.h"
#include "devices/pci.h"
#include "devices/portio.h"
#include "devices/portio_channel.h"
#include "support/clock.h"
#include "support/pci_windows.h"
#include "support/portio_channel.h"
#include "support/portio_pair.h"

static int setup(void **state)
{
    struct portio_pair *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    void *channel = portio_pair_channel_map();
    assert_non_null(channel);
    assert_int_equal(portio_pair_init(f, channel, NULL, NULL), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct portio_pair *f = *state;
    portio_pair_destroy(f);
    portio_pair_channel_unmap(f->channel);
    free(f);
    return 0;
}

/* ---- guest-side helpers ---- */

static uint8_t in8(struct portio *dev, unsigned int port)
{
    uint8_t v = 0;
    portio_io(dev, port, &v, 1, false);
    return v;
}

static void out8(struct portio *dev, unsigned int port, uint8_t v)
{
    portio_io(dev, port, &v, 1, true);
}

static void connect_pair(struct portio_pair *f)
{
    out32(&f->a, PORTIO_REG_PEER, 1);
    out32(&f->b, PORTIO_REG_PEER, 0);
}

static void fill(uint8_t *buf, size_t len, uint32_t seed)
{
    for (size_t i = 0; i < len; i++) {
        seed = seed * 1103515245u + 12345u;
        buf[i] = (uint8_t)(seed >> 16);
    }
}

/* ---- registers ---- */

static void test_registers_after_reset(void **state)
{
    struct portio_pair *f = *state;
    assert_int_equal(in32(&f->a, PORTIO_REG_ID), PORTIO_ID_VALUE);
    assert_int_equal(in32(&f->b, PORTIO_REG_OWN_ID), 1);
    assert_int_equal(in32(&f->a, PORTIO_REG_PEER), PORTIO_PEER_NONE);
    assert_int_equal(in32(&f->a, PORTIO_REG_STATUS), 0);
    assert_int_equal(in32(&f->a, PORTIO_REG_RX_AVAIL), 0);
    assert_int_equal(in32(&f->a, PORTIO_REG_TX_SPACE), 0);
    assert_int_equal(in32(&f->a, PORTIO_REG_RING_BYTES), PORTIO_RING_BYTES);
    assert_int_equal(in32(&f->a, PORTIO_REG_PEERS_LO), 0x3);
    assert_int_equal(in32(&f->a, PORTIO_REG_PEERS_HI), 0);
    assert_int_equal(in32(&f->a, PORTIO_REG_CONTROL), 0);
    assert_int_equal(in32(&f->a, 0x48), 0); /* reserved */
    /* Every access counts, this read included. */
    uint32_t exits = in32(&f->a, PORTIO_REG_EXITS);
    assert_int_equal(in32(&f->a, PORTIO_REG_EXITS), exits + 1);

    connect_pair(f);
    assert_int_equal(in32(&f->a, PORTIO_REG_PEER), 1);
    assert_int_equal(in32(&f->a, PORTIO_REG_STATUS), PORTIO_STATUS_PEER_SELECTED |
                                                         PORTIO_STATUS_PEER_PRESENT |
                                                         PORTIO_STATUS_TX_READY);
    assert_int_equal(in32(&f->a, PORTIO_REG_TX_SPACE), PORTIO_RING_BYTES);
}

static void test_bytes_arrive_in_order_at_every_width(void **state)
{
    struct portio_pair *f = *state;
    connect_pair(f);
    out8(&f->a, PORTIO_DATA, 0x11);
    uint16_t w = 0x3322;
    portio_io(&f->a, PORTIO_DATA + 0x10, &w, 2, true); /* any port of the window */
    out32(&f->a, 0xFC, 0x77665544);                    /* the last dword of the window */
    assert_int_equal(in32(&f->b, PORTIO_REG_RX_AVAIL), 7);
    assert_int_equal(in32(&f->a, PORTIO_REG_TX_BYTES), 7);
    assert_true(in32(&f->b, PORTIO_REG_STATUS) & PORTIO_STATUS_RX_READY);

    assert_int_equal(in8(&f->b, PORTIO_DATA), 0x11);
    assert_int_equal(in32(&f->b, PORTIO_DATA), 0x55443322);
    uint16_t r = 0;
    portio_io(&f->b, 0xFE, &r, 2, false);
    assert_int_equal(r, 0x7766);
    assert_int_equal(in32(&f->b, PORTIO_REG_RX_AVAIL), 0);
    assert_int_equal(in32(&f->b, PORTIO_REG_RX_BYTES), 7);
    /* The other direction is a ring of its own. */
    assert_int_equal(in32(&f->a, PORTIO_REG_RX_AVAIL), 0);
    out8(&f->b, PORTIO_DATA, 0x99);
    assert_int_equal(in8(&f->a, PORTIO_DATA), 0x99);
}

static void test_string_io_moves_a_page_in_one_call(void **state)
{
    struct portio_pair *f = *state;
    connect_pair(f);
    uint8_t out[4096], in[4096];
    fill(out, sizeof(out), 1);
    uint32_t exits = in32(&f->a, PORTIO_REG_EXITS);
    outs(&f->a, out, sizeof(out));
    assert_int_equal(in32(&f->a, PORTIO_REG_EXITS), exits + 2); /* the string and this read */
    assert_int_equal(in32(&f->b, PORTIO_REG_RX_AVAIL), 4096);
    /* outsl: 1024 dwords are the same 4096 bytes. */
    portio_string_io(&f->a, PORTIO_DATA, out, 4, 1024, true);
    ins(&f->b, in, sizeof(in));
    assert_memory_equal(in, out, sizeof(in));
    portio_string_io(&f->b, PORTIO_DATA, in, 2, 2048, false);
    assert_memory_equal(in, out, sizeof(in));
    assert_int_equal(in32(&f->b, PORTIO_REG_RX_UNDERRUN), 0);
}

static void test_wrap_around_many_times(void **state)
{
    struct portio_pair *f = *state;
    connect_pair(f);
    /* 3001 is coprime with the ring size: chunks straddle the end at every offset. */
    static uint8_t out[3001], in[3001];
    uint64_t total = 0;
    for (uint32_t round = 0; total < 8ull * PORTIO_RING_BYTES; round++) {
        fill(out, sizeof(out), round);
        outs(&f->a, out, sizeof(out));
        outs(&f->a, out, 1); /* and one more, so the ring is never quite empty */
        memset(in, 0, sizeof(in));
        ins(&f->b, in, sizeof(in));
        assert_memory_equal(in, out, sizeof(in));
        uint8_t last;
        ins(&f->b, &last, 1);
        assert_int_equal(last, out[0]);
        total += sizeof(out) + 1;
    }
    assert_int_equal(in32(&f->a, PORTIO_REG_TX_REFUSED), 0);
    assert_int_equal(in32(&f->b, PORTIO_REG_RX_UNDERRUN), 0);
}

static void test_full_ring_refuses_whole_writes(void **state)
{
    struct portio_pair *f = *state;
    connect_pair(f);
    static uint8_t big[PORTIO_RING_BYTES], back[PORTIO_RING_BYTES];
    fill(big, sizeof(big), 7);
    outs(&f->a, big, sizeof(big) - 2);
    assert_int_equal(in32(&f->a, PORTIO_REG_TX_SPACE), 2);
    /* 4 bytes do not fit in 2: none of them is queued. */
    out32(&f->a, PORTIO_DATA, 0xdeadbeef);
    assert_int_equal(in32(&f->a, PORTIO_REG_TX_REFUSED), 4);
    assert_true(in32(&f->a, PORTIO_REG_STATUS) & PORTIO_STATUS_TX_REFUSED);
    assert_int_equal(in32(&f->a, PORTIO_REG_TX_SPACE), 2);
    outs(&f->a, big + sizeof(big) - 2, 2);
    assert_int_equal(in32(&f->a, PORTIO_REG_TX_SPACE), 0);
    assert_false(in32(&f->a, PORTIO_REG_STATUS) & PORTIO_STATUS_TX_READY);
    out8(&f->a, PORTIO_DATA, 1);
    assert_int_equal(in32(&f->a, PORTIO_REG_TX_REFUSED), 5);
    /* Nothing refused got in: the reader sees exactly the accepted bytes. */
    ins(&f->b, back, sizeof(back));
    assert_memory_equal(back, big, sizeof(big));
    assert_int_equal(in32(&f->a, PORTIO_REG_TX_SPACE), PORTIO_RING_BYTES);
    /* Counters and sticky bits reset on request. */
    out8(&f->a, PORTIO_REG_CONTROL, PORTIO_CONTROL_RESET_COUNTERS);
    assert_int_equal(in32(&f->a, PORTIO_REG_TX_REFUSED), 0);
    assert_false(in32(&f->a, PORTIO_REG_STATUS) & PORTIO_STATUS_TX_REFUSED);
}

static void test_empty_or_short_reads_consume_nothing(void **state)
{
    struct portio_pair *f = *state;
    assert_int_equal(in8(&f->b, PORTIO_DATA), 0xff); /* no partner selected */
    connect_pair(f);
    assert_int_equal(in32(&f->b, PORTIO_DATA), 0xffffffff);
    out8(&f->a, PORTIO_DATA, 0x42);
    out8(&f->a, PORTIO_DATA, 0x43);
    /* 4 asked, 2 there: all 0xFF, both still there. */
    assert_int_equal(in32(&f->b, PORTIO_DATA), 0xffffffff);
    assert_int_equal(in32(&f->b, PORTIO_REG_RX_UNDERRUN), 1 + 4 + 4);
    assert_true(in32(&f->b, PORTIO_REG_STATUS) & PORTIO_STATUS_RX_UNDERRUN);
    uint8_t buf[3] = {0};
    ins(&f->b, buf, 3);
    assert_int_equal(buf[0], 0xff);
    assert_int_equal(in32(&f->b, PORTIO_REG_RX_AVAIL), 2);
    assert_int_equal(in8(&f->b, PORTIO_DATA), 0x42);
    assert_int_equal(in8(&f->b, PORTIO_DATA), 0x43);
    /* DRAIN drops what is readable. */
    out8(&f->a, PORTIO_DATA, 0x44);
    out8(&f->b, PORTIO_REG_CONTROL, PORTIO_CONTROL_DRAIN_RX);
    assert_int_equal(in32(&f->b, PORTIO_REG_RX_AVAIL), 0);
}

static void test_peer_loss_refuses_writes_and_keeps_delivered_data(void **state)
{
    struct portio_pair *f = *state;
    connect_pair(f);
    out32(&f->b, PORTIO_DATA, 0x04030201); /* B delivers 4 bytes to A, then dies */
    out32(&f->a, PORTIO_DATA, 0xaabbccdd); /* which B never reads */
    assert_int_equal(portio_ring_readable(portio_channel_ring(f->channel, 0, 1), NULL), 4);
    portio_channel_set_present(f->channel, 1, 0, false);

    uint32_t st = in32(&f->a, PORTIO_REG_STATUS);
    assert_true(st & PORTIO_STATUS_PEER_GONE);
    assert_false(st & PORTIO_STATUS_PEER_PRESENT);
    assert_false(st & PORTIO_STATUS_TX_READY);
    assert_true(st & PORTIO_STATUS_RX_READY);
    assert_int_equal(in32(&f->a, PORTIO_REG_TX_SPACE), 0);
    assert_int_equal(in32(&f->a, PORTIO_REG_PEERS_LO), 0x1);
    out8(&f->a, PORTIO_DATA, 9);
    assert_int_equal(in32(&f->a, PORTIO_REG_TX_REFUSED), 1);
    assert_int_equal(in32(&f->a, PORTIO_DATA), 0x04030201); /* drained after the loss */

    /* A new VM with ID 1 is a new partner: PEER_GONE stays until A selects it again, and
     * it does not get what A had sent to its predecessor. */
    portio_channel_set_present(f->channel, 1, 102, true);
    assert_int_equal(portio_ring_readable(portio_channel_ring(f->channel, 0, 1), NULL), 0);
    st = in32(&f->a, PORTIO_REG_STATUS);
    assert_true(st & PORTIO_STATUS_PEER_GONE);
    assert_true(st & PORTIO_STATUS_PEER_PRESENT);
    out8(&f->a, PORTIO_DATA, 9);
    assert_int_equal(in32(&f->a, PORTIO_REG_TX_REFUSED), 2);
    out32(&f->a, PORTIO_REG_PEER, 1);
    assert_false(in32(&f->a, PORTIO_REG_STATUS) & PORTIO_STATUS_PEER_GONE);
    out8(&f->a, PORTIO_DATA, 9);
    assert_int_equal(in32(&f->a, PORTIO_REG_TX_REFUSED), 2);
}

static void test_partner_absent_at_selection_binds_on_arrival(void **state)
{
    struct portio_pair *f = *state;
    out32(&f->a, PORTIO_REG_PEER, 5);
    uint32_t st = in32(&f->a, PORTIO_REG_STATUS);
    assert_int_equal(st, PORTIO_STATUS_PEER_SELECTED);
    out8(&f->a, PORTIO_DATA, 1);
    assert_int_equal(in32(&f->a, PORTIO_REG_TX_REFUSED), 1);
    portio_channel_set_present(f->channel, 5, 105, true);
    assert_int_equal(in32(&f->a, PORTIO_REG_TX_SPACE), PORTIO_RING_BYTES);
    portio_channel_set_present(f->channel, 5, 0, false);
    assert_true(in32(&f->a, PORTIO_REG_STATUS) & PORTIO_STATUS_PEER_GONE);
}

/* A partner that appears after selection and leaves again before the guest looks is still
 * gone: the next VM with that ID is not taken for it. */
static void test_partner_that_came_and_went_unseen_is_gone(void **state)
{
    struct portio_pair *f = *state;
    out32(&f->a, PORTIO_REG_PEER, 5);
    portio_channel_set_present(f->channel, 5, 105, true);
    portio_channel_set_present(f->channel, 5, 0, false);
    assert_int_equal(in32(&f->a, PORTIO_REG_STATUS),
                     PORTIO_STATUS_PEER_SELECTED | PORTIO_STATUS_PEER_GONE);
    portio_channel_set_present(f->channel, 5, 106, true);
    out8(&f->a, PORTIO_DATA, 1);
    assert_int_equal(in32(&f->a, PORTIO_REG_TX_REFUSED), 1);
    out32(&f->a, PORTIO_REG_PEER, 5);
    assert_int_equal(in32(&f->a, PORTIO_REG_TX_SPACE), PORTIO_RING_BYTES);
}

/* PEER_GONE holds "until PEER is written again", a value that selects nobody included. */
static void test_any_peer_write_clears_peer_gone(void **state)
{
    struct portio_pair *f = *state;
    connect_pair(f);
    portio_channel_set_present(f->channel, 1, 0, false);
    assert_true(in32(&f->a, PORTIO_REG_STATUS) & PORTIO_STATUS_PEER_GONE);
    out32(&f->a, PORTIO_REG_PEER, 64);
    assert_int_equal(in32(&f->a, PORTIO_REG_STATUS), 0);
}

static void test_loopback_to_own_id(void **state)
{
    struct portio_pair *f = *state;
    out32(&f->a, PORTIO_REG_PEER, 0);
    out32(&f->a, PORTIO_DATA, 0x12345678);
    assert_int_equal(in32(&f->a, PORTIO_DATA), 0x12345678);
}

static void test_bad_accesses_are_ignored_and_counted(void **state)
{
    struct portio_pair *f = *state;
    connect_pair(f);
    uint8_t junk[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    portio_io(&f->a, PORTIO_DATA, junk, 3, true); /* no x86 in/out is 3 bytes */
    portio_io(&f->a, PORTIO_DATA, junk, 8, true); /* nor 8 */
    portio_io(&f->a, 0x7E, junk, 4, true);        /* straddles registers and data */
    portio_io(&f->a, 0xFE, junk, 4, true);        /* past the BAR's end */
    portio_io(&f->a, 0x1000, junk, 1, true);      /* far outside */
    out32(&f->a, PORTIO_REG_ID, 0);               /* read-only */
    out8(&f->a, PORTIO_REG_PEER + 1, 0);          /* not byte 0 */
    out32(&f->a, 0x60, 1);                        /* reserved */
    assert_int_equal(in32(&f->a, PORTIO_REG_BAD_ACCESSES), 8);
    assert_int_equal(in32(&f->a, PORTIO_REG_PEER), 1);
    assert_int_equal(in32(&f->b, PORTIO_REG_RX_AVAIL), 0);
    uint8_t r[8];
    memset(r, 0, sizeof(r));
    portio_io(&f->a, PORTIO_DATA, r, 8, false);
    assert_int_equal(r[7], 0xff);
    memset(r, 0, sizeof(r));
    portio_string_io(&f->a, 0x100, r, 1, 8, false);
    assert_int_equal(r[0], 0xff);

    /* A hostile peer ID selects nobody. */
    out32(&f->a, PORTIO_REG_PEER, 64);
    assert_int_equal(in32(&f->a, PORTIO_REG_PEER), PORTIO_PEER_NONE);
    out32(&f->a, PORTIO_REG_PEER, 0xffffffff);
    assert_int_equal(in32(&f->a, PORTIO_REG_BAD_ACCESSES), 10);
    out8(&f->a, PORTIO_DATA, 1);
    assert_int_equal(in32(&f->a, PORTIO_REG_TX_REFUSED), 1);
    /* rep outs to a register is element by element; to PEER it selects each time. */
    uint8_t ids[3] = {0, 70, 1};
    portio_string_io(&f->a, PORTIO_REG_PEER, ids, 1, 3, true);
    assert_int_equal(in32(&f->a, PORTIO_REG_PEER), 1);
    assert_int_equal(in32(&f->a, PORTIO_REG_BAD_ACCESSES), 11);
}

static void test_byte_reads_of_a_register_see_one_value(void **state)
{
    struct portio_pair *f = *state;
    connect_pair(f);
    static uint8_t data[0x1ff];
    outs(&f->a, data, 0xff);
    /* Byte 0 samples 0xff; 256 more bytes arrive before bytes 1..3 are read (0x1ff); the
     * latch keeps the four bytes one value, as /dev/port reads them. */
    uint8_t b0 = in8(&f->b, PORTIO_REG_RX_AVAIL);
    outs(&f->a, data, 0x100);
    uint8_t b1 = in8(&f->b, PORTIO_REG_RX_AVAIL + 1);
    assert_int_equal(b0, 0xff);
    assert_int_equal(b1, 0);
    assert_int_equal(in32(&f->b, PORTIO_REG_RX_AVAIL), 0x1ff);
    /* A read at bytes 1..3 without a latch of that register samples afresh. */
    assert_int_equal(in8(&f->b, PORTIO_REG_TX_SPACE + 1), (PORTIO_RING_BYTES >> 8) & 0xff);
    uint16_t hi = 0;
    portio_io(&f->b, PORTIO_REG_ID + 2, &hi, 2, false);
    assert_int_equal(hi, PORTIO_ID_VALUE >> 16);
}

static void test_corrupt_ring_counters_read_as_empty_and_full(void **state)
{
    struct portio_pair *f = *state;
    connect_pair(f);
    /* A broken peer VMM writes nonsense into the ring from 1 to 0 and from 0 to 1. */
    atomic_store(&portio_channel_ring(f->channel, 1, 0)->head, 5ull << 40);
    atomic_store(&portio_channel_ring(f->channel, 0, 1)->tail, 3ull << 40);
    assert_int_equal(in32(&f->a, PORTIO_REG_RX_AVAIL), 0);
    assert_int_equal(in32(&f->a, PORTIO_REG_TX_SPACE), 0);
    assert_int_equal(in32(&f->a, PORTIO_DATA), 0xffffffff);
    out8(&f->a, PORTIO_DATA, 1);
    assert_int_equal(in32(&f->a, PORTIO_REG_TX_REFUSED), 1);
    assert_true(f->a.corrupt_rings > 0);
}

/* ---- waiting ---- */

static void *late_writer(void *arg)
{
    struct portio_pair *f = arg;
    usleep(5000);
    out32(&f->b, PORTIO_DATA, 0xcafef00d);
    return NULL;
}

static void test_wait_registers_sleep_and_wake(void **state)
{
    struct portio_pair *f = *state;
    connect_pair(f);
    /* Nothing comes: the wait ends by itself, bounded. */
    int64_t start = test_now_ms();
    assert_int_equal(in32(&f->a, PORTIO_REG_WAIT_RX), 0);
    int64_t took = test_now_ms() - start;
    assert_true(took >= PORTIO_WAIT_MAX_MS - 1 && took < 10 * PORTIO_WAIT_MAX_MS);
    /* Space is there: WAIT_TX answers at once. */
    assert_int_equal(in32(&f->a, PORTIO_REG_WAIT_TX), PORTIO_RING_BYTES);

    /* Data from another thread wakes a waiter (the limit is above the writer's delay). */
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, late_writer, f), 0);
    uint32_t avail = 0;
    for (int i = 0; i < 20 && avail == 0; i++)
        avail = in32(&f->a, PORTIO_REG_WAIT_RX);
    pthread_join(t, NULL);
    assert_int_equal(avail, 4);
    assert_int_equal(in32(&f->a, PORTIO_DATA), 0xcafef00d);

    /* A full ring and then a departed partner: WAIT_TX returns, saying no space. */
    static uint8_t big[PORTIO_RING_BYTES];
    outs(&f->a, big, sizeof(big));
    portio_channel_set_present(f->channel, 1, 0, false);
    start = test_now_ms();
    assert_int_equal(in32(&f->a, PORTIO_REG_WAIT_TX), 0);
    assert_true(test_now_ms() - start < PORTIO_WAIT_MAX_MS);
}

struct kick_target {
    struct portio_ring *ring;
    int result;
};

static void kick_handler(int sig)
{
    (void)sig;
}

static void *long_waiter(void *arg)
{
    struct kick_target *k = arg;
    k->result = portio_ring_wait(k->ring, portio_ring_seq(k->ring), 5000);
    return NULL;
}

/* The VMM stops a vCPU by signalling its thread (SIGRTMIN, no SA_RESTART): a wait in the
 * channel must end at once then, not at its timeout. */
static void test_a_signal_ends_a_wait(void **state)
{
    struct portio_pair *f = *state;
    struct sigaction sa = {.sa_handler = kick_handler}, old;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGRTMIN, &sa, &old), 0);
    struct kick_target k = {.ring = portio_channel_ring(f->channel, 1, 0), .result = 1};
    pthread_t t;
    int64_t start = test_now_ms();
    assert_int_equal(pthread_create(&t, NULL, long_waiter, &k), 0);
    usleep(50000);
    pthread_kill(t, SIGRTMIN);
    pthread_join(t, NULL);
    assert_int_equal(k.result, -EINTR);
    assert_true(test_now_ms() - start < 2500);
    sigaction(SIGRTMIN, &old, NULL);
}

/* A rep ins on WAIT_RX waits once for the whole string, not once per element: one exit
 * holds the vCPU at most PORTIO_WAIT_MAX_MS. */
static void test_rep_ins_on_a_wait_register_waits_once(void **state)
{
    struct portio_pair *f = *state;
    connect_pair(f);
    uint8_t avail[128];
    memset(avail, 0xa5, sizeof(avail));
    int64_t start = test_now_ms();
    portio_string_io(&f->a, PORTIO_REG_WAIT_RX, avail, 1, sizeof(avail), false);
    assert_true(test_now_ms() - start < 10 * PORTIO_WAIT_MAX_MS);
    assert_int_equal(avail[0], 0);
    assert_int_equal(avail[sizeof(avail) - 1], 0);
}

/* ---- through the PCI bus, as the VMM uses it ---- */

static void test_on_the_pci_bus_string_io_is_one_call(void **state)
{
    struct portio_pair *f = *state;
    struct bus pio, mmio;
    struct pci_bus pci;
    struct portio dev;
    assert_int_equal(bus_init(&pio, "pio"), 0);
    assert_int_equal(bus_init(&mmio, "mmio"), 0);
    assert_int_equal(pci_bus_init(&pci, &pio, &mmio, TEST_PCI_WINDOWS), 0);
    assert_int_equal(portio_init(&dev, &pci, f->channel, 0), 0);
    uint64_t base;
    assert_true(pci_device_bar_mapped(&dev.pci, PORTIO_BAR, &base));
    assert_int_equal(pci_config_read(&dev.pci, PCI_VENDOR_ID, 2), PORTIO_PCI_VENDOR_ID);
    assert_int_equal(pci_config_read(&dev.pci, PCI_DEVICE_ID, 2), PORTIO_PCI_DEVICE_ID);
    assert_int_equal(pci_config_read(&dev.pci, PCI_BAR0, 4) & 1, 1); /* an I/O BAR */

    uint32_t peer = 1;
    bus_access(&pio, base + PORTIO_REG_PEER, &peer, 4, true);
    uint8_t page[4096], back[4096];
    fill(page, sizeof(page), 3);
    uint32_t before = atomic_load(&dev.exits);
    assert_true(bus_access_string(&pio, base + PORTIO_DATA, page, 1, sizeof(page), true));
    assert_int_equal(atomic_load(&dev.exits), before + 1);
    out32(&f->b, PORTIO_REG_PEER, 0);
    ins(&f->b, back, sizeof(back));
    assert_memory_equal(back, page, sizeof(page));

    /* And back: B sends a page, one rep insb exit takes all of it. */
    fill(page, sizeof(page), 10);
    outs(&f->b, page, sizeof(page));
    memset(back, 0, sizeof(back));
    before = atomic_load(&dev.exits);
    assert_true(bus_access_string(&pio, base + PORTIO_DATA, back, 1, sizeof(back), false));
    assert_int_equal(atomic_load(&dev.exits), before + 1);
    assert_memory_equal(back, page, sizeof(page));

    /* A device without a string callback still gets every element. */
    uint8_t none[4] = {0};
    assert_false(bus_access_string(&pio, 0x10, none, 1, 4, false));
    assert_int_equal(none[3], 0xff);

    portio_destroy(&dev);
    pci_bus_destroy(&pci);
    bus_destroy(&mmio);
    bus_destroy(&pio);
}

static void test_init_rejects_bad_arguments(void **state)
{
    struct portio_pair *f = *state;
    struct portio dev;
    assert_int_equal(portio_init(&dev, NULL, NULL, 0), -EINVAL);
    assert_int_equal(portio_init(&dev, NULL, f->channel, PORTIO_MAX_PEERS), -EINVAL);
    static uint64_t unformatted[512];
    assert_int_equal(portio_init(&dev, NULL, unformatted, 0), -EINVAL);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_registers_after_reset),
        T(test_bytes_arrive_in_order_at_every_width),
        T(test_string_io_moves_a_page_in_one_call),
        T(test_wrap_around_many_times),
        T(test_full_ring_refuses_whole_writes),
        T(test_empty_or_short_reads_consume_nothing),
        T(test_peer_loss_refuses_writes_and_keeps_delivered_data),
        T(test_partner_absent_at_selection_binds_on_arrival),
        T(test_partner_that_came_and_went_unseen_is_gone),
        T(test_any_peer_write_clears_peer_gone),
        T(test_loopback_to_own_id),
        T(test_bad_accesses_are_ignored_and_counted),
        T(test_byte_reads_of_a_register_see_one_value),
        T(test_corrupt_ring_counters_read_as_empty_and_full),
        T(test_wait_registers_sleep_and_wake),
        T(test_a_signal_ends_a_wait),
        T(test_rep_ins_on_a_wait_register_waits_once),
        T(test_on_the_pci_bus_string_io_is_one_call),
        T(test_init_rejects_bad_arguments),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
