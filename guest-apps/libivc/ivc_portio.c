/*
 * libivc's port I/O backend: messages over minivmm's port I/O channel device (1af4:10f0,
 * abi/portio_regs.h), one byte stream per ordered pair of peers, framed as
 * ivc_portio.h says. The device's PEER register picks the partner, so a context switches
 * it when a call concerns another channel than the last one.
 *
 * Exits are the cost (every register or data access is one VM exit): the library keeps
 * what it learnt from TX_SPACE and RX_AVAIL (free space only grows until we write, readable
 * bytes only grow until we read), reads everything readable in one `rep insb` into a
 * stream buffer, and writes a small message, header included, in one `rep outsb`.
 *
 * Waiting: WAIT_RX / WAIT_TX sleep in the VMM for at most PORTIO_WAIT_MAX_MS; with less
 * time left than that the library sleeps 1 ms between plain register reads instead, so a
 * timeout is kept to about a millisecond. The device's WAIT registers return at once for
 * a partner that is absent or gone; STATUS then tells which (PEER_GONE, PEER_PRESENT).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "../portio_dev.h"
#include "abi/portio_regs.h"
#include "ivc_backend.h"
#include "ivc_portio.h"

#define HANDSHAKE_POLL_US  1000
#define SHORT_SLEEP_NS     1000000ull /* between register reads when a WAIT would overshoot */
#define PRESENCE_PERIOD_MS 10         /* non-blocking calls look for a departure this often */
#define CLOSE_WAIT_MS      100        /* how long a close waits for room for its CLOSE frame */
#define MIN_RING_BYTES     4096u
#define MAX_RING_BYTES     (1u << 24)
#define INITIAL_MSG_BYTES  4096u

struct pio_ctx {
    struct ivc_port_io io;
    unsigned int base; /* BAR0's first port, for the in/out instructions */
    bool native;       /* io is the instructions below (ioperm granted) */
    unsigned int peers;
    uint32_t ring_bytes;
    uint32_t selected; /* what PEER holds: PORTIO_PEER_NONE or an ID */
};

struct pio_chan {
    uint64_t nonce, peer_nonce; /* peer_nonce 0 until the peer's HELLO: not open yet */
    bool hello_owed;            /* the peer may not have our HELLO: send it again */
    bool ended;                 /* CLOSE or a new HELLO read: -ECONNRESET after what came before */
    bool gone;                  /* the partner's VM left: -ECONNRESET once its bytes are read */
    int error;                  /* sticky: -EPROTO, -ENOMEM */
    uint32_t tx_credit;         /* bytes we may write without asking TX_SPACE */
    uint32_t rx_known;          /* bytes readable without asking RX_AVAIL */
    uint64_t presence_checked_ns;

    uint8_t *stage; /* one frame being written (ring_bytes) */

    uint8_t *stream; /* bytes read from the device, not parsed yet (ring_bytes) */
    uint32_t stream_start, stream_end;
    struct ivc_pio_hdr hdr; /* of the frame being parsed, valid while in_frame */
    bool in_frame;
    uint32_t payload_have;
    uint8_t hello[sizeof(struct ivc_pio_hello)];

    uint8_t *msg; /* the message being assembled, then received */
    size_t msg_cap, msg_len, msg_have;
    bool assembling, msg_ready, lent;

    uint8_t *slot; /* ivc_reserve's buffer */
    size_t slot_cap, slot_len;
    bool reserved;
    int reserve_timeout_ms;
};

static struct pio_ctx *pio_of(const struct ivc_ctx *ctx)
{
    return ctx->backend;
}

static struct pio_chan *chan_of(const struct ivc_chan *chan)
{
    return chan->backend;
}

/* ---- the in/out instructions, through ioperm() ---- */

static uint32_t native_in32(void *opaque, unsigned int offset)
{
    return inl(((struct pio_ctx *)opaque)->base + offset);
}

static void native_out32(void *opaque, unsigned int offset, uint32_t value)
{
    outl(value, ((struct pio_ctx *)opaque)->base + offset);
}

/* Whole dwords where the length allows: KVM emulates `rep outs` one element per exit to the
 * VMM, so outsl moves 4 bytes an exit where outsb moves one. */
