/*
 * libivc's shared-memory backends: the rings of ivc_ring.c in an ivshmem device's BAR2.
 * shm-poll spins while it waits; it maps BAR2 through the ivshmem_guest driver where that
 * is bound (write-back on minivmm's device), else through sysfs (uncached-minus). shm-irq
 * maps it through the driver, sleeps in poll() on the device, and rings the peer's doorbell
 * (vector IVC_SHM_VECTOR) when the peer said it sleeps (ivc_pair_want).
 *
 * IVC_SHM_MEMORY is shm-poll over memory the caller supplies (no device, no presence).
 *
 * Presence: with minivmm's extension the present-peers bitmap is read (at most every
 * PRESENCE_PERIOD_MS while waiting: an ioctl that reads minivmm's status page, or a trapped
 * BAR0 access without the driver), and
 * shm-irq asks the driver to raise IVC_SHM_PEER_VECTOR when peers change, so a sleeper
 * wakes when its peer leaves. Without the extension (QEMU) presence is not known.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

#include "../ivshmem_dev.h"
#include "abi/ivc_layout.h"
#include "ivc_backend.h"
#include "ivc_ring.h"

#define PRESENCE_PERIOD_MS 10
#define SLEEP_CAP_MS       100 /* a sleeper re-checks presence at least this often */
#define HANDSHAKE_POLL_US  1000
#define SPINS_PER_WAIT     256

struct shm_ctx {
    bool irq;
    bool device; /* false: IVC_SHM_MEMORY, the memory is the caller's */
    struct ivshmem_dev dev;
    struct ivshmem_handle handle; /* registers: presence, doorbells, interrupts */
    bool has_presence;
    uint8_t *shm;
    uint64_t shm_size;
    struct ivc_layout layout;
};

struct shm_chan {
    struct ivc_pair pair;
    bool armed; /* want flags set, ring re-checked once: the next wait sleeps */
    uint64_t presence_checked_ns;
};

static struct shm_ctx *shm_of(const struct ivc_ctx *ctx)
{
    return ctx->backend;
}

static struct shm_chan *chan_of(const struct ivc_chan *chan)
{
    return chan->backend;
}

static uint64_t make_nonce(void)
{
    uint64_t nonce = 0;
    if (getrandom(&nonce, sizeof(nonce), GRND_NONBLOCK) != sizeof(nonce))
        nonce = ivc_now_ns() ^ ((uint64_t)getpid() << 40);
    return nonce ? nonce : 1;
}

static int shm_ctx_open_common(struct ivc_ctx *ctx, const struct ivc_ctx_opts *opts, bool irq)
{
    struct ivshmem_guest_info info;
    struct shm_ctx *s;
    char why[256];
    int err;

    s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->irq = irq;
    s->device = true;
    err = ivshmem_dev_find(opts->device, &s->dev, why, sizeof(why));
    if (err)
        goto free_ctx;
    err = ivshmem_dev_open(&s->dev, irq, &s->handle);
    if (err)
        goto free_ctx;
    err = ivshmem_handle_info(&s->handle, &info);
    if (err)
        goto close_handle;
    if (irq && !(info.flags & IVSHMEM_GUEST_INFO_IRQ)) {
        err = -EOPNOTSUPP;
        goto close_handle;
    }
    s->has_presence = info.flags & IVSHMEM_GUEST_INFO_EXT;

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
    s->shm = ivshmem_dev_map_shm(&s->dev, s->dev.devnode[0] != '\0', &s->shm_size);
    if (!s->shm) {
        err = -errno;
        goto close_handle;
    }
    if (ivshmem_dev_memtype(&s->dev, ctx->memtype, sizeof(ctx->memtype)))
        ctx->memtype[0] = '\0';
    err = ivc_layout_init(&s->layout, s->shm_size, peers);
    if (err)
        goto unmap;
    if (irq && s->has_presence && info.vectors > IVC_SHM_PEER_VECTOR) {
        /* Best effort: without it a sleeper still re-checks presence every SLEEP_CAP_MS. */
        uint32_t vector = IVC_SHM_PEER_VECTOR;
        (void)ioctl(s->handle.fd, IVSHMEM_GUEST_ENABLE_PEER_EVENTS, &vector);
    }
    ctx->backend = s;
    return 0;

unmap:
    munmap(s->shm, s->shm_size);
close_handle:
    ivshmem_handle_close(&s->handle);
free_ctx:
    free(s);
    return err;
}

