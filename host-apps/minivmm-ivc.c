/*
 * minivmm-ivc: a host process as a peer of a shared-memory group (libivc's host backends),
 * talking to VMs that run libivc (ivc-bench) or to other host processes.
 *
 *   minivmm-ivc send GROUP PEER [options]   stdin to PEER, as messages
 *   minivmm-ivc recv GROUP PEER [options]   PEER's messages to stdout
 *   minivmm-ivc bench GROUP PEER [ivc-bench options]
 *
 * PEER is a peer ID, or "any": the first other peer present in the group. send/recv
 * options: --irq (sleep on the eventfd and ring doorbells; default: poll), --peers P (the
 * layout, as ivc-bench's), --timeout S (per step, default 60), --progress (a line on
 * stderr every second; also when stderr is a terminal).
 *
 * The stream protocol of send/recv: each message carries the next bytes of the stream
 * (at most the channel's limit, 1 MiB), an empty message ends it, and the receiver
 * answers with the 8-byte count of bytes it got, which the sender checks before it
 * closes. bench runs ivc-bench's own protocol (guest-apps/ivc_bench.h), so a guest
 * running `ivc-bench --channel shm-poll|shm-irq` with the same sizes and counts is the
 * other side; its channels here are host-poll and host-irq (default host-poll).
 *
 * Exit status: 0 done, 1 failed (the reason on stderr), 2 usage.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/io.h"
#include "ivc.h"
#include "ivc_bench.h"

#define CHUNK_LIMIT (1u << 20)
#define ANY_PEER    (-1)

struct opts {
    const char *group;
    long peer; /* ANY_PEER: the first other present */
    bool irq;
    unsigned peers;
    int timeout_ms;
    bool progress;
};

static int usage(void)
{
    fprintf(stderr, "usage: minivmm-ivc send|recv GROUP PEER|any [--irq] [--peers P] [--timeout S] "
                    "[--progress]\n"
                    "       minivmm-ivc bench GROUP PEER|any [--channel host-poll|host-irq]... "
                    "[--size BYTES]... [--count N] [--msg BYTES] [--peers P] [--timeout S]\n");
    return 2;
}

static int failed(const char *what, int err, const char *why)
{
    fprintf(stderr, "minivmm-ivc: %s: %s%s%s\n", what, strerror(-err), why && *why ? ": " : "",
            why ? why : "");
    return 1;
}

static bool parse_peer(const char *s, long *peer)
{
    char *end;
    if (strcmp(s, "any") == 0) {
        *peer = ANY_PEER;
        return true;
    }
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < 0 || v >= IVC_MAX_PEERS)
        return false;
    *peer = v;
    return true;
}

static int open_ctx(const struct opts *o, bool irq, struct ivc_ctx **ctx)
{
    char why[512] = "";
    struct ivc_ctx_opts copts = {.backend = irq ? IVC_HOST_IRQ : IVC_HOST_POLL,
                                 .peers = o->peers,
                                 .self_id = -1,
                                 .flags = IVC_TIMING,
                                 .group = o->group,
                                 .why = why,
                                 .why_len = sizeof(why)};
    int err = ivc_ctx_open(ctx, &copts);
    if (err) {
        char what[128];
        snprintf(what, sizeof(what), "joining group '%s'", o->group);
        failed(what, err, why);
    }
    return err;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The peer given, or the first other present one (waiting up to the timeout). */
static int pick_peer(const struct opts *o, struct ivc_ctx *ctx, unsigned *peer)
{
    uint64_t deadline = now_ns() + (uint64_t)o->timeout_ms * 1000000ull;

    if (o->peer != ANY_PEER) {
        *peer = (unsigned)o->peer;
        return 0;
    }
    for (;;) {
        uint64_t present;
        int err = ivc_ctx_peers(ctx, &present);
        if (err)
            return failed("reading the present peers (give a peer ID)", err, NULL);
        present &= ~(1ull << ivc_ctx_self(ctx));
        if (present) {
            *peer = (unsigned)__builtin_ctzll(present);
            return 0;
        }
        if (now_ns() >= deadline)
            return failed("waiting for a peer to join", -ETIMEDOUT, NULL);
        struct timespec pause = {.tv_nsec = 10000000};
        nanosleep(&pause, NULL);
    }
}

static void show_progress(const struct opts *o, const char *verb, uint64_t bytes, uint64_t start,
                          uint64_t *shown)
{
    uint64_t now = now_ns();
    if (!o->progress || now - *shown < 1000000000ull)
        return;
    *shown = now;
    fprintf(stderr, "minivmm-ivc: %" PRIu64 " MiB %s, %.1f MB/s\n", bytes >> 20, verb,
            bytes / ((now - start) / 1e9) / 1e6);
}

static int do_send(const struct opts *o, struct ivc_chan *chan)
{
    size_t chunk = ivc_max_msg(chan) < CHUNK_LIMIT ? ivc_max_msg(chan) : CHUNK_LIMIT;
    uint64_t total = 0, start = now_ns(), shown = start, got;
    int err;

    for (;;) {
        void *slot;
        err = ivc_reserve(chan, chunk, &slot, o->timeout_ms);
        if (err)
            return failed("reserve", err, NULL);
        ssize_t n;
        do
            n = read(0, slot, chunk);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
            err = -errno;
            (void)ivc_commit(chan, 0); /* ends the stream early: the receiver's count shows it */
            return failed("read stdin", err, NULL);
        }
        err = ivc_commit(chan, (size_t)n);
        if (err)
            return failed("commit", err, NULL);
        if (n == 0)
            break;
        total += (uint64_t)n;
        show_progress(o, "sent", total, start, &shown);
    }
    ssize_t len = ivc_recv(chan, &got, sizeof(got), o->timeout_ms);
    if (len < 0)
        return failed("waiting for the receiver's count", (int)len, NULL);
    if (len != sizeof(got) || got != total) {
        fprintf(stderr, "minivmm-ivc: sent %" PRIu64 " bytes, the receiver counted %" PRIu64 "\n",
                total, len == sizeof(got) ? got : 0);
        return 1;
    }
    if (o->progress)
        fprintf(stderr, "minivmm-ivc: sent %" PRIu64 " bytes, %.1f MB/s\n", total,
                total / ((now_ns() - start) / 1e9) / 1e6);
    return 0;
}

