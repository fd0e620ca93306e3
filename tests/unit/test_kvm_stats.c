/* KVM's binary statistics without KVM: memfds laid out as the kernel lays a stats fd
 * (header, id string, descriptors with their names, data block) feed the parser. Checked:
 * values, histograms, sums over vCPUs, fresh values from re-reading the data block, the
 * --stats report, corrupt headers refused with -EINVAL and a reason (the ASan build sees any
 * read out of bounds), every fd closed on every path, and the reading allowed inside the
 * main thread's sandbox. One case uses /dev/kvm where there is one. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/unit/support/fds.h"
#include "tests/unit/support/text.h"
#include "vmm/kvm_stats.h"
#include "vmm/kvm_stats_report.h"
#include "vmm/sandbox.h"

#define NAME_SIZE 48 /* KVM_STATS_NAME_SIZE: the kernel's */
#define DESC_SIZE (sizeof(struct kvm_stats_desc) + NAME_SIZE)
#define MAX_DESC  16
#define MAX_WORDS 64

#define CUMULATIVE (KVM_STATS_TYPE_CUMULATIVE | KVM_STATS_UNIT_NONE | KVM_STATS_BASE_POW10)
#define INSTANT    (KVM_STATS_TYPE_INSTANT | KVM_STATS_UNIT_NONE | KVM_STATS_BASE_POW10)
#define PEAK       (KVM_STATS_TYPE_PEAK | KVM_STATS_UNIT_NONE | KVM_STATS_BASE_POW10)
#define BOOLEAN    (KVM_STATS_TYPE_INSTANT | KVM_STATS_UNIT_BOOLEAN | KVM_STATS_BASE_POW10)
#define NANOSECS   (KVM_STATS_TYPE_CUMULATIVE | KVM_STATS_UNIT_SECONDS | KVM_STATS_BASE_POW10)
#define LOG_HIST   (KVM_STATS_TYPE_LOG_HIST | KVM_STATS_UNIT_SECONDS | KVM_STATS_BASE_POW10)
#define LIN_HIST   (KVM_STATS_TYPE_LINEAR_HIST | KVM_STATS_UNIT_NONE | KVM_STATS_BASE_POW10)

struct fake_desc {
    const char *name;
    uint32_t flags;
    int16_t exponent;
    uint16_t size;
    uint32_t offset; /* bytes into the data block */
};

/* A stats file's contents before it is written: the header can be broken on purpose. */
struct fake {
    struct kvm_stats_header h;
    unsigned int count;
    struct fake_desc d[MAX_DESC];
    uint64_t data[MAX_WORDS];
    size_t words;
    size_t file_len;        /* 0: everything; else the file is cut there */
    bool unterminated_name; /* the first name fills its NAME_SIZE bytes, no NUL */
};

/* The kernel's layout: header, the 48-byte id, the descriptors, then the data. */
static void fake_layout(struct fake *f)
{
    f->h.flags = 0;
    f->h.name_size = NAME_SIZE;
    f->h.num_desc = f->count;
    f->h.id_offset = sizeof(struct kvm_stats_header);
    f->h.desc_offset = f->h.id_offset + NAME_SIZE;
    f->h.data_offset = f->h.desc_offset + f->count * DESC_SIZE;
}

static void fake_add(struct fake *f, const char *name, uint32_t flags, uint16_t size,
                     const uint64_t *values)
{
    assert_true(f->count < MAX_DESC && f->words + size <= MAX_WORDS);
    f->d[f->count++] = (struct fake_desc){
        .name = name,
        .flags = flags,
        .exponent = (flags & KVM_STATS_UNIT_MASK) == KVM_STATS_UNIT_SECONDS ? -9 : 0,
        .size = size,
        .offset = (uint32_t)(f->words * sizeof(uint64_t)),
    };
    memcpy(&f->data[f->words], values, size * sizeof(uint64_t));
    f->words += size;
    fake_layout(f);
}

