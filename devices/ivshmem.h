/* ivshmem: shared memory between VMs, compatible with QEMU's ivshmem (1af4:1110 revision 1),
 * so guest drivers written for QEMU work here and a QEMU VM can share a group with minivmm
 * VMs. What the guest sees (BARs, registers, status page, doorbell port) is defined in
 * abi/ivshmem_regs.h and specified in docs/ivshmem.md.
 *
 * The device traps BAR0 and the doorbell port; the shared memory (BAR2) and the status page
 * (BAR4) are mapped by the VMM (ops->map_memory). Doorbells take the fast path through one
 * KVM ioeventfd per (present peer, vector), bound with ops->bind_doorbell; a doorbell that
 * still reaches the device writes the peer's eventfd itself. The own ID's eventfds are the
 * sources of the MSI-X vectors (ops->irq_route on unmask, ops->irq_unroute on mask).
 *
 * Threads and locking: the device has a mutex. BAR0 and BAR5 accesses (vCPU threads), PCI
 * callbacks, MSI-X ops and the peer table API (the VMM's broker client thread) all take it.
 * Every ivshmem_ops callback runs with it held, inside the lock order of devices/pci.h: ops
 * must not call back into ivshmem_*, msix_* or pci_* functions and must not block for long.
 * ivshmem_peer_add/remove/set_own may be called from any thread, concurrently with vCPUs,
 * but not from inside an op.
 */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "abi/ivshmem_regs.h"
#include "devices/msix.h"
#include "devices/pci.h"

#define IVSHMEM_MIN_SHM 0x1000ull /* the smallest shared memory (BAR2) */

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
