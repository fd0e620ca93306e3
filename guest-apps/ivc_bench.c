/* ivc_bench.h: the protocol and measurements that ivc-bench and minivmm-ivc bench share. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "ivc_backend.h" /* ivc_now_ns */
#include "ivc_bench.h"
#include "shm_ring.h" /* shm_ring_pattern */

#define CTL_MAGIC    0x42435649u /* "IVCB" */
#define WARMUP_RTTS  16
#define PROGRESS_MIN (64ull << 20) /* transfers from this size on report progress */

enum ctl_type { CTL_HELLO = 1, CTL_XFER, CTL_DONE, CTL_BYE };

struct ctl_msg {
    uint32_t magic;
    uint32_t type;
    uint64_t a, b; /* HELLO: plan hash; XFER: bytes, seed; DONE: bytes verified, ok */
    char vmm[16];
};

int ivc_bench_fail(const char *what, int err)
{
    printf("ivc-bench: FAIL %s: %s\n", what, strerror(-err));
    return -1;
}

static bool parse_size(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 0);
    int shift = *end == 'K' ? 10 : *end == 'M' ? 20 : *end == 'G' ? 30 : 0;
    if (end == s || (shift && end[1]) || (!shift && *end) || v == 0 || v > (1ull << 40) >> shift)
        return false;
    *out = (uint64_t)v << shift;
    return true;
}

/* A peer ID: any number, 0 included, below IVC_MAX_PEERS. */
static bool parse_peer_id(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end || v >= IVC_MAX_PEERS)
        return false;
    *out = v;
    return true;
}

static void add_row(struct bench *b, const char *direction, uint64_t size, const char *metric,
                    double value, const char *unit)
{
    if (b->n_rows == MAX_ROWS)
        return;
    struct row *r = &b->rows[b->n_rows++];
    snprintf(r->channel, sizeof(r->channel), "%s", b->channel);
    snprintf(r->direction, sizeof(r->direction), "%s", direction);
    snprintf(r->metric, sizeof(r->metric), "%s", metric);
    snprintf(r->unit, sizeof(r->unit), "%s", unit);
    r->size = size;
    r->value = value;
}

/* The sender's layer times over one measurement, as rows (totals divided by per). */
static void add_layer_rows(struct bench *b, const char *direction, uint64_t size,
                           const struct ivc_stats *before, double per)
{
    struct ivc_stats now;
    ivc_chan_stats(b->chan, &now);
    add_row(b, direction, size, "layer_library_us", (now.ring_ns - before->ring_ns) / 1e3 / per,
            "us");
    add_row(b, direction, size, "layer_doorbell_syscall_us",
            (now.notify_ns - before->notify_ns) / 1e3 / per, "us");
    add_row(b, direction, size, "layer_wait_peer_us", (now.wait_ns - before->wait_ns) / 1e3 / per,
            "us");
    add_row(b, direction, size, "layer_presence_us",
            (now.presence_ns - before->presence_ns) / 1e3 / per, "us");
    add_row(b, direction, size, "doorbells", (double)(now.notifies - before->notifies) / per,
            "count");
}

static int send_ctl(struct bench *b, enum ctl_type type, uint64_t x, uint64_t y)
{
    struct ctl_msg m = {.magic = CTL_MAGIC, .type = type, .a = x, .b = y};
    snprintf(m.vmm, sizeof(m.vmm), "%s", b->vmm_name);
    int err = ivc_send(b->chan, &m, sizeof(m), b->timeout_ms);
    return err ? ivc_bench_fail("send control message", err) : 0;
}

/* Receives a control message of the given type; anything else from the peer is a failure. */
static int recv_ctl(struct bench *b, enum ctl_type type, struct ctl_msg *m)
{
    ssize_t len = ivc_recv(b->chan, m, sizeof(*m), b->timeout_ms);
    if (len < 0)
        return ivc_bench_fail("receive control message", (int)len);
    if ((size_t)len != sizeof(*m) || m->magic != CTL_MAGIC || m->type != (uint32_t)type) {
        printf("ivc-bench: FAIL expected control message %d, got %zd bytes of type %u\n", type, len,
               (size_t)len >= 8 ? m->type : 0);
        return -1;
    }
    m->vmm[sizeof(m->vmm) - 1] = '\0';
    return 0;
}

