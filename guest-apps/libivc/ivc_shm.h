/*
 * libivc's shared-memory channels, whoever owns the memory. ivc_shm.c runs the rings of
 * ivc_ring.c over it, waits for the peer (spinning, or sleeping where the owner can) and
 * rings the peer when it sleeps; the owner maps the memory, rings doorbells, sleeps and
 * knows who is present through the hooks below. Owners: a guest's ivshmem device
 * (ivc_shm_dev.c: shm-poll, shm-irq), a host process in a group (ivc_host.c: host-poll,
 * host-irq), or the caller (IVC_SHM_MEMORY, here).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ivc_backend.h"
#include "ivc_ring.h"

struct ivc_shm;

struct ivc_shm_hooks {
    /* Present peers (bit n = ID n, own included); -EOPNOTSUPP where unknown. Only called
     * when has_presence. */
    int (*peers)(struct ivc_shm *s, uint64_t *present);
    /* Rings peer's doorbell on IVC_SHM_VECTOR; -ECONNRESET: the peer is gone. Only called
     * when can_ring. */
    int (*ring)(struct ivc_shm *s, unsigned peer);
    /* Sleeps until a doorbell for us, a change of peers, or timeout_ms; 0 also when woken
     * early. Only called when irq. */
    int (*sleep)(struct ivc_shm *s, int timeout_ms);
    /* Releases what the owner holds (the memory included); NULL: nothing. */
    void (*close)(struct ivc_shm *s);
};

/* What a context's backend pointer holds for every shared-memory backend; an owner puts it
 * first in a struct of its own. */
struct ivc_shm {
    const struct ivc_shm_hooks *hooks;
    bool irq;          /* a wait sleeps in hooks->sleep, else it spins */
    bool can_ring;     /* hooks->ring works */
    bool has_presence; /* hooks->peers works */
    uint8_t *shm;
    uint64_t shm_size;
    struct ivc_layout layout;
};

/* The channel calls, the same for every owner; an owner's ctx_open sets ctx->self and
 * ctx->backend (a struct ivc_shm *) and its layout. */
void ivc_shm_ctx_close(struct ivc_ctx *ctx);
int ivc_shm_peers(struct ivc_ctx *ctx, uint64_t *present);
int ivc_shm_chan_open(struct ivc_chan *chan, int timeout_ms);
void ivc_shm_chan_close(struct ivc_chan *chan);
size_t ivc_shm_max_msg(const struct ivc_chan *chan);
int ivc_shm_send(struct ivc_chan *chan, const void *buf, size_t len, int timeout_ms);
ssize_t ivc_shm_recv(struct ivc_chan *chan, void *buf, size_t size, int timeout_ms);
int ivc_shm_reserve(struct ivc_chan *chan, size_t len, void **slot, int timeout_ms);
int ivc_shm_commit(struct ivc_chan *chan, size_t len);
ssize_t ivc_shm_recv_ref(struct ivc_chan *chan, const void **msg, int timeout_ms);
int ivc_shm_release(struct ivc_chan *chan);

/* An ops table of the calls above with the owner's ctx_open. */
#define IVC_SHM_OPS(backend_name, open_fn)                                                         \
    {                                                                                              \
        .name = backend_name, .ctx_open = open_fn, .ctx_close = ivc_shm_ctx_close,                 \
        .peers = ivc_shm_peers, .chan_open = ivc_shm_chan_open, .chan_close = ivc_shm_chan_close,  \
        .max_msg = ivc_shm_max_msg, .send = ivc_shm_send, .recv = ivc_shm_recv,                    \
        .reserve = ivc_shm_reserve, .commit = ivc_shm_commit, .recv_ref = ivc_shm_recv_ref,        \
        .release = ivc_shm_release,                                                                \
    }
