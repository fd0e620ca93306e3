/*
 * libivc's guest backends: an ivshmem device's BAR2 as the memory of ivc_shm.c's channels.
 * shm-poll spins while it waits; it maps BAR2 through the ivshmem_guest driver where that
 * is bound (write-back on minivmm's device), else through sysfs (uncached-minus). shm-irq
 * maps it through the driver, sleeps in poll() on the device, and rings the peer's doorbell
 * (vector IVC_SHM_VECTOR) when the peer said it sleeps (ivc_pair_want).
 *
 * Presence: with minivmm's extension the present-peers bitmap is read (an ioctl that reads
 * minivmm's status page, or a trapped BAR0 access without the driver), and shm-irq asks the
 * driver to raise IVC_SHM_PEER_VECTOR when peers change, so a sleeper wakes when its peer
 * leaves. Without the extension (QEMU) presence is not known.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../ivshmem_dev.h"
#include "abi/ivc_layout.h"
#include "ivc_shm.h"

struct shm_dev {
    struct ivc_shm shm; /* first: ctx->backend points at it */
    struct ivshmem_dev dev;
    struct ivshmem_handle handle; /* registers: presence, doorbells, interrupts */
};

static struct shm_dev *dev_of(struct ivc_shm *s)
{
    return (struct shm_dev *)s;
}

static int dev_peers(struct ivc_shm *s, uint64_t *present)
{
    struct ivshmem_guest_info info;
    int err = ivshmem_handle_info(&dev_of(s)->handle, &info);
    if (err)
        return err;
    *present = info.peers;
    return 0;
}

static int dev_ring(struct ivc_shm *s, unsigned peer)
{
    struct ivshmem_guest_ring bell = {.peer = peer, .vector = IVC_SHM_VECTOR};
    int err = ioctl(dev_of(s)->handle.fd, IVSHMEM_GUEST_RING, &bell) ? -errno : 0;
    return err == -ENXIO ? -ECONNRESET : err;
}

/* Sleeps in poll() on the device until any vector fires (or at most timeout_ms). */
static int dev_sleep(struct ivc_shm *s, int timeout_ms)
{
    int fd = dev_of(s)->handle.fd;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    uint64_t fired;

    int ready = poll(&pfd, 1, timeout_ms);
    if (ready < 0)
        return errno == EINTR ? 0 : -errno;
    if (ready == 0)
        return 0;
    if (pfd.revents & (POLLERR | POLLHUP | POLLNVAL))
        return -ENODEV;
    if (read(fd, &fired, sizeof(fired)) < 0 && errno != EAGAIN && errno != EINTR)
        return -errno;
    return 0;
}

static void dev_close(struct ivc_shm *s)
{
    munmap(s->shm, s->shm_size);
    ivshmem_handle_close(&dev_of(s)->handle);
}

static const struct ivc_shm_hooks dev_hooks = {
    .peers = dev_peers,
    .ring = dev_ring,
    .sleep = dev_sleep,
    .close = dev_close,
};

static int dev_ctx_open(struct ivc_ctx *ctx, const struct ivc_ctx_opts *opts, bool irq)
{
    struct ivshmem_guest_info info;
    struct shm_dev *d;
    char why[256];
    int err;

    d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    struct ivc_shm *s = &d->shm;
    s->hooks = &dev_hooks;
    s->irq = irq;
    err = ivshmem_dev_find(opts->device, &d->dev, why, sizeof(why));
    if (err)
        goto free_ctx;
    err = ivshmem_dev_open(&d->dev, irq, &d->handle);
    if (err)
        goto free_ctx;
    err = ivshmem_handle_info(&d->handle, &info);
    if (err)
        goto close_handle;
    if (irq && !(info.flags & IVSHMEM_GUEST_INFO_IRQ)) {
        err = -EOPNOTSUPP;
        goto close_handle;
    }
    s->has_presence = info.flags & IVSHMEM_GUEST_INFO_EXT;
    /* shm-poll rings too where the driver is there, so an shm-irq peer need not wait for
     * its next presence check to see what this side did. */
    s->can_ring = d->handle.fd >= 0;

    unsigned peers = opts->peers ? opts->peers : IVC_DEFAULT_PEERS;
    if (s->has_presence && info.max_peers && peers > info.max_peers) {
        err = -EINVAL;
        goto close_handle;
    }
    ctx->self = opts->self_id >= 0 ? (unsigned)opts->self_id : info.own_id;
    if (ctx->self >= peers) {
        err = -ERANGE;
        goto close_handle;
    }
    s->shm = ivshmem_dev_map_shm(&d->dev, d->dev.devnode[0] != '\0', &s->shm_size);
    if (!s->shm) {
        err = -errno;
        goto close_handle;
    }
    if (ivshmem_dev_memtype(&d->dev, ctx->memtype, sizeof(ctx->memtype)))
        ctx->memtype[0] = '\0';
    err = ivc_layout_init(&s->layout, s->shm_size, peers);
    if (err)
        goto unmap;
    if (irq && s->has_presence && info.vectors > IVC_SHM_PEER_VECTOR) {
        /* Best effort: without it a sleeper still re-checks presence every 100 ms. */
        uint32_t vector = IVC_SHM_PEER_VECTOR;
        (void)ioctl(d->handle.fd, IVSHMEM_GUEST_ENABLE_PEER_EVENTS, &vector);
    }
    ctx->backend = s;
    return 0;

unmap:
    munmap(s->shm, s->shm_size);
close_handle:
    ivshmem_handle_close(&d->handle);
free_ctx:
    free(d);
    return err;
}

static int shm_poll_ctx_open(struct ivc_ctx *ctx, const struct ivc_ctx_opts *opts)
{
    return dev_ctx_open(ctx, opts, false);
}

static int shm_irq_ctx_open(struct ivc_ctx *ctx, const struct ivc_ctx_opts *opts)
{
    return dev_ctx_open(ctx, opts, true);
}

const struct ivc_backend_ops ivc_shm_poll_ops = IVC_SHM_OPS("shm-poll", shm_poll_ctx_open);
const struct ivc_backend_ops ivc_shm_irq_ops = IVC_SHM_OPS("shm-irq", shm_irq_ctx_open);