static size_t chunk_size(const struct bench *b)
{
    size_t chunk = ivc_max_msg(b->chan) / 2 & ~(size_t)63;
    return chunk < CHUNK_MAX ? chunk : CHUNK_MAX;
}

static void fill_pattern(uint8_t *buf, size_t n, uint64_t seed)
{
    for (size_t i = 0; i + 8 <= n; i += 8) {
        uint64_t w = shm_ring_pattern(seed, i / 8);
        memcpy(buf + i, &w, 8);
    }
}

static double seconds_since(uint64_t start)
{
    return (ivc_now_ns() - start) / 1e9;
}

/* One transfer of size bytes, this side sending (or receiving): offset word + pattern. */
static int transfer(struct bench *b, bool sending, uint64_t size, const char *direction)
{
    size_t chunk = chunk_size(b);
    struct ctl_msg m;
    int err;

    if (chunk < 64)
        return ivc_bench_fail("channel too small", -EMSGSIZE);
    if (sending) {
        uint64_t seed = 0;
        struct ivc_stats before;
        if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
            seed = ivc_now_ns();
        fill_pattern(b->pattern, chunk, seed);
        ivc_chan_stats(b->chan, &before);
        uint64_t start = ivc_now_ns();
        if (send_ctl(b, CTL_XFER, size, seed))
            return -1;
        uint64_t shown = start;
        for (uint64_t off = 0; off < size; off += chunk) {
            size_t n = size - off < chunk ? (size_t)(size - off) : chunk;
            if (b->progress && size >= PROGRESS_MIN && ivc_now_ns() - shown >= 1000000000ull) {
                shown = ivc_now_ns();
                fprintf(stderr, "%s: %" PRIu64 " of %" PRIu64 " MiB sent, %.1f MB/s\n", b->channel,
                        off >> 20, size >> 20, off / seconds_since(start) / 1e6);
            }
            void *slot;
            err = ivc_reserve(b->chan, n, &slot, b->timeout_ms);
            if (err)
                return ivc_bench_fail("reserve", err);
            memcpy(slot, b->pattern, n);
            memcpy(slot, &off, n < 8 ? n : 8);
            err = ivc_commit(b->chan, n);
            if (err)
                return ivc_bench_fail("commit", err);
        }
        if (recv_ctl(b, CTL_DONE, &m))
            return -1;
        double secs = seconds_since(start);
        if (m.a != size || m.b != 1) {
            printf("ivc-bench: FAIL %s %" PRIu64 " bytes: the receiver verified %" PRIu64
                   " bytes and found them %s\n",
                   b->channel, size, m.a, m.b ? "right" : "wrong");
            return -1;
        }
        printf("ivc-bench: %s %s %" PRIu64 " bytes verified, %.1f MB/s\n", b->channel, direction,
               size, size / secs / 1e6);
        add_row(b, direction, size, "throughput_MBps", size / secs / 1e6, "MBps");
        add_layer_rows(b, direction, size, &before, 1);
        return 0;
    }

    if (recv_ctl(b, CTL_XFER, &m))
        return -1;
    if (m.a != size) {
        printf("ivc-bench: FAIL the peer sends %" PRIu64 " bytes, expected %" PRIu64 "\n", m.a,
               size);
        return -1;
    }
    fill_pattern(b->pattern, chunk, m.b);
    uint64_t off = 0;
    bool ok = true;
    while (off < size && ok) {
        size_t want = size - off < chunk ? (size_t)(size - off) : chunk;
        const void *msg;
        ssize_t len = ivc_recv_ref(b->chan, &msg, b->timeout_ms);
        if (len < 0)
            return ivc_bench_fail("receive", (int)len);
        uint64_t got_off = UINT64_MAX;
        if ((size_t)len == want)
            memcpy(&got_off, msg, want < 8 ? want : 8);
        ok = (size_t)len == want && (want < 8 ? memcmp(msg, &off, want) == 0 : got_off == off) &&
             (want <= 8 || memcmp((const uint8_t *)msg + 8, b->pattern + 8, want - 8) == 0);
        if (!ok)
            printf("ivc-bench: FAIL %s: message at offset %" PRIu64 " is wrong (%zd bytes)\n",
                   b->channel, off, len);
        err = ivc_release(b->chan);
        if (err)
            return ivc_bench_fail("release", err);
        off += want;
    }
    return send_ctl(b, CTL_DONE, ok ? size : off, ok) || !ok ? -1 : 0;
}

