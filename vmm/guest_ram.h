/* Guest physical memory: one host mapping, split around the 32-bit PCI hole.
 *   [0, low_size)              host[0, low_size)
 *   [4 GiB, 4 GiB + high_size) host[low_size, size)
 * The hole [PCI_HOLE_START, 4 GiB) holds PCI BARs, the IOAPIC and the local APIC. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define PCI_HOLE_START 0xC0000000ull
#define HIGH_RAM_START 0x100000000ull

struct guest_ram {
    uint8_t *host;
    uint64_t size;      /* total guest RAM */
    uint64_t low_size;  /* RAM below the PCI hole */
    uint64_t high_size; /* RAM from 4 GiB up */
};

/* Maps size bytes of anonymous memory. Returns 0 or -errno. */
int guest_ram_init(struct guest_ram *ram, uint64_t size);
void guest_ram_destroy(struct guest_ram *ram);

/* Host pointer for [gpa, gpa+len), or NULL if any part of it is not RAM. */
void *guest_ram_ptr(const struct guest_ram *ram, uint64_t gpa, uint64_t len);

/* The e820 map the guest is given: low RAM less the legacy area, the BIOS area where
 * the MP table lives (reserved), RAM above 1 MiB, RAM above 4 GiB. */
struct e820_range {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
};
#define E820_TYPE_RAM      1
#define E820_TYPE_RESERVED 2
#define E820_MAX_RANGES    8
size_t guest_ram_e820(const struct guest_ram *ram, struct e820_range *ranges, size_t max);