static int shm_poll_ctx_open(struct ivc_ctx *ctx, const struct ivc_ctx_opts *opts)
{
    return shm_ctx_open_common(ctx, opts, false);
}

static int shm_irq_ctx_open(struct ivc_ctx *ctx, const struct ivc_ctx_opts *opts)
{
    return shm_ctx_open_common(ctx, opts, true);
}

static int shm_memory_ctx_open(struct ivc_ctx *ctx, const struct ivc_ctx_opts *opts)
{
    struct shm_ctx *s;
    int err;

    if (!opts->memory || opts->self_id < 0)
        return -EINVAL;
    s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->handle.fd = -1;
    s->shm = opts->memory;
    s->shm_size = opts->memory_size;
    err = ivc_layout_init(&s->layout, s->shm_size, opts->peers ? opts->peers : IVC_DEFAULT_PEERS);
    if (!err && (unsigned)opts->self_id >= s->layout.peers)
        err = -ERANGE;
    if (err) {
        free(s);
        return err;
    }
    ctx->self = (unsigned)opts->self_id;
    ctx->backend = s;
    return 0;
}

static void shm_ctx_close(struct ivc_ctx *ctx)
{
    struct shm_ctx *s = shm_of(ctx);

    if (s->device) {
        munmap(s->shm, s->shm_size);
        ivshmem_handle_close(&s->handle);
    }
    free(s);
}

static int shm_peers(struct ivc_ctx *ctx, uint64_t *present)
{
    struct shm_ctx *s = shm_of(ctx);
    struct ivshmem_guest_info info;

    if (!s->has_presence)
        return -EOPNOTSUPP;
    int err = ivshmem_handle_info(&s->handle, &info);
    if (err)
        return err;
    *present = info.peers;
    return 0;
}

/* -ECONNRESET once the peer's VM left the group (where that can be known). */
static int check_presence(struct ivc_chan *chan)
{
    struct shm_ctx *s = shm_of(chan->ctx);
    struct shm_chan *c = chan_of(chan);
    uint64_t now = ivc_now_ns(), present;

    if (!s->has_presence || now - c->presence_checked_ns < PRESENCE_PERIOD_MS * 1000000ull)
        return 0;
    c->presence_checked_ns = now;
    int err = shm_peers(chan->ctx, &present);
    if (chan->ctx->timing)
        chan->stats.presence_ns += ivc_now_ns() - now;
    if (err)
        return err;
    if (chan->peer < 64 && !(present >> chan->peer & 1)) {
        c->pair.error = -ECONNRESET;
        return -ECONNRESET;
    }
    return 0;
}

static int ring_doorbell(struct ivc_chan *chan)
{
    struct shm_ctx *s = shm_of(chan->ctx);
    struct ivshmem_guest_ring bell = {.peer = chan->peer, .vector = IVC_SHM_VECTOR};
    uint64_t start = chan->ctx->timing ? ivc_now_ns() : 0;
    int err = ioctl(s->handle.fd, IVSHMEM_GUEST_RING, &bell) ? -errno : 0;

    if (chan->ctx->timing)
        chan->stats.notify_ns += ivc_now_ns() - start;
    chan->stats.notifies++;
    return err == -ENXIO ? -ECONNRESET : err;
}

/* After a ring operation: wake the peer if it sleeps waiting for what this side did. */
static int notify_peer(struct ivc_chan *chan)
{
    struct shm_ctx *s = shm_of(chan->ctx);
    struct ivc_pair *pair = &chan_of(chan)->pair;
    bool wake = (pair->moved_head && ivc_pair_peer_wants_data(pair)) ||
                (pair->moved_tail && ivc_pair_peer_wants_space(pair));

    pair->moved_head = pair->moved_tail = false;
    /* shm-poll rings too where the driver is there, so an shm-irq peer need not wait for
     * its SLEEP_CAP_MS. */
    return wake && s->handle.fd >= 0 ? ring_doorbell(chan) : 0;
}

static uint64_t deadline_of(int timeout_ms)
{
    return timeout_ms < 0 ? UINT64_MAX : ivc_now_ns() + (uint64_t)timeout_ms * 1000000ull;
}

