/* MSI-X (PCI Local Bus 3.0 section 6.8.2) for a pci_device: the capability in config space
 * and the vector table and pending bit array (PBA) in a BAR of their own:
 *
 *   BAR offset 0x000: table, 16 bytes per vector: address low, address high, data, vector
 *                     control (bit 0 = mask; reserved bits read 0). Vectors start masked.
 *   BAR offset 0x800: PBA, one bit per vector, read-only, 64-bit words.
 *
 * Table accesses must be 32-bit and dword aligned, or 64-bit and qword aligned (handled as
 * two dwords); PBA reads 32- or 64-bit and naturally aligned. Anything else (other widths,
 * misaligned, between the table end and the PBA, past the PBA, PBA writes) is ignored, reads
 * return 0, and msix->bad_accesses counts it.
 *
 * A vector is deliverable while MSI-X is enabled (message control bit 15), the function mask
 * (bit 14) is clear and the vector's own mask bit is clear. The bus master bit is not
 * checked. The ops bring deliverability to the VMM:
 * - becoming deliverable: if the vector is pending (its PBA bit, or ops->poll finds an
 *   interrupt that arrived while masked) it is delivered once with fire() and its pending bit
 *   cleared; then unmask() installs the vector's message (KVM: GSI route + irqfd).
 * - message written while deliverable: unmask() again with the new message.
 * - no longer deliverable: mask() (KVM: detach the irqfd).
 * - guest reads the PBA: every vector that is not unmasked at the VMM is polled, and a
 *   poll() that returns true sets its pending bit (or fires at once if it is deliverable).
 *
 * Locking: struct msix has its own mutex, third in the lock order of devices/pci.h; every op
 * is called with it held, so ops must not call msix_* functions.
 */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/pci.h"

#define MSIX_CAP_ID        0x11
#define MSIX_CAP_LEN       12
#define MSIX_MAX_VECTORS   128
#define MSIX_BAR_SIZE      0x1000
#define MSIX_TABLE_OFFSET  0x000
#define MSIX_PBA_OFFSET    0x800
#define MSIX_ENTRY_SIZE    16
#define MSIX_ENTRY_ADDR_LO 0
#define MSIX_ENTRY_ADDR_HI 4
#define MSIX_ENTRY_DATA    8
#define MSIX_ENTRY_CTRL    12
#define MSIX_ENTRY_MASKED  0x1

/* Capability registers, relative to the capability's config offset. */
#define MSIX_CAP_CONTROL    2 /* 16 bits: table size - 1 (10:0), function mask, enable */
#define MSIX_CAP_TABLE      4 /* table offset | BIR */
#define MSIX_CAP_PBA        8 /* PBA offset | BIR */
#define MSIX_CONTROL_FMASK  0x4000
#define MSIX_CONTROL_ENABLE 0x8000

/* Supplied by the device or VMM; ctx is the pointer given to msix_init(). All are called with
 * the msix lock held, on the thread that caused the change (a vCPU writing the table,
 * message control or reading the PBA; the thread calling msix_notify(), msix_refresh() or
 * msix_destroy()). */
struct msix_ops {
    /* The vector is deliverable with this message: install it (KVM: set the GSI route to
     * addr/data and attach the vector's irqfd). Called again with the new message when the
     * guest changes it while deliverable, so it must also update an installed route.
     * Returns 0 or -errno; on failure the VMM must leave the vector unrouted, the vector is
     * then treated as masked at the VMM (mask() is not called) and unmask is retried on the
     * next change that concerns it. Required. */
    int (*unmask)(void *ctx, uint16_t vector, uint64_t addr, uint32_t data);
    /* The vector stopped being deliverable: remove what unmask() installed (KVM: detach the
     * irqfd, so its eventfd accumulates). Only called after a successful unmask(). Required. */
    void (*mask)(void *ctx, uint16_t vector);
    /* Consumes an interrupt that arrived for the vector while it was masked, without
     * blocking (KVM: read the vector's eventfd non-blocking). Returns true if one was
     * pending. Only called while the vector is not unmasked at the VMM. Optional. */
    bool (*poll)(void *ctx, uint16_t vector);
    /* Delivers a message now (KVM_SIGNAL_MSI). Required. */
    void (*fire)(void *ctx, uint64_t addr, uint32_t data);
};

struct msix_vector {
    uint64_t addr;
    uint32_t data;
    uint32_t ctrl;
    bool pending; /* PBA bit */
    bool active;  /* unmask() succeeded and mask() has not been called since */
};

struct msix {
    pthread_mutex_t lock;
    struct pci_device *pci;
    const struct msix_ops *ops;
    void *ctx;
    uint16_t nvectors;
    uint8_t bar;
    uint8_t cap; /* config offset of the capability */
    bool enabled;
    bool function_masked;
    struct msix_vector vectors[MSIX_MAX_VECTORS];
    atomic_uint_fast64_t bad_accesses;    /* ignored BAR accesses, see the top of the file */
    atomic_uint_fast64_t unmask_failures; /* unmask() errors (the first is logged) */
};

/* Adds the MSI-X capability and BAR bar (32-bit memory, MSIX_BAR_SIZE bytes, io handled
 * here) to pci, which must not be on a bus yet. nvectors is 1..MSIX_MAX_VECTORS. The device
 * must forward its config_written hook to msix_config_written(). Returns 0, -EINVAL, or the
 * error of pci_device_add_bar()/pci_device_add_capability() (the pci_device is then left
 * half set up: destroy it). */
int msix_init(struct msix *msix, struct pci_device *pci, unsigned bar, unsigned nvectors,
              const struct msix_ops *ops, void *ctx);

/* Calls mask() for every vector unmasked at the VMM, then releases the lock. Call after the
 * pci_device was removed from its bus (no guest access can reach the table any more). */
void msix_destroy(struct msix *msix);

/* Tells MSI-X about a guest config write; acts on writes touching the message control
 * register. Call it only from the device's pci config_written hook (the pci_device lock is
 * held there). */
void msix_config_written(struct msix *msix, uint32_t offset, uint32_t size);

/* Raises vector from the VMM side: fire() if it is deliverable, else sets its pending bit
 * (delivered when it is unmasked). Out-of-range vectors are ignored. Any thread. */
void msix_notify(struct msix *msix, uint16_t vector);

/* Calls unmask() again for every deliverable vector, e.g. after the device changed the
 * interrupt source (eventfd) behind the vectors. Any thread. */
void msix_refresh(struct msix *msix);

/* For tests and diagnostics. */
bool msix_is_deliverable(struct msix *msix, uint16_t vector);
bool msix_is_pending(struct msix *msix, uint16_t vector);
uint64_t msix_bad_accesses(struct msix *msix);
