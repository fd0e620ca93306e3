/* shm-churn: one Linux VM of the load-and-churn test (tests/guest/churn.sh), speaking
 * shm_churn.h through the ivshmem_guest driver with the group's other VMs (Linux or the
 * tiny guests of tests/kvm/guest/churn.c). It publishes a message into its own region
 * every --period-ms and rings every other present peer; whenever a doorbell arrives (and
 * at each wake-up) it reads the present peers' regions and verifies every byte of each new
 * message. It ends when the group's stop word is set or after --seconds.
 *
 * Usage: shm-churn [--seconds S] [--period-ms N] [--report-s S] [--device PATH]
 * Prints "shm-churn: peer N started, ...", a progress line every --report-s (30), and at
 * the end "shm-churn: OK verified B bytes in M messages from K incarnations, rang D
 * doorbells, 0 mismatches (...)" with exit 0; a wrong byte prints "shm-churn: FAIL ..." and
 * exits 1 at once. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "abi/ivshmem_guest_ioctl.h"
#include "shm_churn.h"

struct churn {
    int fd;
    unsigned own;
    void *shm;
    struct churn_reader reader;
    unsigned long long published, doorbells, wakeups;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int fail(const char *what)
{
    fprintf(stderr, "shm-churn: FAIL %s: %s\n", what, strerror(errno));
    return -1;
}

static int present_peers(const struct churn *c, uint64_t *present)
{
    struct ivshmem_guest_info info;
    if (ioctl(c->fd, IVSHMEM_GUEST_INFO, &info) < 0)
        return fail("INFO");
    *present = info.peers;
    return 0;
}

static int ring_others(struct churn *c, uint64_t present)
{
    for (unsigned id = 0; id < CHURN_MAX_PEERS; id++) {
        if (id == c->own || !(present & (1ull << id)))
            continue;
        struct ivshmem_guest_ring bell = {.peer = id, .vector = 0};
        if (ioctl(c->fd, IVSHMEM_GUEST_RING, &bell) == 0)
            c->doorbells++;
        else if (errno != ENXIO) /* ENXIO: the peer left since INFO; the churn does that */
            return fail("RING");
    }
    return 0;
}

/* Returns 0, or -1 after a mismatch has been reported. */
static int scan(struct churn *c, uint64_t present)
{
    struct churn_bad bad;
    unsigned id;
    if (churn_scan(c->shm, c->own, present, &c->reader, &id, &bad) == 0)
        return 0;
    fprintf(stderr,
            "shm-churn: FAIL peer %u read a wrong message in peer %u's region: incarnation "
            "%016llx seq %llu owner %llu, word %llu is %016llx, expected %016llx (after %llu "
            "good messages)\n",
            c->own, id, (unsigned long long)bad.nonce, (unsigned long long)bad.seq,
            (unsigned long long)bad.owner, (unsigned long long)bad.word,
            (unsigned long long)bad.found, (unsigned long long)bad.expected,
            (unsigned long long)c->reader.messages);
    return -1;
}

static void print_counts(const struct churn *c)
{
    printf("verified %llu bytes in %llu messages from %llu incarnations, rang %llu doorbells, "
           "0 mismatches (published %llu, %llu torn reads retried, %llu interrupt wake-ups)\n",
           (unsigned long long)(c->reader.messages * CHURN_PAYLOAD_BYTES),
           (unsigned long long)c->reader.messages, (unsigned long long)c->reader.boots,
           c->doorbells, c->published, (unsigned long long)c->reader.torn, c->wakeups);
}

/* Sleeps in poll() until a vector fires or timeout_ms pass, and clears what fired. */
static int wait_doorbell(struct churn *c, int timeout_ms)
{
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    int ready = poll(&pfd, 1, timeout_ms);
    if (ready < 0 && errno != EINTR)
        return fail("poll");
    if (ready <= 0)
        return 0;
    uint64_t mask;
    if (read(c->fd, &mask, sizeof(mask)) != sizeof(mask))
        return fail("read");
    c->wakeups++;
    return 0;
}

