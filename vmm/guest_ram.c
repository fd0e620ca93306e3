#include "vmm/guest_ram.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "vmm/layout.h"

static void guest_ram_split(struct guest_ram *ram, uint64_t size)
{
    ram->size = size;
    ram->low_size = size < PCI_HOLE_START ? size : PCI_HOLE_START;
    ram->high_size = size - ram->low_size;
}

int guest_ram_init(struct guest_ram *ram, uint64_t size)
{
    memset(ram, 0, sizeof(*ram));
    /* MAP_NORESERVE: the guest touches only what it uses; the rest costs nothing. */
    void *host = mmap(NULL, size, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (host == MAP_FAILED)
        return -errno;
    /* Merging guest pages is not worth the scanning cost for short-lived VMs, but huge
     * pages cut EPT/NPT walks: ask for them, ignore the answer (a hint only). */
    (void)madvise(host, size, MADV_HUGEPAGE);
    /* minivmm starts its broker with posix_spawn, which copies no memory; should anything
     * ever fork, the child must not share the guest's pages copy-on-write, or every store
     * the VMM or KVM makes to guest RAM afterwards would break that sharing under KVM. */
    if (madvise(host, size, MADV_DONTFORK) < 0) {
        int err = errno;
        munmap(host, size);
        return -err;
    }
    ram->host = host;
    guest_ram_split(ram, size);
    return 0;
}

void guest_ram_destroy(struct guest_ram *ram)
{
    if (ram->host)
        munmap(ram->host, ram->size);
    memset(ram, 0, sizeof(*ram));
}

void *guest_ram_ptr(const struct guest_ram *ram, uint64_t gpa, uint64_t len)
{
    if (gpa < ram->low_size) {
        if (len > ram->low_size - gpa)
            return NULL;
        return ram->host + gpa;
    }
    if (gpa >= HIGH_RAM_START && gpa - HIGH_RAM_START < ram->high_size) {
        uint64_t offset = gpa - HIGH_RAM_START;
        if (len > ram->high_size - offset)
            return NULL;
        return ram->host + ram->low_size + offset;
    }
    return NULL;
}

size_t guest_ram_e820(const struct guest_ram *ram, struct e820_range *ranges, size_t max)
{
    struct e820_range all[E820_MAX_RANGES];
    size_t n = 0;
    all[n++] = (struct e820_range){0, LAYOUT_EBDA_START, E820_TYPE_RAM};
    all[n++] = (struct e820_range){LAYOUT_BIOS_START, LAYOUT_HIGH_MEMORY - LAYOUT_BIOS_START,
                                   E820_TYPE_RESERVED};
    if (ram->low_size > LAYOUT_HIGH_MEMORY)
        all[n++] = (struct e820_range){LAYOUT_HIGH_MEMORY, ram->low_size - LAYOUT_HIGH_MEMORY,
                                       E820_TYPE_RAM};
    if (ram->high_size)
        all[n++] = (struct e820_range){HIGH_RAM_START, ram->high_size, E820_TYPE_RAM};
    if (n > max)
        n = max;
    memcpy(ranges, all, n * sizeof(*ranges));
    return n;
}