/* Writes the fake into a memfd, with the offsets in its header (not recomputed). */
static int fake_fd(const struct fake *f)
{
    size_t len = sizeof(f->h) + NAME_SIZE + f->count * DESC_SIZE + f->words * sizeof(uint64_t);
    len += 4096; /* room for headers that point a little past the real layout */
    unsigned char *file = calloc(1, len);
    assert_non_null(file);
    memcpy(file, &f->h, sizeof(f->h));
    snprintf((char *)file + sizeof(f->h), NAME_SIZE, "kvm-%d", (int)getpid());
    size_t at = sizeof(f->h) + NAME_SIZE; /* where the real descriptors go */
    for (unsigned int i = 0; i < f->count; i++, at += DESC_SIZE) {
        struct kvm_stats_desc d = {.flags = f->d[i].flags,
                                   .exponent = f->d[i].exponent,
                                   .size = f->d[i].size,
                                   .offset = f->d[i].offset};
        memcpy(file + at, &d, sizeof(d));
        if (i == 0 && f->unterminated_name)
            memset(file + at + sizeof(d), 'x', NAME_SIZE);
        else
            snprintf((char *)file + at + sizeof(d), NAME_SIZE, "%s", f->d[i].name);
    }
    memcpy(file + at, f->data, f->words * sizeof(uint64_t));
    size_t real_len = at + f->words * sizeof(uint64_t);
    if (f->file_len)
        real_len = f->file_len;

    int fd = memfd_create("kvm-stats", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, file, real_len), (ssize_t)real_len);
    free(file);
    return fd;
}

/* Overwrites the data block, as KVM's counters move. */
static void fake_rewrite_data(const struct fake *f, int fd)
{
    size_t len = f->words * sizeof(uint64_t);
    assert_int_equal(pwrite(fd, f->data, len, f->h.data_offset), (ssize_t)len);
}

/* A VM file and a vCPU file shaped like x86's, small. */
static void fake_vm(struct fake *f)
{
    *f = (struct fake){0};
    fake_add(f, "remote_tlb_flush", CUMULATIVE, 1, (uint64_t[]){7});
    fake_add(f, "pages_4k", INSTANT, 1, (uint64_t[]){24});
    fake_add(f, "max_mmu_rmap_size", PEAK, 1, (uint64_t[]){3});
}

static void fake_vcpu(struct fake *f, uint64_t exits)
{
    *f = (struct fake){0};
    fake_add(f, "halt_wait_ns", NANOSECS, 1, (uint64_t[]){1000 * exits});
    fake_add(f, "halt_wait_hist", LOG_HIST, 4, (uint64_t[]){1, 2, 3, exits});
    fake_add(f, "blocking", BOOLEAN, 1, (uint64_t[]){exits / 10 % 2});
    fake_add(f, "exits", CUMULATIVE, 1, (uint64_t[]){exits});
    fake_add(f, "io_exits", CUMULATIVE, 1, (uint64_t[]){exits / 2});
    fake_add(f, "mmio_exits", CUMULATIVE, 1, (uint64_t[]){0});
    fake_add(f, "max_latency", PEAK, 1, (uint64_t[]){exits * 3});
}

static void test_parse_one_file(void **state)
{
    (void)state;
    struct fake f;
    fake_vm(&f);
    /* The kernel does not keep offsets in descriptor order (x86's VM stats do not). */
    f.d[1].offset = 16;
    f.d[2].offset = 8;
    f.data[1] = 3;
    f.data[2] = 24;
    int fd = fake_fd(&f);
    struct kvm_stats_file file;
    char why[192] = "";
    assert_int_equal(kvm_stats_file_parse(&file, fd, why, sizeof(why)), 0);
    assert_string_equal(why, "");
    assert_int_equal(file.count, 3);
    assert_int_equal(file.data_offset, f.h.data_offset);
    assert_int_equal(file.data_len, 24);
    assert_string_equal(file.stats[0].name, "remote_tlb_flush");
    assert_string_equal(file.stats[1].name, "pages_4k");
    assert_string_equal(file.stats[2].name, "max_mmu_rmap_size");
    assert_int_equal(file.stats[1].flags, INSTANT);
    assert_int_equal(file.stats[2].flags & KVM_STATS_TYPE_MASK, KVM_STATS_TYPE_PEAK);
    assert_int_equal(kvm_stats_file_value(&file, 0), 7);
    assert_int_equal(kvm_stats_file_value(&file, 1), 24);
    assert_int_equal(kvm_stats_file_value(&file, 2), 3);
    kvm_stats_file_destroy(&file);
    assert_false(test_fd_is_open(fd)); /* the file owned it */
}

