#include "vmm/kvm_stats.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vmm/reason.h"

/* Reads len bytes at off, or fewer where the file ends. Returns the count or -errno. */
static ssize_t pread_full(int fd, void *buf, size_t len, uint64_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        done += (size_t)n;
    }
    return (ssize_t)done;
}

/* Reads exactly len bytes at off: a short read is a truncated file, -EINVAL. */
static int read_exact(int fd, void *buf, size_t len, uint64_t off, const char *what, char *why,
                      size_t why_len)
{
    ssize_t n = pread_full(fd, buf, len, off);
    if (n < 0)
        return reason_fail((int)n, why, why_len, "pread %s (%zu bytes at offset %llu): %s", what,
                           len, (unsigned long long)off, strerror((int)-n));
    if ((size_t)n < len)
        return reason_fail(-EINVAL, why, why_len, "%s truncated: %zd of %zu bytes at offset %llu",
                           what, n, len, (unsigned long long)off);
    return 0;
}

static bool type_known(uint32_t flags)
{
    return (flags & KVM_STATS_TYPE_MASK) <= KVM_STATS_TYPE_MAX;
}

static int header_check(const struct kvm_stats_header *h, char *why, size_t why_len)
{
    if (h->name_size == 0 || h->name_size > KVM_STATS_MAX_NAME_SIZE)
        return reason_fail(-EINVAL, why, why_len, "header: name_size %u (expected 1-%u)",
                           h->name_size, KVM_STATS_MAX_NAME_SIZE);
    if (h->num_desc > KVM_STATS_MAX_DESC)
        return reason_fail(-EINVAL, why, why_len, "header: num_desc %u (expected at most %u)",
                           h->num_desc, KVM_STATS_MAX_DESC);
    if (h->desc_offset < sizeof(*h) || h->data_offset < sizeof(*h))
        return reason_fail(-EINVAL, why, why_len,
                           "header: desc_offset %u or data_offset %u inside the %zu-byte header",
                           h->desc_offset, h->data_offset, sizeof(*h));
    return 0;
}

/* Checks one descriptor and returns the end of its values in the data block (bytes). */
static int desc_check(const struct kvm_stats_desc *d, const char *name, uint32_t name_size,
                      unsigned int index, uint64_t *end, char *why, size_t why_len)
{
    if (!memchr(name, '\0', name_size))
        return reason_fail(-EINVAL, why, why_len,
                           "descriptor %u: name not NUL-terminated within %u bytes", index,
                           name_size);
    if (name[0] == '\0')
        return reason_fail(-EINVAL, why, why_len, "descriptor %u: empty name", index);
    if (d->size == 0)
        return reason_fail(-EINVAL, why, why_len, "descriptor %u '%s': size 0", index, name);
    if (d->offset % sizeof(uint64_t))
        return reason_fail(-EINVAL, why, why_len,
                           "descriptor %u '%s': offset %u not a multiple of 8", index, name,
                           d->offset);
    *end = (uint64_t)d->offset + (uint64_t)d->size * sizeof(uint64_t);
    if (*end > KVM_STATS_MAX_DATA)
        return reason_fail(-EINVAL, why, why_len,
                           "descriptor %u '%s': values at offset %u, %u of them, past %u bytes",
                           index, name, d->offset, d->size, KVM_STATS_MAX_DATA);
    return 0;
}

/* Fills file->stats and file->names from the descriptor block, and file->data_len. */
static int descs_parse(struct kvm_stats_file *file, const struct kvm_stats_header *h,
                       const unsigned char *block, char *why, size_t why_len)
{
    size_t desc_size = sizeof(struct kvm_stats_desc) + h->name_size;
    file->stats = calloc(h->num_desc ? h->num_desc : 1, sizeof(*file->stats));
    file->names = calloc(h->num_desc ? h->num_desc : 1, h->name_size);
    if (!file->stats || !file->names)
        return reason_fail(-ENOMEM, why, why_len, "%u descriptors: out of memory", h->num_desc);
    uint64_t data_len = 0;
    for (unsigned int i = 0; i < h->num_desc; i++) {
        const unsigned char *p = block + (size_t)i * desc_size;
        struct kvm_stats_desc d;
        /* The fixed part only: the name follows it, and p may be unaligned. */
        memcpy(&d, p, sizeof(d));
        const char *name = (const char *)p + sizeof(d);
        uint64_t end = 0;
        int ret = desc_check(&d, name, h->name_size, i, &end, why, why_len);
        if (ret)
            return ret;
        if (!type_known(d.flags))
            continue; /* a newer kernel's kind of statistic: its meaning is unknown here */
        char *copy = file->names + (size_t)file->count * h->name_size;
        memcpy(copy, name, h->name_size);
        file->stats[file->count++] = (struct kvm_stat){
            .name = copy,
            .flags = d.flags,
            .exponent = d.exponent,
            .size = d.size,
            .offset = d.offset,
        };
        if (end > data_len)
            data_len = end;
    }
    file->data_len = (uint32_t)data_len;

    /* The blocks must not overlap: a data block over the descriptors is a corrupt header. */
    uint64_t desc_end = h->desc_offset + (uint64_t)h->num_desc * desc_size;
    uint64_t data_end = h->data_offset + data_len;
    if (data_len && h->num_desc && h->data_offset < desc_end && h->desc_offset < data_end)
        return reason_fail(-EINVAL, why, why_len,
                           "header: data block (%u bytes at offset %u) overlaps the descriptors "
                           "(offsets %u-%llu)",
                           file->data_len, h->data_offset, h->desc_offset,
                           (unsigned long long)desc_end);
    return 0;
}

