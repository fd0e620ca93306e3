/* shm-peer-watch: follows the group's members through minivmm's presence extension and
 * checks that a departing peer takes nothing with it. It fills its own slice of the
 * shared memory with a pattern, asks the driver to raise a vector whenever the presence
 * bitmap changes, reports each join and departure, and once it has seen a peer join and
 * then leave, checks that its slice is intact.
 *
 * Usage: shm-peer-watch [--timeout S] [--device PATH]
 * Prints "shm-peer-watch: peer N joined" / "... left", then "shm-peer-watch: OK" (exit 0),
 * or "shm-peer-watch: FAIL ..." (exit 1). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "abi/ivshmem_guest_ioctl.h"

#define SLICE_BYTES (64u << 10)

static int fail(const char *what)
{
    fprintf(stderr, "shm-peer-watch: FAIL %s: %s\n", what, strerror(errno));
    return 1;
}

static uint32_t pattern_word(uint32_t own_id, size_t index)
{
    return (uint32_t)(index * 2654435761u) ^ (own_id << 24) ^ 0x5a5a5a5au;
}

int main(int argc, char **argv)
{
    const char *device = "/dev/ivshmem0";
    int timeout_s = 120;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--timeout") == 0)
            timeout_s = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--device") == 0)
            device = argv[i + 1];
    }
    int fd = open(device, O_RDWR);
    if (fd < 0)
        return fail(device);
    struct ivshmem_guest_info info;
    if (ioctl(fd, IVSHMEM_GUEST_INFO, &info) < 0)
        return fail("INFO");
    if (!(info.flags & IVSHMEM_GUEST_INFO_EXT) || info.vectors == 0) {
        fprintf(stderr, "shm-peer-watch: FAIL needs minivmm's presence extension and MSI-X\n");
        return 1;
    }
    uint32_t own = info.own_id;
    if ((uint64_t)(own + 1) * SLICE_BYTES > info.shm_size) {
        fprintf(stderr, "shm-peer-watch: FAIL no room for peer %u's slice\n", own);
        return 1;
    }
    volatile uint32_t *shm = mmap(NULL, info.shm_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (shm == MAP_FAILED)
        return fail("mmap");
    volatile uint32_t *slice = shm + own * (SLICE_BYTES / 4);
    for (size_t i = 0; i < SLICE_BYTES / 4; i++)
        slice[i] = pattern_word(own, i);

    uint32_t vector = info.vectors - 1;
    if (ioctl(fd, IVSHMEM_GUEST_ENABLE_PEER_EVENTS, &vector) < 0)
        return fail("ENABLE_PEER_EVENTS");
    printf("shm-peer-watch: peer %u watching, present 0x%llx\n", own,
           (unsigned long long)info.peers);
    fflush(stdout);

    uint64_t known = info.peers, joined = 0, left = 0;
    while (!(joined & left)) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int ready = poll(&pfd, 1, timeout_s * 1000);
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready <= 0) {
            fprintf(stderr, "shm-peer-watch: FAIL no peer joined and left within %d s\n",
                    timeout_s);
            return 1;
        }
        uint64_t fired;
        if (read(fd, &fired, sizeof(fired)) != sizeof(fired))
            return fail("read");
        if (ioctl(fd, IVSHMEM_GUEST_INFO, &info) < 0)
            return fail("INFO");
        for (unsigned int id = 0; id < 64; id++) {
            uint64_t bit = 1ull << id;
            if ((info.peers & bit) && !(known & bit)) {
                printf("shm-peer-watch: peer %u joined\n", id);
                joined |= bit;
            } else if (!(info.peers & bit) && (known & bit)) {
                printf("shm-peer-watch: peer %u left\n", id);
                left |= bit;
            }
        }
        fflush(stdout);
        known = info.peers;
    }
    for (size_t i = 0; i < SLICE_BYTES / 4; i++) {
        if (slice[i] != pattern_word(own, i)) {
            fprintf(stderr, "shm-peer-watch: FAIL word %zu of peer %u's slice changed\n", i, own);
            return 1;
        }
    }
    printf("shm-peer-watch: OK, own %u KiB intact after the peer left\n", SLICE_BYTES >> 10);
    return 0;
}
