/*
 * libivc's shared-memory channels over memory that an owner (ivc_shm.h) supplies: the
 * rings of ivc_ring.c, waiting for the peer, and doorbells for a peer that sleeps. A wait
 * spins, or with irq declares itself (ivc_pair_want), checks the ring once more and sleeps
 * in the owner's hook; presence is read at most every PRESENCE_PERIOD_MS while waiting.
 *
 * IVC_SHM_MEMORY is the owner-less case: memory the caller maps, no doorbells, no presence.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "abi/ivc_layout.h"
#include "ivc_shm.h"

#define PRESENCE_PERIOD_MS 10
#define SLEEP_CAP_MS       100 /* a sleeper re-checks presence at least this often */
#define HANDSHAKE_POLL_US  1000
#define SPINS_PER_WAIT     256

struct shm_chan {
    struct ivc_pair pair;
    bool armed; /* want flags set, ring re-checked once: the next wait sleeps */
    uint64_t presence_checked_ns;
};

static struct ivc_shm *shm_of(const struct ivc_ctx *ctx)
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

static int shm_memory_ctx_open(struct ivc_ctx *ctx, const struct ivc_ctx_opts *opts)
{
    struct ivc_shm *s;
    int err;

    if (!opts->memory || opts->self_id < 0)
        return -EINVAL;
    s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
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

void ivc_shm_ctx_close(struct ivc_ctx *ctx)
{
    struct ivc_shm *s = shm_of(ctx);

    if (s->hooks && s->hooks->close)
        s->hooks->close(s);
    free(s);
}

int ivc_shm_peers(struct ivc_ctx *ctx, uint64_t *present)
{
    struct ivc_shm *s = shm_of(ctx);

    if (!s->has_presence)
        return -EOPNOTSUPP;
    return s->hooks->peers(s, present);
}

/* -ECONNRESET once the peer's VM left the group (where that can be known). */
static int check_presence(struct ivc_chan *chan)
{
    struct ivc_shm *s = shm_of(chan->ctx);
    struct shm_chan *c = chan_of(chan);
    uint64_t now = ivc_now_ns(), present;

    if (!s->has_presence || now - c->presence_checked_ns < PRESENCE_PERIOD_MS * 1000000ull)
        return 0;
    c->presence_checked_ns = now;
    int err = ivc_shm_peers(chan->ctx, &present);
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
    struct ivc_shm *s = shm_of(chan->ctx);
    uint64_t start = chan->ctx->timing ? ivc_now_ns() : 0;
    int err = s->hooks->ring(s, chan->peer);

    if (chan->ctx->timing)
        chan->stats.notify_ns += ivc_now_ns() - start;
    chan->stats.notifies++;
    return err;
}

/* After a ring operation: wake the peer if it sleeps waiting for what this side did. */
static int notify_peer(struct ivc_chan *chan)
{
    struct ivc_shm *s = shm_of(chan->ctx);
    struct ivc_pair *pair = &chan_of(chan)->pair;
    bool wake = (pair->moved_head && ivc_pair_peer_wants_data(pair)) ||
                (pair->moved_tail && ivc_pair_peer_wants_space(pair));

    pair->moved_head = pair->moved_tail = false;
    return wake && s->can_ring ? ring_doorbell(chan) : 0;
}

static uint64_t deadline_of(int timeout_ms)
{
    return timeout_ms < 0 ? UINT64_MAX : ivc_now_ns() + (uint64_t)timeout_ms * 1000000ull;
}

/* Waits for the peer to make progress after an operation said -EAGAIN: 0 = try again.
 * want_space: waiting for room to send, else for a message. */
static int shm_wait(struct ivc_chan *chan, bool want_space, int timeout_ms, uint64_t deadline)
{
    struct ivc_shm *s = shm_of(chan->ctx);
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
        err = s->hooks->sleep(s, left_ms < SLEEP_CAP_MS ? (int)left_ms : SLEEP_CAP_MS);
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

int ivc_shm_chan_open(struct ivc_chan *chan, int timeout_ms)
{
    struct ivc_shm *s = shm_of(chan->ctx);
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

void ivc_shm_chan_close(struct ivc_chan *chan)
{
    struct shm_chan *c = chan_of(chan);

    disarm(chan);
    ivc_pair_close(&c->pair);
    /* A peer asleep in a wait learns of the close now rather than at its next timeout. */
    if (shm_of(chan->ctx)->can_ring)
        (void)ring_doorbell(chan);
    free(c);
}

size_t ivc_shm_max_msg(const struct ivc_chan *chan)
{
    return chan_of(chan)->pair.max_msg;
}

int ivc_shm_reserve(struct ivc_chan *chan, size_t len, void **slot, int timeout_ms)
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

int ivc_shm_commit(struct ivc_chan *chan, size_t len)
{
    uint64_t start = chan->ctx->timing ? ivc_now_ns() : 0;
    int err = ivc_pair_commit(&chan_of(chan)->pair, len);

    if (chan->ctx->timing)
        chan->stats.ring_ns += ivc_now_ns() - start;
    return err ? err : notify_peer(chan);
}

int ivc_shm_send(struct ivc_chan *chan, const void *buf, size_t len, int timeout_ms)
{
    void *slot;
    int err = ivc_shm_reserve(chan, len, &slot, timeout_ms);
    if (err)
        return err;
    uint64_t start = chan->ctx->timing ? ivc_now_ns() : 0;
    memcpy(slot, buf, len);
    if (chan->ctx->timing)
        chan->stats.ring_ns += ivc_now_ns() - start;
    return ivc_shm_commit(chan, len);
}

ssize_t ivc_shm_recv_ref(struct ivc_chan *chan, const void **msg, int timeout_ms)
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

int ivc_shm_release(struct ivc_chan *chan)
{
    uint64_t start = chan->ctx->timing ? ivc_now_ns() : 0;
    int err = ivc_pair_release(&chan_of(chan)->pair);

    if (chan->ctx->timing)
        chan->stats.ring_ns += ivc_now_ns() - start;
    return err ? err : notify_peer(chan);
}

ssize_t ivc_shm_recv(struct ivc_chan *chan, void *buf, size_t size, int timeout_ms)
{
    const void *msg;
    ssize_t len = ivc_shm_recv_ref(chan, &msg, timeout_ms);
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
    int err = ivc_shm_release(chan);
    return err ? err : len;
}

const struct ivc_backend_ops ivc_shm_memory_ops = IVC_SHM_OPS("shm-memory", shm_memory_ctx_open);
