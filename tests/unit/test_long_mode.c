/* The long-mode entry state: page tables walked as the MMU walks them, GDT descriptors
 * decoded bit by bit (Intel SDM vol. 3, 3.4.5 and 4.5), and the registers KVM gets. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/guest_ram.h"
#include "vmm/layout.h"
#include "vmm/long_mode.h"

#define MIB              (1ull << 20)
#define GIB              (1ull << 30)
#define PTE_P            (1ull << 0)
#define PTE_RW           (1ull << 1)
#define PTE_PS           (1ull << 7)
#define PTE_ADDR_MASK    0x000FFFFFFFFFF000ull
#define PDE_2M_ADDR_MASK 0x000FFFFFFFE00000ull

static int setup_ram(void **state)
{
    struct guest_ram *ram = malloc(sizeof(*ram));
    if (!ram || guest_ram_init(ram, 64 * MIB) != 0)
        return -1;
    /* Garbage where the tables go, so entries the writer leaves alone show up. */
    memset(ram->host, 0xA5, MIB);
    *state = ram;
    return 0;
}

static int teardown_ram(void **state)
{
    struct guest_ram *ram = *state;
    guest_ram_destroy(ram);
    free(ram);
    return 0;
}

static uint64_t read_u64(struct guest_ram *ram, uint64_t gpa)
{
    const void *p = guest_ram_ptr(ram, gpa, 8);
    assert_non_null(p);
    uint64_t value;
    memcpy(&value, p, sizeof(value));
    return value;
}

/* A 4-level walk from CR3. Returns false where the MMU would fault. */
static bool translate(struct guest_ram *ram, uint64_t cr3, uint64_t va, uint64_t *pa)
{
    uint64_t pml4e = read_u64(ram, (cr3 & PTE_ADDR_MASK) + ((va >> 39) & 511) * 8);
    if (!(pml4e & PTE_P))
        return false;
    uint64_t pdpte = read_u64(ram, (pml4e & PTE_ADDR_MASK) + ((va >> 30) & 511) * 8);
    if (!(pdpte & PTE_P))
        return false;
    /* A 1 GiB page here would also translate, but the layout promises 2 MiB pages. */
    assert_false(pdpte & PTE_PS);
    uint64_t pde = read_u64(ram, (pdpte & PTE_ADDR_MASK) + ((va >> 21) & 511) * 8);
    if (!(pde & PTE_P))
        return false;
    assert_true(pde & PTE_PS);
    /* Writable at every level, or the kernel faults writing its own data. */
    assert_true(pml4e & pdpte & pde & PTE_RW);
    *pa = (pde & PDE_2M_ADDR_MASK) | (va & (2 * MIB - 1));
    return true;
}

static void test_identity_map(void **state)
{
    struct guest_ram *ram = *state;
    assert_int_equal(long_mode_write_tables(ram), 0);
    struct kvm_sregs sregs;
    memset(&sregs, 0, sizeof(sregs));
    long_mode_set_sregs(&sregs);

    static const uint64_t addresses[] = {
        0,          0x7000,     LAYOUT_ZERO_PAGE, LAYOUT_CMDLINE, 0x100000,   0x100200,
        0x1234567,  0x1FFFFF,   0x200000,         0x3FFFFFFF,     0x40000000, 0x7FFFFFFF,
        0xBFFFFFFF, 0xC0000000, 0xFEC00000,       0xFEE00000,     0xFFFFF000, 0xFFFFFFFF,
    };
    for (size_t i = 0; i < sizeof(addresses) / sizeof(addresses[0]); i++) {
        uint64_t pa = ~0ull;
        if (!translate(ram, sregs.cr3, addresses[i], &pa))
            fail_msg("0x%llx is not mapped", (unsigned long long)addresses[i]);
        if (pa != addresses[i])
            fail_msg("0x%llx maps to 0x%llx", (unsigned long long)addresses[i],
                     (unsigned long long)pa);
    }
    /* Every 2 MiB page of the 4 GiB, at an odd offset in each. */
    for (uint64_t va = 0x1234; va < 4 * GIB; va += 2 * MIB) {
        uint64_t pa = ~0ull;
        assert_true(translate(ram, sregs.cr3, va, &pa));
        assert_int_equal(pa, va);
    }
    /* Nothing above 4 GiB: the kernel builds its own tables before it goes there. */
    uint64_t pa;
    assert_false(translate(ram, sregs.cr3, 4 * GIB, &pa));
    assert_false(translate(ram, sregs.cr3, 512 * GIB, &pa));
    assert_false(translate(ram, sregs.cr3, 0xFFFFFFFF81000000ull, &pa));
    for (uint64_t i = 1; i < 512; i++)
        assert_int_equal(read_u64(ram, LAYOUT_PML4 + i * 8), 0);
    for (uint64_t i = 4; i < 512; i++)
        assert_int_equal(read_u64(ram, LAYOUT_PDPT + i * 8), 0);
}

