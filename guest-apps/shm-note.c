/*
 * shm-note: leaves a short text in an ivshmem device's shared memory, or waits for one, so
 * that tests can check what survives in the group's memory when VMs come and go.
 *
 *   shm-note write OFFSET TEXT          write TEXT (and a NUL) at byte OFFSET of BAR2
 *   shm-note wait OFFSET TEXT SECONDS   wait until TEXT is at OFFSET, at most SECONDS
 *
 * BAR2 is mapped through sysfs resource2 (no driver needed) of the first ivshmem device.
 * Exit status: 0 written / found; 1 not found in time or the device failed; 2 usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ivshmem_dev.h"

static int usage(void)
{
    fprintf(stderr, "usage: shm-note write OFFSET TEXT | shm-note wait OFFSET TEXT SECONDS\n");
    return 2;
}

/* Compares through volatile reads: the peer writes the memory behind the compiler's back. */
static int note_matches(const volatile char *at, const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (at[i] != text[i])
            return 0;
    return 1;
}

int main(int argc, char **argv)
{
    struct ivshmem_dev dev;
    char why[256];
    uint64_t size;
    char *end;

    if (argc < 4 || (strcmp(argv[1], "write") != 0 && strcmp(argv[1], "wait") != 0))
        return usage();
    int waiting = strcmp(argv[1], "wait") == 0;
    if (waiting != (argc == 5) || (!waiting && argc != 4))
        return usage();
    errno = 0;
    unsigned long long offset = strtoull(argv[2], &end, 0);
    if (errno || *end || end == argv[2])
        return usage();
    const char *text = argv[3];
    size_t len = strlen(text) + 1;

    if (ivshmem_dev_find(NULL, &dev, why, sizeof(why))) {
        fprintf(stderr, "shm-note: %s\n", why);
        return 1;
    }
    volatile char *shm = ivshmem_dev_map_shm(&dev, 0, &size);
    if (!shm) {
        fprintf(stderr, "shm-note: mapping BAR2 of %s: %s\n", dev.bdf, strerror(errno));
        return 1;
    }
    if (offset > size || len > size - offset) {
        fprintf(stderr, "shm-note: %zu bytes at offset %llu do not fit in %llu bytes\n", len,
                offset, (unsigned long long)size);
        return 1;
    }
    volatile char *at = shm + offset;

    if (!waiting) {
        for (size_t i = 0; i < len; i++)
            at[i] = text[i];
        printf("shm-note: wrote \"%s\" at %llu\n", text, offset);
        return 0;
    }

    errno = 0;
    double seconds = strtod(argv[4], &end);
    if (errno || *end || seconds < 0)
        return usage();
    struct timespec start, t;
    clock_gettime(CLOCK_MONOTONIC, &start);
    printf("shm-note: waiting for \"%s\" at %llu\n", text, offset);
    fflush(stdout);
    for (;;) {
        if (note_matches(at, text, len)) {
            printf("shm-note: found \"%s\" at %llu\n", text, offset);
            return 0;
        }
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((double)(t.tv_sec - start.tv_sec) + (double)(t.tv_nsec - start.tv_nsec) * 1e-9 >
            seconds) {
            printf("shm-note: FAIL \"%s\" not at %llu after %.0f s\n", text, offset, seconds);
            return 1;
        }
        usleep(20000); /* 50 Hz, like shm-ring's peer wait: see the note there */
    }
}
