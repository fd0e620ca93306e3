/* The MSRs every vCPU starts with (vmm/boot_msrs.h): what firmware would have set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "vmm/boot_msrs.h"

static uint64_t value_of(const struct boot_msrs *msrs, uint32_t index)
{
    for (uint32_t i = 0; i < msrs->nmsrs; i++) {
        if (msrs->entries[i].index == index)
            return msrs->entries[i].data;
    }
    fail_msg("MSR 0x%x is not in the boot list", index);
    return 0;
}

static void test_kvm_sees_every_entry(void **state)
{
    (void)state;
    struct boot_msrs msrs;
    boot_msrs_fill(&msrs);
    assert_int_equal(msrs.nmsrs, BOOT_MSR_COUNT);
    /* KVM_SET_MSRS reads it as a struct kvm_msrs. */
    assert_int_equal(offsetof(struct boot_msrs, nmsrs), offsetof(struct kvm_msrs, nmsrs));
    assert_int_equal(offsetof(struct boot_msrs, entries), offsetof(struct kvm_msrs, entries));
    assert_int_equal(sizeof(msrs.entries[0]), sizeof(((struct kvm_msrs *)0)->entries[0]));
}

static void test_mtrrs_on_and_write_back(void **state)
{
    (void)state;
    struct boot_msrs msrs;
    boot_msrs_fill(&msrs);
    /* 0x806: bit 11 enables the MTRRs, type 6 (WB) everywhere no range says otherwise;
     * fixed-range MTRRs (bit 10) stay off. */
    assert_int_equal(value_of(&msrs, MSR_IA32_MTRR_DEF_TYPE), 0x806);
}

static void test_fast_strings_on(void **state)
{
    (void)state;
    struct boot_msrs msrs;
    boot_msrs_fill(&msrs);
    assert_int_equal(value_of(&msrs, MSR_IA32_MISC_ENABLE), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kvm_sees_every_entry),
        cmocka_unit_test(test_mtrrs_on_and_write_back),
        cmocka_unit_test(test_fast_strings_on),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