static void native_ins(void *opaque, unsigned int offset, void *buf, uint32_t len)
{
    unsigned int port = ((struct pio_ctx *)opaque)->base + offset;
    if (len % 4 == 0)
        insl(port, buf, len / 4);
    else
        insb(port, buf, len);
}

static void native_outs(void *opaque, unsigned int offset, const void *buf, uint32_t len)
{
    unsigned int port = ((struct pio_ctx *)opaque)->base + offset;
    if (len % 4 == 0)
        outsl(port, buf, len / 4);
    else
        outsb(port, buf, len);
}

static uint32_t reg(const struct pio_ctx *p, unsigned int offset)
{
    return p->io.in32(p->io.opaque, offset);
}

/* ---- context ---- */

static int pio_ctx_open(struct ivc_ctx *ctx, const struct ivc_ctx_opts *opts)
{
    struct pio_ctx *p = calloc(1, sizeof(*p));
    char why[256];
    int err;

    if (!p)
        return -ENOMEM;
    if (opts->port_io) {
        p->io = *opts->port_io;
        if (!p->io.in32 || !p->io.out32 || !p->io.ins || !p->io.outs) {
            err = -EINVAL;
            goto free_ctx;
        }
    } else {
        err = portio_dev_find(opts->device, &p->base, why, sizeof(why));
        if (err)
            goto free_ctx;
        err = portio_dev_ioperm(p->base, why, sizeof(why));
        if (err)
            goto free_ctx;
        p->native = true;
        p->io = (struct ivc_port_io){.in32 = native_in32,
                                     .out32 = native_out32,
                                     .ins = native_ins,
                                     .outs = native_outs,
                                     .opaque = p};
    }
    if (reg(p, PORTIO_REG_ID) != PORTIO_ID_VALUE) {
        err = -ENODEV;
        goto release;
    }
    uint32_t own = reg(p, PORTIO_REG_OWN_ID);
    p->ring_bytes = reg(p, PORTIO_REG_RING_BYTES);
    p->peers = opts->peers ? opts->peers : PORTIO_MAX_PEERS;
    if (own >= PORTIO_MAX_PEERS || p->ring_bytes < MIN_RING_BYTES ||
        p->ring_bytes > MAX_RING_BYTES) {
        err = -ENODEV;
        goto release;
    }
    if (opts->self_id >= 0 && (unsigned)opts->self_id != own) {
        err = -EINVAL;
        goto release;
    }
    if (own >= p->peers) {
        err = -ERANGE;
        goto release;
    }
    p->selected = reg(p, PORTIO_REG_PEER);
    ctx->self = own;
    ctx->backend = p;
    return 0;

release:
    if (p->native)
        ioperm(p->base, PORTIO_BAR_SIZE, 0);
free_ctx:
    free(p);
    return err;
}

static void pio_ctx_close(struct ivc_ctx *ctx)
{
    struct pio_ctx *p = pio_of(ctx);

    if (p->native)
        ioperm(p->base, PORTIO_BAR_SIZE, 0);
    free(p);
}

static int pio_peers(struct ivc_ctx *ctx, uint64_t *present)
{
    struct pio_ctx *p = pio_of(ctx);

    *present = reg(p, PORTIO_REG_PEERS_LO) | (uint64_t)reg(p, PORTIO_REG_PEERS_HI) << 32;
    return 0;
}

/* ---- the partner ---- */

/* Reads STATUS: marks the channel's partner gone when it left (or, after a switch of PEER,
 * is not there). Returns the STATUS value. */
static uint32_t check_partner(struct ivc_chan *chan)
{
    struct pio_chan *c = chan_of(chan);
    uint64_t start = ivc_now_ns();
    uint32_t status = reg(pio_of(chan->ctx), PORTIO_REG_STATUS);

    if (chan->ctx->timing)
        chan->stats.presence_ns += ivc_now_ns() - start;
    c->presence_checked_ns = start;
    if (status & PORTIO_STATUS_PEER_GONE || !(status & PORTIO_STATUS_PEER_PRESENT))
        c->gone = true;
    return status;
}

/* Points PEER at this channel's partner. Writing PEER forgets the device's sticky
 * PEER_GONE of the previous partner, so a partner not there after the switch counts as
 * gone (the channel was open with it). */