static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Round trips of --msg bytes (pinging) or echoing them, then a one-way stream. */
static int small_messages(struct bench *b, bool sending, const char *direction)
{
    long total = b->count + WARMUP_RTTS;
    uint8_t *buf = b->pattern;
    struct ctl_msg m;
    int err;

    memset(buf, 0x5A, b->msg);
    if (!sending) {
        for (long i = 0; i < total; i++) {
            ssize_t len = ivc_recv(b->chan, buf, b->msg, b->timeout_ms);
            if (len < 0)
                return ivc_bench_fail("receive ping", (int)len);
            err = ivc_send(b->chan, buf, (size_t)len, b->timeout_ms);
            if (err)
                return ivc_bench_fail("send pong", err);
        }
        for (long i = 0; i < b->count; i++) {
            ssize_t len = ivc_recv(b->chan, buf, b->msg, b->timeout_ms);
            if (len != (ssize_t)b->msg)
                return ivc_bench_fail("receive stream", len < 0 ? (int)len : -EPROTO);
        }
        return send_ctl(b, CTL_DONE, (uint64_t)b->count, 1);
    }

    uint64_t *rtt = calloc((size_t)b->count, sizeof(*rtt));
    struct ivc_stats before;
    if (!rtt)
        return ivc_bench_fail("calloc", -ENOMEM);
    for (long i = 0; i < total; i++) {
        if (i == WARMUP_RTTS)
            ivc_chan_stats(b->chan, &before);
        uint64_t start = ivc_now_ns();
        err = ivc_send(b->chan, buf, b->msg, b->timeout_ms);
        ssize_t len = err ? err : ivc_recv(b->chan, buf, b->msg, b->timeout_ms);
        if (len != (ssize_t)b->msg) {
            free(rtt);
            return ivc_bench_fail("round trip", len < 0 ? (int)len : -EPROTO);
        }
        if (i >= WARMUP_RTTS)
            rtt[i - WARMUP_RTTS] = ivc_now_ns() - start;
    }
    add_layer_rows(b, direction, b->msg, &before, (double)b->count);
    double sum = 0;
    for (long i = 0; i < b->count; i++)
        sum += (double)rtt[i];
    qsort(rtt, (size_t)b->count, sizeof(*rtt), compare_u64);
    double p50 = rtt[b->count / 2] / 1e3, p99 = rtt[b->count * 99 / 100] / 1e3;
    free(rtt);
    add_row(b, direction, b->msg, "rtt_p50_us", p50, "us");
    add_row(b, direction, b->msg, "rtt_p99_us", p99, "us");
    add_row(b, direction, b->msg, "rtt_mean_us", sum / b->count / 1e3, "us");

    uint64_t start = ivc_now_ns();
    for (long i = 0; i < b->count; i++) {
        err = ivc_send(b->chan, buf, b->msg, b->timeout_ms);
        if (err)
            return ivc_bench_fail("send stream", err);
    }
    if (recv_ctl(b, CTL_DONE, &m))
        return -1;
    double rate = b->count / seconds_since(start);
    add_row(b, direction, b->msg, "msgs_per_s", rate, "msg/s");
    printf("ivc-bench: %s %s %zu-byte messages: round trip p50 %.1f us, p99 %.1f us; %.0f "
           "messages/s\n",
           b->channel, direction, b->msg, p50, p99, rate);
    return 0;
}