/* Field by field, from the descriptor's bits. */
struct descriptor {
    uint32_t base;
    uint32_t limit; /* in units of granularity */
    unsigned int type, s, dpl, p, avl, l, db, g;
};

static struct descriptor decode(uint64_t d)
{
    return (struct descriptor){
        .limit = (uint32_t)((d & 0xFFFF) | ((d >> 48) & 0xF) << 16),
        .base = (uint32_t)(((d >> 16) & 0xFFFFFF) | ((d >> 56) & 0xFF) << 24),
        .type = (d >> 40) & 0xF,
        .s = (d >> 44) & 1,
        .dpl = (d >> 45) & 3,
        .p = (d >> 47) & 1,
        .avl = (d >> 52) & 1,
        .l = (d >> 53) & 1,
        .db = (d >> 54) & 1,
        .g = (d >> 55) & 1,
    };
}

static void test_gdt(void **state)
{
    struct guest_ram *ram = *state;
    assert_int_equal(long_mode_write_tables(ram), 0);
    assert_int_equal(read_u64(ram, LAYOUT_GDT), 0); /* the null descriptor */
    assert_int_equal(read_u64(ram, LAYOUT_GDT + 8), 0);

    struct descriptor code = decode(read_u64(ram, LAYOUT_GDT + 0x10));
    assert_int_equal(code.type, 0xB); /* code, execute/read, accessed */
    assert_int_equal(code.s, 1);
    assert_int_equal(code.p, 1);
    assert_int_equal(code.dpl, 0);
    assert_int_equal(code.l, 1);  /* 64-bit code */
    assert_int_equal(code.db, 0); /* must be 0 when L is 1 */
    assert_int_equal(code.base, 0);
    assert_int_equal(code.limit, 0xFFFFF);
    assert_int_equal(code.g, 1);

    struct descriptor data = decode(read_u64(ram, LAYOUT_GDT + 0x18));
    assert_int_equal(data.type & 0x8, 0);   /* data */
    assert_int_equal(data.type & 0x2, 0x2); /* writable */
    assert_int_equal(data.s, 1);
    assert_int_equal(data.p, 1);
    assert_int_equal(data.dpl, 0);
    assert_int_equal(data.l, 0);
    assert_int_equal(data.db, 1);
    assert_int_equal(data.base, 0);
    assert_int_equal(data.limit, 0xFFFFF);
    assert_int_equal(data.g, 1); /* flat: 4 GiB */

    struct descriptor tss = decode(read_u64(ram, LAYOUT_GDT + 0x20));
    assert_int_equal(tss.s, 0);
    assert_int_equal(tss.type, 0xB); /* busy 32/64-bit TSS */
    assert_int_equal(tss.p, 1);
    assert_int_equal(tss.limit, 0x67);
}

static void test_sregs(void **state)
{
    (void)state;
    struct kvm_sregs sregs;
    memset(&sregs, 0x5A, sizeof(sregs));
    /* What KVM_GET_SREGS returned must survive where it is not long-mode state. */
    sregs.apic_base = 0xFEE00900;
    uint64_t bitmap[sizeof(sregs.interrupt_bitmap) / sizeof(sregs.interrupt_bitmap[0])];
    memcpy(bitmap, sregs.interrupt_bitmap, sizeof(bitmap));
    long_mode_set_sregs(&sregs);

    assert_int_equal(sregs.apic_base, 0xFEE00900);
    assert_memory_equal(sregs.interrupt_bitmap, bitmap, sizeof(bitmap));
    assert_int_equal(sregs.cr0 & 0x80000001, 0x80000001); /* PE and PG */
    assert_int_equal(sregs.cr4 & (1 << 5), 1 << 5);       /* PAE */
    assert_int_equal(sregs.efer & 0x500, 0x500);          /* LME and LMA */
    assert_int_equal(sregs.cr3, LAYOUT_PML4);
    assert_int_equal(sregs.gdt.base, LAYOUT_GDT);
    /* The GDT limit covers the highest selector used. */
    assert_true(sregs.gdt.limit >= BOOT_TSS_SELECTOR + 7);

    assert_int_equal(sregs.cs.selector, 0x10);
    assert_int_equal(sregs.cs.l, 1);
    assert_int_equal(sregs.cs.db, 0);
    assert_int_equal(sregs.cs.type, 0xB);
    assert_int_equal(sregs.cs.present, 1);
    assert_int_equal(sregs.cs.s, 1);
    const struct kvm_segment *data_segs[] = {&sregs.ds, &sregs.es, &sregs.fs, &sregs.gs, &sregs.ss};
    for (size_t i = 0; i < sizeof(data_segs) / sizeof(data_segs[0]); i++) {
        assert_int_equal(data_segs[i]->selector, 0x18);
        assert_int_equal(data_segs[i]->base, 0);
        assert_int_equal(data_segs[i]->limit, 0xFFFFFFFF);
        assert_int_equal(data_segs[i]->type & 0xA, 0x2); /* data, writable */
        assert_int_equal(data_segs[i]->present, 1);
        assert_int_equal(data_segs[i]->unusable, 0);
    }
    assert_int_equal(sregs.tr.selector, BOOT_TSS_SELECTOR);
    assert_int_equal(sregs.tr.present, 1);
    assert_int_equal(sregs.tr.type, 0xB);
    assert_int_equal(sregs.tr.s, 0);
}