static void select_partner(struct ivc_chan *chan)
{
    struct pio_ctx *p = pio_of(chan->ctx);

    if (p->selected == chan->peer)
        return;
    p->io.out32(p->io.opaque, PORTIO_REG_PEER, chan->peer);
    p->selected = chan->peer;
    check_partner(chan);
}

/* ---- waiting ---- */

static uint64_t deadline_of(int timeout_ms)
{
    return timeout_ms < 0 ? UINT64_MAX : ivc_now_ns() + (uint64_t)timeout_ms * 1000000ull;
}

/* One round of waiting for readable bytes (rx) or free space (!rx): *value gets RX_AVAIL or
 * TX_SPACE afterwards. -EAGAIN (timeout_ms 0), -ETIMEDOUT, or 0 = look again. A round that
 * brings nothing asks STATUS whether the partner left. */
static int wait_round(struct ivc_chan *chan, bool rx, int timeout_ms, uint64_t deadline,
                      uint32_t *value)
{
    struct pio_ctx *p = pio_of(chan->ctx);
    struct pio_chan *c = chan_of(chan);
    uint64_t now = ivc_now_ns();

    if (timeout_ms == 0 || now >= deadline) {
        if (now - c->presence_checked_ns >= PRESENCE_PERIOD_MS * 1000000ull)
            check_partner(chan);
        return c->gone ? 0 : timeout_ms == 0 ? -EAGAIN : -ETIMEDOUT;
    }
    chan->stats.waits++;
    if (deadline - now >= PORTIO_WAIT_MAX_MS * 1000000ull) {
        *value = reg(p, rx ? PORTIO_REG_WAIT_RX : PORTIO_REG_WAIT_TX);
    } else {
        uint64_t left = deadline - now;
        struct timespec pause = {.tv_nsec = (long)(left < SHORT_SLEEP_NS ? left : SHORT_SLEEP_NS)};
        nanosleep(&pause, NULL);
        *value = reg(p, rx ? PORTIO_REG_RX_AVAIL : PORTIO_REG_TX_SPACE);
    }
    if (chan->ctx->timing)
        chan->stats.wait_ns += ivc_now_ns() - now;
    if (*value == 0)
        check_partner(chan);
    return 0;
}

/* ---- sending ---- */

/* Until at least need bytes may be written: 0, -ECONNRESET, -EAGAIN or -ETIMEDOUT. */
static int get_credit(struct ivc_chan *chan, uint32_t need, int timeout_ms, uint64_t deadline)
{
    struct pio_ctx *p = pio_of(chan->ctx);
    struct pio_chan *c = chan_of(chan);

    if (c->tx_credit >= need)
        return 0;
    c->tx_credit = reg(p, PORTIO_REG_TX_SPACE);
    while (c->tx_credit < need) {
        if (c->gone)
            return -ECONNRESET;
        int err = wait_round(chan, false, timeout_ms, deadline, &c->tx_credit);
        if (err)
            return err;
    }
    return 0;
}

/* Writes one frame whole; the caller made sure of the credit. */
static void write_frame(struct ivc_chan *chan, uint32_t type, const void *payload, uint32_t len,
                        uint32_t msg_len, uint32_t offset)
{
    struct pio_ctx *p = pio_of(chan->ctx);
    struct pio_chan *c = chan_of(chan);
    struct ivc_pio_hdr hdr = {
        .magic_type = IVC_PIO_MAGIC | type, .len = len, .msg_len = msg_len, .offset = offset};
    uint32_t frame = (uint32_t)IVC_PIO_HDR + IVC_PIO_PADDED(len);

    memcpy(c->stage, &hdr, IVC_PIO_HDR);
    if (len)
        memcpy(c->stage + IVC_PIO_HDR, payload, len);
    memset(c->stage + IVC_PIO_HDR + len, 0, IVC_PIO_PADDED(len) - len);
    p->io.outs(p->io.opaque, PORTIO_DATA, c->stage, frame);
    c->tx_credit -= frame;
}

