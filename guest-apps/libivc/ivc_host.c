/*
 * libivc's host backends: a process on the host joins a group (--shm=NAME) as one more
 * peer, through the group's broker like minivmm's VMs and QEMU (vmm/broker/attach.h: it
 * never starts a broker), and runs ivc_shm.c's channels over the group's memfd.
 *
 * Doorbells are the eventfds the broker hands out: writing a peer's vector-0 eventfd rings
 * that VM's irqfd (or wakes that host peer), and a guest's doorbell to our ID signals our
 * own vector-0 eventfd through its VMM's ioeventfd. host-irq sleeps in poll() on that
 * eventfd and the broker's socket; host-poll spins. Peers come and go as the broker's
 * messages say (read whenever the socket is readable while waiting, and at every presence
 * check), which is also how the VMs' devices learn that we are there. A memory-only group
 * (vectors=0) announces nobody: no doorbells, no presence, host-poll only.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "abi/ivc_layout.h"
#include "ivc_shm.h"
#include "vmm/broker/attach.h"
#include "vmm/broker/runtime.h"
#include "vmm/reason.h"
#include "vmm/shm_group.h"

struct host_peer {
    unsigned nfds;
    int fds[SHM_MAX_VECTORS]; /* fds[v] raises vector v in that peer */
};

struct host_ctx {
    struct ivc_shm shm; /* first: ctx->backend points at it */
    struct shm_group group;
    bool broker_gone; /* the socket hit EOF or an error: peers are frozen as they were */
    uint64_t present; /* other peers, by ID */
    struct host_peer peers[SHM_MAX_PEERS];
};

static struct host_ctx *host_of(struct ivc_shm *s)
{
    return (struct host_ctx *)s;
}

static void peer_forget(struct host_peer *p)
{
    for (unsigned v = 0; v < p->nfds; v++)
        close(p->fds[v]);
    p->nfds = 0;
}

static void host_peer_joined(void *opaque, unsigned int id, int *fds, unsigned int nfds)
{
    struct host_ctx *h = opaque;
    struct host_peer *p = &h->peers[id]; /* shm_group checked id < SHM_MAX_PEERS */

    peer_forget(p);
    memcpy(p->fds, fds, sizeof(int) * nfds);
    p->nfds = nfds;
    h->present |= 1ull << id;
}

static void host_peer_left(void *opaque, unsigned int id)
{
    struct host_ctx *h = opaque;

    peer_forget(&h->peers[id]);
    h->present &= ~(1ull << id);
}

static const struct shm_group_events host_events = {
    .peer_joined = host_peer_joined,
    .peer_left = host_peer_left,
};

/* Reads every message the broker has sent (waiting up to timeout_ms for the first). */
static int host_pump(struct host_ctx *h, int timeout_ms)
{
    while (!h->broker_gone) {
        struct pollfd pfd = {.fd = shm_group_socket(&h->group), .events = POLLIN};
        int ready = poll(&pfd, 1, timeout_ms);
        if (ready < 0)
            return errno == EINTR ? 0 : -errno;
        if (ready == 0)
            return 0;
        if (shm_group_dispatch(&h->group) < 0)
            h->broker_gone = true; /* the memory and the eventfds we hold stay valid */
        timeout_ms = 0;
    }
    return 0;
}

static int host_peers(struct ivc_shm *s, uint64_t *present)
{
    struct host_ctx *h = host_of(s);
    int err = host_pump(h, 0);
    if (err)
        return err;
    *present = h->present | 1ull << h->group.id;
    return 0;
}

static int host_ring(struct ivc_shm *s, unsigned peer)
{
    struct host_ctx *h = host_of(s);
    const uint64_t one = 1;

    if (peer >= SHM_MAX_PEERS)
        return 0;
    /* A peer that just joined may be using the rings before we read its announcement. */
    if (!(h->present >> peer & 1) && host_pump(h, 0) == 0 && !(h->present >> peer & 1))
        return 0; /* gone, or never announced: the presence check reports it */
    struct host_peer *p = &h->peers[peer];
    if (p->nfds <= IVC_SHM_VECTOR)
        return 0;
    if (write(p->fds[IVC_SHM_VECTOR], &one, sizeof(one)) < 0 && errno != EAGAIN)
        return -errno; /* EAGAIN: the counter is full, the peer will wake anyway */
    return 0;
}

static int host_sleep(struct ivc_shm *s, int timeout_ms)
{
    struct host_ctx *h = host_of(s);
    struct pollfd pfds[2] = {
        {.fd = h->group.own_fds[IVC_SHM_VECTOR], .events = POLLIN},
        {.fd = h->broker_gone ? -1 : shm_group_socket(&h->group), .events = POLLIN},
    };
    uint64_t fired;

    int ready = poll(pfds, 2, timeout_ms);
    if (ready < 0)
        return errno == EINTR ? 0 : -errno;
    if (pfds[0].revents & POLLIN && read(pfds[0].fd, &fired, sizeof(fired)) < 0 &&
        errno != EAGAIN && errno != EINTR)
        return -errno;
    if (pfds[1].revents)
        return host_pump(h, 0);
    return 0;
}

