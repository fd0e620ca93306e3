#include "vmm/kvm_stats_report.h"

#include <inttypes.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>

static const char *const event_tokens[] = {
    [KVM_STATS_AT_EXIT] = "exit", [KVM_STATS_ON_SIGUSR1] = "sigusr1"};
static const char *const event_words[] = {
    [KVM_STATS_AT_EXIT] = "at exit", [KVM_STATS_ON_SIGUSR1] = "on SIGUSR1"};

/* The unit of one value as people write it: "ns", "bytes", "KiB", "cycles", or a scale. */
static void unit_text(const struct kvm_stat *s, char *buf, size_t len)
{
    uint32_t unit = s->flags & KVM_STATS_UNIT_MASK;
    bool pow2 = (s->flags & KVM_STATS_BASE_MASK) == KVM_STATS_BASE_POW2;
    int e = s->exponent;
    const char *name = "";
    switch (unit) {
    case KVM_STATS_UNIT_NONE:
    case KVM_STATS_UNIT_BOOLEAN:
        break;
    case KVM_STATS_UNIT_SECONDS:
        if (!pow2 && (e == -9 || e == -6 || e == -3 || e == 0)) {
            snprintf(buf, len, "%s", e == -9 ? "ns" : e == -6 ? "us" : e == -3 ? "ms" : "s");
            return;
        }
        name = "s";
        break;
    case KVM_STATS_UNIT_BYTES:
        if (e == 0 || (pow2 && (e == 10 || e == 20 || e == 30))) {
            snprintf(buf, len, "%s", e == 0 ? "bytes" : e == 10 ? "KiB" : e == 20 ? "MiB" : "GiB");
            return;
        }
        name = "bytes";
        break;
    case KVM_STATS_UNIT_CYCLES:
        name = "cycles";
        break;
    default:
        snprintf(buf, len, "(unit %" PRIu32 ")", unit >> KVM_STATS_UNIT_SHIFT);
        return;
    }
    if (e)
        snprintf(buf, len, "x %d^%d%s%s", pow2 ? 2 : 10, e, *name ? " " : "", name);
    else
        snprintf(buf, len, "%s", name);
}

/* What a value means beyond its unit: histograms, peaks, booleans summed over vCPUs. */
static void note_text(const struct kvm_stat *s, bool per_vcpu, char *buf, size_t len)
{
    char unit[32];
    unit_text(s, unit, sizeof(unit));
    switch (s->flags & KVM_STATS_TYPE_MASK) {
    case KVM_STATS_TYPE_LINEAR_HIST:
    case KVM_STATS_TYPE_LOG_HIST:
        snprintf(buf, len, "samples (%s histogram%s%s, %u buckets)",
                 (s->flags & KVM_STATS_TYPE_MASK) == KVM_STATS_TYPE_LOG_HIST ? "log" : "linear",
                 *unit ? " of " : "", unit, s->size);
        return;
    case KVM_STATS_TYPE_PEAK:
        snprintf(buf, len, "%s%s%s", unit, *unit ? " " : "",
                 per_vcpu ? "(peak: the highest vCPU's)" : "(peak)");
        return;
    }
    if ((s->flags & KVM_STATS_UNIT_MASK) == KVM_STATS_UNIT_BOOLEAN)
        snprintf(buf, len, "%s", per_vcpu ? "(boolean: vCPUs where set)" : "(boolean)");
    else
        snprintf(buf, len, "%s", unit);
}

void kvm_stats_report(FILE *out, const struct kvm_stats *stats,
                      const struct vmm_exit_counts *userspace, enum kvm_stats_event event)
{
    unsigned int count = kvm_stats_count(stats);
    int width = 0;
    for (unsigned int i = 0; i < count; i++) {
        int len = (int)strlen(kvm_stats_get(stats, i, NULL)->name);
        if (kvm_stats_value(stats, i) && len > width)
            width = len;
    }

    /* Other threads' log lines wait rather than land inside the table. */
    flockfile(out);
    fprintf(out,
            "minivmm: KVM statistics %s (vCPU statistics summed over %u vCPU%s; zeros left out):\n",
            event_words[event], stats->vcpu_count, stats->vcpu_count == 1 ? "" : "s");
    for (unsigned int i = 0; i < count; i++) {
        uint64_t value = kvm_stats_value(stats, i);
        if (!value)
            continue;
        bool per_vcpu;
        const struct kvm_stat *s = kvm_stats_get(stats, i, &per_vcpu);
        char note[96];
        note_text(s, per_vcpu, note, sizeof(note));
        fprintf(out, "minivmm:   %-4s  %-*s %15" PRIu64 "%s%s\n", per_vcpu ? "vcpu" : "vm", width,
                s->name, value, *note ? " " : "", note);
    }
    fprintf(out,
            "minivmm:   vmm   userspace_io_exits %" PRIu64 ", userspace_mmio_exits %" PRIu64
            " (exits KVM returned to minivmm)\n",
            userspace->io, userspace->mmio);

    /* One fprintf per item into stderr (unbuffered) would be a write each: the line is
     * put together first so it leaves in one write and stays whole next to other writers. */
    char *line = NULL;
    size_t line_len = 0;
    FILE *m = open_memstream(&line, &line_len);
    if (m) {
        fprintf(m, "minivmm-stats: event=%s vcpus=%u", event_tokens[event], stats->vcpu_count);
        for (unsigned int i = 0; i < count; i++)
            fprintf(m, " %s=%" PRIu64, kvm_stats_get(stats, i, NULL)->name,
                    kvm_stats_value(stats, i));
        fprintf(m, " userspace_io_exits=%" PRIu64 " userspace_mmio_exits=%" PRIu64 "\n",
                userspace->io, userspace->mmio);
    }
    if (m && fclose(m) == 0) {
        fwrite(line, 1, line_len, out);
    } else {
        fprintf(out, "minivmm: error: --stats: the minivmm-stats line: out of memory\n");
    }
    free(line);
    funlockfile(out);
}