static void test_histograms_sum_their_buckets(void **state)
{
    (void)state;
    struct fake f = {0};
    fake_add(&f, "halt_poll_success_hist", LOG_HIST, 32,
             (uint64_t[32]){[0] = 5, [7] = 6, [31] = 1});
    fake_add(&f, "linear", LIN_HIST, 3, (uint64_t[]){1, 1, 1});
    fake_add(&f, "after", CUMULATIVE, 1, (uint64_t[]){99});
    int fd = fake_fd(&f);
    struct kvm_stats_file file;
    assert_int_equal(kvm_stats_file_parse(&file, fd, NULL, 0), 0);
    assert_int_equal(file.count, 3);
    assert_int_equal(file.stats[0].size, 32);
    assert_int_equal(kvm_stats_file_value(&file, 0), 12);
    assert_int_equal(kvm_stats_file_value(&file, 1), 3);
    /* The value after a histogram is its own, not a bucket. */
    assert_int_equal(kvm_stats_file_value(&file, 2), 99);
    assert_int_equal(file.data_len, (32 + 3 + 1) * 8);
    kvm_stats_file_destroy(&file);
}

/* Types newer than this code are left out, the rest still read. */
static void test_unknown_type_left_out(void **state)
{
    (void)state;
    struct fake f = {0};
    fake_add(&f, "future", 0xF, 1, (uint64_t[]){1});
    fake_add(&f, "exits", CUMULATIVE, 1, (uint64_t[]){5});
    int fd = fake_fd(&f);
    struct kvm_stats_file file;
    assert_int_equal(kvm_stats_file_parse(&file, fd, NULL, 0), 0);
    assert_int_equal(file.count, 1);
    assert_string_equal(file.stats[0].name, "exits");
    assert_int_equal(kvm_stats_file_value(&file, 0), 5);
    kvm_stats_file_destroy(&file);
}

/* A VM and three vCPUs: the VM's statistics as they are, the vCPUs' summed (a peak: the
 * highest), found by name. */
static void stats_three_vcpus(struct kvm_stats *stats, struct fake *vcpu_fakes, int *vcpu_fds)
{
    struct fake vm;
    fake_vm(&vm);
    int vm_fd = fake_fd(&vm);
    for (unsigned int i = 0; i < 3; i++) {
        fake_vcpu(&vcpu_fakes[i], 10 * (i + 1)); /* exits 10, 20, 30 */
        vcpu_fds[i] = fake_fd(&vcpu_fakes[i]);
    }
    char why[192] = "";
    assert_int_equal(kvm_stats_init(stats, vm_fd, vcpu_fds, 3, why, sizeof(why)), 0);
    assert_string_equal(why, "");
}

static uint64_t find(const struct kvm_stats *stats, const char *name)
{
    uint64_t value = 0xdeadbeef;
    if (kvm_stats_find(stats, name, &value))
        fail_msg("statistic '%s' not found", name);
    return value;
}

static void test_vcpus_summed(void **state)
{
    (void)state;
    int before = test_open_fd_count();
    struct fake vcpus[3];
    int fds[3];
    struct kvm_stats stats;
    stats_three_vcpus(&stats, vcpus, fds);
    assert_int_equal(stats.vcpu_count, 3);
    assert_int_equal(kvm_stats_count(&stats), 3 + 7);
    bool per_vcpu = true;
    assert_string_equal(kvm_stats_get(&stats, 0, &per_vcpu)->name, "remote_tlb_flush");
    assert_false(per_vcpu);
    assert_string_equal(kvm_stats_get(&stats, 3, &per_vcpu)->name, "halt_wait_ns");
    assert_true(per_vcpu);

    assert_int_equal(find(&stats, "remote_tlb_flush"), 7);
    assert_int_equal(find(&stats, "pages_4k"), 24);
    assert_int_equal(find(&stats, "max_mmu_rmap_size"), 3);
    assert_int_equal(find(&stats, "exits"), 60);
    assert_int_equal(find(&stats, "io_exits"), 5 + 10 + 15);
    assert_int_equal(find(&stats, "mmio_exits"), 0);
    assert_int_equal(find(&stats, "halt_wait_ns"), 60000);
    assert_int_equal(find(&stats, "halt_wait_hist"), 3 * 6 + 60);
    assert_int_equal(find(&stats, "blocking"), 2); /* vCPUs 0 and 2 */
    assert_int_equal(find(&stats, "max_latency"), 90);
    uint64_t value = 42;
    assert_int_equal(kvm_stats_find(&stats, "no_such_stat", &value), -ENOENT);
    assert_int_equal(value, 42);

    kvm_stats_destroy(&stats);
    assert_int_equal(test_open_fd_count(), before);
}

