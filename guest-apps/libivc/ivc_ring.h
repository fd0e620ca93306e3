/*
 * ivc_ring: libivc's message rings over the shared-memory layout of abi/ivc_layout.h
 * (specified in docs/ivc.md), plain C11 with no system calls, so the host's unit tests
 * (tests/unit/test_ivc_ring.c) run it over malloc'ed memory. Waiting, doorbells and
 * presence are the backend's (ivc_shm.c). Every shared value is loaded once into a local
 * before it is checked and used; a broken rule makes the pair answer -EPROTO for good.
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "abi/ivc_layout.h"

#define IVC_RING_MAX_MSG (1u << 30) /* the library's limit on one message */

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
