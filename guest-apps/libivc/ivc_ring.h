/*
 * ivc_ring: libivc's shared-memory layout and message rings, plain C11 with no system
 * calls, so the host's unit tests (tests/unit/test_ivc_ring.c) run it over malloc'ed
 * memory. Waiting, doorbells and presence are the backend's (ivc_shm.c).
 *
 * Layout of S bytes shared by P peers (P = the agreed `peers`, 2..IVC_RING_MAX_PEERS):
 *   k * R   R   region k = the ring from peer a to peer b, k = a * (P - 1) + (b < a ? b : b - 1)
 *   R = (S / (P * (P - 1))) rounded down to 4096, at least 8192.
 * A region: a 256-byte control block, then its data area of cap = R - 256 bytes.
 *   control bytes 0-127 (the producer a writes them): head, tx_nonce, want_space, and the
 *     layout a uses (P, S), which b checks
 *   control bytes 128-255 (the consumer b writes them): tail, rx_ack, want_data
 *
 * Records: a ring is a stream of records, each starting at a 64-byte aligned stream
 * offset: an 8-byte header {u32 length, u32 kind} and the payload, padded to 64 bytes. A
 * record never wraps: when the next does not fit before the end of the data area the
 * producer writes a PAD record (kind 2, length = the bytes left to the end, header
 * included) and continues at 0. head and tail count stream bytes (64-bit, never wrap);
 * the record at stream offset o is at data[o % cap]. The producer writes the record, then
 * stores head (release); the consumer loads head (acquire), reads, then stores tail
 * (release).
 *
 * Session (no interrupts needed; robust against what earlier runs left behind): each side
 * of a pair, on open, resets the fields it owns (head and want_space of its tx ring; tail,
 * rx_ack and want_data of its rx ring) and the rx_ack of its tx ring (so that no ack of an
 * earlier session counts), writes its layout, then publishes a fresh nonce as tx_nonce.
 * A side that sees a new tx_nonce in its rx ring resets that ring's tail and stores the
 * nonce as rx_ack. A side is connected when its tx ring's rx_ack equals its own nonce and
 * it has acked the peer's current tx_nonce; afterwards a change of either is the peer
 * closing or restarting (ECONNRESET). Close sets tx_nonce and rx_ack to 0.
 *
 * Validity (anything else is EPROTO, sticky): head and tail 64-byte aligned, tail <= head,
 * head - tail <= cap, neither moves back; a record header lies inside the data area, a
 * message's length is at most the channel's maximum and its record ends inside the data
 * area and at or before head; a PAD starts after offset 0 and ends exactly at the end.
 * Every shared value is loaded once into a local before it is checked and used.
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IVC_RING_MAGIC      0x31435649u /* "IVC1" */
#define IVC_RING_VERSION    1u
#define IVC_RING_MAX_PEERS  64
#define IVC_RING_CTL_SIZE   256u
#define IVC_RING_ALIGN      64u
#define IVC_RING_HDR        8u
#define IVC_RING_MIN_REGION 8192u
#define IVC_RING_MAX_MSG    (1u << 30)

#define IVC_REC_MSG 1u
#define IVC_REC_PAD 2u

struct ivc_ring_ctl {
    _Atomic uint64_t head;       /* producer: stream bytes published */
    _Atomic uint64_t tx_nonce;   /* producer: its nonce for this session, 0 = closed */
    _Atomic uint32_t want_space; /* producer: asleep until tail moves (ring its doorbell) */
    _Atomic uint32_t peers;      /* producer: its layout's P */
    _Atomic uint64_t shm_size;   /* producer: its layout's S */
    uint8_t pad0[96];
    _Atomic uint64_t tail;      /* consumer: stream bytes consumed */
    _Atomic uint64_t rx_ack;    /* consumer: the tx_nonce it reset tail for */
    _Atomic uint32_t want_data; /* consumer: asleep until head moves */
    uint8_t pad1[108];
};
_Static_assert(sizeof(struct ivc_ring_ctl) == IVC_RING_CTL_SIZE, "ctl size");

struct ivc_layout {
    uint64_t shm_size;
    unsigned peers;
    uint64_t region_size;
    uint64_t cap; /* data bytes per ring */
};

/* 0, -EINVAL (peers outside 2..IVC_RING_MAX_PEERS) or -ENOSPC (S too small for P). */
int ivc_layout_init(struct ivc_layout *layout, uint64_t shm_size, unsigned peers);
uint64_t ivc_layout_region(const struct ivc_layout *layout, unsigned from, unsigned to);

/* One direction's private state; the shared state is only ever read into locals. */
struct ivc_ring_end {
    struct ivc_ring_ctl *ctl;
    uint8_t *data;
    uint64_t cap;
    uint64_t pos;     /* producer: head; consumer: tail (the trusted copies) */
    uint64_t seen;    /* producer: last tail read; consumer: last head read */
    uint64_t busy;    /* producer: bytes reserved (pad + record); consumer: record held */
    uint64_t busy_at; /* producer: stream offset of the reserved record */
    bool has_busy;
};

/* Both directions between self and peer. */
struct ivc_pair {
    const struct ivc_layout *layout;
    struct ivc_ring_end tx, rx;
    uint64_t nonce;      /* own, this session's */
    uint64_t peer_nonce; /* the peer's tx_nonce acked, 0 = none yet */
    size_t max_msg;
    bool connected;
    bool moved_head; /* this side published data (or a pad) since the backend last looked */
    bool moved_tail; /* this side freed space since the backend last looked */
    int error;       /* sticky -EPROTO / -ECONNRESET */
};

/* Sets up pair for self <-> peer (both < layout->peers, different) and resets the fields
 * self owns, then publishes nonce: fresh for every open (never 0, never reused). */
void ivc_pair_open(struct ivc_pair *pair, void *shm, const struct ivc_layout *layout, unsigned self,
                   unsigned peer, uint64_t nonce);
/* One step of the session set-up: 0 connected, -EAGAIN not yet, -EPROTO. Afterwards
 * -ECONNRESET when the peer closed or restarted. */
int ivc_pair_poll(struct ivc_pair *pair);
/* Says goodbye: the peer sees ECONNRESET. */
void ivc_pair_close(struct ivc_pair *pair);

/* Room for len bytes: 0 (*slot set), -EAGAIN (full), -EMSGSIZE, -EBUSY, -EPROTO. */
int ivc_pair_reserve(struct ivc_pair *pair, size_t len, void **slot);
/* Publishes the first len bytes of the reservation: 0, -EINVAL (none or len too big). */
int ivc_pair_commit(struct ivc_pair *pair, size_t len);
/* The next message: its length (and *msg), -EAGAIN (empty), -EBUSY, -EPROTO. */
long ivc_pair_peek(struct ivc_pair *pair, const void **msg);
/* Frees the message peek returned: 0 or -EINVAL (none held). */
int ivc_pair_release(struct ivc_pair *pair);

/* Puts the message peek returned back: it stays the next one. */
void ivc_pair_unpeek(struct ivc_pair *pair);

/* Declares this side asleep (or awake again) waiting for data / for space, so that the
 * peer rings its doorbell. Call, then check once more before sleeping. */
void ivc_pair_want(struct ivc_pair *pair, bool data, bool space);
/* Whether the peer declared it sleeps waiting for what this side just published:
 * after a commit (data) or a release (space). */
bool ivc_pair_peer_wants_data(const struct ivc_pair *pair);
bool ivc_pair_peer_wants_space(const struct ivc_pair *pair);
