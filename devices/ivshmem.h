/* ivshmem: shared memory between VMs, compatible with QEMU's ivshmem (1af4:1110 revision 1,
 * QEMU's docs/specs/ivshmem-spec.rst), so guest drivers written for QEMU work here and a
 * QEMU VM can share a group with minivmm VMs.
 *
 * PCI identity: vendor 0x1af4, device 0x1110, revision 1, class 0x050000 (RAM controller),
 * subsystem 0x1af4:0x1100, no INTx (interrupt pin 0).
 *   BAR0  32-bit memory, 256 bytes: the registers below, trapped (MMIO exits).
 *   BAR1  32-bit memory, 4 KiB: MSI-X table and PBA (devices/msix.h), only when the device
 *         has vectors; with 0 vectors there is no BAR1 and no MSI-X (like ivshmem-plain).
 *   BAR2  64-bit prefetchable memory: the shared memory, a power of two in size, never
 *         trapped: the VMM maps it into the guest with ops->map_memory.
 *  -- minivmm extension (FEATURES below says which exist; QEMU's device has neither) --
 *   BAR4  32-bit memory, 4 KiB: the status page, mapped read-only (ops->map_memory), so the
 *         guest reads peer presence without a VM exit:
 *           0  u64  PEERS: the presence bitmap, as PEERS_HI:PEERS_LO read
 *           8  u64  PEERS_GENERATION: incremented after every change of PEERS
 *         the rest reads 0. Guest writes are dropped (a read-only slot exits to the VMM).
 *   BAR5  port I/O, 4 bytes: the doorbell port. A 32-bit OUT of (peer << 16) | vector is the
 *         same doorbell as BAR0 + 12, but KVM sees it decoded (no instruction to emulate).
 *         Reads return 0; other widths are ignored and counted in bad_accesses.
 *
 * BAR0 registers (little endian):
 *   off  access  name
 *   0    rw      INTRMASK: stored, no effect (revision 1 has no INTx)
 *   4    rw      INTRSTATUS: stored, no effect
 *   8    ro      IVPOSITION: this VM's peer ID (0 until ivshmem_set_own())
 *   12   wo      DOORBELL: bits 31..16 destination peer ID, 15..0 vector (all 16 bits used).
 *                Reads 0.
 *  -- minivmm extension, in the range QEMU reserves (QEMU reads 0 there) --
 *   16   ro      EXT_ID: IVSHMEM_EXT_SIGNATURE, 0x4D565031 (ASCII "MVP1" from the most
 *                significant byte down): the registers below exist. QEMU's device reads 0.
 *   20   ro      PEERS_LO: bit n set = peer ID n (0..31) is present, own ID included
 *   24   ro      PEERS_HI: the same for IDs 32..63. IDs >= 64 are valid peers (doorbells
 *                work) but appear in no bitmap.
 *   28   rw      PEERS_CHANGED_VECTOR: 0xFFFFFFFF (reset) = off. Any value may be written and
 *                reads back; while it is below the device's vector count, that MSI-X vector
 *                is raised (msix_notify: delivered, or pending if masked) whenever a peer
 *                ID appears or disappears (ivshmem_set_own/peer_add/peer_remove). Replacing
 *                a present peer's eventfds does not raise it.
 *   32   ro      MAX_PEERS: IVSHMEM_MAX_PEERS (64), the most peers present at once.
 *   36   ro      FEATURES: bit 0 the status page (BAR4) is mapped and current (clear while
 *                the VMM could not map it), bit 1 the doorbell port (BAR5).
 *   40..255      reserved: read 0, writes ignored.
 * Access widths: reads of any width (1, 2, 4, 8 bytes) at any offset return the
 * corresponding little-endian bytes of the registers they cover (reads have no side
 * effects). Writes take effect only as aligned 32-bit accesses; other writes are ignored
 * and counted in bad_accesses.
 *
 * Doorbell: a 32-bit write of (peer << 16) | vector. The fast path is a KVM ioeventfd per
 * (present peer, vector) with that datamatch at BAR0 + 12 and one at the BAR5 port, bound
 * through ops->bind_doorbell while that BAR is mapped. A write that still reaches the VMM (no
 * ioeventfd matched, or none is bound yet) is the slow path: for a present peer and a vector below
 * that peer's eventfd count it writes the 8-byte value 1 to that eventfd; otherwise it is ignored
 * and counted in doorbells_ignored. The own ID is a peer like the others (a VM may ring itself).
 *
 * Own interrupts: the own ID's eventfds, one per vector, are the interrupt sources of the
 * MSI-X vectors: a vector that the guest unmasks gets ops->irq_route(vector, message, own
 * eventfd) (KVM: GSI route + KVM_IRQFD), masking it gets ops->irq_unroute; interrupts that
 * arrive while masked stay in the eventfd and show in the PBA / are delivered on unmask.
 *
 * Threads and locking: the device has a mutex. BAR0 accesses (vCPU threads), PCI callbacks
 * (vCPU threads writing config space; the thread calling ivshmem_init/destroy), MSI-X ops
 * and the peer table API (the VMM's broker client thread) all take it. Every ivshmem_ops
 * callback is called with that mutex held (and possibly with the pci_device and msix locks
 * held, in that order before it): ops must not call back into ivshmem_*, msix_* or pci_*
 * functions, and must not block for long. ivshmem_peer_add/remove/set_own may be called from
 * any thread, concurrently with vCPUs, but not from inside an op.
 */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/msix.h"
