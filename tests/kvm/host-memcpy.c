/* The physical limit for the shared-memory test: host memcpy bandwidth, measured in the
 * same run. Usage: host-memcpy BYTES [ROUNDS]. Copies BYTES between two buffers ROUNDS
 * times (default 5) and prints the best round as "memcpy_MBps=N" (MB = 10^6 bytes). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: host-memcpy BYTES [ROUNDS]\n");
        return 64;
    }
    char *end;
    errno = 0;
    unsigned long long bytes = strtoull(argv[1], &end, 10);
    unsigned long rounds = argc == 3 ? strtoul(argv[2], NULL, 10) : 5;
    if (errno || *end || bytes == 0 || bytes > (1ull << 34) || rounds == 0 || rounds > 1000) {
        fprintf(stderr, "host-memcpy: BYTES 1 to 16 GiB, ROUNDS 1 to 1000\n");
        return 64;
    }
    uint8_t *src = malloc(bytes), *dst = malloc(bytes);
    if (!src || !dst) {
        fprintf(stderr, "host-memcpy: malloc %llu bytes: out of memory\n", bytes);
        return 71;
    }
    /* Touch both first, so page faults are not counted as copying. */
    memset(src, 0x5a, bytes);
    memset(dst, 0, bytes);
    double best = 0;
    for (unsigned long r = 0; r < rounds; r++) {
        double start = now_s();
        memcpy(dst, src, bytes);
        double seconds = now_s() - start;
        if (best == 0 || seconds < best)
            best = seconds;
        src[r % bytes] ^= 1; /* a different copy each round, so none can be skipped */
    }
    printf("memcpy_MBps=%.1f bytes=%llu rounds=%lu\n", (double)bytes / best / 1e6, bytes, rounds);
    free(src);
    free(dst);
    return 0;
}
