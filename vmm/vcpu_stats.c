#include "vmm/vcpu_stats.h"

#include <time.h>

#include "common/log.h"

static uint64_t clock_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

/* The vCPU thread is the only writer: a relaxed load and store, no locked instruction. */
static void count_one(_Atomic uint64_t *counter)
{
    atomic_store_explicit(counter, atomic_load_explicit(counter, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

void vcpu_stats_init(struct vcpu_stats *stats, bool timed)
{
    *stats = (struct vcpu_stats){.timed = timed};
}

void vcpu_stats_exit_begin(struct vcpu_stats *stats, const struct kvm_run *run)
{
    if (stats->timed)
        stats->exit_start_ns = clock_ns();
    if (run->exit_reason == KVM_EXIT_IO) {
        count_one(&stats->io_exits);
        stats->io_items += run->io.count;
    } else if (run->exit_reason == KVM_EXIT_MMIO) {
        count_one(&stats->mmio_exits);
    }
}

void vcpu_stats_exit_end(struct vcpu_stats *stats, uint32_t exit_reason)
{
    if (!stats->timed)
        return;
    uint64_t spent = clock_ns() - stats->exit_start_ns;
    if (exit_reason == KVM_EXIT_IO)
        stats->io_vmm_ns += spent;
    else if (exit_reason == KVM_EXIT_MMIO)
        stats->mmio_vmm_ns += spent;
}

void vcpu_stats_add_counts(const struct vcpu_stats *stats, struct vmm_exit_counts *sum)
{
    sum->io += atomic_load_explicit(&stats->io_exits, memory_order_relaxed);
    sum->mmio += atomic_load_explicit(&stats->mmio_exits, memory_order_relaxed);
}

void vcpu_stats_log_totals(const struct vcpu_stats *const *stats, unsigned int count)
{
    struct vmm_exit_counts exits = {0, 0};
    uint64_t io_items = 0, io_vmm_ns = 0, mmio_vmm_ns = 0;
    for (unsigned int i = 0; i < count; i++) {
        vcpu_stats_add_counts(stats[i], &exits);
        io_items += stats[i]->io_items;
        io_vmm_ns += stats[i]->io_vmm_ns;
        mmio_vmm_ns += stats[i]->mmio_vmm_ns;
    }
    log_debug("exits to the VMM: port I/O %llu (%llu items), MMIO %llu",
              (unsigned long long)exits.io, (unsigned long long)io_items,
              (unsigned long long)exits.mmio);
    log_debug("time in the VMM on those exits: port I/O %llu ns, MMIO %llu ns",
              (unsigned long long)io_vmm_ns, (unsigned long long)mmio_vmm_ns);
}
