/* Per-vCPU CPUID: the leaves that tell Linux its APIC ID and the CPU count must agree with
 * the MP table (APIC IDs 0..n-1, one thread per core); every other leaf passes through. */
#include <linux/kvm.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/cpuid.h"

#define HYPERVISOR_BIT   (1u << 31)
#define HTT_BIT          (1u << 28)
#define TSC_DEADLINE_BIT (1u << 24)

enum {
    LEAF_1,
    LEAF_B0,
    LEAF_B1,
    LEAF_B2,
    LEAF_1F1,
    LEAF_AMD_SIZE,
    LEAF_AMD_TOPO,
    LEAF_7,
    LEAF_COUNT
};

/* What KVM_GET_SUPPORTED_CPUID might return on a host, with values chosen so that a
 * field written from the wrong leaf or left alone is visible. */
static const struct kvm_cpuid_entry2 host_entries[LEAF_COUNT] = {
    [LEAF_1] = {.function = 1,
                .eax = 0x000906EA,
                .ebx = 0x12345678,  /* APIC ID 0x12, 0x34 logical CPUs, low half brand/clflush */
                .ecx = 0x7EFAFBFF,  /* no hypervisor or TSC-deadline bit */
                .edx = 0x0FEBFBFF}, /* no HTT */
    [LEAF_B0] = {.function = 0xB,
                 .index = 0,
                 .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
                 .eax = 1,
                 .ebx = 2,
                 .ecx = 0x100,
                 .edx = 0x77},
    [LEAF_B1] = {.function = 0xB,
                 .index = 1,
                 .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
                 .eax = 5,
                 .ebx = 24,
                 .ecx = 0x201,
                 .edx = 0x77},
    [LEAF_B2] = {.function = 0xB,
                 .index = 2,
                 .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
                 .eax = 9,
                 .ebx = 9,
                 .ecx = 9,
                 .edx = 0x77},
    [LEAF_1F1] = {.function = 0x1F,
                  .index = 1,
                  .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
                  .eax = 7,
                  .ebx = 48,
                  .ecx = 0x201,
                  .edx = 0x77},
    [LEAF_AMD_SIZE] = {.function = 0x80000008,
                       .eax = 0x00003030,
                       .ebx = 0x0100D000,
                       .ecx = 0x1234F0FF,
                       .edx = 0xABCD},
    [LEAF_AMD_TOPO] = {.function = 0x8000001E,
                       .eax = 0x55,
                       .ebx = 0x00000107, /* core 7, two threads per core */
                       .ecx = 0x00000300, /* node ID: not the vCPU's business */
                       .edx = 0x99},
    [LEAF_7] = {.function = 7,
                .index = 0,
                .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
                .eax = 2,
                .ebx = 0xF1BF2FFB,
                .ecx = 0x40417F5E,
                .edx = 0xBC000410},
};

static struct kvm_cpuid2 *cpuid_fake(void)
{
    struct kvm_cpuid2 *cpuid =
        calloc(1, sizeof(*cpuid) + LEAF_COUNT * sizeof(struct kvm_cpuid_entry2));
    assert_non_null(cpuid);
    cpuid->nent = LEAF_COUNT;
    memcpy(cpuid->entries, host_entries, sizeof(host_entries));
    return cpuid;
}

static void test_leaf_1(void **state)
{
    (void)state;
    struct kvm_cpuid2 *cpuid = cpuid_fake();
    cpuid_customize(cpuid, 3, 4);
    const struct kvm_cpuid_entry2 *e = &cpuid->entries[LEAF_1];
    assert_int_equal(e->ebx >> 24, 3);          /* initial APIC ID */
    assert_int_equal((e->ebx >> 16) & 0xFF, 4); /* logical processors */
    assert_int_equal(e->ebx & 0xFFFF, 0x5678);  /* brand index, CLFLUSH size kept */
    assert_int_equal(e->ecx, host_entries[LEAF_1].ecx | HYPERVISOR_BIT);
    assert_int_equal(e->edx, host_entries[LEAF_1].edx | HTT_BIT);
    assert_int_equal(e->eax, host_entries[LEAF_1].eax);
    free(cpuid);
}