/* Both sides must run the same plan, or they would wait for each other forever. */
static uint64_t plan_hash(const struct bench *b)
{
    uint64_t h = shm_ring_pattern((uint64_t)b->count, b->msg);
    for (int i = 0; i < b->n_run_sizes; i++)
        h = shm_ring_pattern(h, b->run_sizes[i]);
    return h;
}

static int run_channel(struct bench *b, struct ivc_ctx *ctx)
{
    bool leader = b->self < b->peer;
    char dir_out[16], dir_in[16];
    struct ctl_msg m;
    int err = ivc_open(ctx, b->peer, b->timeout_ms, &b->chan);

    if (err)
        return ivc_bench_fail("open the channel (is the peer running ivc-bench?)", err);
    snprintf(dir_out, sizeof(dir_out), "%uto%u", b->self, b->peer);
    snprintf(dir_in, sizeof(dir_in), "%uto%u", b->peer, b->self);
    const char *memtype = ivc_ctx_memtype(ctx);
    printf("ivc-bench: %s channel to peer %u open, messages up to %zu bytes, memory type %s\n",
           b->channel, b->peer, ivc_max_msg(b->chan), memtype ? memtype : "none");
    if (send_ctl(b, CTL_HELLO, plan_hash(b), 0) || recv_ctl(b, CTL_HELLO, &m))
        goto fail;
    if (m.a != plan_hash(b)) {
        printf("ivc-bench: FAIL the peer runs other sizes or counts\n");
        goto fail;
    }
    snprintf(b->peer_vmm, sizeof(b->peer_vmm), "%s", m.vmm);
    for (int round = 0; round < 2; round++) {
        bool sending = (round == 0) == leader;
        const char *direction = sending ? dir_out : dir_in;
        for (int i = 0; i < b->n_run_sizes; i++)
            if (transfer(b, sending, b->run_sizes[i], direction))
                goto fail;
        if (small_messages(b, sending, direction))
            goto fail;
    }
    /* The leader closes after the follower's BYE; the follower waits for that close so
     * its BYE is read before either side reopens the pair's rings. */
    if (leader) {
        if (send_ctl(b, CTL_BYE, 0, 0) || recv_ctl(b, CTL_BYE, &m))
            goto fail;
    } else {
        if (recv_ctl(b, CTL_BYE, &m) || send_ctl(b, CTL_BYE, 0, 0))
            goto fail;
        ssize_t len = ivc_recv(b->chan, &m, sizeof(m), b->timeout_ms);
        if (len != -ECONNRESET) {
            ivc_bench_fail("wait for the peer to close", len < 0 ? (int)len : -EPROTO);
            goto fail;
        }
    }
    ivc_close(b->chan);
    return 0;
fail:
    ivc_close(b->chan);
    return -1;
}

static int find_peer(struct bench *b, struct ivc_ctx *ctx)
{
    uint64_t present, deadline = ivc_now_ns() + (uint64_t)b->timeout_ms * 1000000ull;

    if (b->peer_opt >= 0) {
        b->peer = (unsigned)b->peer_opt;
        return 0;
    }
    do {
        int err = ivc_ctx_peers(ctx, &present);
        if (err == -EOPNOTSUPP) {
            printf("ivc-bench: FAIL this device does not say who is present: give --peer\n");
            return -1;
        }
        if (err)
            return ivc_bench_fail("read the present peers", err);
        present &= ~(1ull << b->self);
        if (present) {
            b->peer = (unsigned)__builtin_ctzll(present);
            return 0;
        }
        struct timespec pause = {.tv_nsec = 10000000};
        nanosleep(&pause, NULL);
    } while (ivc_now_ns() < deadline);
    printf("ivc-bench: FAIL no peer appeared\n");
    return -1;
}

