/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * ivshmem_guest: user-space interface of the guest driver for the ivshmem PCI
 * device (1af4:1110, abi/ivshmem_regs.h), QEMU's and minivmm's. Included by the
 * driver (guest-kernel-module/) and by the guest programs (guest-apps/); needs
 * only <linux/types.h> and <linux/ioctl.h>.
 *
 * One character device per ivshmem device: /dev/ivshmem0, /dev/ivshmem1, ...
 * (a misc device; /sys/bus/pci/devices/<BDF>/misc/ivshmemN names the pair).
 *
 * mmap(fd, offset, length, MAP_SHARED): BAR2, the memory
 * shared with the other VMs. Requested write-back (cached): it is host RAM that
 * the peers also map cached, and x86's ordering rules for write-back memory are
 * what C11 acquire/release code expects (write-combining would not order the
 * stores). The kernel's PAT may downgrade the mapping to UC- (same ordering,
 * far slower loads): where the MTRRs make BAR2's range uncached (firmware that
 * places BAR2 below 4 GiB, as SeaBIOS does for QEMU's device), or when the
 * range is already mapped uncached through
 * /sys/bus/pci/devices/<BDF>/resource2. info.shm_memtype says what the latest
 * mmap got, and the kernel log says so once when it is not write-back. EINVAL:
 * beyond BAR2 or not MAP_SHARED. After the device is removed, old mappings
 * fault (SIGBUS).
 *
 * read(fd, &mask, 8): blocks until an interrupt vector fired, then returns the
 * 64-bit mask of the vectors that fired since this open file's previous read
 * (bit v = vector v); EAGAIN with O_NONBLOCK, EINVAL for a buffer under 8
 * bytes. Each open file has its own view: an interrupt counts for every open
 * file, and only those after open(). poll(): POLLIN while that mask is not
 * empty. Devices without MSI-X (QEMU's ivshmem-plain) have no interrupts:
 * read fails with EOPNOTSUPP and poll reports POLLERR. A removed device:
 * ENODEV, POLLHUP | POLLERR.
 *
 * Errors common to the ioctls: EFAULT (bad pointer), ENOTTY (unknown request),
 * ENODEV (the device was removed).
 */
#pragma once

#include <linux/ioctl.h>
#include <linux/types.h>

#define IVSHMEM_GUEST_MAX_VECTORS 64 /* the read() mask has 64 bits */
#define IVSHMEM_GUEST_MAX_PEER_ID 0xFFFF
#define IVSHMEM_GUEST_VECTOR_OFF  0xFFFFFFFFu

/* info.flags */
/* BAR0 has minivmm's extension (EXT_ID reads "MVP1"): peers is valid */
#define IVSHMEM_GUEST_INFO_EXT (1u << 0)
/* presence of peers cannot be known (QEMU's device): peers is 0 */
#define IVSHMEM_GUEST_INFO_PEERS_UNKNOWN (1u << 1)
/* MSI-X interrupts are set up: RING, BIND_EVENTFD, read and poll work */
#define IVSHMEM_GUEST_INFO_IRQ (1u << 2)
/* peers comes from minivmm's status page: INFO and RING read no register */
#define IVSHMEM_GUEST_INFO_STATUS_PAGE (1u << 3)
/* RING writes minivmm's doorbell port (an OUT that KVM needs not decode) */
#define IVSHMEM_GUEST_INFO_DOORBELL_PORT (1u << 4)

/* info.shm_memtype: what the page attribute table gave the latest mmap() */
#define IVSHMEM_GUEST_MEMTYPE_NONE     0 /* no mmap yet */
#define IVSHMEM_GUEST_MEMTYPE_WB       1 /* write-back: cached, like RAM */
#define IVSHMEM_GUEST_MEMTYPE_WC       2
#define IVSHMEM_GUEST_MEMTYPE_UC_MINUS 3 /* uncached, MTRRs may override */
#define IVSHMEM_GUEST_MEMTYPE_UC       4
#define IVSHMEM_GUEST_MEMTYPE_WT       5
#define IVSHMEM_GUEST_MEMTYPE_WP       6

struct ivshmem_guest_info {
    __u64 shm_size;             /* BAR2's size in bytes: the most mmap() maps */
    __u64 peers;                /* bit n: peer ID n present (own ID included), IDs 0..63 */
    __u32 flags;                /* IVSHMEM_GUEST_INFO_* */
    __u32 own_id;               /* IVPosition as read (ivshmem-plain: 0 in every VM) */
    __u32 vectors;              /* MSI-X vectors with a handler; 0: no interrupts */
    __u32 max_peers;            /* MAX_PEERS with the extension, else 0 */
    __u32 peers_changed_vector; /* PEERS_CHANGED_VECTOR, else VECTOR_OFF */
    __u32 shm_memtype;          /* IVSHMEM_GUEST_MEMTYPE_* of the latest mmap */
    __u32 reserved[2];          /* 0 */
};

/* Doorbell: interrupt peer on vector (a write of (peer << 16) | vector to
 * BAR0 + 12). The device ignores a doorbell for a vector the peer lacks.
 * EINVAL: peer > 65535 or vector > 65535; EOPNOTSUPP: the device has no
 * interrupts; ENXIO: the extension says peer (an ID below 64) is absent. */
struct ivshmem_guest_ring {
    __u32 peer;
    __u32 vector;
};

/* Signal an eventfd from vector's interrupt handler (in addition to read and
 * poll), until unbound with fd = -1 or this open file is closed. EINVAL:
 * vector >= info.vectors, or fd is not an eventfd; EBADF: fd is not open;
 * EBUSY: another open file has bound that vector; EOPNOTSUPP: no interrupts. */
struct ivshmem_guest_eventfd {
    __u32 vector;
    __s32 fd;
};

#define IVSHMEM_GUEST_IOC_MAGIC 0xB7

#define IVSHMEM_GUEST_INFO         _IOR(IVSHMEM_GUEST_IOC_MAGIC, 0x00, struct ivshmem_guest_info)
#define IVSHMEM_GUEST_RING         _IOW(IVSHMEM_GUEST_IOC_MAGIC, 0x01, struct ivshmem_guest_ring)
#define IVSHMEM_GUEST_BIND_EVENTFD _IOW(IVSHMEM_GUEST_IOC_MAGIC, 0x02, struct ivshmem_guest_eventfd)
/* Argument: a __u32 vector (< info.vectors) that the device raises whenever a
 * peer appears or disappears, or IVSHMEM_GUEST_VECTOR_OFF to stop it (minivmm's
 * PEERS_CHANGED_VECTOR; reset to off when the driver lets go of the device).
 * EOPNOTSUPP: not minivmm's device, or no interrupts; EINVAL: bad vector. */
#define IVSHMEM_GUEST_ENABLE_PEER_EVENTS _IOW(IVSHMEM_GUEST_IOC_MAGIC, 0x03, __u32)
