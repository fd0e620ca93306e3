/* vcpu_stats: what the vCPU loop counts per exit, and what --stats and --verbose read. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/vcpu_stats.h"

static void exit_with(struct vcpu_stats *stats, uint32_t reason, uint32_t io_count)
{
    struct kvm_run run;
    memset(&run, 0, sizeof(run));
    run.exit_reason = reason;
    if (reason == KVM_EXIT_IO)
        run.io.count = io_count;
    vcpu_stats_exit_begin(stats, &run);
    vcpu_stats_exit_end(stats, reason);
}

static void test_counts_each_kind_of_exit(void **state)
{
    (void)state;
    struct vcpu_stats stats;
    vcpu_stats_init(&stats, false);
    exit_with(&stats, KVM_EXIT_IO, 1);
    exit_with(&stats, KVM_EXIT_IO, 512); /* one rep outsb exit: 512 port accesses */
    exit_with(&stats, KVM_EXIT_MMIO, 0);
    exit_with(&stats, KVM_EXIT_HLT, 0); /* neither I/O nor MMIO: not counted */

    struct vmm_exit_counts sum = {0, 0};
    vcpu_stats_add_counts(&stats, &sum);
    assert_int_equal(sum.io, 2);
    assert_int_equal(sum.mmio, 1);
    assert_int_equal(stats.io_items, 513);
    /* Untimed: the clock stays off the exit path. */
    assert_int_equal(stats.io_vmm_ns, 0);
    assert_int_equal(stats.mmio_vmm_ns, 0);
}

static void test_sums_over_vcpus(void **state)
{
    (void)state;
    struct vcpu_stats a, b;
    vcpu_stats_init(&a, false);
    vcpu_stats_init(&b, false);
    exit_with(&a, KVM_EXIT_IO, 1);
    exit_with(&b, KVM_EXIT_MMIO, 0);
    exit_with(&b, KVM_EXIT_MMIO, 0);

    struct vmm_exit_counts sum = {10, 20}; /* adds, does not overwrite */
    vcpu_stats_add_counts(&a, &sum);
    vcpu_stats_add_counts(&b, &sum);
    assert_int_equal(sum.io, 11);
    assert_int_equal(sum.mmio, 22);
}

static void test_timed_exits_accumulate_by_kind(void **state)
{
    (void)state;
    struct vcpu_stats stats;
    vcpu_stats_init(&stats, true);
    for (int i = 0; i < 1000; i++)
        exit_with(&stats, KVM_EXIT_MMIO, 0);
    uint64_t mmio_ns = stats.mmio_vmm_ns;
    assert_true(mmio_ns > 0); /* 1000 pairs of clock reads never add up to 0 ns */
    assert_int_equal(stats.io_vmm_ns, 0);
    exit_with(&stats, KVM_EXIT_HLT, 0);
    assert_int_equal(stats.mmio_vmm_ns, mmio_ns);
    assert_int_equal(stats.io_vmm_ns, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_each_kind_of_exit),
        cmocka_unit_test(test_sums_over_vcpus),
        cmocka_unit_test(test_timed_exits_accumulate_by_kind),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