static void print_results(const struct bench *b)
{
    printf("--- ivc-bench csv begin ---\n");
    printf("channel,vmm,peer_vmm,direction,size_bytes,metric,value,unit\n");
    for (int i = 0; i < b->n_rows; i++) {
        const struct row *r = &b->rows[i];
        printf("%s,%s,%s,%s,%" PRIu64 ",%s,%.6f,%s\n", r->channel, b->vmm_name, b->peer_vmm,
               r->direction, r->size, r->metric, r->value, r->unit);
    }
    printf("--- ivc-bench csv end ---\n");
    printf("%-9s %-6s %12s %-26s %14s %s\n", "channel", "dir", "bytes", "metric", "value", "unit");
    for (int i = 0; i < b->n_rows; i++) {
        const struct row *r = &b->rows[i];
        printf("%-9s %-6s %12" PRIu64 " %-26s %14.6g %s\n", r->channel, r->direction, r->size,
               r->metric, r->value, r->unit);
    }
}

static bool name_in(const char *name, const char *const *names)
{
    for (; *names; names++)
        if (strcmp(name, *names) == 0)
            return true;
    return false;
}

int ivc_bench_parse_args(struct bench *b, int argc, char **argv, int first,
                         const char *const *channel_names)
{
    uint64_t v;

    for (int i = first; i < argc; i += 2) {
        const char *opt = argv[i], *arg = i + 1 < argc ? argv[i + 1] : NULL;
        if (!arg)
            return 2;
        if (strcmp(opt, "--channel") == 0 && b->n_channels < IVC_BENCH_MAX_CHANNELS &&
            name_in(arg, channel_names))
            b->channels[b->n_channels++] = arg;
        else if (strcmp(opt, "--size") == 0 && b->n_sizes < MAX_SIZES && parse_size(arg, &v))
            b->sizes[b->n_sizes++] = v;
        else if (strcmp(opt, "--portio-size") == 0 && b->n_portio_sizes < MAX_SIZES &&
                 parse_size(arg, &v))
            b->portio_sizes[b->n_portio_sizes++] = v;
        else if (strcmp(opt, "--count") == 0 && parse_size(arg, &v) && v <= 100000000)
            b->count = (long)v;
        else if (strcmp(opt, "--msg") == 0 && parse_size(arg, &v) && v <= 65536)
            b->msg = (size_t)v;
        else if (strcmp(opt, "--peer") == 0 && parse_peer_id(arg, &v))
            b->peer_opt = (long)v;
        else if (strcmp(opt, "--peers") == 0 && parse_size(arg, &v) && v <= IVC_MAX_PEERS)
            b->peers = (unsigned)v;
        else if (strcmp(opt, "--device") == 0)
            b->device = arg;
        else if (strcmp(opt, "--timeout") == 0 && parse_size(arg, &v) && v <= 86400)
            b->timeout_ms = (int)v * 1000;
        else if (strcmp(opt, "--vmm") == 0)
            b->vmm = arg;
        else
            return 2;
    }
    return 0;
}

int ivc_bench_prepare(struct bench *b)
{
    if (!b->n_sizes) {
        b->sizes[b->n_sizes++] = 4096;
        b->sizes[b->n_sizes++] = 2u << 20;
        b->sizes[b->n_sizes++] = 1u << 30;
    }
    b->pattern = malloc(CHUNK_MAX);
    return b->pattern ? 0 : -ENOMEM;
}

int ivc_bench_channel(struct bench *b, struct ivc_ctx *ctx, const char *channel)
{
    bool portio = strcmp(channel, "portio") == 0;
    uint64_t present;

    b->channel = channel;
    b->run_sizes = portio && b->n_portio_sizes ? b->portio_sizes : b->sizes;
    b->n_run_sizes = portio && b->n_portio_sizes ? b->n_portio_sizes : b->n_sizes;
    b->self = ivc_ctx_self(ctx);
    snprintf(b->vmm_name, sizeof(b->vmm_name), "%s",
             b->vmm                              ? b->vmm
             : ivc_ctx_peers(ctx, &present) == 0 ? "minivmm"
                                                 : "qemu");
    int status = find_peer(b, ctx);
    return status ? status : run_channel(b, ctx);
}

int ivc_bench_finish(struct bench *b, int status)
{
    print_results(b);
    free(b->pattern);
    b->pattern = NULL;
    if (status) {
        printf("ivc-bench: FAIL (see above)\n");
        return 1;
    }
    printf("ivc-bench: OK\n");
    return 0;
}