int kvm_stats_file_parse(struct kvm_stats_file *file, int fd, char *why, size_t why_len)
{
    *file = (struct kvm_stats_file){.fd = -1};
    struct kvm_stats_header h;
    int ret = read_exact(fd, &h, sizeof(h), 0, "header", why, why_len);
    if (!ret)
        ret = header_check(&h, why, why_len);
    if (ret)
        return ret;

    size_t block_len = (size_t)h.num_desc * (sizeof(struct kvm_stats_desc) + h.name_size);
    unsigned char *block = malloc(block_len ? block_len : 1);
    if (!block)
        return reason_fail(-ENOMEM, why, why_len, "%zu bytes of descriptors: out of memory",
                           block_len);
    ret = read_exact(fd, block, block_len, h.desc_offset, "descriptors", why, why_len);
    if (!ret)
        ret = descs_parse(file, &h, block, why, why_len);
    free(block);
    if (!ret) {
        file->data_offset = h.data_offset;
        file->data = calloc(1, file->data_len ? file->data_len : 1);
        if (!file->data)
            ret = reason_fail(-ENOMEM, why, why_len, "%u bytes of data: out of memory",
                              file->data_len);
    }
    file->fd = fd;
    if (!ret)
        ret = kvm_stats_file_refresh(file, why, why_len);
    if (ret) {
        file->fd = -1; /* still the caller's */
        kvm_stats_file_destroy(file);
    }
    return ret;
}

int kvm_stats_file_refresh(struct kvm_stats_file *file, char *why, size_t why_len)
{
    return read_exact(file->fd, file->data, file->data_len, file->data_offset, "data", why,
                      why_len);
}

uint64_t kvm_stats_file_value(const struct kvm_stats_file *file, unsigned int i)
{
    const struct kvm_stat *s = &file->stats[i];
    const uint64_t *values = file->data + s->offset / sizeof(uint64_t);
    uint64_t sum = 0;
    for (unsigned int k = 0; k < s->size; k++)
        sum += values[k];
    return sum;
}

void kvm_stats_file_destroy(struct kvm_stats_file *file)
{
    if (file->fd >= 0)
        close(file->fd);
    free(file->stats);
    free(file->names);
    free(file->data);
    *file = (struct kvm_stats_file){.fd = -1};
}

/* Every vCPU of a VM has the same statistics: summing them index by index needs that. */
static int same_layout(const struct kvm_stats_file *a, const struct kvm_stats_file *b,
                       unsigned int vcpu, char *why, size_t why_len)
{
    if (a->count != b->count)
        return reason_fail(-EINVAL, why, why_len,
                           "vCPU %u has %u statistics, vCPU 0 has %u: they cannot be summed", vcpu,
                           b->count, a->count);
    for (unsigned int i = 0; i < a->count; i++) {
        const struct kvm_stat *x = &a->stats[i], *y = &b->stats[i];
        if (strcmp(x->name, y->name) || x->flags != y->flags || x->size != y->size)
            return reason_fail(-EINVAL, why, why_len,
                               "vCPU %u's statistic %u is '%s', vCPU 0's is '%s' (or their "
                               "types differ): they cannot be summed",
                               vcpu, i, y->name, x->name);
    }
    return 0;
}

int kvm_stats_init(struct kvm_stats *stats, int vm_stats_fd, const int *vcpu_stats_fds,
                   unsigned int vcpu_count, char *why, size_t why_len)
{
    *stats = (struct kvm_stats){.vm = {.fd = -1}};
    char inner[192];
    unsigned int next = 0; /* the first vCPU fd not yet handed to a file */
    int ret = kvm_stats_file_parse(&stats->vm, vm_stats_fd, inner, sizeof(inner));
    if (ret) {
        close(vm_stats_fd);
        reason_set(why, why_len, "VM statistics: %s", inner);
        goto fail;
    }
    stats->vcpus = calloc(vcpu_count ? vcpu_count : 1, sizeof(*stats->vcpus));
    if (!stats->vcpus) {
        ret =
            reason_fail(-ENOMEM, why, why_len, "statistics of %u vCPUs: out of memory", vcpu_count);
        goto fail;
    }
    for (; next < vcpu_count; next++) {
        struct kvm_stats_file *file = &stats->vcpus[next];
        ret = kvm_stats_file_parse(file, vcpu_stats_fds[next], inner, sizeof(inner));
        if (ret) {
            reason_set(why, why_len, "vCPU %u statistics: %s", next, inner);
            close(vcpu_stats_fds[next++]);
            goto fail;
        }
        stats->vcpu_count = next + 1;
        if (next && (ret = same_layout(&stats->vcpus[0], file, next, why, why_len))) {
            next++;
            goto fail;
        }
    }
    return 0;

fail:
    for (; next < vcpu_count; next++)
        close(vcpu_stats_fds[next]);
    kvm_stats_destroy(stats);
    return ret;
}