static void test_refresh_reads_fresh_values(void **state)
{
    (void)state;
    struct fake vcpus[3];
    int fds[3];
    struct kvm_stats stats;
    stats_three_vcpus(&stats, vcpus, fds);
    assert_int_equal(find(&stats, "exits"), 60);

    /* The counters move; nothing is seen until the data block is read again. */
    vcpus[1].data[6] = 1000;  /* exits */
    vcpus[1].data[4] += 4000; /* halt_wait_hist's last bucket */
    fake_rewrite_data(&vcpus[1], fds[1]);
    assert_int_equal(find(&stats, "exits"), 60);
    char why[192];
    assert_int_equal(kvm_stats_refresh(&stats, why, sizeof(why)), 0);
    assert_int_equal(find(&stats, "exits"), 10 + 1000 + 30);
    assert_int_equal(find(&stats, "halt_wait_hist"), 3 * 6 + 60 + 4000);

    /* A data block that shrank (the file cut short) is an error, not stale numbers. */
    assert_int_equal(ftruncate(fds[2], vcpus[2].h.data_offset + 8), 0);
    assert_int_equal(kvm_stats_refresh(&stats, why, sizeof(why)), -EINVAL);
    assert_contains(why, "vCPU 2");
    assert_contains(why, "data truncated");
    kvm_stats_destroy(&stats);
}

/* One corruption of a good VM file: parse must refuse it with -EINVAL and a reason that
 * names the problem, leave the fd to the caller, and leave file empty. */
struct corruption {
    const char *what;
    void (*apply)(struct fake *f);
    const char *mention;
};

static void cut_header(struct fake *f)
{
    f->file_len = 10;
}
static void name_size_zero(struct fake *f)
{
    f->h.name_size = 0;
}
static void name_size_huge(struct fake *f)
{
    f->h.name_size = 0xFFFFFFF0u;
}
static void num_desc_huge(struct fake *f)
{
    f->h.num_desc = 0xFFFFFFFFu;
}
static void num_desc_past_end(struct fake *f)
{
    f->h.num_desc = 1000; /* within the limit, but the file has no such descriptors */
}
static void desc_offset_past_end(struct fake *f)
{
    f->h.desc_offset = 0xFFFFFF00u;
}
static void desc_offset_in_header(struct fake *f)
{
    f->h.desc_offset = 4;
}
static void data_offset_past_end(struct fake *f)
{
    f->h.data_offset = 0x7FFFFFF0u;
}
static void data_over_descs(struct fake *f)
{
    f->h.data_offset = f->h.desc_offset + 8;
}
static void cut_data(struct fake *f)
{
    f->file_len = f->h.data_offset + 8;
}
static void name_unterminated(struct fake *f)
{
    f->unterminated_name = true;
}
static void name_empty(struct fake *f)
{
    f->d[1].name = "";
}
static void value_size_zero(struct fake *f)
{
    f->d[1].size = 0;
}
static void value_offset_unaligned(struct fake *f)
{
    f->d[2].offset = 12;
}
static void value_offset_huge(struct fake *f)
{
    f->d[2].offset = 0xFFFFFFF8u;
}
static void histogram_too_long(struct fake *f)
{
    f->d[2].size = 0xFFFF; /* 512 KiB of buckets at most: allowed, but past the file's end */
}

static const struct corruption corruptions[] = {
    {"header cut short", cut_header, "header truncated"},
    {"name_size 0", name_size_zero, "name_size 0"},
    {"name_size huge", name_size_huge, "name_size"},
    {"num_desc huge", num_desc_huge, "num_desc 4294967295"},
    {"num_desc past the file", num_desc_past_end, "descriptors truncated"},
    {"desc_offset past the file", desc_offset_past_end, "descriptors truncated"},
    {"desc_offset in the header", desc_offset_in_header, "inside the 24-byte header"},
    {"data_offset past the file", data_offset_past_end, "data truncated"},
    {"data block over the descriptors", data_over_descs, "overlaps"},
    {"data cut short", cut_data, "data truncated"},
    {"name without NUL", name_unterminated, "not NUL-terminated"},
    {"empty name", name_empty, "empty name"},
    {"size 0", value_size_zero, "size 0"},
    {"offset not a multiple of 8", value_offset_unaligned, "multiple of 8"},
    {"offset huge", value_offset_huge, "past"},
    {"histogram past the file", histogram_too_long, "data truncated"},
};