/* Sleeps in poll() on the device until any vector fires (or at most timeout_ms). */
static int sleep_on_device(struct ivc_chan *chan, int timeout_ms)
{
    struct shm_ctx *s = shm_of(chan->ctx);
    struct pollfd pfd = {.fd = s->handle.fd, .events = POLLIN};
    uint64_t fired;

    int ready = poll(&pfd, 1, timeout_ms);
    if (ready < 0)
        return errno == EINTR ? 0 : -errno;
    if (ready == 0)
        return 0;
    if (pfd.revents & (POLLERR | POLLHUP | POLLNVAL))
        return -ENODEV;
    if (read(s->handle.fd, &fired, sizeof(fired)) < 0 && errno != EAGAIN && errno != EINTR)
        return -errno;
    return 0;
}

/* Waits for the peer to make progress after an operation said -EAGAIN: 0 = try again.
 * want_space: waiting for room to send, else for a message. */
static int shm_wait(struct ivc_chan *chan, bool want_space, int timeout_ms, uint64_t deadline)
{
    struct shm_ctx *s = shm_of(chan->ctx);
    struct shm_chan *c = chan_of(chan);
    int err;

    if (timeout_ms == 0)
        return -EAGAIN;
    err = ivc_pair_poll(&c->pair);
    if (err)
        return err;
    err = check_presence(chan);
    if (err)
        return err;
    uint64_t now = ivc_now_ns();
    if (now >= deadline)
        return -ETIMEDOUT;
    chan->stats.waits++;
    if (!s->irq) {
        for (int i = 0; i < SPINS_PER_WAIT; i++)
            __builtin_ia32_pause();
    } else if (!c->armed) {
        ivc_pair_want(&c->pair, !want_space, want_space);
        c->armed = true;
        return 0; /* the caller checks the ring once more before sleeping */
    } else {
        uint64_t left_ms = deadline == UINT64_MAX ? SLEEP_CAP_MS : (deadline - now) / 1000000 + 1;
        err = sleep_on_device(chan, left_ms < SLEEP_CAP_MS ? (int)left_ms : SLEEP_CAP_MS);
        ivc_pair_want(&c->pair, false, false);
        c->armed = false;
        if (err)
            return err;
    }
    if (chan->ctx->timing)
        chan->stats.wait_ns += ivc_now_ns() - now;
    return 0;
}

static void disarm(struct ivc_chan *chan)
{
    struct shm_chan *c = chan_of(chan);
    if (c->armed) {
        ivc_pair_want(&c->pair, false, false);
        c->armed = false;
    }
}

static int shm_chan_open(struct ivc_chan *chan, int timeout_ms)
{
    struct shm_ctx *s = shm_of(chan->ctx);
    struct shm_chan *c;
    uint64_t deadline = deadline_of(timeout_ms);
    int err;

    if (chan->peer >= s->layout.peers || chan->peer == chan->ctx->self)
        return -ERANGE;
    c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    chan->backend = c;
    ivc_pair_open(&c->pair, s->shm, &s->layout, chan->ctx->self, chan->peer, make_nonce());
    while ((err = ivc_pair_poll(&c->pair)) == -EAGAIN) {
        if (ivc_now_ns() >= deadline) {
            err = -ETIMEDOUT;
            break;
        }
        usleep(HANDSHAKE_POLL_US);
    }
    if (err) {
        ivc_pair_close(&c->pair);
        free(c);
        chan->backend = NULL;
    }
    return err;
}

static void shm_chan_close(struct ivc_chan *chan)
{
    struct shm_chan *c = chan_of(chan);

    disarm(chan);
    ivc_pair_close(&c->pair);
    /* A peer asleep in a wait learns of the close now rather than at its next timeout. */
    if (shm_of(chan->ctx)->handle.fd >= 0)
        (void)ring_doorbell(chan);
    free(c);
}

static size_t shm_max_msg(const struct ivc_chan *chan)
{
    return chan_of(chan)->pair.max_msg;
}

