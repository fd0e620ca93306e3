/* The VM's GSI routing table. KVM_SET_GSI_ROUTING replaces the whole table, so the VMM
 * keeps it: the in-kernel irqchip's default routes (GSI 0-15 to the PICs and GSIs 0-23 to
 * the IOAPIC pins of the same number) plus one MSI route per interrupt source that needs
 * one (an MSI-X vector wired to an irqfd). Building the table is plain C; committing it
 * is one ioctl. */
#pragma once

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define IRQ_ROUTING_FIRST_MSI_GSI 24 /* after the IOAPIC's 24 pins */
#define IRQ_ROUTING_MAX_MSI       512

struct irq_routing {
    pthread_mutex_t lock;
    int vm_fd; /* -1 in tests: changes are kept but not committed */
    bool msi_used[IRQ_ROUTING_MAX_MSI];
    struct kvm_irq_routing_msi msi[IRQ_ROUTING_MAX_MSI];
};

void irq_routing_init(struct irq_routing *routing, int vm_fd);
void irq_routing_destroy(struct irq_routing *routing);

/* Reserves a GSI for an MSI source. Returns the GSI or -ENOSPC. */
int irq_routing_alloc_msi(struct irq_routing *routing);
void irq_routing_free_msi(struct irq_routing *routing, int gsi);

/* Points gsi at the MSI message (addr, data) and commits the table. Returns 0 or -errno. */
int irq_routing_set_msi(struct irq_routing *routing, int gsi, uint64_t addr, uint32_t data);

/* Builds the full table into a kvm_irq_routing allocated by the caller (free()) and
 * returns it, or NULL on allocation failure. Exposed for tests. */
struct kvm_irq_routing *irq_routing_build(struct irq_routing *routing);
