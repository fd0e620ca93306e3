/* host-limits: the physical limits the VM channels are compared with, measured on the host
 * that runs the VMs, in the same run:
 *   - memcpy bandwidth for each size, between two buffers in one memfd mapped shared (the
 *     same kind of memory as a --shm group's), median of several repetitions;
 *   - the round trip of an eventfd ping-pong between two processes (the host half of a
 *     doorbell: ioeventfd signals an eventfd, the peer's irqfd waits on it), p50 and p99.
 *
 * Usage: host-limits [--env LABEL] [--sizes 4K,2M,1G] [--reps N] [--round-trips N]
 *                    [--samples FILE]
 * Writes CSV rows to stdout in the benchmarks' schema
 *   channel,vmm,peer_vmm,direction,size_bytes,metric,value,unit
 * with channel "host" and LABEL (default "host") in the vmm and peer_vmm columns, so the
 * report can tell the build machine from the emulated KVM host. --samples appends every
 * round trip as an rtt_sample_us row to FILE (for the latency distribution plots).
 * MB/s is 10^6 bytes per second, as the guest programs report it. Exit 0, 1 on a failed
 * system call (named on stderr), 2 on a bad argument. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_SIZES 16
/* A small copy takes less time than the clock resolves: repeat it until one repetition
 * has copied at least this much, and divide. */
#define MIN_BYTES_PER_REP  (256ull << 20)
#define WARMUP_ROUND_TRIPS 100
#define CSV_HEADER         "channel,vmm,peer_vmm,direction,size_bytes,metric,value,unit\n"

struct options {
    const char *env;
    uint64_t sizes[MAX_SIZES];
    int size_count;
    int reps;
    long round_trips;
    const char *samples_path;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* "4K", "2M", "1G", "4096": powers of 1024, as shm-ring takes them. Returns 0 on junk. */
static uint64_t parse_size(const char *text)
{
    char *end;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno || end == text || value == 0)
        return 0;
    unsigned shift = 0;
    switch (*end) {
    case 'K':
        shift = 10;
        end++;
        break;
    case 'M':
        shift = 20;
        end++;
        break;
    case 'G':
        shift = 30;
        end++;
        break;
    }
    if (*end || value > (UINT64_MAX >> shift))
        return 0;
    return (uint64_t)value << shift;
}

/* Copies size bytes between two halves of a shared memfd mapping; prints the median MB/s. */
static int measure_memcpy(const struct options *opt, uint64_t size)
{
    int ret = 1;
    int fd = memfd_create("host-limits", MFD_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "host-limits: memfd_create: %s\n", strerror(errno));
        return 1;
    }
    if (ftruncate(fd, (off_t)(2 * size)) < 0) {
        fprintf(stderr, "host-limits: ftruncate memfd to %" PRIu64 " bytes: %s\n", 2 * size,
                strerror(errno));
        goto out_close;
    }
    unsigned char *mem = mmap(NULL, 2 * size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (mem == MAP_FAILED) {
        fprintf(stderr, "host-limits: mmap %" PRIu64 " bytes of memfd: %s\n", 2 * size,
                strerror(errno));
        goto out_close;
    }
    double *mbps = calloc((size_t)opt->reps, sizeof(*mbps));
    if (!mbps) {
        fprintf(stderr, "host-limits: calloc %d doubles: %s\n", opt->reps, strerror(errno));
        goto out_unmap;
    }
    unsigned char *src = mem, *dst = mem + size;
    /* Fault both buffers in first: the VMs' shared memory is resident too. */
    memset(src, 0x5a, size);
    memset(dst, 0, size);
    uint64_t copies = size >= MIN_BYTES_PER_REP ? 1 : MIN_BYTES_PER_REP / size;
    for (int rep = 0; rep < opt->reps; rep++) {
        uint64_t start = now_ns();
        for (uint64_t i = 0; i < copies; i++) {
            memcpy(dst, src, size);
            /* Keeps the compiler from merging repeated copies of the same bytes. */
            __asm__ volatile("" : : "r"(dst) : "memory");
        }
        uint64_t elapsed = now_ns() - start;
        mbps[rep] = elapsed ? (double)(copies * size) / ((double)elapsed / 1e9) / 1e6 : 0;
    }
    if (memcmp(src, dst, size) != 0) {
        fprintf(stderr, "host-limits: memcpy of %" PRIu64 " bytes left different bytes\n", size);
        goto out_free;
    }
    qsort(mbps, (size_t)opt->reps, sizeof(*mbps), compare_double);
    printf("host,%s,%s,local,%" PRIu64 ",throughput_MBps,%.1f,MB/s\n", opt->env, opt->env, size,
           mbps[opt->reps / 2]);
    fflush(stdout);
    ret = 0;
out_free:
    free(mbps);
out_unmap:
    munmap(mem, 2 * size);
out_close:
    close(fd);
    return ret;
}

