#include "vmm/shm_device.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "common/log.h"
#include "vmm/irq_routing.h"

/* The ivshmem ops run with the device's locks held and must not block: each is one
 * ioctl. Errors are returned to the device, which logs and leaves the mapping absent. */

static int shm_map_memory(void *ctx, unsigned bar, uint64_t gpa, void *host, uint64_t size,
                          bool map)
{
    struct shm_device *shm = ctx;
    bool status_page = bar == IVSHMEM_BAR_STATUS;
    struct kvm_userspace_memory_region region = {
        .slot = shm->memory_slot + status_page,
        /* The guest reads the status page without exiting; its writes must not land. */
        .flags = status_page ? KVM_MEM_READONLY : 0,
        .guest_phys_addr = gpa,
        .memory_size = map ? size : 0,
        .userspace_addr = (uintptr_t)host,
    };
    if (ioctl(shm->machine.vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
        int err = errno;
        /* The guest chose the address (it may lie beyond what the CPU can address): the
         * device reports the failure as a warning, so this detail is for --verbose. */
        log_debug("KVM_SET_USER_MEMORY_REGION slot %u (%s BAR%u, %llu KiB at 0x%llx): %s",
                  region.slot, map ? "map" : "unmap", bar, (unsigned long long)(size >> 10),
                  (unsigned long long)gpa, strerror(err));
        return -err;
    }
    return 0;
}

static int shm_bind_doorbell(void *ctx, bool pio, uint64_t addr, uint32_t datamatch, int eventfd,
                             bool bind)
{
    struct shm_device *shm = ctx;
    struct kvm_ioeventfd ioeventfd = {
        .datamatch = datamatch,
        .addr = addr,
        .len = 4,
        .fd = eventfd,
        .flags = KVM_IOEVENTFD_FLAG_DATAMATCH | (pio ? KVM_IOEVENTFD_FLAG_PIO : 0) |
                 (bind ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
    };
    if (ioctl(shm->machine.vm_fd, KVM_IOEVENTFD, &ioeventfd) < 0) {
        int err = errno;
        log_error("KVM_IOEVENTFD %s %s 0x%llx datamatch 0x%x fd %d: %s",
                  bind ? "assign" : "deassign", pio ? "port" : "address", (unsigned long long)addr,
                  datamatch, eventfd, strerror(err));
        return -err;
    }
    return 0;
}

static int shm_irq_route(void *ctx, uint16_t vector, uint64_t addr, uint32_t data, int eventfd)
{
    struct shm_device *shm = ctx;
    if (shm->vector_gsi[vector] == 0) {
        int gsi = irq_routing_alloc_msi(shm->machine.irq_routing);
        if (gsi < 0) {
            log_error("no free GSI for ivshmem vector %u", vector);
            return gsi;
        }
        shm->vector_gsi[vector] = gsi;
    }
    int gsi = shm->vector_gsi[vector];
    int ret = irq_routing_set_msi(shm->machine.irq_routing, gsi, addr, data);
    if (ret)
        return ret;
    if (shm->irqfd_attached[vector])
        return 0; /* a new message for an attached irqfd is only a route change */
    struct kvm_irqfd irqfd = {.fd = (uint32_t)eventfd, .gsi = (uint32_t)gsi};
    if (ioctl(shm->machine.vm_fd, KVM_IRQFD, &irqfd) < 0) {
        int err = errno;
        log_error("KVM_IRQFD assign fd %d to GSI %d (vector %u): %s", eventfd, gsi, vector,
                  strerror(err));
        return -err;
    }
    shm->irqfd_attached[vector] = true;
    return 0;
}

static void shm_irq_unroute(void *ctx, uint16_t vector, int eventfd)
{
    struct shm_device *shm = ctx;
    if (!shm->irqfd_attached[vector])
        return;
    struct kvm_irqfd irqfd = {
        .fd = (uint32_t)eventfd,
        .gsi = (uint32_t)shm->vector_gsi[vector],
        .flags = KVM_IRQFD_FLAG_DEASSIGN,
    };
    if (ioctl(shm->machine.vm_fd, KVM_IRQFD, &irqfd) < 0)
        log_error("KVM_IRQFD deassign fd %d from GSI %d (vector %u): %s", eventfd,
                  shm->vector_gsi[vector], vector, strerror(errno));
    /* The GSI stays reserved for this vector: the next unmask reuses it. */
    shm->irqfd_attached[vector] = false;
}

static void shm_irq_fire(void *ctx, uint64_t addr, uint32_t data)
{
    struct shm_device *shm = ctx;
    struct kvm_msi msi = {
        .address_lo = (uint32_t)addr,
        .address_hi = (uint32_t)(addr >> 32),
        .data = data,
    };
    if (ioctl(shm->machine.vm_fd, KVM_SIGNAL_MSI, &msi) < 0)
        log_error("KVM_SIGNAL_MSI 0x%llx/0x%x: %s", (unsigned long long)addr, data,
                  strerror(errno));
}

static const struct ivshmem_ops shm_ivshmem_ops = {
    .map_memory = shm_map_memory,
    .bind_doorbell = shm_bind_doorbell,
    .irq_route = shm_irq_route,
    .irq_unroute = shm_irq_unroute,
    .irq_fire = shm_irq_fire,
};

static void shm_peer_joined(void *ctx, unsigned int id, int *fds, unsigned int nfds)
{
    struct shm_device *shm = ctx;
    int ret = ivshmem_peer_add(&shm->ivshmem, id, fds, nfds);
    if (ret)
        log_warn("shm group %s: peer %u joined but cannot be added: %s", shm->group.spec.name, id,
                 strerror(-ret));
    else
        log_debug("shm group %s: peer %u joined", shm->group.spec.name, id);
}

static void shm_peer_left(void *ctx, unsigned int id)
{
    struct shm_device *shm = ctx;
    if (ivshmem_peer_remove(&shm->ivshmem, id) == 0)
        log_debug("shm group %s: peer %u left", shm->group.spec.name, id);
}

static void shm_broker_lost(void *ctx)
{
    struct shm_device *shm = ctx;
    log_warn("shm group %s: lost the broker; keeping the memory and the peers known so far",
             shm->group.spec.name);
}

static void shm_thread_started(void *ctx)
{
    struct shm_device *shm = ctx;
    if (shm->machine.thread_started)
        shm->machine.thread_started(shm->machine.ctx);
}

static const struct shm_group_events shm_group_events = {
    .thread_started = shm_thread_started,
    .peer_joined = shm_peer_joined,
    .peer_left = shm_peer_left,
    .broker_lost = shm_broker_lost,
};

int shm_device_create(struct shm_device *shm, const struct shm_machine *machine,
                      const struct shm_spec *spec, unsigned int memory_slot)
{
    memset(shm, 0, sizeof(*shm));
    shm->machine = *machine;
    shm->memory_slot = memory_slot;

    char why[256];
    int ret = shm_group_join(&shm->group, spec, why, sizeof(why));
    if (ret) {
        log_error("--shm=%s: %s", spec->name, why);
        return ret;
    }
    ret = ivshmem_init(&shm->ivshmem, machine->pci, shm->group.mem, shm->group.mem_size,
                       shm->group.vectors, &shm_ivshmem_ops, shm);
    if (ret) {
        log_error("--shm=%s: adding the ivshmem device to the PCI bus: %s", spec->name,
                  strerror(-ret));
        return ret;
    }
    shm->ivshmem_ready = true;

    /* The device owns our eventfds from here on, whatever set_own returns. */
    int own_fds[SHM_MAX_VECTORS];
    unsigned int own_count = shm_group_take_own_fds(&shm->group, own_fds);
    ret = ivshmem_set_own(&shm->ivshmem, shm->group.id, own_fds, own_count);
    if (ret) {
        log_error("--shm=%s: setting peer ID %u: %s", spec->name, shm->group.id, strerror(-ret));
        return ret;
    }
    if (shm->group.portio_mem) {
        ret = portio_init(&shm->portio, machine->pci, shm->group.portio_mem, shm->group.id);
        if (ret) {
            log_error("--shm=%s: adding the port I/O channel to the PCI bus: %s", spec->name,
                      strerror(-ret));
            return ret;
        }
        shm->portio_ready = true;
    }
    ret = shm_group_start(&shm->group, &shm_group_events, shm);
    if (ret) {
        log_error("--shm=%s: following the group's peers: %s", spec->name, strerror(-ret));
        return ret;
    }
    log_debug("shm group %s: peer ID %u, %llu KiB, %u vectors%s", spec->name, shm->group.id,
              (unsigned long long)(shm->group.mem_size >> 10), shm->group.vectors,
              shm->group.spawned_broker ? ", started its broker" : "");
    return 0;
}

void shm_device_destroy(struct shm_device *shm)
{
    /* The group's thread calls into the device: stop it first. */
    shm_group_leave(&shm->group);
    if (shm->portio_ready) {
        portio_destroy(&shm->portio);
        shm->portio_ready = false;
    }
    if (shm->ivshmem_ready) {
        ivshmem_destroy(&shm->ivshmem);
        shm->ivshmem_ready = false;
    }
}