static void test_sregs_match_gdt(void **state)
{
    /* The hidden segment state KVM loads must be what the GDT says, or the first far
     * jump or segment reload in the kernel changes the CPU mode under it. */
    struct guest_ram *ram = *state;
    assert_int_equal(long_mode_write_tables(ram), 0);
    struct kvm_sregs sregs;
    memset(&sregs, 0, sizeof(sregs));
    long_mode_set_sregs(&sregs);
    const struct kvm_segment *segs[] = {&sregs.cs, &sregs.ds, &sregs.tr};
    for (size_t i = 0; i < sizeof(segs) / sizeof(segs[0]); i++) {
        struct descriptor d = decode(read_u64(ram, sregs.gdt.base + segs[i]->selector));
        uint32_t limit = d.g ? (d.limit << 12) | 0xFFF : d.limit;
        assert_int_equal(segs[i]->base, d.base);
        assert_int_equal(segs[i]->limit, limit);
        assert_int_equal(segs[i]->type, d.type);
        assert_int_equal(segs[i]->s, d.s);
        assert_int_equal(segs[i]->present, d.p);
        assert_int_equal(segs[i]->l, d.l);
        assert_int_equal(segs[i]->db, d.db);
        assert_int_equal(segs[i]->g, d.g);
    }
}

static void test_regs(void **state)
{
    (void)state;
    struct kvm_regs regs;
    memset(&regs, 0x77, sizeof(regs));
    long_mode_set_regs(&regs, 0x100200, LAYOUT_ZERO_PAGE);
    assert_int_equal(regs.rip, 0x100200);
    assert_int_equal(regs.rsi, LAYOUT_ZERO_PAGE);
    assert_true(regs.rflags & 0x2);           /* the always-one bit */
    assert_int_equal(regs.rflags & 0x200, 0); /* interrupts off */
    /* Nothing left from before: the boot protocol passes only RSI. */
    assert_int_equal(regs.rax, 0);
    assert_int_equal(regs.rdi, 0);
    assert_int_equal(regs.rbp, 0);
    assert_int_equal(regs.r15, 0);
}

static void test_ram_too_small(void **state)
{
    (void)state;
    struct guest_ram ram;
    /* Room for the GDT but not the PML4 at 0x9000. */
    assert_int_equal(guest_ram_init(&ram, 0x8000), 0);
    assert_int_equal(long_mode_write_tables(&ram), -EINVAL);
    guest_ram_destroy(&ram);
    /* Everything but the last page directory. */
    assert_int_equal(guest_ram_init(&ram, LAYOUT_PD + 3 * 4096), 0);
    assert_int_equal(long_mode_write_tables(&ram), -EINVAL);
    guest_ram_destroy(&ram);
    /* Exactly enough. */
    assert_int_equal(guest_ram_init(&ram, LAYOUT_PD + 4 * 4096), 0);
    assert_int_equal(long_mode_write_tables(&ram), 0);
    guest_ram_destroy(&ram);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_identity_map, setup_ram, teardown_ram),
        cmocka_unit_test_setup_teardown(test_gdt, setup_ram, teardown_ram),
        cmocka_unit_test(test_sregs),
        cmocka_unit_test_setup_teardown(test_sregs_match_gdt, setup_ram, teardown_ram),
        cmocka_unit_test(test_regs),
        cmocka_unit_test(test_ram_too_small),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
