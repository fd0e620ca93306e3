/* A VM's own KVM statistics, read through KVM's binary stats interface (KVM_GET_STATS_FD,
 * Linux 5.14+): the VM's counters as they are and the vCPUs' summed over every vCPU, the
 * figures debugfs shows in /sys/kernel/debug/kvm/PID-FD/. A stats fd holds a header, the
 * descriptors (struct kvm_stats_desc and a name each) and a data block of u64 values;
 * kvm_stats_refresh() re-reads only the data block. The parser works on any fd, so the unit
 * tests feed it memfds laid out as the kernel lays its files. Errors are -errno with a
 * sentence in why; malformed files are -EINVAL and nothing is read out of bounds. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits far above what KVM has (x86: about 20 VM and 60 vCPU statistics, names of 48 bytes):
 * a header beyond them is corrupt, and they bound what a bad one can make us allocate. */
#define KVM_STATS_MAX_DESC      4096
#define KVM_STATS_MAX_NAME_SIZE 1024
#define KVM_STATS_MAX_VALUES    65535 /* u16: a descriptor's size field */
#define KVM_STATS_MAX_DATA      (1u << 20)

/* One statistic as its descriptor gives it. */
struct kvm_stat {
    const char *name;
    uint32_t flags;   /* KVM_STATS_TYPE_*, KVM_STATS_UNIT_*, KVM_STATS_BASE_* */
    int16_t exponent; /* value x BASE^exponent UNIT, e.g. -9 with SECONDS: nanoseconds */
    uint16_t size;    /* 1, or a histogram's bucket count */
    uint32_t offset;  /* bytes into the data block */
};

/* One stats fd: its descriptors (types this code does not know are left out) and the data
 * block as last read. */
struct kvm_stats_file {
    int fd;
    unsigned int count;
    struct kvm_stat *stats;
    char *names;
    uint32_t data_offset;
    uint32_t data_len; /* bytes, up to the end of the furthest statistic */
    uint64_t *data;
};

/* The VM's file and one per vCPU, every vCPU's with the same descriptors. */
struct kvm_stats {
    struct kvm_stats_file vm;
    struct kvm_stats_file *vcpus;
    unsigned int vcpu_count;
};

/* Reads fd's header, descriptors and data. On success the file owns fd (closed by
 * kvm_stats_file_destroy); on failure fd is left to the caller and file is empty. */
int kvm_stats_file_parse(struct kvm_stats_file *file, int fd, char *why, size_t why_len);
/* Re-reads the data block: fresh values, same descriptors. */
int kvm_stats_file_refresh(struct kvm_stats_file *file, char *why, size_t why_len);
/* The value of statistic i: a histogram's is the sum of its buckets (the samples taken). */
uint64_t kvm_stats_file_value(const struct kvm_stats_file *file, unsigned int i);
void kvm_stats_file_destroy(struct kvm_stats_file *file);

/* Builds stats from a VM's stats fd and its vCPUs' (vcpu_count may be 0). Takes every fd,
 * also on failure (they are closed then). A vCPU whose descriptors differ from vCPU 0's
 * is -EINVAL. */
int kvm_stats_init(struct kvm_stats *stats, int vm_stats_fd, const int *vcpu_stats_fds,
                   unsigned int vcpu_count, char *why, size_t why_len);

/* Asks KVM for the stats fds of the VM vm_fd and its vCPUs, then kvm_stats_init(). Returns
 * -EOPNOTSUPP when kvm_fd's KVM lacks KVM_CAP_BINARY_STATS_FD. Call before the sandbox:
 * KVM_GET_STATS_FD is not on any allow-list. Reading afterwards needs pread64 only. */
int kvm_stats_open(struct kvm_stats *stats, int kvm_fd, int vm_fd, const int *vcpu_fds,
                   unsigned int vcpu_count, char *why, size_t why_len);

/* Re-reads every file's data block. */
int kvm_stats_refresh(struct kvm_stats *stats, char *why, size_t why_len);

/* The VM's statistics first, in KVM's order, then the vCPUs'. */
unsigned int kvm_stats_count(const struct kvm_stats *stats);
/* Statistic i's descriptor; per_vcpu (may be NULL) says whether it is a vCPU statistic. */
const struct kvm_stat *kvm_stats_get(const struct kvm_stats *stats, unsigned int i, bool *per_vcpu);
/* Statistic i's value: a vCPU statistic is summed over the vCPUs, except a peak
 * (KVM_STATS_TYPE_PEAK), which is the highest of them. */
uint64_t kvm_stats_value(const struct kvm_stats *stats, unsigned int i);
/* By name, VM statistics first. Returns 0 or -ENOENT. */
int kvm_stats_find(const struct kvm_stats *stats, const char *name, uint64_t *value);

void kvm_stats_destroy(struct kvm_stats *stats);