/* Sends the HELLO the peer may be missing, when there is room now. */
static void send_owed_hello(struct ivc_chan *chan)
{
    struct pio_chan *c = chan_of(chan);
    struct ivc_pio_hello hello = {.nonce = c->nonce, .seen = c->peer_nonce};

    if (!c->hello_owed || c->ended || c->gone ||
        get_credit(chan, IVC_PIO_HDR + sizeof(hello), 0, 0))
        return;
    write_frame(chan, IVC_PIO_HELLO, &hello, sizeof(hello), 0, 0);
    c->hello_owed = false;
}

/* Whether a message of len bytes may go out on the channel at all. */
static int send_allowed(const struct pio_chan *c, size_t len)
{
    if (c->error)
        return c->error;
    if (len > IVC_PORTIO_MAX_MSG)
        return -EMSGSIZE;
    return c->ended || c->gone ? -ECONNRESET : 0;
}

/* A message in chunks as large as the free space allows (at least a page, header included,
 * or the rest). A chunk of a message that then times out is dropped by the receiver when the
 * next message starts, so a send that fails sent nothing the peer will see. */
static int send_message(struct ivc_chan *chan, const void *buf, size_t len, int timeout_ms)
{
    struct pio_ctx *p = pio_of(chan->ctx);
    struct pio_chan *c = chan_of(chan);
    uint64_t deadline = deadline_of(timeout_ms);
    size_t off = 0;

    int err = send_allowed(c, len);
    if (err)
        return err;
    select_partner(chan);
    send_owed_hello(chan);
    do {
        size_t rest = len - off;
        uint32_t most = (p->ring_bytes - (uint32_t)IVC_PIO_HDR) & ~3u;
        /* WAIT_TX answers once a page is free: asking for more would spin. */
        uint32_t need = rest < PORTIO_WAIT_TX_MIN - IVC_PIO_HDR
                            ? (uint32_t)IVC_PIO_HDR + IVC_PIO_PADDED((uint32_t)rest)
                            : PORTIO_WAIT_TX_MIN;
        err = get_credit(chan, need, timeout_ms, deadline);
        if (err)
            return err;
        uint32_t n = (c->tx_credit - (uint32_t)IVC_PIO_HDR) & ~3u;
        if (n > most)
            n = most;
        if (n > rest)
            n = (uint32_t)rest;
        write_frame(chan, IVC_PIO_DATA, (const uint8_t *)buf + off, n, (uint32_t)len,
                    (uint32_t)off);
        off += n;
    } while (off < len);
    return 0;
}

/* ---- receiving ---- */

static bool valid_hello_header(const struct ivc_pio_hdr *h)
{
    return h->magic_type == (IVC_PIO_MAGIC | IVC_PIO_HELLO) &&
           h->len == sizeof(struct ivc_pio_hello) && h->msg_len == 0 && h->offset == 0;
}

/* Checks a header of an open channel and starts its frame. */
static int start_frame(struct pio_chan *c)
{
    const struct ivc_pio_hdr *h = &c->hdr;

    switch (h->magic_type) {
    case IVC_PIO_MAGIC | IVC_PIO_DATA:
        if (h->msg_len > IVC_PORTIO_MAX_MSG || h->len > h->msg_len ||
            h->offset > h->msg_len - h->len || (h->len == 0 && h->msg_len != 0))
            return -EPROTO;
        if (h->offset == 0) {
            if (h->msg_len > c->msg_cap) {
                uint8_t *bigger = realloc(c->msg, h->msg_len);
                if (!bigger)
                    return -ENOMEM;
                c->msg = bigger;
                c->msg_cap = h->msg_len;
            }
            c->assembling = true;
            c->msg_len = h->msg_len;
            c->msg_have = 0;
        } else if (!c->assembling || h->msg_len != c->msg_len || h->offset != c->msg_have) {
            return -EPROTO;
        }
        return 0;
    case IVC_PIO_MAGIC | IVC_PIO_HELLO:
        return valid_hello_header(h) ? 0 : -EPROTO;
    case IVC_PIO_MAGIC | IVC_PIO_CLOSE:
        return h->len == 0 && h->msg_len == 0 && h->offset == 0 ? 0 : -EPROTO;
    default:
        return -EPROTO;
    }
}