static int do_recv(const struct opts *o, struct ivc_chan *chan)
{
    uint64_t total = 0, start = now_ns(), shown = start;
    int err;

    for (;;) {
        const void *msg;
        ssize_t len = ivc_recv_ref(chan, &msg, IVC_FOREVER);
        if (len < 0)
            return failed("receive", (int)len, NULL);
        err = len ? write_all(1, msg, (size_t)len) : 0;
        int release_err = ivc_release(chan);
        if (err)
            return failed("write stdout", err, NULL);
        if (release_err)
            return failed("release", release_err, NULL);
        if (len == 0)
            break;
        total += (uint64_t)len;
        show_progress(o, "received", total, start, &shown);
    }
    err = ivc_send(chan, &total, sizeof(total), o->timeout_ms);
    if (err)
        return failed("sending the count", err, NULL);
    /* The sender closes once it read the count; waiting for that keeps our close from
     * racing its read (a close is seen after what was queued before it, but be plain). */
    uint64_t ignored;
    ssize_t len = ivc_recv(chan, &ignored, sizeof(ignored), o->timeout_ms);
    if (len != -ECONNRESET)
        return failed("waiting for the sender to close", len < 0 ? (int)len : -EPROTO, NULL);
    return 0;
}

static int stream(const struct opts *o, bool sending)
{
    struct ivc_ctx *ctx;
    struct ivc_chan *chan;
    unsigned peer = 0;
    int status;

    if (open_ctx(o, o->irq, &ctx))
        return 1;
    status = pick_peer(o, ctx, &peer);
    if (status == 0) {
        int err = ivc_open(ctx, peer, o->timeout_ms, &chan);
        if (err) {
            char what[96];
            snprintf(what, sizeof(what), "opening the channel to peer %u", peer);
            status = failed(what, err, NULL);
        } else {
            status = sending ? do_send(o, chan) : do_recv(o, chan);
            ivc_close(chan);
        }
    }
    ivc_ctx_close(ctx);
    return status;
}

static int parse_stream_opts(struct opts *o, int argc, char **argv)
{
    for (int i = 4; i < argc; i++) {
        const char *arg = i + 1 < argc ? argv[i + 1] : NULL;
        char *end;
        if (strcmp(argv[i], "--irq") == 0) {
            o->irq = true;
        } else if (strcmp(argv[i], "--progress") == 0) {
            o->progress = true;
        } else if (strcmp(argv[i], "--peers") == 0 && arg) {
            unsigned long v = strtoul(arg, &end, 10);
            if (*end || v < 2 || v > IVC_MAX_PEERS)
                return usage();
            o->peers = (unsigned)v;
            i++;
        } else if (strcmp(argv[i], "--timeout") == 0 && arg) {
            unsigned long v = strtoul(arg, &end, 10);
            if (*end || v == 0 || v > 86400)
                return usage();
            o->timeout_ms = (int)v * 1000;
            i++;
        } else {
            return usage();
        }
    }
    return 0;
}

static int bench(const struct opts *o, int argc, char **argv)
{
    static const char *const channel_names[] = {"host-poll", "host-irq", NULL};
    /* vmm "host": what the guest's rows name this side. */
    static struct bench b = {
        .count = 10000, .msg = 64, .timeout_ms = 60000, .progress = true, .vmm = "host"};
    int status = 0;

    if (ivc_bench_parse_args(&b, argc, argv, 4, channel_names))
        return usage();
    b.peer_opt = o->peer; /* ANY_PEER (-1) is ivc-bench's "the other present peer" too */
    if (!b.n_channels)
        b.channels[b.n_channels++] = "host-poll";
    if (ivc_bench_prepare(&b))
        return failed("malloc", -ENOMEM, NULL);
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 0; i < b.n_channels && status == 0; i++) {
        struct opts co = *o;
        struct ivc_ctx *ctx;
        co.peers = b.peers;
        if (open_ctx(&co, strcmp(b.channels[i], "host-irq") == 0, &ctx)) {
            status = -1;
            break;
        }
        status = ivc_bench_channel(&b, ctx, b.channels[i]);
        ivc_ctx_close(ctx);
    }
    return ivc_bench_finish(&b, status);
}

int main(int argc, char **argv)
{
    struct opts o = {.timeout_ms = 60000, .progress = isatty(2)};

    if (argc < 4 || !parse_peer(argv[3], &o.peer))
        return usage();
    o.group = argv[2];
    if (strcmp(argv[1], "bench") == 0)
        return bench(&o, argc, argv);
    if (strcmp(argv[1], "send") != 0 && strcmp(argv[1], "recv") != 0)
        return usage();
    if (parse_stream_opts(&o, argc, argv))
        return 2;
    return stream(&o, strcmp(argv[1], "send") == 0);
}