static void test_leaf_1_single_cpu(void **state)
{
    (void)state;
    struct kvm_cpuid2 *cpuid = cpuid_fake();
    /* A host that reports HTT: one vCPU must not claim it. */
    cpuid->entries[LEAF_1].edx |= HTT_BIT;
    cpuid_customize(cpuid, 0, 1);
    const struct kvm_cpuid_entry2 *e = &cpuid->entries[LEAF_1];
    assert_int_equal(e->ebx >> 24, 0);
    assert_int_equal((e->ebx >> 16) & 0xFF, 1);
    assert_int_equal(e->edx & HTT_BIT, 0);
    assert_true(e->ecx & HYPERVISOR_BIT);
    free(cpuid);
}

static void test_leaf_b(void **state)
{
    (void)state;
    struct kvm_cpuid2 *cpuid = cpuid_fake();
    cpuid_customize(cpuid, 3, 4);

    /* Level 0, SMT: one thread per core, so no APIC ID bits to shift past. */
    const struct kvm_cpuid_entry2 *smt = &cpuid->entries[LEAF_B0];
    assert_int_equal(smt->eax & 0x1F, 0);
    assert_int_equal(smt->ebx & 0xFFFF, 1);
    assert_int_equal((smt->ecx >> 8) & 0xFF, 1); /* level type SMT */
    assert_int_equal(smt->ecx & 0xFF, 0);        /* level number */
    assert_int_equal(smt->edx, 3);               /* x2APIC ID */

    /* Level 1, core: 4 CPUs need 2 bits of APIC ID. */
    const struct kvm_cpuid_entry2 *core = &cpuid->entries[LEAF_B1];
    assert_int_equal(core->eax & 0x1F, 2);
    assert_int_equal(core->ebx & 0xFFFF, 4);
    assert_int_equal((core->ecx >> 8) & 0xFF, 2); /* level type core */
    assert_int_equal(core->ecx & 0xFF, 1);
    assert_int_equal(core->edx, 3);

    /* Anything past that is the invalid level that ends the enumeration. */
    const struct kvm_cpuid_entry2 *end = &cpuid->entries[LEAF_B2];
    assert_int_equal(end->eax, 0);
    assert_int_equal(end->ebx, 0);
    assert_int_equal((end->ecx >> 8) & 0xFF, 0);
    assert_int_equal(end->ecx & 0xFF, 2);
    assert_int_equal(end->edx, 3);

    /* Leaf 0x1F, the newer form of 0xB, says the same. */
    const struct kvm_cpuid_entry2 *v2 = &cpuid->entries[LEAF_1F1];
    assert_int_equal(v2->eax & 0x1F, 2);
    assert_int_equal(v2->ebx & 0xFFFF, 4);
    assert_int_equal(v2->edx, 3);
    free(cpuid);
}

static void test_leaf_b_shift_covers_cpus(void **state)
{
    (void)state;
    /* The core-level shift must leave room for the largest APIC ID, for every count. */
    for (unsigned int cpus = 1; cpus <= 64; cpus++) {
        struct kvm_cpuid2 *cpuid = cpuid_fake();
        cpuid_customize(cpuid, cpus - 1, cpus);
        unsigned int shift = cpuid->entries[LEAF_B1].eax & 0x1F;
        if ((1u << shift) < cpus || (shift > 0 && (1u << (shift - 1)) >= cpus))
            fail_msg("%u CPUs: shift %u is not the smallest that fits", cpus, shift);
        assert_int_equal(cpuid->entries[LEAF_B1].ebx, cpus);
        assert_int_equal(cpuid->entries[LEAF_B0].edx, cpus - 1);
        free(cpuid);
    }
}

static void test_amd_leaves(void **state)
{
    (void)state;
    struct kvm_cpuid2 *cpuid = cpuid_fake();
    cpuid_customize(cpuid, 3, 4);

    const struct kvm_cpuid_entry2 *size = &cpuid->entries[LEAF_AMD_SIZE];
    assert_int_equal((size->ecx >> 12) & 0xF, 2); /* APIC ID bits for cores */
    assert_int_equal(size->ecx & 0xFF, 3);        /* cores minus one */
    assert_int_equal(size->ecx & ~0xF0FFu, host_entries[LEAF_AMD_SIZE].ecx & ~0xF0FFu);
    assert_int_equal(size->eax, host_entries[LEAF_AMD_SIZE].eax); /* address sizes kept */
    assert_int_equal(size->ebx, host_entries[LEAF_AMD_SIZE].ebx);

    const struct kvm_cpuid_entry2 *topo = &cpuid->entries[LEAF_AMD_TOPO];
    assert_int_equal(topo->eax, 3);        /* extended APIC ID */
    assert_int_equal(topo->ebx & 0xFF, 3); /* core ID */
    assert_int_equal(topo->ecx, host_entries[LEAF_AMD_TOPO].ecx);
    free(cpuid);
}

