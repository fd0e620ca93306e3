/*
 * The inside of libivc: what a backend supplies. One backend is one file with one ops
 * table; ivc.c checks the arguments common to all and dispatches.
 */
#pragma once

#include <stdbool.h>
#include <time.h>

#include "ivc.h"

struct ivc_backend_ops {
    const char *name;
    int (*ctx_open)(struct ivc_ctx *ctx, const struct ivc_ctx_opts *opts);
    void (*ctx_close)(struct ivc_ctx *ctx);
    int (*peers)(struct ivc_ctx *ctx, uint64_t *present);
    /* chan->ctx and chan->peer are set (peer checked against the context's layout by the
     * backend); fills chan->backend. */
    int (*chan_open)(struct ivc_chan *chan, int timeout_ms);
    void (*chan_close)(struct ivc_chan *chan);
    size_t (*max_msg)(const struct ivc_chan *chan);
    int (*send)(struct ivc_chan *chan, const void *buf, size_t len, int timeout_ms);
    ssize_t (*recv)(struct ivc_chan *chan, void *buf, size_t size, int timeout_ms);
    /* Zero-copy; NULL for a backend that cannot offer it (-EOPNOTSUPP). */
    int (*reserve)(struct ivc_chan *chan, size_t len, void **slot, int timeout_ms);
    int (*commit)(struct ivc_chan *chan, size_t len);
    ssize_t (*recv_ref)(struct ivc_chan *chan, const void **msg, int timeout_ms);
    int (*release)(struct ivc_chan *chan);
};

extern const struct ivc_backend_ops ivc_shm_poll_ops;
extern const struct ivc_backend_ops ivc_shm_irq_ops;
extern const struct ivc_backend_ops ivc_shm_memory_ops;
extern const struct ivc_backend_ops ivc_portio_ops;
extern const struct ivc_backend_ops ivc_host_poll_ops;
extern const struct ivc_backend_ops ivc_host_irq_ops;

struct ivc_ctx {
    const struct ivc_backend_ops *ops;
    unsigned self;
    bool timing;      /* IVC_TIMING */
    char memtype[64]; /* the shared memory's memory types, "" where unknown or none */
    void *backend;
};

struct ivc_chan {
    struct ivc_ctx *ctx;
    unsigned peer;
    struct ivc_stats stats;
    void *backend;
};

static inline uint64_t ivc_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