#include "devices/pci.h"

#define IVSHMEM_VENDOR_ID           0x1af4
#define IVSHMEM_DEVICE_ID           0x1110
#define IVSHMEM_REVISION            1
#define IVSHMEM_CLASS               0x050000
#define IVSHMEM_SUBSYSTEM_VENDOR_ID 0x1af4
#define IVSHMEM_SUBSYSTEM_ID        0x1100

#define IVSHMEM_BAR_REGS    0
#define IVSHMEM_BAR_MSIX    1
#define IVSHMEM_BAR_SHM     2
#define IVSHMEM_BAR_STATUS  4
#define IVSHMEM_BAR_PORT    5
#define IVSHMEM_REGS_SIZE   256
#define IVSHMEM_STATUS_SIZE 0x1000ull
#define IVSHMEM_PORT_SIZE   4
#define IVSHMEM_MIN_SHM     0x1000ull

#define IVSHMEM_MAX_VECTORS 64
#define IVSHMEM_MAX_PEERS   64 /* present at once, own ID included */
#define IVSHMEM_MAX_PEER_ID 0xFFFF

#define IVSHMEM_REG_INTRMASK             0
#define IVSHMEM_REG_INTRSTATUS           4
#define IVSHMEM_REG_IVPOSITION           8
#define IVSHMEM_REG_DOORBELL             12
#define IVSHMEM_REG_EXT_ID               16
#define IVSHMEM_REG_PEERS_LO             20
#define IVSHMEM_REG_PEERS_HI             24
#define IVSHMEM_REG_PEERS_CHANGED_VECTOR 28
#define IVSHMEM_REG_MAX_PEERS            32
#define IVSHMEM_REG_FEATURES             36

#define IVSHMEM_FEATURE_STATUS_PAGE   (1u << 0)
#define IVSHMEM_FEATURE_DOORBELL_PORT (1u << 1)

#define IVSHMEM_STATUS_PEERS            0
#define IVSHMEM_STATUS_PEERS_GENERATION 8

#define IVSHMEM_EXT_SIGNATURE 0x4D565031u /* "MVP1" */
#define IVSHMEM_VECTOR_OFF    0xFFFFFFFFu

/* The VMM's side; ctx is the pointer given to ivshmem_init(). All are called with the
 * device mutex held (see the top of the file). Return 0 or -errno where they return int;
 * failures are logged by the device and leave that mapping/binding/route absent. */
struct ivshmem_ops {
    /* map: make [gpa, gpa+size) guest memory backed by host (KVM: a memory slot, one per
     * bar). bar is IVSHMEM_BAR_SHM (read-write) or IVSHMEM_BAR_STATUS (read-only: guest
     * writes must not reach host). !map: remove it again; only called for a bar and gpa a
     * map call succeeded for. size is the BAR size, a power of two >= 4 KiB; gpa is
     * size-aligned. Required. */
    int (*map_memory)(void *ctx, unsigned bar, uint64_t gpa, void *host, uint64_t size, bool map);
    /* bind: a 4-byte guest write of datamatch at addr signals eventfd (KVM: KVM_IOEVENTFD
     * with datamatch): a memory write at BAR0 + 12, or with pio an OUT to the BAR5 port.
     * !bind: remove that binding; only called with the exact arguments of a bind that
     * succeeded, and before that eventfd is closed. datamatch is (peer ID << 16) | vector.
     * Required. */
    int (*bind_doorbell)(void *ctx, bool pio, uint64_t addr, uint32_t datamatch, int eventfd,
                         bool bind);
    /* Install or update the route of MSI-X vector: message addr/data, source eventfd (one of
     * the own eventfds; KVM: GSI route + KVM_IRQFD). Called either when vector has no route,
     * or again with the same eventfd to change the message. On failure the vector must be
     * left without a route. Required when vectors > 0. */
    int (*irq_route)(void *ctx, uint16_t vector, uint64_t addr, uint32_t data, int eventfd);
    /* Remove the route of vector installed with eventfd (KVM: detach the irqfd; the GSI may
     * be freed or kept for reuse). Called before that eventfd is closed. Required when
     * vectors > 0. */
    void (*irq_unroute)(void *ctx, uint16_t vector, int eventfd);
    /* Deliver one MSI now (KVM_SIGNAL_MSI). Required when vectors > 0. */
    void (*irq_fire)(void *ctx, uint64_t addr, uint32_t data);
};

