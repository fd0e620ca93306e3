/* shm-pingpong: doorbell round-trip latency between two VMs through the ivshmem driver.
 * The pinger rings the ponger on vector 0 and sleeps in read() on /dev/ivshmem0 until the
 * ponger, woken the same way, rings back. Each round trip therefore crosses: guest
 * syscall, doorbell write (KVM ioeventfd), eventfd, irqfd, MSI injection into the peer,
 * the peer's interrupt handler and wake-up, and all of it again on the way back.
 *
 * The two sides start at different times and a doorbell rung before the other side
 * listens is lost, so the pinger first rings every WARMUP_PERIOD_MS until the ponger
 * answers, then lets the extra rings drain before it measures. The ponger answers vector
 * 0 until the pinger rings vector 1 (stop), so it needs no count of its own.
 *
 * Usage: shm-pingpong ping|pong [--count N] [--peer ID] [--timeout S] [--device PATH] [--csv]
 * The peer defaults to the other present ID (minivmm's presence extension); QEMU's
 * device has no presence bitmap, so give --peer there. Prints p50/p99/min/max in
 * microseconds and "shm-pingpong: OK"; exit 0 only on success. With --csv the pinger also
 * prints the benchmarks' CSV rows (p50, p99, round trips per second, and every round trip
 * as an rtt_sample_us row) between "--- shm-pingpong csv begin ---" and "--- shm-pingpong
 * csv end ---" lines; the guest cannot tell which VMM runs it, so the vmm columns say
 * "guest" and the host-side collector fills them in. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "abi/ivshmem_guest_ioctl.h"

#define PINGPONG_VECTOR  0
#define STOP_VECTOR      1
#define WARMUP_PERIOD_MS 50
#define DRAIN_MS         300

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Waits for any vector to fire, at most timeout_ms; the mask of those that fired goes to
 * *fired. Returns 0, 1 on timeout, or -1 after saying why. */
static int wait_vectors(int fd, int timeout_ms, uint64_t *fired)
{
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int ready = poll(&pfd, 1, timeout_ms);
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready == 0)
            return 1;
        if (ready < 0) {
            fprintf(stderr, "shm-pingpong: FAIL poll: %s\n", strerror(errno));
            return -1;
        }
        uint64_t mask;
        if (read(fd, &mask, sizeof(mask)) != sizeof(mask)) {
            fprintf(stderr, "shm-pingpong: FAIL read: %s\n", strerror(errno));
            return -1;
        }
        if (mask) {
            *fired = mask;
            return 0;
        }
    }
}

/* Waits for the ping/pong vector, failing after timeout_ms. */
static int wait_pong(int fd, int timeout_ms)
{
    uint64_t fired = 0;
    while (!(fired & (1ull << PINGPONG_VECTOR))) {
        int ret = wait_vectors(fd, timeout_ms, &fired);
        if (ret) {
            if (ret > 0)
                fprintf(stderr, "shm-pingpong: FAIL no doorbell within %d ms\n", timeout_ms);
            return -1;
        }
    }
    return 0;
}

static int ring(int fd, uint32_t peer, uint32_t vector)
{
    struct ivshmem_guest_ring bell = {.peer = peer, .vector = vector};
    if (ioctl(fd, IVSHMEM_GUEST_RING, &bell) < 0) {
        fprintf(stderr, "shm-pingpong: FAIL ring peer %u: %s\n", peer, strerror(errno));
        return -1;
    }
    return 0;
}

/* The other present peer, waiting for it to appear. */
static int find_peer(int fd, int timeout_s, uint32_t *peer)
{
    uint64_t deadline = now_ns() + (uint64_t)timeout_s * 1000000000ull;
    do {
        struct ivshmem_guest_info info;
        if (ioctl(fd, IVSHMEM_GUEST_INFO, &info) < 0) {
            fprintf(stderr, "shm-pingpong: FAIL INFO: %s\n", strerror(errno));
            return -1;
        }
        if (!(info.flags & IVSHMEM_GUEST_INFO_EXT)) {
            fprintf(stderr, "shm-pingpong: FAIL no presence bitmap here: give --peer\n");
            return -1;
        }
        uint64_t others = info.peers & ~(1ull << (info.own_id & 63));
        if (others) {
            *peer = (uint32_t)__builtin_ctzll(others);
            return 0;
        }
        usleep(10000);
    } while (now_ns() < deadline);
    fprintf(stderr, "shm-pingpong: FAIL no peer appeared within %d s\n", timeout_s);
    return -1;
}

