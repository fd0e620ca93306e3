/* pci-scribble: a hostile guest for one PCI function. It writes random values of random
 * widths to every offset of the function's config space and to its memory BARs (the
 * ivshmem registers, the MSI-X table and PBA), to show that nothing a guest writes
 * crashes or hangs the VMM. The guest itself may lose the device; that is its business.
 *
 * Usage: pci-scribble [--seed N] [--rounds N] BDF        e.g. pci-scribble 0000:00:01.0
 * Prints one summary line; exits 0 when every write was issued. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONFIG_SIZE   256
#define MAX_BAR_BYTES (64u << 10) /* registers and MSI-X live in the first 64 KiB */

static uint64_t rng_state;

/* xorshift64*: reproducible from --seed, which matters when a run finds a bug. */
static uint64_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

static unsigned int random_width(void)
{
    static const unsigned int widths[] = {1, 2, 4};
    return widths[rng_next() % 3];
}

/* Config space through sysfs: the kernel turns each pwrite into config cycles (0xCF8/0xCFC
 * on this machine) of the given width. */
static unsigned long scribble_config(const char *bdf, unsigned int rounds)
{
    char path[256];
    snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", bdf);
    int fd = open(path, O_RDWR);
    if (fd < 0) {
        fprintf(stderr, "pci-scribble: open %s: %s\n", path, strerror(errno));
        return 0;
    }
    unsigned long writes = 0;
    for (unsigned int round = 0; round < rounds; round++) {
        for (unsigned int offset = 0; offset < CONFIG_SIZE; offset++) {
            unsigned int width = random_width();
            if (offset % width || offset + width > CONFIG_SIZE)
                width = 1;
            uint32_t value = (uint32_t)rng_next();
            if (pwrite(fd, &value, width, offset) == (ssize_t)width)
                writes++;
        }
    }
    close(fd);
    return writes;
}

/* A BAR through sysfs's resourceN mapping: plain loads and stores, as a driver would. */
static unsigned long scribble_bar(const char *bdf, unsigned int bar, unsigned int rounds)
{
    char path[256];
    snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource%u", bdf, bar);
    int fd = open(path, O_RDWR | O_SYNC);
    if (fd < 0) {
        fprintf(stderr, "pci-scribble: open %s: %s\n", path, strerror(errno));
        return 0;
    }
    struct stat st;
    off_t size = fstat(fd, &st) == 0 ? st.st_size : 0;
    if (size <= 0) {
        fprintf(stderr, "pci-scribble: %s has no size\n", path);
        close(fd);
        return 0;
    }
    size_t len = (size_t)size < MAX_BAR_BYTES ? (size_t)size : MAX_BAR_BYTES;
    volatile uint8_t *base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (base == MAP_FAILED) {
        fprintf(stderr, "pci-scribble: mmap %s: %s\n", path, strerror(errno));
        return 0;
    }
    unsigned long writes = 0;
    for (unsigned int round = 0; round < rounds; round++) {
        for (size_t offset = 0; offset + 4 <= len && offset < 4096; offset += 4) {
            uint64_t value = rng_next();
            switch (random_width()) {
            case 1:
                base[offset + (value & 3)] = (uint8_t)value;
                break;
            case 2:
                *(volatile uint16_t *)(base + offset + (value & 2)) = (uint16_t)value;
                break;
            default:
                *(volatile uint32_t *)(base + offset) = (uint32_t)value;
                break;
            }
            (void)*(volatile uint32_t *)(base + offset);
            writes++;
        }
    }
    munmap((void *)base, len);
    return writes;
}

int main(int argc, char **argv)
{
    unsigned int rounds = 4;
    rng_state = 0x6d696e69766d6dull; /* "minivmm" */
    int arg = 1;
    for (; arg + 1 < argc && strncmp(argv[arg], "--", 2) == 0; arg += 2) {
        if (strcmp(argv[arg], "--seed") == 0)
            rng_state = strtoull(argv[arg + 1], NULL, 0) | 1;
        else if (strcmp(argv[arg], "--rounds") == 0)
            rounds = (unsigned int)strtoul(argv[arg + 1], NULL, 0);
    }
    if (arg != argc - 1) {
        fprintf(stderr, "usage: pci-scribble [--seed N] [--rounds N] BDF\n");
        return 2;
    }
    const char *bdf = argv[arg];
    /* BARs first, while they are still where firmware put them; then config space,
     * which moves and disables them; then the BARs again wherever they ended up. */
    unsigned long bar_writes = 0;
    for (unsigned int bar = 0; bar < 2; bar++)
        bar_writes += scribble_bar(bdf, bar, rounds);
    unsigned long config_writes = scribble_config(bdf, rounds);
    for (unsigned int bar = 0; bar < 2; bar++)
        bar_writes += scribble_bar(bdf, bar, rounds);
    printf("pci-scribble: %s: %lu config writes, %lu BAR writes\n", bdf, config_writes, bar_writes);
    return config_writes > 0 ? 0 : 1;
}