static int take_hello(struct pio_chan *c)
{
    struct ivc_pio_hello hello;

    memcpy(&hello, c->hello, sizeof(hello));
    if (hello.nonce == 0)
        return -EPROTO;
    if (c->peer_nonce == 0)
        c->peer_nonce = hello.nonce;
    else if (hello.nonce != c->peer_nonce) {
        c->ended = true; /* the peer reopened its end: ours is over */
        return 0;
    }
    if (hello.seen != c->nonce)
        c->hello_owed = true;
    return 0;
}

/* Parses what the stream buffer holds: 1 = a message is ready, 0 = more bytes needed (or
 * the channel ended), -EPROTO / -ENOMEM. */
static int parse(struct pio_chan *c)
{
    while (!c->msg_ready && !c->ended) {
        uint32_t avail = c->stream_end - c->stream_start;
        const uint8_t *at = c->stream + c->stream_start;

        if (!c->in_frame) {
            if (avail < IVC_PIO_HDR)
                return 0;
            memcpy(&c->hdr, at, IVC_PIO_HDR);
            if (c->peer_nonce == 0 && !valid_hello_header(&c->hdr)) {
                c->stream_start++; /* not open yet: skip what an earlier session left */
                continue;
            }
            int err = start_frame(c);
            if (err)
                return err;
            c->stream_start += (uint32_t)IVC_PIO_HDR;
            c->in_frame = true;
            c->payload_have = 0;
            continue;
        }
        /* The payload, then its padding (start_frame bounded len: no overflow). */
        uint32_t padded = IVC_PIO_PADDED(c->hdr.len);
        uint32_t take = padded - c->payload_have;
        if (take > avail)
            take = avail;
        uint32_t data = c->payload_have < c->hdr.len ? c->hdr.len - c->payload_have : 0;
        if (data > take)
            data = take;
        if (c->hdr.magic_type == (IVC_PIO_MAGIC | IVC_PIO_DATA)) {
            memcpy(c->msg + c->msg_have, at, data);
            c->msg_have += data;
        } else if (data) {
            memcpy(c->hello + c->payload_have, at, data);
        }
        c->stream_start += take;
        c->payload_have += take;
        if (c->payload_have < padded)
            return 0;
        c->in_frame = false;
        switch (c->hdr.magic_type & 0xff) {
        case IVC_PIO_DATA:
            if (c->msg_have == c->msg_len) {
                c->assembling = false;
                c->msg_ready = true;
            }
            break;
        case IVC_PIO_HELLO: {
            int err = take_hello(c);
            if (err)
                return err;
            break;
        }
        default: /* CLOSE */
            c->assembling = false;
            c->ended = true;
        }
    }
    return c->msg_ready;
}

/* Reads what the device has into the stream buffer, in one string read (a multiple of 4
 * bytes, as every frame is, unless the peer wrote something else). */
static void pull(struct ivc_chan *chan)
{
    struct pio_ctx *p = pio_of(chan->ctx);
    struct pio_chan *c = chan_of(chan);

    if (c->stream_start > 0) {
        memmove(c->stream, c->stream + c->stream_start, c->stream_end - c->stream_start);
        c->stream_end -= c->stream_start;
        c->stream_start = 0;
    }
    uint32_t n = (p->ring_bytes - c->stream_end) & ~3u;
    if (n > c->rx_known)
        n = c->rx_known >= 4 ? c->rx_known & ~3u : c->rx_known;
    p->io.ins(p->io.opaque, PORTIO_DATA, c->stream + c->stream_end, n);
    c->stream_end += n;
    c->rx_known -= n;
}

/* Until a message is ready (or, with until_open, the peer's HELLO came): 1 / 0, or
 * -ECONNRESET, -EAGAIN, -ETIMEDOUT, -EPROTO, -ENOMEM. */
static int receive(struct ivc_chan *chan, int timeout_ms, bool until_open)
{
    struct pio_ctx *p = pio_of(chan->ctx);
    struct pio_chan *c = chan_of(chan);
    uint64_t deadline = deadline_of(timeout_ms);

    for (;;) {
        int ready = parse(c);
        if (ready < 0)
            return c->error = ready;
        send_owed_hello(chan);
        if (ready || (until_open && c->peer_nonce))
            return ready;
        if (c->ended)
            return -ECONNRESET;
        if (c->rx_known == 0)
            c->rx_known = reg(p, PORTIO_REG_RX_AVAIL);
        if (c->rx_known > 0) {
            pull(chan);
            continue;
        }
        if (c->gone)
            return -ECONNRESET;
        int err = wait_round(chan, true, timeout_ms, deadline, &c->rx_known);
        if (err)
            return err;
    }
}