int kvm_stats_open(struct kvm_stats *stats, int kvm_fd, int vm_fd, const int *vcpu_fds,
                   unsigned int vcpu_count, char *why, size_t why_len)
{
    *stats = (struct kvm_stats){.vm = {.fd = -1}};
    int cap = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_BINARY_STATS_FD);
    if (cap < 0)
        return reason_fail(-errno, why, why_len, "KVM_CHECK_EXTENSION KVM_CAP_BINARY_STATS_FD: %s",
                           strerror(errno));
    if (cap == 0)
        return reason_fail(-EOPNOTSUPP, why, why_len,
                           "this KVM has no binary statistics (KVM_CAP_BINARY_STATS_FD, "
                           "Linux 5.14 or later)");

    int *fds = calloc(vcpu_count ? vcpu_count : 1, sizeof(*fds));
    if (!fds)
        return reason_fail(-ENOMEM, why, why_len, "statistics of %u vCPUs: out of memory",
                           vcpu_count);
    int ret = 0;
    int vm_stats_fd = ioctl(vm_fd, KVM_GET_STATS_FD, 0);
    if (vm_stats_fd < 0) {
        ret = reason_fail(-errno, why, why_len, "KVM_GET_STATS_FD on the VM (fd %d): %s", vm_fd,
                          strerror(errno));
        goto out;
    }
    unsigned int got = 0;
    for (; got < vcpu_count; got++) {
        fds[got] = ioctl(vcpu_fds[got], KVM_GET_STATS_FD, 0);
        if (fds[got] < 0) {
            ret = reason_fail(-errno, why, why_len, "KVM_GET_STATS_FD on vCPU %u (fd %d): %s", got,
                              vcpu_fds[got], strerror(errno));
            break;
        }
    }
    if (ret) {
        close(vm_stats_fd);
        for (unsigned int i = 0; i < got; i++)
            close(fds[i]);
        goto out;
    }
    ret = kvm_stats_init(stats, vm_stats_fd, fds, vcpu_count, why, why_len);
out:
    free(fds);
    return ret;
}

int kvm_stats_refresh(struct kvm_stats *stats, char *why, size_t why_len)
{
    char inner[192];
    int ret = kvm_stats_file_refresh(&stats->vm, inner, sizeof(inner));
    if (ret)
        return reason_fail(ret, why, why_len, "VM statistics: %s", inner);
    for (unsigned int i = 0; i < stats->vcpu_count; i++) {
        ret = kvm_stats_file_refresh(&stats->vcpus[i], inner, sizeof(inner));
        if (ret)
            return reason_fail(ret, why, why_len, "vCPU %u statistics: %s", i, inner);
    }
    return 0;
}

unsigned int kvm_stats_count(const struct kvm_stats *stats)
{
    return stats->vm.count + (stats->vcpu_count ? stats->vcpus[0].count : 0);
}

const struct kvm_stat *kvm_stats_get(const struct kvm_stats *stats, unsigned int i, bool *per_vcpu)
{
    bool vcpu = i >= stats->vm.count;
    if (per_vcpu)
        *per_vcpu = vcpu;
    return vcpu ? &stats->vcpus[0].stats[i - stats->vm.count] : &stats->vm.stats[i];
}

uint64_t kvm_stats_value(const struct kvm_stats *stats, unsigned int i)
{
    if (i < stats->vm.count)
        return kvm_stats_file_value(&stats->vm, i);
    unsigned int j = i - stats->vm.count;
    bool peak = (stats->vcpus[0].stats[j].flags & KVM_STATS_TYPE_MASK) == KVM_STATS_TYPE_PEAK;
    uint64_t total = 0;
    for (unsigned int c = 0; c < stats->vcpu_count; c++) {
        uint64_t v = kvm_stats_file_value(&stats->vcpus[c], j);
        if (!peak)
            total += v;
        else if (v > total)
            total = v;
    }
    return total;
}

int kvm_stats_find(const struct kvm_stats *stats, const char *name, uint64_t *value)
{
    unsigned int count = kvm_stats_count(stats);
    for (unsigned int i = 0; i < count; i++) {
        if (strcmp(kvm_stats_get(stats, i, NULL)->name, name) == 0) {
            *value = kvm_stats_value(stats, i);
            return 0;
        }
    }
    return -ENOENT;
}

void kvm_stats_destroy(struct kvm_stats *stats)
{
    kvm_stats_file_destroy(&stats->vm);
    for (unsigned int i = 0; i < stats->vcpu_count; i++)
        kvm_stats_file_destroy(&stats->vcpus[i]);
    free(stats->vcpus);
    *stats = (struct kvm_stats){.vm = {.fd = -1}};
}
