/*
 * shm-ring [OPTIONS] send|recv|both BYTES: move BYTES between two VMs through an ivshmem
 * device's shared memory, in single-producer/single-consumer rings (layout and handshake:
 * shm_ring.h), and check every byte on arrival.
 *
 *   send BYTES   send BYTES to the peer (the peer runs recv or both with the same BYTES)
 *   recv BYTES   receive BYTES from the peer
 *   both BYTES   send and receive BYTES at once, both directions in one loop
 * BYTES takes a K, M or G suffix (powers of 1024).
 *
 * Polled (default): both sides spin on the ring indices. BAR2 is mapped through the
 * ivshmem_guest driver's /dev/ivshmemN where it is bound (write-back on minivmm's device),
 * else through /sys/bus/pci/devices/<BDF>/resource2 (always uncached-minus).
 * --irq: the driver's /dev/ivshmemN maps BAR2; after publishing (head, or
 * tail to free space) a side rings the peer's doorbell (ioctl RING), and a side with
 * nothing to do sleeps in poll() on the device until an interrupt arrives.
 *
 * Options:
 *   --irq               interrupt-driven, as above
 *   --device BDF|NODE   which ivshmem device (default: the first)
 *   --map sysfs|driver  where BAR2 is mapped from (default: driver where bound, else sysfs)
 *   --timeout SEC       fail when nothing moves for SEC seconds, the handshake included,
 *                       so a missing peer fails instead of hanging (default 60)
 *   --peer ID           the peer's ID (default: the one other present peer in minivmm's
 *                       presence bitmap, else the one other peer that announced itself)
 *   --id ID             own ID (default: IVPosition; ivshmem-plain reads 0 in every VM)
 *   --vector N          doorbell vector with --irq (default 0)
 *
 * A peer that leaves mid-transfer (minivmm's presence extension shows it within 0.1 s of
 * the ring going quiet) ends the run with FAIL "peer P left the group"; everything
 * received until then was verified. Without the extension only --timeout notices.
 *
 * Output: the setup, per-direction throughput (MB/s, 10^6 bytes per second, from the end
 * of the handshake to the last byte verified or acknowledged), and a final line
 *   shm-ring: OK <bytes> bytes (sent S, received R) in T s, X MB/s, <polled|irq>, peer P
 * or
 *   shm-ring: FAIL <reason>
 * Exit status: 0 only on OK; 1 on FAIL; 2 usage.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "ivshmem_dev.h"
#include "shm_ring.h"

#define CHUNK      (64u * 1024)
#define MAX_BYTES  (1ull << 40)
#define NO_PEER    UINT32_MAX
#define ID_UNKNOWN UINT32_MAX

struct dir {
    const char *name; /* "send" / "receive" */
    int ring;         /* 0 or 1 */
    struct shm_ring_ctl *ctl;
    uint8_t *data;
    uint64_t total; /* bytes to move; 0: this direction is unused */
    uint64_t pos;   /* producer: head published; consumer: tail published */
    uint64_t seen;  /* producer: last tail read; consumer: last head read */
    uint64_t seed;
    bool done;
    double t_done;
};

struct ctx {
    /* options */
    bool irq;
    const char *map; /* --map, or NULL */
    bool map_driver;
    const char *device;
    double timeout;
    uint32_t opt_peer, opt_id, vector;
    uint64_t tx_total, rx_total;

