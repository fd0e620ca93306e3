/* ivc_ring: see ivc_ring.h for the layout and the rules checked here. */
#include "ivc_ring.h"

#include <errno.h>
#include <string.h>

#define LOAD_ACQ(p)     atomic_load_explicit((p), memory_order_acquire)
#define STORE_REL(p, v) atomic_store_explicit((p), (v), memory_order_release)
#define STORE_RLX(p, v) atomic_store_explicit((p), (v), memory_order_relaxed)

static uint64_t record_size(uint64_t len)
{
    return (IVC_RING_HDR + len + IVC_RING_ALIGN - 1) & ~(uint64_t)(IVC_RING_ALIGN - 1);
}

int ivc_layout_init(struct ivc_layout *layout, uint64_t shm_size, unsigned peers)
{
    if (peers < 2 || peers > IVC_RING_MAX_PEERS)
        return -EINVAL;
    uint64_t pairs = (uint64_t)peers * (peers - 1);
    uint64_t region = (shm_size / pairs) & ~(uint64_t)4095;
    if (region < IVC_RING_MIN_REGION)
        return -ENOSPC;
    layout->shm_size = shm_size;
    layout->peers = peers;
    layout->region_size = region;
    layout->cap = region - IVC_RING_CTL_SIZE;
    return 0;
}

uint64_t ivc_layout_region(const struct ivc_layout *layout, unsigned from, unsigned to)
{
    uint64_t k = (uint64_t)from * (layout->peers - 1) + (to < from ? to : to - 1);
    return k * layout->region_size;
}

static void end_init(struct ivc_ring_end *end, uint8_t *shm, const struct ivc_layout *layout,
                     unsigned from, unsigned to)
{
    memset(end, 0, sizeof(*end));
    end->ctl = (struct ivc_ring_ctl *)(shm + ivc_layout_region(layout, from, to));
    end->data = (uint8_t *)end->ctl + IVC_RING_CTL_SIZE;
    end->cap = layout->cap;
}

void ivc_pair_open(struct ivc_pair *pair, void *shm, const struct ivc_layout *layout, unsigned self,
                   unsigned peer, uint64_t nonce)
{
    memset(pair, 0, sizeof(*pair));
    pair->layout = layout;
    end_init(&pair->tx, shm, layout, self, peer);
    end_init(&pair->rx, shm, layout, peer, self);
    pair->nonce = nonce;
    pair->max_msg = layout->cap - IVC_RING_HDR;
    if (pair->max_msg > IVC_RING_MAX_MSG)
        pair->max_msg = IVC_RING_MAX_MSG;

    struct ivc_ring_ctl *tx = pair->tx.ctl, *rx = pair->rx.ctl;
    STORE_REL(&tx->tx_nonce, 0);
    STORE_RLX(&tx->head, 0);
    STORE_RLX(&tx->want_space, 0);
    STORE_RLX(&tx->rx_ack, 0);
    STORE_RLX(&tx->peers, layout->peers);
    STORE_RLX(&tx->shm_size, layout->shm_size);
    STORE_RLX(&rx->rx_ack, 0);
    STORE_RLX(&rx->tail, 0);
    STORE_RLX(&rx->want_data, 0);
    STORE_REL(&tx->tx_nonce, nonce);
}

/* A broken rule is the peer restarting under us (its session changed) or corruption. */
static int pair_fail(struct ivc_pair *pair)
{
    uint64_t theirs = LOAD_ACQ(&pair->rx.ctl->tx_nonce);
    uint64_t ack = LOAD_ACQ(&pair->tx.ctl->rx_ack);
    if (pair->connected && (theirs != pair->peer_nonce || ack != pair->nonce))
        pair->error = -ECONNRESET;
    else
        pair->error = -EPROTO;
    return pair->error;
}

/* The peer's layout, published before its tx_nonce, must be this side's. */
static bool peer_layout_differs(const struct ivc_pair *pair)
{
    const struct ivc_ring_ctl *rx = pair->rx.ctl;
    return atomic_load_explicit(&rx->peers, memory_order_relaxed) != pair->layout->peers ||
           atomic_load_explicit(&rx->shm_size, memory_order_relaxed) != pair->layout->shm_size;
}

int ivc_pair_poll(struct ivc_pair *pair)
{
    if (pair->error)
        return pair->error;
    uint64_t theirs = LOAD_ACQ(&pair->rx.ctl->tx_nonce);
    uint64_t ack = LOAD_ACQ(&pair->tx.ctl->rx_ack);
    if (pair->connected) {
        if (theirs != pair->peer_nonce || ack != pair->nonce)
            pair->error = -ECONNRESET;
        return pair->error;
    }
    if (theirs != 0 && theirs != pair->peer_nonce) {
        if (peer_layout_differs(pair))
            return pair->error = -EPROTO;
        STORE_RLX(&pair->rx.ctl->tail, 0);
        pair->rx.pos = pair->rx.seen = 0;
        pair->rx.has_busy = false;
        STORE_REL(&pair->rx.ctl->rx_ack, theirs);
        pair->peer_nonce = theirs;
    }
    if (pair->peer_nonce && ack == pair->nonce) {
        pair->connected = true;
        return 0;
    }
    return -EAGAIN;
}

void ivc_pair_close(struct ivc_pair *pair)
{
    STORE_REL(&pair->tx.ctl->tx_nonce, 0);
    STORE_REL(&pair->rx.ctl->rx_ack, 0);
    pair->connected = false;
}

