/* One --shm: the VM's membership in a shared-memory group (vmm/shm_group.h) wired to an
 * ivshmem device (devices/ivshmem.h) through KVM: BAR2 is a KVM memory slot over the
 * group's memory, doorbells are KVM ioeventfds on the peers' eventfds, and the VM's own
 * eventfds are KVM irqfds on MSI routes, so the data path never wakes this process. */
#pragma once

#include <stdbool.h>

#include "devices/ivshmem.h"
#include "devices/portio.h"
#include "vmm/shm_group.h"

struct irq_routing;
struct pci_bus;

/* What the device needs of its VM, and nothing more. */
struct shm_machine {
    int vm_fd;                       /* memory slots, ioeventfds, irqfds, MSIs */
    struct irq_routing *irq_routing; /* a GSI per MSI-X vector */
    struct pci_bus *pci;             /* where the functions are plugged */
    /* First thing in the group's thread, before any event: where the VMM sandboxes it. */
    void (*thread_started)(void *ctx);
    void *ctx;
};

struct shm_device {
    struct shm_machine machine;
    unsigned int memory_slot;
    struct shm_group group;
    struct ivshmem ivshmem;
    bool ivshmem_ready;
    struct portio portio; /* with portio=on: the port I/O channel's PCI function */
    bool portio_ready;
    int vector_gsi[IVSHMEM_MAX_VECTORS]; /* 0: no GSI allocated yet */
    bool irqfd_attached[IVSHMEM_MAX_VECTORS];
};

/* memory_slot and memory_slot + 1 are the KVM memory slots of BAR2 and the status page.
 * Joins the group (starting its broker if needed), plugs the device into the machine's
 * PCI bus and starts following the group's peers. Returns 0, or -errno after logging why
 * (-EUSERS: the group is full). */
int shm_device_create(struct shm_device *shm, const struct shm_machine *machine,
                      const struct shm_spec *spec, unsigned int memory_slot);

/* Leaves the group and unplugs the device. Call with the vCPUs stopped. Safe after a
 * failed create. */
void shm_device_destroy(struct shm_device *shm);