    struct ivshmem_dev dev;
    struct ivshmem_handle h;
    struct ivshmem_guest_info info;
    uint8_t *shm;
    uint64_t shm_size, cap;
    uint32_t me, peer;
    const char *peer_how;
    struct shm_ring_slot *mine;
    uint64_t nonce, peer_nonce;
    struct dir tx, rx;
    uint64_t rings, rings_absent, wakeups;
    char why[512];
    uint8_t buf[CHUNK];
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Records the first failure; returns -1 for `return fail(...)`. */
__attribute__((format(printf, 2, 3))) static int fail(struct ctx *c, const char *fmt, ...)
{
    if (!c->why[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->why, sizeof(c->why), fmt, ap);
        va_end(ap);
    }
    return -1;
}

static struct shm_ring_slot *slot_of(struct ctx *c, uint32_t id)
{
    return (struct shm_ring_slot *)(c->shm + (size_t)(id % SHM_RING_SLOTS) * SHM_RING_SLOT_SIZE);
}

static struct shm_ring_ctl *ctl_of(struct ctx *c, int ring)
{
    return (struct shm_ring_ctl *)(c->shm + SHM_RING_CTL_OFF + (size_t)ring * SHM_RING_CTL_SIZE);
}

static uint64_t make_nonce(void)
{
    uint64_t n = 0;
    if (getrandom(&n, sizeof(n), GRND_NONBLOCK) != sizeof(n)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        n = shm_ring_pattern((uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32),
                             (uint64_t)ts.tv_sec);
    }
    return n ? n : 1;
}

/* ---- the payload ---- */

static uint8_t pattern_byte(uint64_t seed, uint64_t off)
{
    return (uint8_t)(shm_ring_pattern(seed, off / 8) >> (8 * (off % 8)));
}

static void pattern_fill(uint8_t *buf, uint64_t seed, uint64_t off, size_t n)
{
    size_t i = 0;
    for (; i < n && (off + i) % 8; i++)
        buf[i] = pattern_byte(seed, off + i);
    for (; i + 8 <= n; i += 8) {
        uint64_t w = shm_ring_pattern(seed, (off + i) / 8);
        memcpy(buf + i, &w, 8);
    }
    for (; i < n; i++)
        buf[i] = pattern_byte(seed, off + i);
}

/* Returns the index of the first wrong byte, or n. */
static size_t pattern_check(const uint8_t *buf, uint64_t seed, uint64_t off, size_t n)
{
    size_t i = 0;
    for (; i < n && (off + i) % 8; i++)
        if (buf[i] != pattern_byte(seed, off + i))
            return i;
    for (; i + 8 <= n; i += 8) {
        uint64_t w = shm_ring_pattern(seed, (off + i) / 8), got;
        memcpy(&got, buf + i, 8);
        if (got != w)
            break;
    }
    for (; i < n; i++)
        if (buf[i] != pattern_byte(seed, off + i))
            return i;
    return n;
}

/* Stream offset pos lives at data[pos % cap]; a copy may wrap once (n <= cap). */
static void ring_write(struct ctx *c, struct dir *d, uint64_t pos, const uint8_t *src, size_t n)
{
    size_t at = (size_t)(pos % c->cap), first = n < c->cap - at ? n : c->cap - at;
    memcpy(d->data + at, src, first);
    memcpy(d->data, src + first, n - first);
}

static void ring_read(struct ctx *c, struct dir *d, uint64_t pos, uint8_t *dst, size_t n)
{
    size_t at = (size_t)(pos % c->cap), first = n < c->cap - at ? n : c->cap - at;
    memcpy(dst, d->data + at, first);
    memcpy(dst + first, d->data, n - first);
}

/* ---- interrupts ---- */

static void ring_peer(struct ctx *c)
{
    struct ivshmem_guest_ring r = {.peer = c->peer, .vector = c->vector};
    if (!c->irq)
        return;
    if (ioctl(c->h.fd, IVSHMEM_GUEST_RING, &r) == 0)
        c->rings++;
    else if (errno == ENXIO)
        c->rings_absent++; /* the peer left: fine once it has all it needs, else timeout */
    else
        fail(c, "ioctl RING peer %" PRIu32 " vector %" PRIu32 ": %s", c->peer, c->vector,
             strerror(errno));
}

/* Forgets the interrupts that fired so far: everything after this read wakes poll(). */
static void drain(struct ctx *c)
{
    uint64_t mask;
    if (read(c->h.fd, &mask, sizeof(mask)) == (ssize_t)sizeof(mask) && mask)
        c->wakeups++;
}

/* ---- one step of each direction: 1 progress, 0 nothing to do, -1 failure ---- */

static int step_tx(struct ctx *c)
{
    struct dir *d = &c->tx;
    uint64_t tail = atomic_load_explicit(&d->ctl->tail, memory_order_acquire);

    if (d->done)
        return 0;
    if (tail < d->seen || tail > d->pos)
        return fail(c,
                    "ring %d: consumer index %" PRIu64 " out of range (was %" PRIu64
                    ", head %" PRIu64 ")",
                    d->ring, tail, d->seen, d->pos);
    int progress = tail != d->seen;
    d->seen = tail;
    if (tail == d->total) {
        d->done = true;
        d->t_done = now();
        return 1;
    }
    uint64_t space = c->cap - (d->pos - tail);
    uint64_t n = d->total - d->pos;
    if (n > space)
        n = space;
    if (n > CHUNK)
        n = CHUNK;
    if (n == 0)
        return progress;
    pattern_fill(c->buf, d->seed, d->pos, (size_t)n);
    ring_write(c, d, d->pos, c->buf, (size_t)n);
    d->pos += n;
    atomic_store_explicit(&d->ctl->head, d->pos, memory_order_release);
    ring_peer(c);
    return 1;
}

static int step_rx(struct ctx *c)
{
    struct dir *d = &c->rx;

    if (d->done)
        return 0;
    uint64_t head = atomic_load_explicit(&d->ctl->head, memory_order_acquire);
    if (head < d->seen || head < d->pos || head - d->pos > c->cap || head > d->total)
        return fail(c,
                    "ring %d: producer index %" PRIu64 " out of range (was %" PRIu64
                    ", tail %" PRIu64 ", capacity %" PRIu64 ", total %" PRIu64 ")",
                    d->ring, head, d->seen, d->pos, c->cap, d->total);
    d->seen = head;
    uint64_t n = head - d->pos;
    if (n > CHUNK)
        n = CHUNK;
    if (n == 0)
        return 0;
    /* Copy out first, then check the copy: the peer cannot change what we verified. */
    ring_read(c, d, d->pos, c->buf, (size_t)n);
    size_t bad = pattern_check(c->buf, d->seed, d->pos, (size_t)n);
    if (bad != n)
        return fail(c, "received byte %" PRIu64 " is 0x%02x, expected 0x%02x", d->pos + bad,
                    c->buf[bad], pattern_byte(d->seed, d->pos + bad));
    d->pos += n;
    atomic_store_explicit(&d->ctl->tail, d->pos, memory_order_release);
    if (d->pos == d->total) {
        d->done = true;
        d->t_done = now();
    }
    ring_peer(c);
    return 1;
}

/* ---- handshake ---- */

static void announce(struct ctx *c)
{
    struct shm_ring_slot *s = c->mine;
    atomic_store_explicit(&s->magic, 0, memory_order_release);
    atomic_store_explicit(&s->version, SHM_RING_VERSION, memory_order_relaxed);
    atomic_store_explicit(&s->id, c->me, memory_order_relaxed);
    atomic_store_explicit(&s->peer, SHM_RING_PEER_ANY, memory_order_relaxed);
    atomic_store_explicit(&s->shm_size, c->shm_size, memory_order_relaxed);
    atomic_store_explicit(&s->ack, 0, memory_order_relaxed);
    atomic_store_explicit(&s->tx_bytes, c->tx_total, memory_order_relaxed);
    atomic_store_explicit(&s->rx_bytes, c->rx_total, memory_order_relaxed);
    atomic_store_explicit(&s->flags, c->irq ? SHM_RING_F_IRQ : 0, memory_order_relaxed);
    atomic_store_explicit(&s->reserved, 0, memory_order_relaxed);
    atomic_store_explicit(&s->nonce, c->nonce, memory_order_release);
    atomic_store_explicit(&s->magic, SHM_RING_MAGIC, memory_order_release);
}

/* A slot that announces peer id, live and talking to us (or to anyone yet). */
static bool slot_valid(struct ctx *c, uint32_t id)
{
    struct shm_ring_slot *s = slot_of(c, id);
    if (atomic_load_explicit(&s->magic, memory_order_acquire) != SHM_RING_MAGIC ||
        atomic_load_explicit(&s->id, memory_order_relaxed) != id)
        return false;
    uint32_t p = atomic_load_explicit(&s->peer, memory_order_relaxed);
    return p == SHM_RING_PEER_ANY || p == c->me;
}

static uint32_t choose_peer(struct ctx *c)
{
    uint32_t found = NO_PEER;

    if (c->opt_peer != ID_UNKNOWN) {
        c->peer_how = "--peer";
        return c->opt_peer;
    }
    if (c->info.flags & IVSHMEM_GUEST_INFO_EXT) {
        struct ivshmem_guest_info info;
        if (ivshmem_handle_info(&c->h, &info) == 0)
            c->info.peers = info.peers;
        uint64_t others = c->info.peers & ~(c->me < 64 ? 1ull << c->me : 0);
        if (others && !(others & (others - 1))) {
            c->peer_how = "presence bitmap";
            return (uint32_t)__builtin_ctzll(others);
        }
        /* Several present: the one that announced itself to us. */
        for (uint32_t id = 0; id < 64; id++) {
            if ((others & (1ull << id)) && slot_valid(c, id)) {
                if (found != NO_PEER)
                    return NO_PEER;
                found = id;
            }
        }
        c->peer_how = "presence bitmap and slots";
        return found;
    }
    for (uint32_t i = 0; i < SHM_RING_SLOTS; i++) {
        uint32_t id = atomic_load_explicit(&slot_of(c, i)->id, memory_order_relaxed);
        if (id % SHM_RING_SLOTS != i || id == c->me || !slot_valid(c, id))
            continue;
        if (found != NO_PEER)
            return NO_PEER; /* ambiguous: wait, or --peer */
        found = id;
    }
    c->peer_how = "slots";
    return found;
}

/* The ring fields this side owns when paired with peer: its tx ring's head, its rx ring's
 * tail. Ring 0 goes from the lower ID to the higher. */
static void pair_with(struct ctx *c, uint32_t peer)
{
    int tx_ring = c->me < peer ? 0 : 1;
    c->tx.ring = tx_ring;
    c->rx.ring = 1 - tx_ring;
    c->tx.ctl = ctl_of(c, c->tx.ring);
    c->rx.ctl = ctl_of(c, c->rx.ring);
    c->tx.data = c->shm + SHM_RING_DATA_OFF + (size_t)c->tx.ring * c->cap;
    c->rx.data = c->shm + SHM_RING_DATA_OFF + (size_t)c->rx.ring * c->cap;
    atomic_store_explicit(&c->tx.ctl->head, 0, memory_order_relaxed);
    atomic_store_explicit(&c->rx.ctl->tail, 0, memory_order_relaxed);
}

static int handshake(struct ctx *c)
{
    uint32_t paired = NO_PEER;
    uint64_t acked = 0;
    double deadline = now() + c->timeout, paired_at = 0;

    announce(c);
    for (;;) {
        uint32_t p = choose_peer(c);
        if (p == c->me)
            return fail(c, "the peer's ID is our own (%" PRIu32 "): give --id / --peer", p);
        if (p != NO_PEER && slot_valid(c, p)) {
            struct shm_ring_slot *ps = slot_of(c, p);
            uint64_t n = atomic_load_explicit(&ps->nonce, memory_order_acquire);
            if (n != 0 && (n != acked || p != paired)) {
                pair_with(c, p);
                atomic_store_explicit(&c->mine->peer, p, memory_order_relaxed);
                atomic_store_explicit(&c->mine->ack, n, memory_order_release);
                acked = n;
                paired = p;
                paired_at = now();
            }
        }
        /* Done once the paired peer acks our nonce while still carrying the nonce we
         * acked. Its magic is not needed for this: a peer that completed first and failed
         * its checks (magic 0 on exit) leaves nonce and ack, so this side finishes the
         * handshake too and reports the disagreement itself instead of timing out. */
        if (paired != NO_PEER) {
            struct shm_ring_slot *ps = slot_of(c, paired);
            if (atomic_load_explicit(&ps->ack, memory_order_acquire) == c->nonce &&
                atomic_load_explicit(&ps->nonce, memory_order_acquire) == acked &&
                atomic_load_explicit(&ps->id, memory_order_relaxed) == paired) {
                c->peer = paired;
                c->peer_nonce = acked;
                break;
            }
        }
        if (now() > deadline) {
            if (paired == NO_PEER)
                return fail(c, "timed out after %.0f s: no peer showed up (own ID %" PRIu32 "%s)",
                            c->timeout, c->me,
                            c->info.flags & IVSHMEM_GUEST_INFO_EXT
                                ? ""
                                : "; on ivshmem-plain every VM reads ID 0: give --id");
            return fail(c, "timed out after %.0f s: peer %" PRIu32 " did not answer the handshake",
                        c->timeout, paired);
        }
        if (paired != NO_PEER && now() - paired_at < 2.0) {
            /* Just paired: a live peer acks as soon as it looks. Spinning (not sleeping,
             * which can oversleep by far in a nested guest) keeps both sides' clocks
             * starting at about the same moment. */
            for (int i = 0; i < 64; i++)
                __builtin_ia32_pause();
        } else {
            /* Nobody yet, or a stale slot: look 50 times a second. Faster polling buys
             * nothing here, and in the emulated KVM host a guest waking 1000 times a
             * second was seen to coincide with the booting peer's triple faults. */
            usleep(20000);
        }
    }

    /* Both sides are live: now the peer's announcement can be checked. */
    struct shm_ring_slot *ps = slot_of(c, c->peer);
    uint32_t version = atomic_load_explicit(&ps->version, memory_order_relaxed);
    uint64_t size = atomic_load_explicit(&ps->shm_size, memory_order_relaxed);
    uint64_t ptx = atomic_load_explicit(&ps->tx_bytes, memory_order_relaxed);
    uint64_t prx = atomic_load_explicit(&ps->rx_bytes, memory_order_relaxed);
    if (version != SHM_RING_VERSION)
        return fail(c, "peer %" PRIu32 " speaks layout version %" PRIu32 ", we %u", c->peer,
                    version, SHM_RING_VERSION);
    if (size != c->shm_size)
        return fail(c, "peer %" PRIu32 " sees %" PRIu64 " bytes of shared memory, we %" PRIu64,
                    c->peer, size, c->shm_size);
    if (ptx != c->rx_total || prx != c->tx_total)
        return fail(c,
                    "peer %" PRIu32 " sends %" PRIu64 " and expects %" PRIu64
                    " bytes; we expect %" PRIu64 " and send %" PRIu64,
                    c->peer, ptx, prx, c->rx_total, c->tx_total);
    c->tx.seed = c->nonce;
    c->rx.seed = c->peer_nonce;
    return 0;
}

/* ---- the transfer ---- */

/* Whether minivmm's presence bitmap says the paired peer has left the group. Without the
 * extension (QEMU's ivshmem) departures are not visible and only the timeout applies. */
static bool peer_left(struct ctx *c)
{
    struct ivshmem_guest_info info;

    if (!(c->info.flags & IVSHMEM_GUEST_INFO_EXT) || c->peer >= 64)
        return false;
    if (ivshmem_handle_info(&c->h, &info))
        return false;
    return !(info.peers & (1ull << c->peer));
}

static int transfer(struct ctx *c)
{
    double last = now(), presence_checked = last;
    unsigned idle = 0;

    c->tx.done = c->tx.total == 0;
    c->rx.done = c->rx.total == 0;
    for (;;) {
        if (c->irq)
            drain(c);
        int a = step_tx(c);
        int b = step_rx(c);
        if (a < 0 || b < 0 || c->why[0])
            return -1;
        if (c->tx.done && c->rx.done)
            return 0;
        if (a || b) {
            idle = 0;
            last = now();
            continue;
        }
        if (c->irq || ++idle % 256 == 0) {
            double t = now();
            /* Idle for a moment: is anyone still there? Looked up at most 10 times a
             * second, since each look is a register read that exits to the VMM. */
            if (t - presence_checked > 0.1) {
                presence_checked = t;
                if (peer_left(c))
                    return fail(c,
                                "peer %" PRIu32 " left the group (sent %" PRIu64 " of %" PRIu64
                                ", received and verified %" PRIu64 " of %" PRIu64 ")",
                                c->peer, c->tx.pos, c->tx.total, c->rx.pos, c->rx.total);
            }
            if (t - last > c->timeout)
                return fail(c,
                            "timed out: nothing moved for %.0f s (sent %" PRIu64 " of %" PRIu64
                            " and acknowledged %" PRIu64 ", received %" PRIu64 " of %" PRIu64 ")",
                            c->timeout, c->tx.pos, c->tx.total, c->tx.seen, c->rx.pos, c->rx.total);
            if (c->irq) {
                struct pollfd pfd = {.fd = c->h.fd, .events = POLLIN};
                int ms = (int)((c->timeout - (t - last)) * 1000) + 1;
                if (ms > 1000)
                    ms = 1000;
                if (poll(&pfd, 1, ms) < 0 && errno != EINTR)
                    return fail(c, "poll %s: %s", c->dev.devnode, strerror(errno));
                if (pfd.revents & (POLLERR | POLLHUP))
                    return fail(c, "poll %s: device gone or without interrupts", c->dev.devnode);
            } else if (idle > 100000) {
                sched_yield();
            }
        } else {
            __builtin_ia32_pause();
        }
    }
}

/* ---- setup and options ---- */

static int setup(struct ctx *c)
{
    char why[256];
    int err;

    if (ivshmem_dev_find(c->device, &c->dev, why, sizeof(why)))
        return fail(c, "%s", why);
    c->map_driver = c->map ? strcmp(c->map, "driver") == 0 : c->irq || c->dev.devnode[0];
    err = ivshmem_dev_open(&c->dev, c->irq || c->map_driver, &c->h);
    if (err == -ENODEV)
        return fail(c, "%s: the ivshmem_guest driver is not bound (needed for %s)", c->dev.bdf,
                    c->irq ? "--irq" : "--map driver");
    if (err)
        return fail(c, "%s: registers via %s: %s", c->dev.bdf, c->h.via, strerror(-err));
    err = ivshmem_handle_info(&c->h, &c->info);
    if (err)
        return fail(c, "%s: device info via %s: %s", c->dev.bdf, c->h.via, strerror(-err));
    if (c->irq) {
        if (!(c->info.flags & IVSHMEM_GUEST_INFO_IRQ))
            return fail(c, "%s: no interrupts (no MSI-X: ivshmem-plain?): --irq impossible",
                        c->dev.bdf);
        if (c->vector >= c->info.vectors)
            return fail(c, "--vector %" PRIu32 ": the device has %" PRIu32 " vectors", c->vector,
                        c->info.vectors);
        int flags = fcntl(c->h.fd, F_GETFL);
        if (flags < 0 || fcntl(c->h.fd, F_SETFL, flags | O_NONBLOCK) < 0)
            return fail(c, "fcntl %s: %s", c->dev.devnode, strerror(errno));
    }
    c->me = c->opt_id != ID_UNKNOWN ? c->opt_id : c->info.own_id;
    if (c->me > IVSHMEM_GUEST_MAX_PEER_ID)
        return fail(c, "own ID %" PRIu32 " is not a peer ID (0..65535): give --id", c->me);

    c->shm = ivshmem_dev_map_shm(&c->dev, c->map_driver, &c->shm_size);
    if (!c->shm)
        return fail(c, "%s: mapping BAR2 through %s: %s", c->dev.bdf,
                    c->map_driver ? c->dev.devnode : "resource2", strerror(errno));
    c->cap = shm_ring_capacity(c->shm_size);
    if (c->cap == 0)
        return fail(c, "%s: %" PRIu64 " bytes of shared memory, shm-ring needs %u", c->dev.bdf,
                    c->shm_size, SHM_RING_MIN_SHM);
    c->mine = slot_of(c, c->me);
    c->nonce = make_nonce();
    char memtype[64];
    err = ivshmem_dev_memtype(&c->dev, memtype, sizeof(memtype));
    if (err)
        ivshmem_fmt(memtype, sizeof(memtype), "unknown (%s)", strerror(-err));
    printf("shm-ring: device %s, %" PRIu64
           " bytes mapped through %s, memory type %s, own ID %" PRIu32 ", ring capacity %" PRIu64
           " bytes, %s\n",
           c->dev.bdf, c->shm_size, c->map_driver ? c->dev.devnode : "resource2", memtype, c->me,
           c->cap, c->irq ? "interrupts (poll + doorbell)" : "polled");
    fflush(stdout);
    return 0;
}

static bool parse_u64(const char *s, uint64_t *out, bool suffix)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || end == s || *s == '-')
        return false;
    if (suffix && *end) {
        int shift = *end == 'K' || *end == 'k' ? 10 : *end == 'M' ? 20 : *end == 'G' ? 30 : -1;
        if (shift < 0 || end[1] || v > (MAX_BYTES >> shift))
            return false;
        v <<= shift;
        end++;
    }
    if (*end)
        return false;
    *out = v;
    return true;
}

