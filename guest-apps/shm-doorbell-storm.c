/*
 * shm-doorbell-storm: a guest that rings doorbells as fast as it can, to every present
 * peer (itself included) on vectors 0..7 in turn, for a fault test: the VMMs and the
 * other VMs of the group must keep working while it runs. Rings go through the
 * ivshmem_guest driver's RING ioctl (the doorbell port on minivmm's device, BAR0's
 * doorbell register on QEMU's). Vectors a peer lacks are rung too: those writes match no
 * ioeventfd and so exit to the VMM, which ignores them. Who is present is read again every round
 * (minivmm's presence extension; without it every ID 0..63 is tried, and the driver refuses none).
 *
 * Usage: shm-doorbell-storm SECONDS [DEVICE]   (default /dev/ivshmem0)
 * Prints how many doorbells reached a present peer, how many the driver refused for an
 * absent one (ENXIO), and the rate. Exit status: 0 done; 1 the device failed; 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "abi/ivshmem_guest_ioctl.h"

#define STORM_PEERS   64
#define STORM_VECTORS 8

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    const char *device = argc > 2 ? argv[2] : "/dev/ivshmem0";
    char *end;

    if (argc < 2 || argc > 3)
        goto usage;
    double seconds = strtod(argv[1], &end);
    if (*end || end == argv[1] || seconds <= 0)
        goto usage;

    int fd = open(device, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "shm-doorbell-storm: open %s: %s\n", device, strerror(errno));
        return 1;
    }
    uint64_t rung = 0, absent = 0;
    double start = now(), t = start;
    printf("shm-doorbell-storm: ringing present peers of 0..%d, vectors 0..%d for %.0f s\n",
           STORM_PEERS - 1, STORM_VECTORS - 1, seconds);
    fflush(stdout);
    while (t - start < seconds) {
        struct ivshmem_guest_info info;
        if (ioctl(fd, IVSHMEM_GUEST_INFO, &info) < 0) {
            fprintf(stderr, "shm-doorbell-storm: ioctl INFO: %s\n", strerror(errno));
            return 1;
        }
        uint64_t peers = info.flags & IVSHMEM_GUEST_INFO_EXT ? info.peers : UINT64_MAX;
        for (uint32_t peer = 0; peer < STORM_PEERS; peer++) {
            if (!(peers & (1ull << peer)))
                continue;
            for (uint32_t vector = 0; vector < STORM_VECTORS; vector++) {
                struct ivshmem_guest_ring ring = {.peer = peer, .vector = vector};
                if (ioctl(fd, IVSHMEM_GUEST_RING, &ring) == 0) {
                    rung++;
                } else if (errno == ENXIO) {
                    absent++; /* left since INFO */
                    break;
                } else {
                    fprintf(stderr, "shm-doorbell-storm: ioctl RING peer %u vector %u: %s\n", peer,
                            vector, strerror(errno));
                    return 1;
                }
            }
        }
        t = now();
    }
    printf("shm-doorbell-storm: %llu doorbells rung (%.0f per second), %llu refused for "
           "absent peers, in %.1f s\n",
           (unsigned long long)rung, (double)rung / (t - start), (unsigned long long)absent,
           t - start);
    return 0;

usage:
    fprintf(stderr, "usage: shm-doorbell-storm SECONDS [DEVICE]\n");
    return 2;
}