/* ---- channels ---- */

static uint64_t make_nonce(void)
{
    uint64_t nonce = 0;
    if (getrandom(&nonce, sizeof(nonce), GRND_NONBLOCK) != sizeof(nonce))
        nonce = ivc_now_ns() ^ ((uint64_t)getpid() << 40);
    return nonce ? nonce : 1;
}

static void free_chan(struct pio_chan *c)
{
    free(c->stage);
    free(c->stream);
    free(c->msg);
    free(c->slot);
    free(c);
}

/* Selects the partner afresh (clearing what the device remembers of a previous one),
 * waits for it to be there, drops what earlier sessions left for us and says HELLO. */
static int handshake(struct ivc_chan *chan, int timeout_ms)
{
    struct pio_ctx *p = pio_of(chan->ctx);
    struct pio_chan *c = chan_of(chan);
    uint64_t deadline = deadline_of(timeout_ms);

    p->io.out32(p->io.opaque, PORTIO_REG_PEER, chan->peer);
    p->selected = chan->peer;
    while (!(reg(p, PORTIO_REG_STATUS) & PORTIO_STATUS_PEER_PRESENT)) {
        if (ivc_now_ns() >= deadline)
            return -ETIMEDOUT;
        usleep(HANDSHAKE_POLL_US);
    }
    p->io.out32(p->io.opaque, PORTIO_REG_CONTROL, PORTIO_CONTROL_DRAIN_RX);
    c->hello_owed = true;
    c->presence_checked_ns = ivc_now_ns();
    int err = get_credit(chan, IVC_PIO_HDR + sizeof(struct ivc_pio_hello), timeout_ms, deadline);
    if (!err) {
        send_owed_hello(chan);
        uint64_t now = ivc_now_ns();
        int left_ms = timeout_ms < 0    ? IVC_FOREVER
                      : deadline <= now ? 0
                                        : (int)((deadline - now + 999999) / 1000000);
        err = receive(chan, left_ms, true);
    }
    /* ivc_open's contract: a peer that did not answer in time is -ETIMEDOUT, even at 0. */
    return err == -EAGAIN ? -ETIMEDOUT : err;
}

/* `rep ins` must never fault on its buffer: KVM's emulator reads ahead from the port (up to
 * 1 KiB) before it writes guest memory, and a page fault there restarts the instruction
 * with the bytes it had already taken from the device lost. So every page of the stream
 * buffer is written once, made present and writable, before the first read into it (a
 * plain memset after malloc may be turned into calloc, which touches nothing). */
static void prefault(uint8_t *buf, size_t len)
{
    volatile uint8_t *page = buf;
    for (size_t i = 0; i < len; i += 4096)
        page[i] = 0;
    page[len - 1] = 0;
}

static int pio_chan_open(struct ivc_chan *chan, int timeout_ms)
{
    struct pio_ctx *p = pio_of(chan->ctx);
    struct pio_chan *c;

    if (chan->peer >= p->peers || chan->peer == chan->ctx->self)
        return -ERANGE;
    c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->stage = malloc(p->ring_bytes);
    c->stream = malloc(p->ring_bytes);
    c->msg = malloc(INITIAL_MSG_BYTES);
    c->msg_cap = INITIAL_MSG_BYTES;
    if (!c->stage || !c->stream || !c->msg) {
        free_chan(c);
        return -ENOMEM;
    }
    prefault(c->stream, p->ring_bytes);
    c->nonce = make_nonce();
    chan->backend = c;
    int err = handshake(chan, timeout_ms);
    if (err) {
        free_chan(c);
        chan->backend = NULL;
    }
    return err;
}

static void pio_chan_close(struct ivc_chan *chan)
{
    struct pio_chan *c = chan_of(chan);

    if (!c->error && !c->ended && !c->gone) {
        select_partner(chan);
        if (get_credit(chan, IVC_PIO_HDR, CLOSE_WAIT_MS, deadline_of(CLOSE_WAIT_MS)) == 0)
            write_frame(chan, IVC_PIO_CLOSE, NULL, 0, 0, 0);
    }
    free_chan(c);
}