static int write_u64(int fd, uint64_t value, const char *who)
{
    if (write(fd, &value, sizeof(value)) != sizeof(value)) {
        fprintf(stderr, "host-limits: %s: write eventfd: %s\n", who, strerror(errno));
        return -1;
    }
    return 0;
}

static int read_u64(int fd, const char *who)
{
    uint64_t value;
    if (read(fd, &value, sizeof(value)) != sizeof(value)) {
        fprintf(stderr, "host-limits: %s: read eventfd: %s\n", who, strerror(errno));
        return -1;
    }
    return 0;
}

/* The child answers every ping on ping_fd with a pong on pong_fd, until the parent has
 * sent count pings. */
static int answer_pings(int ping_fd, int pong_fd, long count)
{
    for (long i = 0; i < count; i++)
        if (read_u64(ping_fd, "ponger") || write_u64(pong_fd, 1, "ponger"))
            return 1;
    return 0;
}

static int write_samples(const struct options *opt, const double *rtt_us, long count)
{
    FILE *out = fopen(opt->samples_path, "a");
    if (!out) {
        fprintf(stderr, "host-limits: fopen %s: %s\n", opt->samples_path, strerror(errno));
        return -1;
    }
    /* Append mode reports position 0 until the first write: ask for the end. */
    if (fseek(out, 0, SEEK_END) == 0 && ftell(out) == 0)
        fputs(CSV_HEADER, out);
    for (long i = 0; i < count; i++)
        fprintf(out, "host,%s,%s,round_trip,8,rtt_sample_us,%.3f,us\n", opt->env, opt->env,
                rtt_us[i]);
    if (fclose(out) != 0) {
        fprintf(stderr, "host-limits: write %s: %s\n", opt->samples_path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Eventfd ping-pong between this process and a child; prints p50 and p99. */
static int measure_eventfd(const struct options *opt)
{
    int ret = 1;
    long total = WARMUP_ROUND_TRIPS + opt->round_trips;
    double *rtt_us = calloc((size_t)opt->round_trips, sizeof(*rtt_us));
    if (!rtt_us) {
        fprintf(stderr, "host-limits: calloc %ld samples: %s\n", opt->round_trips, strerror(errno));
        return 1;
    }
    int ping_fd = eventfd(0, EFD_CLOEXEC);
    if (ping_fd < 0) {
        fprintf(stderr, "host-limits: eventfd: %s\n", strerror(errno));
        goto out_free;
    }
    int pong_fd = eventfd(0, EFD_CLOEXEC);
    if (pong_fd < 0) {
        fprintf(stderr, "host-limits: eventfd: %s\n", strerror(errno));
        goto out_ping;
    }
    fflush(stdout);
    pid_t child = fork();
    if (child < 0) {
        fprintf(stderr, "host-limits: fork: %s\n", strerror(errno));
        goto out_pong;
    }
    if (child == 0)
        _exit(answer_pings(ping_fd, pong_fd, total));

    bool ok = true;
    for (long i = 0; i < total && ok; i++) {
        uint64_t start = now_ns();
        ok = write_u64(ping_fd, 1, "pinger") == 0 && read_u64(pong_fd, "pinger") == 0;
        if (i >= WARMUP_ROUND_TRIPS)
            rtt_us[i - WARMUP_ROUND_TRIPS] = (double)(now_ns() - start) / 1e3;
    }
    if (!ok)
        kill(child, SIGKILL);
    int status;
    if (waitpid(child, &status, 0) < 0) {
        fprintf(stderr, "host-limits: waitpid %d: %s\n", (int)child, strerror(errno));
        goto out_pong;
    }
    if (!ok || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        goto out_pong;
    if (opt->samples_path && write_samples(opt, rtt_us, opt->round_trips))
        goto out_pong;
    double total_us = 0;
    for (long i = 0; i < opt->round_trips; i++)
        total_us += rtt_us[i];
    qsort(rtt_us, (size_t)opt->round_trips, sizeof(*rtt_us), compare_double);
    printf("host,%s,%s,round_trip,8,rtt_p50_us,%.2f,us\n", opt->env, opt->env,
           rtt_us[opt->round_trips / 2]);
    printf("host,%s,%s,round_trip,8,rtt_p99_us,%.2f,us\n", opt->env, opt->env,
           rtt_us[opt->round_trips * 99 / 100]);
    printf("host,%s,%s,round_trip,8,msgs_per_s,%.0f,1/s\n", opt->env, opt->env,
           total_us > 0 ? (double)opt->round_trips * 1e6 / total_us : 0.0);
    ret = 0;
out_pong:
    close(pong_fd);
out_ping:
    close(ping_fd);
out_free:
    free(rtt_us);
    return ret;
}

static int usage(void)
{
    fprintf(stderr, "usage: host-limits [--env LABEL] [--sizes 4K,2M,1G] [--reps N] "
                    "[--round-trips N] [--samples FILE]\n");
    return 2;
}

static int parse_sizes(struct options *opt, char *list)
{
    opt->size_count = 0;
    for (char *save = NULL, *word = strtok_r(list, ",", &save); word;
         word = strtok_r(NULL, ",", &save)) {
        uint64_t size = parse_size(word);
        /* Two buffers of it must fit in the address space and in memory. */
        if (!size || size > (64ull << 30) || opt->size_count == MAX_SIZES) {
            fprintf(stderr, "host-limits: bad size '%s' (1 byte to 64G, at most %d sizes)\n", word,
                    MAX_SIZES);
            return -1;
        }
        opt->sizes[opt->size_count++] = size;
    }
    return opt->size_count ? 0 : -1;
}

int main(int argc, char **argv)
{
    struct options opt = {.env = "host", .reps = 5, .round_trips = 10000};
    char default_sizes[] = "4K,2M,1G";
    static const struct option long_options[] = {
        {"env", required_argument, NULL, 'e'},     {"sizes", required_argument, NULL, 's'},
        {"reps", required_argument, NULL, 'r'},    {"round-trips", required_argument, NULL, 'n'},
        {"samples", required_argument, NULL, 'o'}, {NULL, 0, NULL, 0},
    };
    if (parse_sizes(&opt, default_sizes))
        return 2;
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
        switch (c) {
        case 'e':
            /* It goes into CSV cells: keep it to a plain word. */
            if (!*optarg ||
                strspn(optarg, "abcdefghijklmnopqrstuvwxyz0123456789-_") != strlen(optarg))
                return usage();
            opt.env = optarg;
            break;
        case 's':
            if (parse_sizes(&opt, optarg))
                return usage();
            break;
        case 'r':
            opt.reps = (int)strtol(optarg, &end, 10);
            if (*end || opt.reps < 1 || opt.reps > 1000)
                return usage();
            break;
        case 'n':
            opt.round_trips = strtol(optarg, &end, 10);
            if (*end || opt.round_trips < 1 || opt.round_trips > 10000000)
                return usage();
            break;
        case 'o':
            opt.samples_path = optarg;
            break;
        default:
            return usage();
        }
    }
    if (optind != argc)
        return usage();

    fputs(CSV_HEADER, stdout);
    for (int i = 0; i < opt.size_count; i++)
        if (measure_memcpy(&opt, opt.sizes[i]))
            return 1;
    return measure_eventfd(&opt);
}
