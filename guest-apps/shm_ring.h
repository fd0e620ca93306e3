/*
 * shm_ring.h: the layout shm-ring (shm-ring.c) keeps in an ivshmem device's shared memory
 * (BAR2) to move bytes between two VMs: two single-producer/single-consumer byte rings,
 * one per direction, and a handshake that needs no interrupts and no driver.
 *
 * The memory is shared with other VMs, so nothing read from it is trusted: every index,
 * length and ID is checked before use (shm-ring fails, it never indexes out of range), and
 * every payload byte is compared with the pattern below.
 *
 * Layout of S bytes (S = BAR2's size, at least SHM_RING_MIN_SHM; all offsets below are
 * fixed or derived from S alone, which both sides check they agree on):
 *
 *   offset                size       what                         written by
 *   0                     64 * 64    slots: slot i for the peer    that peer only
 *                                    whose ID is i modulo 64
 *   SHM_RING_CTL_OFF      2 * 256    ring controls: ring r at      head: ring r's producer
 *                                    SHM_RING_CTL_OFF + r * 256    tail: ring r's consumer
 *   SHM_RING_DATA_OFF     cap        ring 0's data                 ring 0's producer
 *   SHM_RING_DATA_OFF+cap cap        ring 1's data                 ring 1's producer
 *   where cap = shm_ring_capacity(S) = ((S - SHM_RING_DATA_OFF) / 2) rounded down to 64.
 *
 * Ring 0 carries bytes from the peer with the lower ID to the one with the higher ID, ring
 * 1 the other way. A ring is a byte stream: head and tail count the bytes produced and
 * consumed since the handshake (64-bit, never wrap); the byte at stream offset o lives at
 * data[o % cap]. Producer: write data, then store head with release; reads tail with
 * acquire. Consumer: load head with acquire, copy out, then store tail with release.
 * Valid: tail <= head, head - tail <= cap, head <= the announced total, neither moves back.
 *
 * Handshake (no interrupts needed, robust against what an earlier run left in memory):
 *  1. Write the own slot: magic 0, then id, peer, shm_size, tx/rx totals, ack 0, a fresh
 *     random nonce (never 0), then magic = SHM_RING_MAGIC (release).
 *  2. Find the peer (given, or the one other present ID in minivmm's presence bitmap, or
 *     the one other valid slot). Before acking a nonce, reset the ring fields this side
 *     owns for that pairing (its tx ring's head, its rx ring's tail) to 0. Then store the
 *     peer's current nonce in the own slot's ack (release).
 *  3. Done when the peer's slot acks the own nonce (acquire) while still carrying the
 *     nonce we acked: both sides are live in this run and have reset their ring fields.
 *     (The peer's magic is not needed any more for this: a side that finished first and
 *     gave up at step 4 has cleared it, and the other must still finish and report.)
 *  4. Each side then checks the peer's slot: same version and shm_size, and its tx total
 *     equal to the own rx total (and the other way round).
 * On exit a side sets its slot's magic to 0.
 *
 * Payload: byte o of the stream a side sends is byte (o % 8) (little endian) of
 * shm_ring_pattern(sender's nonce, o / 8): deterministic, different in every run.
 */
#pragma once

#include <stdint.h>

#define SHM_RING_MAGIC   0x474E5252u /* "RRNG" */
#define SHM_RING_VERSION 1u

#define SHM_RING_SLOTS     64
#define SHM_RING_SLOT_SIZE 64
#define SHM_RING_CTL_OFF   4096u
#define SHM_RING_CTL_SIZE  256u
#define SHM_RING_DATA_OFF  8192u
#define SHM_RING_MIN_SHM   16384u /* 4 KiB of data per direction */

/* One slot. Every shared field is a C11 atomic (lock-free and naturally aligned, so plain
 * loads and stores on x86); little endian. */
struct shm_ring_slot {
    _Atomic uint32_t magic;    /* SHM_RING_MAGIC while the owner takes part, else 0 */
    _Atomic uint32_t version;  /* SHM_RING_VERSION */
    _Atomic uint32_t id;       /* the owner's peer ID; the slot index is id % SHM_RING_SLOTS */
    _Atomic uint32_t peer;     /* the ID the owner pairs with, SHM_RING_PEER_ANY until known */
    _Atomic uint64_t shm_size; /* S as the owner sees it */
    _Atomic uint64_t nonce;    /* fresh per run, never 0; seeds the owner's payload */
    _Atomic uint64_t ack;      /* the nonce of the peer the owner paired with, 0 = none yet */
    _Atomic uint64_t tx_bytes; /* how many bytes the owner sends */
    _Atomic uint64_t rx_bytes; /* how many bytes the owner expects */
    _Atomic uint32_t flags;    /* SHM_RING_F_*: informational */
    _Atomic uint32_t reserved;
};
_Static_assert(sizeof(struct shm_ring_slot) == SHM_RING_SLOT_SIZE, "slot size");

#define SHM_RING_PEER_ANY 0xFFFFFFFFu
#define SHM_RING_F_IRQ    1u /* the owner sleeps on interrupts: ring its doorbell */

/* Ring r's control block at SHM_RING_CTL_OFF + r * SHM_RING_CTL_SIZE; head and tail are
 * two cache lines apart so the producer and the consumer never write the same line. */
struct shm_ring_ctl {
    _Atomic uint64_t head; /* bytes published by the producer */
    uint8_t pad0[120];
    _Atomic uint64_t tail; /* bytes consumed by the consumer */
    uint8_t pad1[120];
};
_Static_assert(sizeof(struct shm_ring_ctl) == SHM_RING_CTL_SIZE, "ctl size");
_Static_assert(SHM_RING_SLOTS *SHM_RING_SLOT_SIZE <= SHM_RING_CTL_OFF, "slots fit");
_Static_assert(SHM_RING_CTL_OFF + 2 * SHM_RING_CTL_SIZE <= SHM_RING_DATA_OFF, "ctl fits");

/* Bytes of data per ring for a memory of shm_size bytes; 0 if it is too small. */
static inline uint64_t shm_ring_capacity(uint64_t shm_size)
{
    if (shm_size < SHM_RING_MIN_SHM)
        return 0;
    return ((shm_size - SHM_RING_DATA_OFF) / 2) & ~(uint64_t)63;
}

/* The payload word at index (stream offset / 8): splitmix64 of seed and index. */
static inline uint64_t shm_ring_pattern(uint64_t seed, uint64_t index)
{
    uint64_t z = seed + (index + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