static size_t pio_max_msg(const struct ivc_chan *chan)
{
    (void)chan;
    return IVC_PORTIO_MAX_MSG;
}

/* The library's part of a call since start: its time less the waits and STATUS reads. */
static void account_library_time(struct ivc_chan *chan, uint64_t start,
                                 const struct ivc_stats *before)
{
    if (chan->ctx->timing)
        chan->stats.ring_ns += ivc_now_ns() - start - (chan->stats.wait_ns - before->wait_ns) -
                               (chan->stats.presence_ns - before->presence_ns);
}

static int pio_send(struct ivc_chan *chan, const void *buf, size_t len, int timeout_ms)
{
    uint64_t start = ivc_now_ns();
    struct ivc_stats before = chan->stats;

    if (chan_of(chan)->reserved)
        return -EBUSY;
    int err = send_message(chan, buf, len, timeout_ms);
    account_library_time(chan, start, &before);
    return err;
}

static ssize_t pio_recv_ref(struct ivc_chan *chan, const void **msg, int timeout_ms)
{
    struct pio_chan *c = chan_of(chan);
    uint64_t start = ivc_now_ns();
    struct ivc_stats before = chan->stats;

    if (c->lent)
        return -EBUSY;
    if (c->error)
        return c->error;
    select_partner(chan);
    int ready = receive(chan, timeout_ms, false);
    account_library_time(chan, start, &before);
    if (ready < 0)
        return ready;
    c->lent = true;
    *msg = c->msg;
    return (ssize_t)c->msg_len;
}

static int pio_release(struct ivc_chan *chan)
{
    struct pio_chan *c = chan_of(chan);

    if (!c->lent)
        return -EINVAL;
    c->lent = false;
    c->msg_ready = false;
    return 0;
}

static ssize_t pio_recv(struct ivc_chan *chan, void *buf, size_t size, int timeout_ms)
{
    const void *msg;
    ssize_t len = pio_recv_ref(chan, &msg, timeout_ms);

    if (len < 0)
        return len;
    if ((size_t)len > size) {
        chan_of(chan)->lent = false; /* it stays ready for a larger buffer */
        return -EMSGSIZE;
    }
    memcpy(buf, msg, (size_t)len);
    pio_release(chan);
    return len;
}

/* Zero-copy through a bounce buffer: the slot is the library's, the commit sends it. */
static int pio_reserve(struct ivc_chan *chan, size_t len, void **slot, int timeout_ms)
{
    struct pio_chan *c = chan_of(chan);

    int err = send_allowed(c, len);
    if (err)
        return err;
    if (len > c->slot_cap || !c->slot) {
        uint8_t *bigger = realloc(c->slot, len ? len : 1);
        if (!bigger)
            return -ENOMEM;
        c->slot = bigger;
        c->slot_cap = len ? len : 1;
    }
    c->slot_len = len;
    c->reserved = true;
    c->reserve_timeout_ms = timeout_ms;
    *slot = c->slot;
    return 0;
}

static int pio_commit(struct ivc_chan *chan, size_t len)
{
    struct pio_chan *c = chan_of(chan);

    if (!c->reserved || len > c->slot_len)
        return -EINVAL;
    c->reserved = false;
    int err = pio_send(chan, c->slot, len, c->reserve_timeout_ms);
    /* Not sent for want of room: the reservation stays, the commit may be tried again. */
    if (err == -EAGAIN || err == -ETIMEDOUT)
        c->reserved = true;
    return err;
}

const struct ivc_backend_ops ivc_portio_ops = {
    .name = "portio",
    .ctx_open = pio_ctx_open,
    .ctx_close = pio_ctx_close,
    .peers = pio_peers,
    .chan_open = pio_chan_open,
    .chan_close = pio_chan_close,
    .max_msg = pio_max_msg,
    .send = pio_send,
    .recv = pio_recv,
    .reserve = pio_reserve,
    .commit = pio_commit,
    .recv_ref = pio_recv_ref,
    .release = pio_release,
};
