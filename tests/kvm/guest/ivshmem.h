/* The ivshmem device as the tiny guests use it; its registers are abi/ivshmem_regs.h. */
#pragma once

#include "abi/ivshmem_regs.h"
#include "tiny.h"

struct ivshmem {
    int slot;
    uint64_t regs;     /* BAR0 */
    uint64_t msix;     /* BAR1 */
    uint64_t shm;      /* BAR2 */
    uint64_t shm_size; /* from tiny.shm=SIZE */
    uint32_t own_id;
};

/* Finds the device and reads its BARs as the VMM assigned them (it also enabled decode).
 * Fails the test when there is no device or BAR2 lies outside the guest's page tables. */
void ivshmem_find(struct ivshmem *dev);
/* Points MSI-X vector 0 at this CPU's x2APIC with TINY_IRQ_VECTOR and enables MSI-X. */
void ivshmem_enable_msix(const struct ivshmem *dev);

/* The start of BAR2 is a control block the two guests of a pair meet in; the rest is theirs.
 * Each field has its own cache line, so the two sides never write the same line. */
#define PAIR_READY_MAGIC 0x74696e7900000000ull /* "tiny" in the high half, peer ID low */
struct pair_control {
    volatile uint64_t ready[2][8]; /* [role][0]: PAIR_READY_MAGIC | peer ID once set up */
    volatile uint64_t head[8];     /* [0]: chunks the writer published */
    volatile uint64_t tail[8];     /* [0]: chunks the reader consumed */
};
#define PAIR_DATA_OFFSET 0x10000ull

/* Announces this side (role 0 or 1) and waits, at most timeout_s seconds, until the other
 * side has; returns the other side's peer ID. */
uint32_t pair_meet(const struct ivshmem *dev, unsigned role, uint64_t tsc_hz, uint64_t timeout_s);
