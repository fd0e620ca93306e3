#include "vmm/irq_routing.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "common/log.h"

#define PIC_PINS    8
#define ISA_IRQS    16
#define IOAPIC_PINS 24

void irq_routing_init(struct irq_routing *routing, int vm_fd)
{
    memset(routing, 0, sizeof(*routing));
    pthread_mutex_init(&routing->lock, NULL);
    routing->vm_fd = vm_fd;
}

void irq_routing_destroy(struct irq_routing *routing)
{
    pthread_mutex_destroy(&routing->lock);
}

int irq_routing_alloc_msi(struct irq_routing *routing)
{
    int gsi = -ENOSPC;
    pthread_mutex_lock(&routing->lock);
    for (int i = 0; i < IRQ_ROUTING_MAX_MSI; i++) {
        if (!routing->msi_used[i]) {
            routing->msi_used[i] = true;
            memset(&routing->msi[i], 0, sizeof(routing->msi[i]));
            gsi = IRQ_ROUTING_FIRST_MSI_GSI + i;
            break;
        }
    }
    pthread_mutex_unlock(&routing->lock);
    return gsi;
}

void irq_routing_free_msi(struct irq_routing *routing, int gsi)
{
    int index = gsi - IRQ_ROUTING_FIRST_MSI_GSI;
    if (index < 0 || index >= IRQ_ROUTING_MAX_MSI)
        return;
    pthread_mutex_lock(&routing->lock);
    routing->msi_used[index] = false;
    pthread_mutex_unlock(&routing->lock);
}

/* Caller holds the lock. */
static struct kvm_irq_routing *irq_routing_build_locked(struct irq_routing *routing)
{
    size_t max = ISA_IRQS + IOAPIC_PINS + IRQ_ROUTING_MAX_MSI;
    struct kvm_irq_routing *table =
        calloc(1, sizeof(*table) + max * sizeof(struct kvm_irq_routing_entry));
    if (!table)
        return NULL;
    uint32_t n = 0;
    for (uint32_t irq = 0; irq < ISA_IRQS; irq++) {
        table->entries[n++] = (struct kvm_irq_routing_entry){
            .gsi = irq,
            .type = KVM_IRQ_ROUTING_IRQCHIP,
            .u.irqchip = {irq < PIC_PINS ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE,
                          irq % PIC_PINS},
        };
    }
    for (uint32_t pin = 0; pin < IOAPIC_PINS; pin++)
        table->entries[n++] = (struct kvm_irq_routing_entry){
            .gsi = pin,
            .type = KVM_IRQ_ROUTING_IRQCHIP,
            .u.irqchip = {KVM_IRQCHIP_IOAPIC, pin},
        };
    for (uint32_t i = 0; i < IRQ_ROUTING_MAX_MSI; i++) {
        if (!routing->msi_used[i])
            continue;
        table->entries[n++] = (struct kvm_irq_routing_entry){
            .gsi = IRQ_ROUTING_FIRST_MSI_GSI + i,
            .type = KVM_IRQ_ROUTING_MSI,
            .u.msi = routing->msi[i],
        };
    }
    table->nr = n;
    return table;
}

struct kvm_irq_routing *irq_routing_build(struct irq_routing *routing)
{
    pthread_mutex_lock(&routing->lock);
    struct kvm_irq_routing *table = irq_routing_build_locked(routing);
    pthread_mutex_unlock(&routing->lock);
    return table;
}

int irq_routing_set_msi(struct irq_routing *routing, int gsi, uint64_t addr, uint32_t data)
{
    int index = gsi - IRQ_ROUTING_FIRST_MSI_GSI;
    if (index < 0 || index >= IRQ_ROUTING_MAX_MSI)
        return -EINVAL;
    int ret = 0;
    pthread_mutex_lock(&routing->lock);
    if (!routing->msi_used[index]) {
        ret = -ENOENT;
        goto out;
    }
    routing->msi[index] = (struct kvm_irq_routing_msi){
        .address_lo = (uint32_t)addr,
        .address_hi = (uint32_t)(addr >> 32),
        .data = data,
    };
    if (routing->vm_fd < 0)
        goto out;
    /* Committed under the lock so two vCPUs reprogramming vectors cannot install an
     * older table over a newer one. */
    struct kvm_irq_routing *table = irq_routing_build_locked(routing);
    if (!table) {
        ret = -ENOMEM;
        goto out;
    }
    if (ioctl(routing->vm_fd, KVM_SET_GSI_ROUTING, table) < 0) {
        ret = -errno;
        log_error("KVM_SET_GSI_ROUTING (%u routes, GSI %d -> MSI 0x%llx/0x%x): %s", table->nr, gsi,
                  (unsigned long long)addr, data, strerror(errno));
    }
    free(table);
out:
    pthread_mutex_unlock(&routing->lock);
    return ret;
}