static void test_other_leaves_untouched(void **state)
{
    (void)state;
    struct kvm_cpuid2 *cpuid = cpuid_fake();
    cpuid_customize(cpuid, 3, 4);
    assert_memory_equal(&cpuid->entries[LEAF_7], &host_entries[LEAF_7],
                        sizeof(struct kvm_cpuid_entry2));
    /* And the identity of every entry stays: function, index, flags. */
    for (size_t i = 0; i < LEAF_COUNT; i++) {
        assert_int_equal(cpuid->entries[i].function, host_entries[i].function);
        assert_int_equal(cpuid->entries[i].index, host_entries[i].index);
        assert_int_equal(cpuid->entries[i].flags, host_entries[i].flags);
    }
    assert_int_equal(cpuid->nent, LEAF_COUNT);
    free(cpuid);
}

static void test_only_nent_entries(void **state)
{
    (void)state;
    /* Entries past nent are not the vCPU's and must not be written. */
    struct kvm_cpuid2 *cpuid = cpuid_fake();
    cpuid->nent = LEAF_1 + 1;
    cpuid_customize(cpuid, 2, 2);
    assert_int_equal(cpuid->entries[LEAF_1].ebx >> 24, 2);
    assert_memory_equal(&cpuid->entries[LEAF_B0], &host_entries[LEAF_B0],
                        (LEAF_COUNT - LEAF_B0) * sizeof(struct kvm_cpuid_entry2));
    free(cpuid);
}

static void test_two_vcpus_differ_only_in_apic_id(void **state)
{
    (void)state;
    struct kvm_cpuid2 *a = cpuid_fake();
    struct kvm_cpuid2 *b = cpuid_fake();
    cpuid_customize(a, 0, 2);
    cpuid_customize(b, 1, 2);
    assert_int_equal(a->entries[LEAF_1].ebx >> 24, 0);
    assert_int_equal(b->entries[LEAF_1].ebx >> 24, 1);
    assert_int_equal(a->entries[LEAF_B1].edx, 0);
    assert_int_equal(b->entries[LEAF_B1].edx, 1);
    /* Everything else the same: the count and layout are per VM. */
    assert_int_equal(a->entries[LEAF_1].ebx & 0xFFFFFF, b->entries[LEAF_1].ebx & 0xFFFFFF);
    assert_int_equal(a->entries[LEAF_B1].eax, b->entries[LEAF_B1].eax);
    assert_int_equal(a->entries[LEAF_AMD_SIZE].ecx, b->entries[LEAF_AMD_SIZE].ecx);
    free(a);
    free(b);
}

static void test_tsc_deadline_bit_only_in_leaf_1(void **state)
{
    (void)state;
    struct kvm_cpuid2 *plain = cpuid_fake();
    struct kvm_cpuid2 *timer = cpuid_fake();
    assert_int_equal(timer->entries[LEAF_1].ecx & TSC_DEADLINE_BIT, 0);
    cpuid_enable_tsc_deadline(timer);
    assert_int_equal(timer->entries[LEAF_1].ecx, plain->entries[LEAF_1].ecx | TSC_DEADLINE_BIT);
    timer->entries[LEAF_1].ecx = plain->entries[LEAF_1].ecx;
    assert_memory_equal(plain, timer, sizeof(*plain) + LEAF_COUNT * sizeof(plain->entries[0]));
    free(plain);
    free(timer);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_leaf_1),
        cmocka_unit_test(test_leaf_1_single_cpu),
        cmocka_unit_test(test_leaf_b),
        cmocka_unit_test(test_leaf_b_shift_covers_cpus),
        cmocka_unit_test(test_amd_leaves),
        cmocka_unit_test(test_other_leaves_untouched),
        cmocka_unit_test(test_only_nent_entries),
        cmocka_unit_test(test_two_vcpus_differ_only_in_apic_id),
        cmocka_unit_test(test_tsc_deadline_bit_only_in_leaf_1),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