static void host_close(struct ivc_shm *s)
{
    struct host_ctx *h = host_of(s);

    for (unsigned id = 0; id < SHM_MAX_PEERS; id++)
        peer_forget(&h->peers[id]);
    /* Closing the socket is what tells the broker, and through it every VM, we left. */
    shm_group_leave(&h->group);
}

static const struct ivc_shm_hooks host_hooks = {
    .peers = host_peers,
    .ring = host_ring,
    .sleep = host_sleep,
    .close = host_close,
};

static int host_join(struct host_ctx *h, const char *name, bool irq, char *why, size_t why_len)
{
    char dir[PATH_MAX];
    struct broker_status *status;
    struct shm_spec spec = {0};
    int err;

    err = broker_runtime_dir(dir, sizeof(dir), why, why_len);
    if (err)
        return err;
    status = calloc(1, sizeof(*status));
    if (!status)
        return -ENOMEM;
    int sock = broker_attach(dir, name, status, why, why_len);
    if (sock < 0) {
        free(status);
        return sock;
    }
    /* The group's own shape, so that joining checks the memfd against what it is. */
    snprintf(spec.name, sizeof(spec.name), "%s", name);
    spec.size = status->size;
    spec.vectors = status->vectors;
    spec.hugepage_size = status->hugepage_size;
    free(status);
    if (irq && spec.vectors <= IVC_SHM_VECTOR) {
        close(sock);
        return reason_fail(-EOPNOTSUPP, why, why_len,
                           "group '%s' has no interrupt vectors (vectors=0): use host-poll", name);
    }
    struct timeval timeout = {.tv_sec = SHM_JOIN_TIMEOUT_MS / 1000};
    if (setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)) < 0) {
        err = -errno;
        close(sock);
        return reason_fail(err, why, why_len, "setsockopt SO_RCVTIMEO: %s", strerror(-err));
    }
    err = shm_group_join_socket(&h->group, &spec, sock, why, why_len); /* owns sock */
    if (err)
        return err;
    err = shm_group_start_polled(&h->group, &host_events, h);
    if (err) {
        shm_group_leave(&h->group);
        return reason_fail(err, why, why_len, "group '%s': %s", name, strerror(-err));
    }
    return 0;
}

static int host_ctx_open(struct ivc_ctx *ctx, const struct ivc_ctx_opts *opts, bool irq)
{
    struct host_ctx *h;
    int err;

    if (!opts->group || opts->self_id >= 0)
        return reason_fail(-EINVAL, opts->why, opts->why_len,
                           "the host backends need ivc_ctx_opts.group and take the ID the "
                           "broker gives (self_id -1)");
    h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    err = host_join(h, opts->group, irq, opts->why, opts->why_len);
    if (err) {
        free(h);
        return err;
    }
    struct ivc_shm *s = &h->shm;
    s->hooks = &host_hooks;
    s->irq = irq;
    s->can_ring = s->has_presence = h->group.vectors > 0;
    s->shm = h->group.mem;
    s->shm_size = h->group.mem_size;
    ctx->self = h->group.id;
    snprintf(ctx->memtype, sizeof(ctx->memtype), "write-back");
    unsigned peers = opts->peers ? opts->peers : IVC_DEFAULT_PEERS;
    err = ivc_layout_init(&s->layout, s->shm_size, peers);
    if (err)
        reason_set(opts->why, opts->why_len, "group '%s' of %llu bytes cannot hold %u peers",
                   opts->group, (unsigned long long)s->shm_size, peers);
    else if (ctx->self >= peers)
        err = reason_fail(-ERANGE, opts->why, opts->why_len,
                          "the broker gave peer ID %u, outside the layout of %u peers", ctx->self,
                          peers);
    if (err) {
        host_close(s);
        free(h);
        return err;
    }
    ctx->backend = s;
    return 0;
}

static int host_poll_ctx_open(struct ivc_ctx *ctx, const struct ivc_ctx_opts *opts)
{
    return host_ctx_open(ctx, opts, false);
}

static int host_irq_ctx_open(struct ivc_ctx *ctx, const struct ivc_ctx_opts *opts)
{
    return host_ctx_open(ctx, opts, true);
}

const struct ivc_backend_ops ivc_host_poll_ops = IVC_SHM_OPS("host-poll", host_poll_ctx_open);
const struct ivc_backend_ops ivc_host_irq_ops = IVC_SHM_OPS("host-irq", host_irq_ctx_open);
