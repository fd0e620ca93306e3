/* The guest's side of PCI for unit tests: configuration mechanism #1 through the port I/O
 * bus, exactly as the exit dispatcher would hand a guest's in/out instructions to it.
 * Header-only: every tests/unit/test_*.c is its own executable. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "devices/bus.h"

#define PCI_GUEST_CONF1(bus, slot, fn, reg)                                                        \
    (0x80000000u | (uint32_t)(bus) << 16 | (uint32_t)(slot) << 11 | (uint32_t)(fn) << 8 |          \
     ((uint32_t)(reg)&0xFC))

static inline void pci_guest_latch(struct bus *pio, uint32_t address)
{
    bus_access(pio, 0xCF8, &address, 4, true);
}

/* A size-byte read at any offset of the dword, through 0xCFC + (reg & 3). */
static inline uint32_t pci_guest_read_fn(struct bus *pio, unsigned busnr, unsigned slot,
                                         unsigned fn, unsigned reg, unsigned size)
{
    uint32_t v = 0;
    pci_guest_latch(pio, PCI_GUEST_CONF1(busnr, slot, fn, reg));
    bus_access(pio, 0xCFC + (reg & 3), &v, size, false);
    if (size < 4)
        v &= (1u << (8 * size)) - 1;
    return v;
}

static inline void pci_guest_write_fn(struct bus *pio, unsigned busnr, unsigned slot, unsigned fn,
                                      unsigned reg, unsigned size, uint32_t value)
{
    pci_guest_latch(pio, PCI_GUEST_CONF1(busnr, slot, fn, reg));
    bus_access(pio, 0xCFC + (reg & 3), &value, size, true);
}

static inline uint32_t pci_guest_read(struct bus *pio, unsigned slot, unsigned reg, unsigned size)
{
    return pci_guest_read_fn(pio, 0, slot, 0, reg, size);
}

static inline void pci_guest_write(struct bus *pio, unsigned slot, unsigned reg, unsigned size,
                                   uint32_t value)
{
    pci_guest_write_fn(pio, 0, slot, 0, reg, size, value);
}

/* MMIO or port accesses the way a vCPU exit would deliver them. */
static inline uint32_t guest_read32(struct bus *b, uint64_t addr)
{
    uint32_t v = 0;
    bus_access(b, addr, &v, 4, false);
    return v;
}

static inline bool guest_write32(struct bus *b, uint64_t addr, uint32_t v)
{
    return bus_access(b, addr, &v, 4, true);
}

/* Sizes a BAR the way Linux does (write all ones, read, restore) and returns what read back. */
static inline uint32_t pci_guest_size_bar(struct bus *pio, unsigned slot, unsigned bar)
{
    unsigned reg = 0x10 + 4 * bar;
    uint32_t old = pci_guest_read(pio, slot, reg, 4);
    pci_guest_write(pio, slot, reg, 4, 0xFFFFFFFFu);
    uint32_t mask = pci_guest_read(pio, slot, reg, 4);
    pci_guest_write(pio, slot, reg, 4, old);
    return mask;
}

/* A small deterministic PRNG (xorshift64*), so fuzz-like tests are reproducible. */
static inline uint64_t test_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Dull;
}