static int usage(void)
{
    fprintf(stderr, "usage: shm-ring [--irq] [--device BDF|/dev/ivshmemN] [--map sysfs|driver]\n"
                    "                [--timeout SEC] [--peer ID] [--id ID] [--vector N]\n"
                    "                send|recv|both BYTES   (BYTES with K, M or G suffix)\n");
    return 2;
}

int main(int argc, char **argv)
{
    static struct ctx ctx;
    struct ctx *c = &ctx;
    const char *map = NULL;
    uint64_t v;
    int i;

    c->timeout = 60;
    c->opt_peer = c->opt_id = ID_UNKNOWN;
    for (i = 1; i < argc && argv[i][0] == '-'; i++) {
        const char *opt = argv[i], *arg = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(opt, "--irq") == 0) {
            c->irq = true;
            continue;
        }
        if (!arg)
            return usage();
        i++;
        if (strcmp(opt, "--device") == 0) {
            c->device = arg;
        } else if (strcmp(opt, "--map") == 0 &&
                   (strcmp(arg, "sysfs") == 0 || strcmp(arg, "driver") == 0)) {
            map = arg;
        } else if (strcmp(opt, "--timeout") == 0 && parse_u64(arg, &v, false) && v > 0 &&
                   v <= 86400) {
            c->timeout = (double)v;
        } else if (strcmp(opt, "--peer") == 0 && parse_u64(arg, &v, false) &&
                   v <= IVSHMEM_GUEST_MAX_PEER_ID) {
            c->opt_peer = (uint32_t)v;
        } else if (strcmp(opt, "--id") == 0 && parse_u64(arg, &v, false) &&
                   v <= IVSHMEM_GUEST_MAX_PEER_ID) {
            c->opt_id = (uint32_t)v;
        } else if (strcmp(opt, "--vector") == 0 && parse_u64(arg, &v, false) &&
                   v < IVSHMEM_GUEST_MAX_VECTORS) {
            c->vector = (uint32_t)v;
        } else {
            return usage();
        }
    }
    if (argc - i != 2 || !parse_u64(argv[i + 1], &v, true) || v == 0 || v > MAX_BYTES)
        return usage();
    if (strcmp(argv[i], "send") == 0)
        c->tx_total = v;
    else if (strcmp(argv[i], "recv") == 0)
        c->rx_total = v;
    else if (strcmp(argv[i], "both") == 0)
        c->tx_total = c->rx_total = v;
    else
        return usage();
    c->map = map;
    c->tx.name = "sent";
    c->rx.name = "received";
    c->tx.total = c->tx_total;
    c->rx.total = c->rx_total;

    int rc = setup(c);
    double t0 = 0, t1 = 0;
    if (rc == 0)
        rc = handshake(c);
    if (rc == 0) {
        printf("shm-ring: paired with peer %" PRIu32 " (found by %s), sending on ring %d, "
               "receiving on ring %d\n",
               c->peer, c->peer_how, c->tx.ring, c->rx.ring);
        fflush(stdout);
        t0 = now();
        rc = transfer(c);
        t1 = now();
    }
    if (c->mine)
        atomic_store_explicit(&c->mine->magic, 0, memory_order_release);

    if (rc != 0) {
        printf("shm-ring: FAIL %s\n", c->why);
        return 1;
    }
    for (struct dir *d = &c->tx; d; d = d == &c->tx ? &c->rx : NULL) {
        if (!d->total)
            continue;
        double s = d->t_done - t0;
        printf("shm-ring: %s %" PRIu64 " bytes in %.3f s: %.2f MB/s%s\n", d->name, d->total, s,
               s > 0 ? (double)d->total / s / 1e6 : 0.0,
               d == &c->rx ? ", every byte verified" : ", all acknowledged");
    }
    if (c->irq)
        printf("shm-ring: doorbells rung %" PRIu64 " (%" PRIu64 " more to an absent peer), "
               "interrupt wakeups %" PRIu64 "\n",
               c->rings, c->rings_absent, c->wakeups);
    uint64_t bytes = c->tx_total + c->rx_total;
    double s = t1 - t0;
    printf("shm-ring: OK %" PRIu64 " bytes (sent %" PRIu64 ", received %" PRIu64
           ") in %.3f s, %.2f MB/s, %s, peer %" PRIu32 "\n",
           bytes, c->tx_total, c->rx_total, s, s > 0 ? (double)bytes / s / 1e6 : 0.0,
           c->irq ? "irq" : "polled", c->peer);
    return 0;
}