static void test_corrupt_files_refused(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(corruptions) / sizeof(corruptions[0]); i++) {
        const struct corruption *c = &corruptions[i];
        struct fake f;
        fake_vm(&f);
        c->apply(&f);
        int fd = fake_fd(&f);
        struct kvm_stats_file file;
        char why[192] = "";
        int ret = kvm_stats_file_parse(&file, fd, why, sizeof(why));
        if (ret != -EINVAL || !strstr(why, c->mention))
            fail_msg("%s: returned %d, \"%s\"; expected -EINVAL and \"%s\"", c->what, ret, why,
                     c->mention);
        assert_int_equal(file.fd, -1);
        assert_null(file.stats);
        assert_null(file.data);
        assert_true(test_fd_is_open(fd)); /* still the caller's */
        close(fd);
    }
}

/* Whatever fails, kvm_stats_init() closes every fd it was given, and says which file. */
static void test_init_failures_close_every_fd(void **state)
{
    (void)state;
    int before = test_open_fd_count();
    struct fake good, bad, other;
    fake_vcpu(&good, 1);
    fake_vcpu(&bad, 1);
    name_size_zero(&bad);
    fake_vm(&other); /* a vCPU file with the VM's statistics: not summable with vCPU 0's */
    struct kvm_stats stats;
    char why[192];

    int fds[3] = {fake_fd(&good), fake_fd(&good), fake_fd(&good)};
    assert_int_equal(kvm_stats_init(&stats, fake_fd(&bad), fds, 3, why, sizeof(why)), -EINVAL);
    assert_contains(why, "VM statistics");
    assert_contains(why, "name_size 0");
    assert_int_equal(test_open_fd_count(), before);

    int fds2[3] = {fake_fd(&good), fake_fd(&bad), fake_fd(&good)};
    assert_int_equal(kvm_stats_init(&stats, fake_fd(&good), fds2, 3, why, sizeof(why)), -EINVAL);
    assert_contains(why, "vCPU 1 statistics");
    assert_int_equal(test_open_fd_count(), before);

    int fds3[3] = {fake_fd(&good), fake_fd(&good), fake_fd(&other)};
    assert_int_equal(kvm_stats_init(&stats, fake_fd(&good), fds3, 3, why, sizeof(why)), -EINVAL);
    assert_contains(why, "vCPU 2");
    assert_contains(why, "cannot be summed");
    assert_int_equal(test_open_fd_count(), before);

    /* No vCPUs at all is a VM's statistics alone. */
    assert_int_equal(kvm_stats_init(&stats, fake_fd(&other), NULL, 0, why, sizeof(why)), 0);
    assert_int_equal(kvm_stats_count(&stats), 3);
    kvm_stats_destroy(&stats);
    assert_int_equal(test_open_fd_count(), before);
}

static void test_report(void **state)
{
    (void)state;
    struct fake vcpus[3];
    int fds[3];
    struct kvm_stats stats;
    stats_three_vcpus(&stats, vcpus, fds);
    struct capture out;
    capture_open(&out);
    kvm_stats_report(out.file, &stats, &(struct vmm_exit_counts){12, 3}, KVM_STATS_AT_EXIT);
    const char *text = capture_text(&out);

    assert_contains(text, "minivmm: KVM statistics at exit (vCPU statistics summed over 3 vCPUs");
    assert_contains(text, "minivmm:   vcpu  exits ");
    assert_contains(text, " 60\n");
    assert_contains(text, "minivmm:   vm    remote_tlb_flush ");
    assert_contains(text, "60000 ns\n");
    assert_contains(text, "78 samples (log histogram of ns, 4 buckets)\n");
    assert_contains(text, "(boolean: vCPUs where set)");
    assert_contains(text, "(peak: the highest vCPU's)");
    assert_contains(text, "3 (peak)\n");
    /* Zeros stay out of the table, not out of the line. */
    assert_not_contains(text, "vcpu  mmio_exits");
    assert_contains(text, "minivmm:   vmm   userspace_io_exits 12, userspace_mmio_exits 3 ");

    /* The line for scripts: the last, one line, every statistic in order. */
    const char *line = strstr(text, "minivmm-stats: ");
    assert_non_null(line);
    assert_true(line == text || line[-1] == '\n');
    assert_string_equal(line, "minivmm-stats: event=exit vcpus=3 remote_tlb_flush=7 pages_4k=24 "
                              "max_mmu_rmap_size=3 halt_wait_ns=60000 halt_wait_hist=78 "
                              "blocking=2 exits=60 io_exits=30 mmio_exits=0 max_latency=90 "
                              "userspace_io_exits=12 userspace_mmio_exits=3\n");
    capture_close(&out);

    capture_open(&out);
    kvm_stats_report(out.file, &stats, &(struct vmm_exit_counts){0, 0}, KVM_STATS_ON_SIGUSR1);
    text = capture_text(&out);
    assert_contains(text, "KVM statistics on SIGUSR1");
    assert_contains(text, "minivmm-stats: event=sigusr1 vcpus=3 ");
    capture_close(&out);
    kvm_stats_destroy(&stats);
}