struct ivshmem_peer {
    bool present;
    uint16_t id;
    uint16_t nfds;
    int fds[IVSHMEM_MAX_VECTORS]; /* fds[v] is interrupted by a doorbell for vector v */
    uint64_t bound;               /* bit v: fds[v]'s doorbell is bound at bar0_base + 12 */
    uint64_t bound_pio;           /* bit v: fds[v]'s doorbell is bound at port_base */
};

struct ivshmem {
    pthread_mutex_t lock;
    struct pci_device pci;
    struct msix msix; /* used only when vectors > 0 */
    struct pci_bus *bus;
    const struct ivshmem_ops *ops;
    void *ctx;
    void *shm;
    uint64_t shm_size;
    uint16_t vectors;

    bool has_own;
    uint16_t own_id;
    struct ivshmem_peer peers[IVSHMEM_MAX_PEERS]; /* unordered; the own ID has a slot too */
    int routed_fd[IVSHMEM_MAX_VECTORS];           /* eventfd irq_route() installed, or -1 */

    bool bar0_mapped;
    uint64_t bar0_base;
    bool shm_mapped; /* map_memory succeeded at shm_base */
    uint64_t shm_base;
    bool port_mapped;
    uint64_t port_base;
    uint64_t *status;   /* the status page (IVSHMEM_STATUS_SIZE bytes, page-aligned) */
    bool status_mapped; /* map_memory succeeded at status_base */
    uint64_t status_base;

    uint32_t intrmask;
    uint32_t intrstatus;
    uint32_t peers_changed_vector;

    atomic_uint_fast64_t doorbells_slow;    /* slow-path doorbells delivered */
    atomic_uint_fast64_t doorbells_ignored; /* absent peer or vector */
    atomic_uint_fast64_t bad_accesses;      /* BAR0/BAR5 writes that are not aligned 32-bit */
};

/* Creates the device on bus: BAR0, MSI-X in BAR1 when vectors > 0, BAR2 for the shm_size
 * bytes, the status page (BAR4) and the doorbell port (BAR5) at shm (a power of two >= 4 KiB; shm
 * page-aligned, as a KVM memory slot needs; the mapping stays the caller's and must outlive the
 * device), then pci_bus_add_device(), which assigns and maps the BARs like firmware:
 * ops->map_memory is called from here, on this thread. vectors is 0..IVSHMEM_MAX_VECTORS.
 * No peers are present until ivshmem_set_own()/ivshmem_peer_add(). Returns 0, -EINVAL, or
 * the PCI layer's error (-ENOSPC: no slot or window space), with nothing left behind. */
int ivshmem_init(struct ivshmem *dev, struct pci_bus *bus, void *shm, uint64_t shm_size,
                 unsigned vectors, const struct ivshmem_ops *ops, void *ctx);

/* Unplugs the device (ops->map_memory(!map) for both BARs, bind_doorbell(!bind) for all
 * bindings,
 * irq_unroute for routed vectors) and closes every eventfd it owns. Call with the vCPUs
 * stopped and the broker client thread no longer calling in, before pci_bus_destroy(). */
void ivshmem_destroy(struct ivshmem *dev);

/* Sets this VM's ID (IVPOSITION) and its own eventfds, fds[v] for vector v (n may exceed or
 * fall short of the vector count: vectors without an eventfd never fire). The own ID becomes
 * present (bitmap, doorbells). Calling it again replaces ID and eventfds: old routes are
 * removed, old bindings unbound and old fds closed; a peer entry with the new ID is
 * replaced. The device takes ownership of the fds in every case, also when it fails
 * (they are closed then). Returns 0, -EINVAL (id > 65535, n > IVSHMEM_MAX_VECTORS, fds NULL
 * with n > 0), -EBADF (a negative fd) or -ENOSPC (IVSHMEM_MAX_PEERS present already). */
int ivshmem_set_own(struct ivshmem *dev, uint32_t id, const int *fds, unsigned n);

/* A peer connected: fds[v] interrupts it on vector v. Re-adding a present peer replaces its
 * eventfds (the old ones are unbound and closed). Doorbells are bound at once if BAR0 is
 * mapped. Takes ownership of the fds in every case (closed on failure). Returns 0, -EINVAL
 * (as for set_own, or id is the own ID), -EBADF or -ENOSPC (IVSHMEM_MAX_PEERS present). */
int ivshmem_peer_add(struct ivshmem *dev, uint32_t id, const int *fds, unsigned n);

/* A peer disconnected: unbinds its doorbells and closes its eventfds. Returns 0, -ENOENT
 * (not present) or -EINVAL (the own ID: use ivshmem_set_own to change it). */
int ivshmem_peer_remove(struct ivshmem *dev, uint32_t id);

/* Presence bitmap of IDs 0..63, as PEERS_HI:PEERS_LO read. */
uint64_t ivshmem_peers_bitmap(struct ivshmem *dev);
