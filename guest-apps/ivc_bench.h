/*
 * The measuring and checking part of ivc-bench (ivc-bench.c, in the guest) and of
 * minivmm-ivc bench (host-apps/minivmm-ivc.c, on the host), so that a guest and a host
 * process run the very same protocol against each other: control messages, transfers
 * whose every byte the receiver checks, round trips, a message stream. ivc-bench.c's
 * opening comment describes what is measured and printed.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ivc.h"

#define MAX_SIZES              8
#define MAX_ROWS               256
#define CHUNK_MAX              (1u << 20)
#define IVC_BENCH_MAX_CHANNELS 3

struct row {
    char channel[16], direction[16], metric[40], unit[8];
    uint64_t size;
    double value;
};

struct bench {
    /* options */
    const char *channels[IVC_BENCH_MAX_CHANNELS];
    int n_channels;
    uint64_t sizes[MAX_SIZES];
    int n_sizes;
    uint64_t portio_sizes[MAX_SIZES];
    int n_portio_sizes;
    long count;
    size_t msg;
    long peer_opt;
    unsigned peers;
    const char *device;
    int timeout_ms;
    const char *vmm;
    /* state */
    const uint64_t *run_sizes; /* this channel's: sizes or portio_sizes */
    int n_run_sizes;
    char vmm_name[16], peer_vmm[16];
    unsigned self, peer;
    const char *channel;
    struct ivc_chan *chan;
    uint8_t *pattern;
    struct row rows[MAX_ROWS];
    int n_rows;
    bool progress; /* the sender reports long transfers on stderr */
};

/* The options after argv[first]; --channel takes one of the NULL-terminated names. Returns
 * 0, or 2 for a usage error (the caller prints its usage). */
int ivc_bench_parse_args(struct bench *b, int argc, char **argv, int first,
                         const char *const *channel_names);

/* Fills what the options left unset (sizes 4K 2M 1G) and allocates the pattern buffer.
 * Returns 0 or -ENOMEM. */
int ivc_bench_prepare(struct bench *b);

/* Runs the plan on one context as channel (a name for the rows; "portio" takes the
 * --portio-size sizes): finds the peer, opens the channel, both directions. 0 or -1 (the
 * reason printed). */
int ivc_bench_channel(struct bench *b, struct ivc_ctx *ctx, const char *channel);

/* The end of a run: the rows as CSV between markers, then as a table, on stdout, then
 * "ivc-bench: OK" or "ivc-bench: FAIL (see above)" as status (0 or not) says; frees the
 * pattern buffer. Returns the exit status, 0 or 1. */
int ivc_bench_finish(struct bench *b, int status);

/* Prints "ivc-bench: FAIL what: strerror(-err)" and returns -1. */
int ivc_bench_fail(const char *what, int err);
