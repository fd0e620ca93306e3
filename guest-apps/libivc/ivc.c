/* libivc's public calls: argument checks common to every backend, then the backend. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ivc_backend.h"

int ivc_ctx_open(struct ivc_ctx **ctx, const struct ivc_ctx_opts *opts)
{
    static const struct ivc_ctx_opts defaults = {.backend = IVC_SHM_POLL, .self_id = -1};
    const struct ivc_backend_ops *ops;
    struct ivc_ctx *c;
    int err;

    if (!ctx)
        return -EINVAL;
    if (!opts)
        opts = &defaults;
    /* The guest build has the device backends, the host build (IVC_HOST_LIBRARY) the
     * host ones; IVC_SHM_MEMORY needs neither. */
    switch (opts->backend) {
    case IVC_SHM_MEMORY:
        ops = &ivc_shm_memory_ops;
        break;
#ifdef IVC_HOST_LIBRARY
    case IVC_HOST_POLL:
        ops = &ivc_host_poll_ops;
        break;
    case IVC_HOST_IRQ:
        ops = &ivc_host_irq_ops;
        break;
#else
    case IVC_SHM_POLL:
        ops = &ivc_shm_poll_ops;
        break;
    case IVC_SHM_IRQ:
        ops = &ivc_shm_irq_ops;
        break;
    case IVC_PORTIO:
        ops = &ivc_portio_ops;
        break;
#endif
    default:
        return -EOPNOTSUPP;
    }
    if (opts->peers == 1 || opts->peers > IVC_MAX_PEERS || opts->self_id >= IVC_MAX_PEERS ||
        (opts->flags & ~IVC_TIMING))
        return -EINVAL;
    c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->ops = ops;
    c->timing = opts->flags & IVC_TIMING;
    err = ops->ctx_open(c, opts);
    if (err) {
        free(c);
        return err;
    }
    *ctx = c;
    return 0;
}

void ivc_ctx_close(struct ivc_ctx *ctx)
{
    if (!ctx)
        return;
    ctx->ops->ctx_close(ctx);
    free(ctx);
}

unsigned ivc_ctx_self(const struct ivc_ctx *ctx)
{
    return ctx->self;
}

const char *ivc_ctx_backend_name(const struct ivc_ctx *ctx)
{
    return ctx->ops->name;
}

const char *ivc_ctx_memtype(const struct ivc_ctx *ctx)
{
    return ctx->memtype[0] ? ctx->memtype : NULL;
}

int ivc_ctx_peers(struct ivc_ctx *ctx, uint64_t *present)
{
    return ctx->ops->peers(ctx, present);
}

int ivc_open(struct ivc_ctx *ctx, unsigned peer, int timeout_ms, struct ivc_chan **chan)
{
    struct ivc_chan *c;
    int err;

    if (!ctx || !chan || timeout_ms < IVC_FOREVER)
        return -EINVAL;
    c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->ctx = ctx;
    c->peer = peer;
    err = ctx->ops->chan_open(c, timeout_ms);
    if (err) {
        free(c);
        return err;
    }
    *chan = c;
    return 0;
}

void ivc_close(struct ivc_chan *chan)
{
    if (!chan)
        return;
    chan->ctx->ops->chan_close(chan);
    free(chan);
}

size_t ivc_max_msg(const struct ivc_chan *chan)
{
    return chan->ctx->ops->max_msg(chan);
}

int ivc_send(struct ivc_chan *chan, const void *buf, size_t len, int timeout_ms)
{
    if ((!buf && len) || timeout_ms < IVC_FOREVER)
        return -EINVAL;
    return chan->ctx->ops->send(chan, buf, len, timeout_ms);
}

ssize_t ivc_recv(struct ivc_chan *chan, void *buf, size_t size, int timeout_ms)
{
    if ((!buf && size) || timeout_ms < IVC_FOREVER)
        return -EINVAL;
    return chan->ctx->ops->recv(chan, buf, size, timeout_ms);
}

int ivc_reserve(struct ivc_chan *chan, size_t len, void **slot, int timeout_ms)
{
    if (!slot || timeout_ms < IVC_FOREVER)
        return -EINVAL;
    if (!chan->ctx->ops->reserve)
        return -EOPNOTSUPP;
    return chan->ctx->ops->reserve(chan, len, slot, timeout_ms);
}

int ivc_commit(struct ivc_chan *chan, size_t len)
{
    if (!chan->ctx->ops->commit)
        return -EOPNOTSUPP;
    return chan->ctx->ops->commit(chan, len);
}

ssize_t ivc_recv_ref(struct ivc_chan *chan, const void **msg, int timeout_ms)
{
    if (!msg || timeout_ms < IVC_FOREVER)
        return -EINVAL;
    if (!chan->ctx->ops->recv_ref)
        return -EOPNOTSUPP;
    return chan->ctx->ops->recv_ref(chan, msg, timeout_ms);
}

int ivc_release(struct ivc_chan *chan)
{
    if (!chan->ctx->ops->release)
        return -EOPNOTSUPP;
    return chan->ctx->ops->release(chan);
}

void ivc_chan_stats(const struct ivc_chan *chan, struct ivc_stats *stats)
{
    *stats = chan->stats;
}