static void write_header(uint8_t *at, uint32_t len, uint32_t kind)
{
    uint64_t word = (uint64_t)kind << 32 | len;
    memcpy(at, &word, sizeof(word));
}

int ivc_pair_reserve(struct ivc_pair *pair, size_t len, void **slot)
{
    struct ivc_ring_end *tx = &pair->tx;

    if (pair->error)
        return pair->error;
    if (len > pair->max_msg)
        return -EMSGSIZE;
    tx->has_busy = false;
    uint64_t tail = LOAD_ACQ(&tx->ctl->tail);
    if (tail % IVC_RING_ALIGN || tail > tx->pos || tx->pos - tail > tx->cap || tail < tx->seen)
        return pair_fail(pair);
    tx->seen = tail;

    uint64_t room = tx->cap - (tx->pos - tail);
    uint64_t at = tx->pos % tx->cap;
    uint64_t need = record_size(len);
    uint64_t pad = at + need > tx->cap ? tx->cap - at : 0;
    if (pad && room >= pad && room < pad + need) {
        /* Publish the pad alone: once the consumer has passed it, the whole data area
         * from offset 0 is free, so any message up to max_msg eventually fits. */
        write_header(tx->data + at, (uint32_t)pad, IVC_REC_PAD);
        tx->pos += pad;
        STORE_REL(&tx->ctl->head, tx->pos);
        pair->moved_head = true;
        room -= pad;
        pad = 0;
    }
    if (room < pad + need)
        return -EAGAIN;
    tx->busy_at = tx->pos + pad;
    tx->busy = pad + need;
    tx->has_busy = true;
    *slot = tx->data + tx->busy_at % tx->cap + IVC_RING_HDR;
    return 0;
}

int ivc_pair_commit(struct ivc_pair *pair, size_t len)
{
    struct ivc_ring_end *tx = &pair->tx;

    if (pair->error)
        return pair->error;
    uint64_t pad = tx->busy_at - tx->pos;
    if (!tx->has_busy || len > pair->max_msg || pad + record_size(len) > tx->busy)
        return -EINVAL;
    if (pad)
        write_header(tx->data + tx->pos % tx->cap, (uint32_t)pad, IVC_REC_PAD);
    write_header(tx->data + tx->busy_at % tx->cap, (uint32_t)len, IVC_REC_MSG);
    tx->pos = tx->busy_at + record_size(len);
    tx->has_busy = false;
    STORE_REL(&tx->ctl->head, tx->pos);
    pair->moved_head = true;
    return 0;
}

long ivc_pair_peek(struct ivc_pair *pair, const void **msg)
{
    struct ivc_ring_end *rx = &pair->rx;

    if (pair->error)
        return pair->error;
    if (rx->has_busy)
        return -EBUSY;
    for (;;) {
        uint64_t head = LOAD_ACQ(&rx->ctl->head);
        if (head % IVC_RING_ALIGN || head < rx->seen || head < rx->pos || head - rx->pos > rx->cap)
            return pair_fail(pair);
        rx->seen = head;
        if (head == rx->pos)
            return -EAGAIN;

        /* pos is 64-byte aligned and below cap (a multiple of 64): the header fits. */
        uint64_t at = rx->pos % rx->cap;
        uint64_t word = *(const volatile uint64_t *)(rx->data + at);
        uint64_t len = word & 0xFFFFFFFFu, kind = word >> 32;
        uint64_t avail = head - rx->pos;
        if (kind == IVC_REC_PAD) {
            if (at == 0 || len != rx->cap - at || len > avail)
                return pair_fail(pair);
            rx->pos += len;
            STORE_REL(&rx->ctl->tail, rx->pos);
            pair->moved_tail = true;
            continue;
        }
        if (kind != IVC_REC_MSG || len > pair->max_msg || at + IVC_RING_HDR + len > rx->cap ||
            record_size(len) > avail)
            return pair_fail(pair);
        rx->busy = record_size(len);
        rx->has_busy = true;
        *msg = rx->data + at + IVC_RING_HDR;
        return (long)len;
    }
}

int ivc_pair_release(struct ivc_pair *pair)
{
    struct ivc_ring_end *rx = &pair->rx;

    if (pair->error)
        return pair->error;
    if (!rx->has_busy)
        return -EINVAL;
    rx->pos += rx->busy;
    rx->has_busy = false;
    STORE_REL(&rx->ctl->tail, rx->pos);
    pair->moved_tail = true;
    return 0;
}

void ivc_pair_unpeek(struct ivc_pair *pair)
{
    pair->rx.has_busy = false;
}

void ivc_pair_want(struct ivc_pair *pair, bool data, bool space)
{
    STORE_RLX(&pair->rx.ctl->want_data, data);
    STORE_RLX(&pair->tx.ctl->want_space, space);
    /* Dekker: the flag must be visible before this side checks the ring once more, and
     * the peer publishes before it reads the flag. */
    atomic_thread_fence(memory_order_seq_cst);
}

bool ivc_pair_peer_wants_data(const struct ivc_pair *pair)
{
    atomic_thread_fence(memory_order_seq_cst);
    return atomic_load_explicit(&pair->tx.ctl->want_data, memory_order_relaxed) != 0;
}

bool ivc_pair_peer_wants_space(const struct ivc_pair *pair)
{
    atomic_thread_fence(memory_order_seq_cst);
    return atomic_load_explicit(&pair->rx.ctl->want_space, memory_order_relaxed) != 0;
}
