/* The transport of the port I/O channel: memory that the VMMs of one --shm group share
 * (a sealed memfd the broker creates and hands only to minivmm clients, see docs/broker.md),
 * holding one single-producer single-consumer byte ring per ordered pair of peers and a
 * presence word per peer. Plain C over a pointer, so two devices in one process (the unit
 * tests, a fuzzer) can share a calloc'ed or mmap'ed block the same way two VMMs share the
 * memfd.
 *
 * Layout (PORTIO_CHANNEL_SIZE bytes, sparse: a ring costs memory only once used):
 *   0                      struct portio_channel_header (magic, geometry, presence words)
 *   4096 + (from * 64 + to) * PORTIO_RING_STRIDE
 *                          ring from->to: a 4 KiB control page (struct portio_ring), then
 *                          PORTIO_RING_BYTES of data
 *
 * Ring protocol: head (bytes ever written) belongs to the writer VMM, tail (bytes ever
 * read) to the reader VMM; both are free-running 64-bit counters, so readable = head -
 * tail and the data of byte n is at n % PORTIO_RING_BYTES. A writer publishes data with a
 * release store of head, a reader frees space with a release store of tail. Neither ever
 * trusts the other: head - tail above the capacity (a corrupted or hostile peer VMM) reads
 * as "nothing readable, no space" and is counted by the device.
 *
 * Waking: seq is a futex word bumped (then FUTEX_WAKE, only while waiters > 0) whenever
 * head, tail or the presence of either end changes; a waiter sleeps on it with a timeout.
 *
 * Presence: generation of peer n is even while n is absent and odd while a VMM with the
 * channel holds ID n; only the broker changes it (portio_channel_set_present()), when a
 * minivmm client asks for the channel and when its connection closes. A new generation is
 * a new incarnation of the ID.
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "abi/portio_regs.h"

#define PORTIO_CHANNEL_MAGIC   0x4D56504F52494E47ull /* "MVPORING" */
#define PORTIO_CHANNEL_VERSION 1
#define PORTIO_HEADER_SIZE     4096u
#define PORTIO_RING_CONTROL    4096u
#define PORTIO_RING_STRIDE     (PORTIO_RING_CONTROL + PORTIO_RING_BYTES)
#define PORTIO_CHANNEL_SIZE                                                                        \
    ((uint64_t)PORTIO_HEADER_SIZE +                                                                \
     (uint64_t)PORTIO_MAX_PEERS * PORTIO_MAX_PEERS * PORTIO_RING_STRIDE)

struct portio_peer_slot {
    _Atomic uint32_t generation; /* odd: present */
    _Atomic uint32_t pid;        /* of the VMM holding the ID, for diagnostics */
};

struct portio_channel_header {
    uint64_t magic;
    uint32_t version;
    uint32_t max_peers;
    uint32_t ring_bytes;
    uint32_t ring_stride;
    struct portio_peer_slot peers[PORTIO_MAX_PEERS];
};

struct portio_ring {
    _Atomic uint64_t head;
    uint8_t pad_head[56];
    _Atomic uint64_t tail;
    uint8_t pad_tail[56];
    _Atomic uint32_t seq;
    _Atomic uint32_t waiters;
};

/* Writes the header into a zeroed block of PORTIO_CHANNEL_SIZE bytes (the broker does it
 * once, before handing the memfd out). */
void portio_channel_format(void *mem);

/* Whether mem starts with a header this code understands. */
bool portio_channel_valid(const void *mem);

/* Marks peer id present (with the pid of its VMM) or absent and wakes everyone waiting on
 * a ring to or from it. Nothing happens when the state is already the asked one. Marking
 * it present drops what its rings still hold for a predecessor with the same ID; what the
 * predecessor sent stays readable for its partners. */
void portio_channel_set_present(void *mem, unsigned int id, uint32_t pid, bool present);

/* The presence word of peer id (odd: present). */
uint32_t portio_channel_generation(const void *mem, unsigned int id);

struct portio_ring *portio_channel_ring(void *mem, unsigned int from, unsigned int to);

/* Bytes readable / writable now; 0 for a ring whose counters are inconsistent, and *corrupt
 * (if not NULL) is set then. */
uint32_t portio_ring_readable(struct portio_ring *ring, bool *corrupt);
uint32_t portio_ring_writable(struct portio_ring *ring, bool *corrupt);

/* All or nothing: copies len bytes in (write) or out (read) and returns true, or returns
 * false and changes nothing when they do not fit / are not there. len 0 always succeeds. */
bool portio_ring_write(struct portio_ring *ring, const void *data, uint32_t len);
bool portio_ring_read(struct portio_ring *ring, void *data, uint32_t len);

/* Drops everything readable now (tail = head). */
void portio_ring_drain(struct portio_ring *ring);

/* The current seq, to be passed to portio_ring_wait(). Read it before checking the
 * condition you wait for. */
uint32_t portio_ring_seq(struct portio_ring *ring);

/* Sleeps until seq differs from seen, timeout_ms passed or a signal arrived (a vCPU kick),
 * whichever is first. Returns 0, or -ETIMEDOUT, -EINTR. Never longer than timeout_ms. */
int portio_ring_wait(struct portio_ring *ring, uint32_t seen, unsigned int timeout_ms);
