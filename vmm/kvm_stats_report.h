/* What --stats prints: the VM's KVM statistics (vmm/kvm_stats.h) as a table for people,
 * then one line for scripts:
 *
 *   minivmm: KVM statistics at exit (vCPU statistics summed over 2 vCPUs; zeros left out):
 *   minivmm:   vcpu  exits           1234
 *   minivmm:   vcpu  halt_wait_ns  567890 ns
 *   minivmm:   vmm   userspace_io_exits     12
 *   minivmm-stats: event=exit vcpus=2 remote_tlb_flush=0 ... exits=1234 ... userspace_io_exits=12
 * userspace_mmio_exits=0
 *
 * The line holds every statistic, zeros included, as KVM names it; event, vcpus and the
 * userspace_* counts are minivmm's: the exits that KVM_RUN returned to minivmm (KVM's own
 * io_exits also counts port accesses it handled itself, such as ioeventfds). A histogram's
 * value is the sum of its buckets (the samples it took). */
#pragma once

#include <stdint.h>
#include <stdio.h>

#include "vmm/kvm_stats.h"

enum kvm_stats_event {
    KVM_STATS_AT_EXIT,    /* event=exit */
    KVM_STATS_ON_SIGUSR1, /* event=sigusr1: asked for while the VM runs */
};

/* Exits that KVM_RUN returned to the VMM, summed over the vCPUs. */
struct vmm_exit_counts {
    uint64_t io;
    uint64_t mmio;
};

/* Writes the table and the line to out, as they are now (no re-read: call
 * kvm_stats_refresh() first). */
void kvm_stats_report(FILE *out, const struct kvm_stats *stats,
                      const struct vmm_exit_counts *userspace, enum kvm_stats_event event);