/* The benchmarks' CSV schema; rtt is sorted. */
static void print_csv(const uint64_t *rtt, long count, uint64_t total_ns)
{
    const char *row = "shm-irq,guest,guest,round_trip,0";
    printf("--- shm-pingpong csv begin ---\n");
    printf("channel,vmm,peer_vmm,direction,size_bytes,metric,value,unit\n");
    printf("%s,rtt_p50_us,%.2f,us\n", row, rtt[count / 2] / 1e3);
    printf("%s,rtt_p99_us,%.2f,us\n", row, rtt[(count * 99) / 100] / 1e3);
    printf("%s,msgs_per_s,%.0f,1/s\n", row, total_ns ? count * 1e9 / (double)total_ns : 0.0);
    for (long i = 0; i < count; i++)
        printf("%s,rtt_sample_us,%.2f,us\n", row, rtt[i] / 1e3);
    printf("--- shm-pingpong csv end ---\n");
}

int main(int argc, char **argv)
{
    const char *device = "/dev/ivshmem0";
    long count = 1000, peer_arg = -1;
    int timeout_s = 30;
    if (argc < 2 || (strcmp(argv[1], "ping") != 0 && strcmp(argv[1], "pong") != 0)) {
        fprintf(stderr, "usage: shm-pingpong ping|pong [--count N] [--peer ID] [--timeout S] "
                        "[--device PATH] [--csv]\n");
        return 2;
    }
    bool pinger = strcmp(argv[1], "ping") == 0, csv = false;
    for (int i = 2; i < argc; i += 2) {
        if (strcmp(argv[i], "--csv") == 0) {
            csv = true;
            i--; /* a flag without a value */
        } else if (i + 1 == argc)
            break;
        else if (strcmp(argv[i], "--count") == 0)
            count = strtol(argv[i + 1], NULL, 0);
        else if (strcmp(argv[i], "--peer") == 0)
            peer_arg = strtol(argv[i + 1], NULL, 0);
        else if (strcmp(argv[i], "--timeout") == 0)
            timeout_s = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--device") == 0)
            device = argv[i + 1];
    }
    if (count < 1 || count > 10000000 || timeout_s < 1) {
        fprintf(stderr, "shm-pingpong: FAIL bad --count or --timeout\n");
        return 2;
    }
    int fd = open(device, O_RDWR);
    if (fd < 0) {
        fprintf(stderr, "shm-pingpong: FAIL open %s: %s\n", device, strerror(errno));
        return 1;
    }
    uint32_t peer;
    if (peer_arg >= 0)
        peer = (uint32_t)peer_arg;
    else if (find_peer(fd, timeout_s, &peer))
        return 1;

    int timeout_ms = timeout_s * 1000;
    if (!pinger) {
        uint64_t fired = 0, answered = 0;
        while (!(fired & (1ull << STOP_VECTOR))) {
            int ret = wait_vectors(fd, timeout_ms, &fired);
            if (ret) {
                if (ret > 0)
                    fprintf(stderr, "shm-pingpong: FAIL no ping within %d s\n", timeout_s);
                return 1;
            }
            if ((fired & (1ull << PINGPONG_VECTOR)) && ring(fd, peer, PINGPONG_VECTOR))
                return 1;
            answered++;
        }
        printf("shm-pingpong: answered %llu pings from peer %u\n", (unsigned long long)answered,
               peer);
        printf("shm-pingpong: OK\n");
        return 0;
    }

    uint64_t fired = 0;
    uint64_t deadline = now_ns() + (uint64_t)timeout_s * 1000000000ull;
    do {
        if (ring(fd, peer, PINGPONG_VECTOR) || wait_vectors(fd, WARMUP_PERIOD_MS, &fired) < 0)
            return 1;
    } while (!(fired & (1ull << PINGPONG_VECTOR)) && now_ns() < deadline);
    if (!(fired & (1ull << PINGPONG_VECTOR))) {
        fprintf(stderr, "shm-pingpong: FAIL peer %u never answered within %d s\n", peer, timeout_s);
        return 1;
    }
    while (wait_vectors(fd, DRAIN_MS, &fired) == 0)
        ; /* answers to the extra warm-up rings */

    uint64_t *rtt = calloc((size_t)count, sizeof(*rtt));
    if (!rtt)
        return 1;
    for (long i = 0; i < count; i++) {
        uint64_t start = now_ns();
        if (ring(fd, peer, PINGPONG_VECTOR) || wait_pong(fd, timeout_ms))
            return 1;
        rtt[i] = now_ns() - start;
    }
    if (ring(fd, peer, STOP_VECTOR))
        return 1;
    uint64_t total_ns = 0;
    for (long i = 0; i < count; i++)
        total_ns += rtt[i];
    qsort(rtt, (size_t)count, sizeof(*rtt), compare_u64);
    if (csv)
        print_csv(rtt, count, total_ns);
    printf("shm-pingpong: %ld doorbell round trips with peer %u: p50 %.1f us, p99 %.1f us, "
           "min %.1f us, max %.1f us\n",
           count, peer, rtt[count / 2] / 1e3, rtt[(count * 99) / 100] / 1e3, rtt[0] / 1e3,
           rtt[count - 1] / 1e3);
    printf("shm-pingpong: OK\n");
    free(rtt);
    close(fd);
    return 0;
}
