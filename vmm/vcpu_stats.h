/* The exits a vCPU hands to the VMM, counted by the vCPU's own thread. The counts are read
 * by other threads while the VM runs (--stats); the time the VMM spends per exit is only
 * measured with --verbose, so other runs keep the clock off the exit path. */
#pragma once

#include <linux/kvm.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/kvm_stats_report.h"

struct vcpu_stats {
    _Atomic uint64_t io_exits;
    _Atomic uint64_t mmio_exits;
    uint64_t io_items; /* port accesses in the I/O exits: rep ins/outs carry several */
    uint64_t io_vmm_ns;
    uint64_t mmio_vmm_ns;
    bool timed;
    uint64_t exit_start_ns;
};

void vcpu_stats_init(struct vcpu_stats *stats, bool timed);

/* Call once KVM_RUN has returned with run's exit, and vcpu_stats_exit_end() once the exit
 * has been handled. */
void vcpu_stats_exit_begin(struct vcpu_stats *stats, const struct kvm_run *run);
void vcpu_stats_exit_end(struct vcpu_stats *stats, uint32_t exit_reason);

/* Adds stats' exit counts to sum; safe while the vCPU runs. */
void vcpu_stats_add_counts(const struct vcpu_stats *stats, struct vmm_exit_counts *sum);

/* With --verbose: one debug line with the exits of count vCPUs and one with the VMM's time
 * on them. Call after the vCPU threads have ended. */
void vcpu_stats_log_totals(const struct vcpu_stats *const *stats, unsigned int count);
