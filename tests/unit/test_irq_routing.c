/* The GSI routing table minivmm hands to KVM_SET_GSI_ROUTING: since that ioctl replaces
 * the whole table, losing the irqchip's default routes would silence the UART and timer. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "vmm/irq_routing.h"

static const struct kvm_irq_routing_entry *find_entry(const struct kvm_irq_routing *table,
                                                      uint32_t gsi, uint32_t type, uint32_t irqchip)
{
    for (uint32_t i = 0; i < table->nr; i++) {
        const struct kvm_irq_routing_entry *e = &table->entries[i];
        if (e->gsi == gsi && e->type == type &&
            (type != KVM_IRQ_ROUTING_IRQCHIP || e->u.irqchip.irqchip == irqchip))
            return e;
    }
    return NULL;
}

static void test_default_routes_kept(void **state)
{
    (void)state;
    struct irq_routing routing;
    irq_routing_init(&routing, -1);
    struct kvm_irq_routing *table = irq_routing_build(&routing);
    assert_non_null(table);
    assert_int_equal(table->nr, 16 + 24);
    for (uint32_t gsi = 0; gsi < 24; gsi++) {
        const struct kvm_irq_routing_entry *e =
            find_entry(table, gsi, KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQCHIP_IOAPIC);
        assert_non_null(e);
        assert_int_equal(e->u.irqchip.pin, gsi);
    }
    const struct kvm_irq_routing_entry *com1 =
        find_entry(table, 4, KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQCHIP_PIC_MASTER);
    assert_non_null(com1);
    assert_int_equal(com1->u.irqchip.pin, 4);
    const struct kvm_irq_routing_entry *rtc =
        find_entry(table, 8, KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQCHIP_PIC_SLAVE);
    assert_non_null(rtc);
    assert_int_equal(rtc->u.irqchip.pin, 0);
    free(table);
    irq_routing_destroy(&routing);
}

static void test_msi_routes(void **state)
{
    (void)state;
    struct irq_routing routing;
    irq_routing_init(&routing, -1);
    int first = irq_routing_alloc_msi(&routing);
    int second = irq_routing_alloc_msi(&routing);
    assert_int_equal(first, IRQ_ROUTING_FIRST_MSI_GSI);
    assert_int_equal(second, IRQ_ROUTING_FIRST_MSI_GSI + 1);
    assert_int_equal(irq_routing_set_msi(&routing, second, 0xFEE01000ull, 0x4041), 0);

    struct kvm_irq_routing *table = irq_routing_build(&routing);
    assert_int_equal(table->nr, 16 + 24 + 2);
    const struct kvm_irq_routing_entry *e = find_entry(table, second, KVM_IRQ_ROUTING_MSI, 0);
    assert_non_null(e);
    assert_int_equal(e->u.msi.address_lo, 0xFEE01000u);
    assert_int_equal(e->u.msi.address_hi, 0);
    assert_int_equal(e->u.msi.data, 0x4041);
    free(table);

    /* A freed GSI leaves the table and is handed out again. */
    irq_routing_free_msi(&routing, first);
    table = irq_routing_build(&routing);
    assert_null(find_entry(table, first, KVM_IRQ_ROUTING_MSI, 0));
    free(table);
    assert_int_equal(irq_routing_alloc_msi(&routing), first);
    irq_routing_destroy(&routing);
}

static void test_bad_gsis_rejected(void **state)
{
    (void)state;
    struct irq_routing routing;
    irq_routing_init(&routing, -1);
    assert_int_equal(irq_routing_set_msi(&routing, 4, 0xFEE00000ull, 0), -EINVAL);
    assert_int_equal(irq_routing_set_msi(&routing, IRQ_ROUTING_FIRST_MSI_GSI, 0xFEE00000ull, 0),
                     -ENOENT);
    for (int i = 0; i < IRQ_ROUTING_MAX_MSI; i++)
        assert_true(irq_routing_alloc_msi(&routing) >= IRQ_ROUTING_FIRST_MSI_GSI);
    assert_int_equal(irq_routing_alloc_msi(&routing), -ENOSPC);
    irq_routing_free_msi(&routing, 3); /* not an MSI GSI: ignored */
    irq_routing_destroy(&routing);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_routes_kept),
        cmocka_unit_test(test_msi_routes),
        cmocka_unit_test(test_bad_gsis_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