/* What SIGUSR1 and the end do in minivmm's main thread, inside its sandbox: a denied call
 * would end the child with EXIT_SANDBOX_DENIED. */
static void test_refresh_and_report_in_sandbox(void **state)
{
    (void)state;
    struct fake vcpus[3];
    int fds[3];
    struct kvm_stats stats;
    stats_three_vcpus(&stats, vcpus, fds);
    vcpus[0].data[6] = 500; /* exits */
    fake_rewrite_data(&vcpus[0], fds[0]);
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    assert_true(devnull >= 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* minivmm's stderr: unbuffered, so no buffer to set up (fstat) in the sandbox. */
        char why[256];
        if (dup2(devnull, STDERR_FILENO) < 0 || sandbox_enter(SANDBOX_IO, why, sizeof(why)))
            _exit(100);
        if (kvm_stats_refresh(&stats, why, sizeof(why)))
            _exit(101);
        uint64_t exits;
        if (kvm_stats_find(&stats, "exits", &exits) || exits != 550)
            _exit(102);
        kvm_stats_report(stderr, &stats, &(struct vmm_exit_counts){0, 0}, KVM_STATS_ON_SIGUSR1);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    close(devnull);
    kvm_stats_destroy(&stats);
}

/* kvm_stats_open()'s ioctls: on something that is no KVM they fail and say which. */
static void test_open_needs_kvm(void **state)
{
    (void)state;
    int before = test_open_fd_count();
    int not_kvm = memfd_create("not-kvm", MFD_CLOEXEC);
    struct kvm_stats stats;
    char why[192];
    assert_int_equal(kvm_stats_open(&stats, not_kvm, not_kvm, NULL, 0, why, sizeof(why)), -ENOTTY);
    assert_contains(why, "KVM_CHECK_EXTENSION KVM_CAP_BINARY_STATS_FD");
    close(not_kvm);
    assert_int_equal(test_open_fd_count(), before);
}

/* Where /dev/kvm opens: a VM with two vCPUs that never ran, read for real. */
static void test_real_kvm(void **state)
{
    (void)state;
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0)
        skip();
    int before = test_open_fd_count();
    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    assert_true(vm >= 0);
    int vcpus[2] = {ioctl(vm, KVM_CREATE_VCPU, 0), ioctl(vm, KVM_CREATE_VCPU, 1)};
    assert_true(vcpus[0] >= 0 && vcpus[1] >= 0);
    struct kvm_stats stats;
    char why[192] = "";
    int ret = kvm_stats_open(&stats, kvm, vm, vcpus, 2, why, sizeof(why));
    if (ret == -EOPNOTSUPP) {
        assert_contains(why, "KVM_CAP_BINARY_STATS_FD");
    } else {
        assert_int_equal(ret, 0);
        assert_true(stats.vm.count > 0);
        assert_int_equal(stats.vcpu_count, 2);
        assert_int_equal(find(&stats, "exits"), 0); /* nothing ran */
        find(&stats, "io_exits");
        find(&stats, "remote_tlb_flush");
        assert_int_equal(kvm_stats_refresh(&stats, why, sizeof(why)), 0);
        kvm_stats_destroy(&stats);
    }
    close(vcpus[0]);
    close(vcpus[1]);
    close(vm);
    assert_int_equal(test_open_fd_count(), before);
    close(kvm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_one_file),
        cmocka_unit_test(test_histograms_sum_their_buckets),
        cmocka_unit_test(test_unknown_type_left_out),
        cmocka_unit_test(test_vcpus_summed),
        cmocka_unit_test(test_refresh_reads_fresh_values),
        cmocka_unit_test(test_corrupt_files_refused),
        cmocka_unit_test(test_init_failures_close_every_fd),
        cmocka_unit_test(test_report),
        cmocka_unit_test(test_refresh_and_report_in_sandbox),
        cmocka_unit_test(test_open_needs_kvm),
        cmocka_unit_test(test_real_kvm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
