/* The ivshmem PCI device as a guest sees it: QEMU's ivshmem (1af4:1110 revision 1) plus
 * minivmm's extension. The one definition used by the device model (devices/ivshmem.c), the
 * guest driver (guest-kernel-module/) and the guest programs (guest-apps/). What each
 * register does is specified in docs/ivshmem.md.
 *
 * Usable from the kernel and from user space: only <linux/types.h>, values as plain macros. */
#pragma once

#include <linux/types.h>

/* PCI identity. */
#define IVSHMEM_VENDOR_ID           0x1af4
#define IVSHMEM_DEVICE_ID           0x1110
#define IVSHMEM_REVISION            1
#define IVSHMEM_CLASS               0x050000 /* RAM controller */
#define IVSHMEM_SUBSYSTEM_VENDOR_ID 0x1af4
#define IVSHMEM_SUBSYSTEM_ID        0x1100

/* BARs. STATUS and PORT are minivmm's; FEATURES says whether they work. */
#define IVSHMEM_BAR_REGS    0 /* 32-bit memory: the registers below */
#define IVSHMEM_BAR_MSIX    1 /* 32-bit memory: MSI-X table and PBA, only with vectors */
#define IVSHMEM_BAR_SHM     2 /* 64-bit prefetchable memory: the shared memory */
#define IVSHMEM_BAR_STATUS  4 /* 32-bit memory, read-only: the status page */
#define IVSHMEM_BAR_PORT    5 /* port I/O: the doorbell port */
#define IVSHMEM_REGS_SIZE   256
#define IVSHMEM_STATUS_SIZE 0x1000ull
#define IVSHMEM_PORT_SIZE   4

/* BAR0 registers, 32-bit little endian. 0..15 are QEMU's; the rest is minivmm's extension
 * in the range QEMU reserves (reads 0 there). */
#define IVSHMEM_REG_INTRMASK             0
#define IVSHMEM_REG_INTRSTATUS           4
#define IVSHMEM_REG_IVPOSITION           8  /* ro: this VM's peer ID */
#define IVSHMEM_REG_DOORBELL             12 /* wo: IVSHMEM_DOORBELL(peer, vector) */
#define IVSHMEM_REG_EXT_ID               16 /* ro: IVSHMEM_EXT_SIGNATURE */
#define IVSHMEM_REG_PEERS_LO             20 /* ro: presence of peer IDs 0..31 */
#define IVSHMEM_REG_PEERS_HI             24 /* ro: presence of peer IDs 32..63 */
#define IVSHMEM_REG_PEERS_CHANGED_VECTOR 28 /* rw: vector raised on a presence change */
#define IVSHMEM_REG_MAX_PEERS            32 /* ro: IVSHMEM_MAX_PEERS */
#define IVSHMEM_REG_FEATURES             36 /* ro: IVSHMEM_FEATURE_* */

#define IVSHMEM_EXT_SIGNATURE         0x4D565031u /* "MVP1" */
#define IVSHMEM_VECTOR_OFF            0xFFFFFFFFu /* PEERS_CHANGED_VECTOR: none */
#define IVSHMEM_FEATURE_STATUS_PAGE   (1u << 0)   /* BAR4 is mapped and current */
#define IVSHMEM_FEATURE_DOORBELL_PORT (1u << 1)   /* BAR5 rings doorbells */

/* A doorbell, written to BAR0 + IVSHMEM_REG_DOORBELL or out to the BAR5 port as 32 bits:
 * destination peer ID in bits 31..16, vector in 15..0. */
#define IVSHMEM_DOORBELL(peer, vector) ((__u32)(peer) << 16 | ((__u32)(vector)&0xFFFFu))

/* The status page (BAR4): little-endian __u64 fields at these byte offsets, the rest 0. */
#define IVSHMEM_STATUS_PEERS            0 /* presence bitmap, as PEERS_HI:PEERS_LO */
#define IVSHMEM_STATUS_PEERS_GENERATION 8 /* incremented after every change of PEERS */

/* Limits. */
#define IVSHMEM_MAX_VECTORS 64     /* MSI-X vectors */
#define IVSHMEM_MAX_PEERS   64     /* present at once, own ID included */
#define IVSHMEM_MAX_PEER_ID 0xFFFF /* what a doorbell can address */