static int shm_reserve(struct ivc_chan *chan, size_t len, void **slot, int timeout_ms)
{
    struct ivc_pair *pair = &chan_of(chan)->pair;
    uint64_t deadline = deadline_of(timeout_ms);

    for (;;) {
        uint64_t start = chan->ctx->timing ? ivc_now_ns() : 0;
        int err = ivc_pair_reserve(pair, len, slot);
        if (chan->ctx->timing)
            chan->stats.ring_ns += ivc_now_ns() - start;
        int notify_err = notify_peer(chan); /* a pad published alone is progress too */
        if (err != -EAGAIN) {
            disarm(chan);
            return err ? err : notify_err;
        }
        err = shm_wait(chan, true, timeout_ms, deadline);
        if (err) {
            disarm(chan);
            return err;
        }
    }
}

static int shm_commit(struct ivc_chan *chan, size_t len)
{
    uint64_t start = chan->ctx->timing ? ivc_now_ns() : 0;
    int err = ivc_pair_commit(&chan_of(chan)->pair, len);

    if (chan->ctx->timing)
        chan->stats.ring_ns += ivc_now_ns() - start;
    return err ? err : notify_peer(chan);
}

static int shm_send(struct ivc_chan *chan, const void *buf, size_t len, int timeout_ms)
{
    void *slot;
    int err = shm_reserve(chan, len, &slot, timeout_ms);
    if (err)
        return err;
    uint64_t start = chan->ctx->timing ? ivc_now_ns() : 0;
    memcpy(slot, buf, len);
    if (chan->ctx->timing)
        chan->stats.ring_ns += ivc_now_ns() - start;
    return shm_commit(chan, len);
}

static ssize_t shm_recv_ref(struct ivc_chan *chan, const void **msg, int timeout_ms)
{
    struct ivc_pair *pair = &chan_of(chan)->pair;
    uint64_t deadline = deadline_of(timeout_ms);

    for (;;) {
        uint64_t start = chan->ctx->timing ? ivc_now_ns() : 0;
        long len = ivc_pair_peek(pair, msg);
        if (chan->ctx->timing)
            chan->stats.ring_ns += ivc_now_ns() - start;
        int notify_err = notify_peer(chan); /* a pad consumed frees space */
        if (len != -EAGAIN) {
            disarm(chan);
            return len < 0 ? len : notify_err ? notify_err : len;
        }
        int err = shm_wait(chan, false, timeout_ms, deadline);
        if (err) {
            disarm(chan);
            return err;
        }
    }
}

static int shm_release(struct ivc_chan *chan)
{
    uint64_t start = chan->ctx->timing ? ivc_now_ns() : 0;
    int err = ivc_pair_release(&chan_of(chan)->pair);

    if (chan->ctx->timing)
        chan->stats.ring_ns += ivc_now_ns() - start;
    return err ? err : notify_peer(chan);
}

static ssize_t shm_recv(struct ivc_chan *chan, void *buf, size_t size, int timeout_ms)
{
    const void *msg;
    ssize_t len = shm_recv_ref(chan, &msg, timeout_ms);
    if (len < 0)
        return len;
    if ((size_t)len > size) {
        ivc_pair_unpeek(&chan_of(chan)->pair);
        return -EMSGSIZE;
    }
    uint64_t start = chan->ctx->timing ? ivc_now_ns() : 0;
    memcpy(buf, msg, (size_t)len);
    if (chan->ctx->timing)
        chan->stats.ring_ns += ivc_now_ns() - start;
    int err = shm_release(chan);
    return err ? err : len;
}

/* The two differ only in how they open (map through sysfs or the driver). */
#define SHM_OPS(backend_name, open_fn)                                                             \
    {                                                                                              \
        .name = backend_name, .ctx_open = open_fn, .ctx_close = shm_ctx_close, .peers = shm_peers, \
        .chan_open = shm_chan_open, .chan_close = shm_chan_close, .max_msg = shm_max_msg,          \
        .send = shm_send, .recv = shm_recv, .reserve = shm_reserve, .commit = shm_commit,          \
        .recv_ref = shm_recv_ref, .release = shm_release,                                          \
    }

const struct ivc_backend_ops ivc_shm_poll_ops = SHM_OPS("shm-poll", shm_poll_ctx_open);
const struct ivc_backend_ops ivc_shm_irq_ops = SHM_OPS("shm-irq", shm_irq_ctx_open);
const struct ivc_backend_ops ivc_shm_memory_ops = SHM_OPS("shm-memory", shm_memory_ctx_open);