static int run(struct churn *c, long seconds, long period_ms, long report_s)
{
    struct churn_region *mine = churn_region(c->shm, c->own);
    struct churn_control *control = churn_control(c->shm);
    uint64_t nonce = churn_nonce(now_ns() ^ ((uint64_t)getpid() << 40), c->own);
    uint64_t start = now_ns(), period = (uint64_t)period_ms * 1000000ull;
    uint64_t end = start + (uint64_t)seconds * 1000000000ull;
    uint64_t next_publish = start, next_report = start + (uint64_t)report_s * 1000000000ull;
    uint64_t present = 0;
    if (present_peers(c, &present))
        return 1;
    printf("shm-churn: peer %u started, incarnation %016llx, present 0x%llx\n", c->own,
           (unsigned long long)nonce, (unsigned long long)present);
    fflush(stdout);

    for (;;) {
        int stopping = control->stop == CHURN_STOP_MAGIC;
        if (present_peers(c, &present) || scan(c, present))
            return 1;
        uint64_t now = now_ns();
        if (stopping || now >= end) {
            printf("shm-churn: OK after %llu s (%s): ",
                   (unsigned long long)((now - start) / 1000000000ull),
                   stopping ? "the group's stop word" : "--seconds");
            print_counts(c);
            return 0;
        }
        if (now >= next_publish) {
            churn_publish(mine, c->own, nonce, ++c->published);
            if (ring_others(c, present))
                return 1;
            next_publish = next_publish + period > now ? next_publish + period : now + period;
        }
        if (now >= next_report) {
            printf("shm-churn: progress, present 0x%llx: ", (unsigned long long)present);
            print_counts(c);
            fflush(stdout);
            next_report = now + (uint64_t)report_s * 1000000000ull;
        }
        uint64_t wake = next_publish < next_report ? next_publish : next_report;
        if (wake > now && wait_doorbell(c, (int)((wake - now + 999999) / 1000000)))
            return 1;
    }
}

int main(int argc, char **argv)
{
    const char *device = "/dev/ivshmem0";
    long seconds = 600, period_ms = 500, report_s = 30;
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 == argc) {
            fprintf(stderr, "shm-churn: %s needs a value\n", argv[i]);
            return 2;
        }
        if (strcmp(argv[i], "--seconds") == 0)
            seconds = strtol(argv[i + 1], NULL, 0);
        else if (strcmp(argv[i], "--period-ms") == 0)
            period_ms = strtol(argv[i + 1], NULL, 0);
        else if (strcmp(argv[i], "--report-s") == 0)
            report_s = strtol(argv[i + 1], NULL, 0);
        else if (strcmp(argv[i], "--device") == 0)
            device = argv[i + 1];
        else {
            fprintf(stderr, "usage: shm-churn [--seconds S] [--period-ms N] [--report-s S] "
                            "[--device PATH]\n");
            return 2;
        }
    }
    if (seconds < 1 || period_ms < 1 || period_ms > 60000 || report_s < 1) {
        fprintf(stderr, "shm-churn: FAIL bad --seconds, --period-ms or --report-s\n");
        return 2;
    }
    struct churn c = {.fd = open(device, O_RDWR)};
    if (c.fd < 0) {
        fprintf(stderr, "shm-churn: FAIL open %s: %s\n", device, strerror(errno));
        return 1;
    }
    struct ivshmem_guest_info info;
    if (ioctl(c.fd, IVSHMEM_GUEST_INFO, &info) < 0) {
        fail("INFO");
        return 1;
    }
    if (!(info.flags & IVSHMEM_GUEST_INFO_EXT) || !(info.flags & IVSHMEM_GUEST_INFO_IRQ) ||
        info.vectors == 0) {
        fprintf(stderr, "shm-churn: FAIL needs minivmm's presence extension and MSI-X\n");
        return 1;
    }
    if (info.own_id >= CHURN_MAX_PEERS || info.shm_size < CHURN_MIN_SHM) {
        fprintf(stderr,
                "shm-churn: FAIL peer %u with %llu bytes: the layout needs an ID "
                "under %u and %u bytes\n",
                info.own_id, (unsigned long long)info.shm_size, CHURN_MAX_PEERS, CHURN_MIN_SHM);
        return 1;
    }
    c.own = info.own_id;
    c.shm = mmap(NULL, info.shm_size, PROT_READ | PROT_WRITE, MAP_SHARED, c.fd, 0);
    if (c.shm == MAP_FAILED) {
        fail("mmap");
        return 1;
    }
    return run(&c, seconds, period_ms, report_s);
}
