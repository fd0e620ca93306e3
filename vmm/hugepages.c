#include "vmm/hugepages.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <linux/memfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "vmm/reason.h"
#include "vmm/size.h"

bool hugepage_size_valid(uint64_t page_size)
{
    return page_size == HUGEPAGE_2M || page_size == HUGEPAGE_1G;
}

unsigned int hugepage_memfd_flags(uint64_t page_size)
{
    if (!hugepage_size_valid(page_size))
        return 0;
    return MFD_HUGETLB | (page_size == HUGEPAGE_1G ? MFD_HUGE_1GB : MFD_HUGE_2MB);
}

/* One counter file of the pool: a decimal number and a newline. */
static int pool_counter(const char *dir, const char *file, uint64_t *value, char *why,
                        size_t why_len)
{
    char path[512], text[32];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        return reason_fail(-err, why, why_len, "open %s: %s", path, strerror(err));
    }
    ssize_t n;
    while ((n = read(fd, text, sizeof(text) - 1)) < 0 && errno == EINTR)
        ;
    int err = errno;
    close(fd);
    if (n < 0)
        return reason_fail(-err, why, why_len, "read %s: %s", path, strerror(err));
    text[n] = '\0';
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (end == text || errno || (*end && *end != '\n'))
        return reason_fail(-EBADMSG, why, why_len, "%s holds '%.20s', not a number", path, text);
    *value = v;
    return 0;
}

int hugepage_pool_read(const char *sysfs_root, uint64_t page_size, struct hugepage_pool *pool,
                       char *why, size_t why_len)
{
    memset(pool, 0, sizeof(*pool));
    char dir[400], size_text[32];
    snprintf(dir, sizeof(dir), "%s/hugepages-%" PRIu64 "kB", sysfs_root, page_size >> 10);
    if (access(dir, F_OK) < 0) {
        int err = errno;
        format_size(page_size, size_text, sizeof(size_text));
        if (err == ENOENT)
            return reason_fail(-ENOENT, why, why_len,
                               "this host has no %s hugepages (no %s): its CPU or kernel does "
                               "not offer that size",
                               size_text, dir);
        return reason_fail(-err, why, why_len, "access %s: %s", dir, strerror(err));
    }
    int ret;
    if ((ret = pool_counter(dir, "nr_hugepages", &pool->nr, why, why_len)) < 0 ||
        (ret = pool_counter(dir, "free_hugepages", &pool->free, why, why_len)) < 0 ||
        (ret = pool_counter(dir, "resv_hugepages", &pool->resv, why, why_len)) < 0 ||
        (ret = pool_counter(dir, "nr_overcommit_hugepages", &pool->overcommit, why, why_len)) < 0 ||
        (ret = pool_counter(dir, "surplus_hugepages", &pool->surplus, why, why_len)) < 0)
        return ret;
    return 0;
}

uint64_t hugepage_pool_available(const struct hugepage_pool *pool)
{
    uint64_t unpromised = pool->free > pool->resv ? pool->free - pool->resv : 0;
    uint64_t more = pool->overcommit > pool->surplus ? pool->overcommit - pool->surplus : 0;
    return unpromised + more;
}

int hugepages_check(const char *sysfs_root, uint64_t page_size, uint64_t size, char *why,
                    size_t why_len)
{
    struct hugepage_pool pool;
    int ret = hugepage_pool_read(sysfs_root, page_size, &pool, why, why_len);
    if (ret < 0)
        return ret;
    uint64_t need = size / page_size;
    uint64_t available = hugepage_pool_available(&pool);
    if (available >= need)
        return 0;
    char page_text[32], size_text[32];
    format_size(page_size, page_text, sizeof(page_text));
    format_size(size, size_text, sizeof(size_text));
    return reason_fail(-ENOMEM, why, why_len,
                       "%s of memory needs %" PRIu64 " hugepages of %s, %" PRIu64
                       " free (free_hugepages %" PRIu64 ", resv_hugepages %" PRIu64
                       "): reserve more with echo %" PRIu64 " > %s/hugepages-%" PRIu64
                       "kB/nr_hugepages",
                       size_text, need, page_text, available, pool.free, pool.resv,
                       pool.nr + (need - available), sysfs_root, page_size >> 10);
}

int memfd_page_size(int fd, uint64_t *page_size, char *why, size_t why_len)
{
    struct statfs fs;
    if (fstatfs(fd, &fs) < 0) {
        int err = errno;
        return reason_fail(-err, why, why_len, "fstatfs memfd %d: %s", fd, strerror(err));
    }
    *page_size = fs.f_type == HUGETLBFS_MAGIC ? (uint64_t)fs.f_bsize : 0;
    return 0;
}

void hugepage_option(uint64_t page_size, char separator, char *text, size_t len)
{
    if (!page_size) {
        snprintf(text, len, "%s", "");
        return;
    }
    char size_text[32];
    format_size(page_size, size_text, sizeof(size_text));
    snprintf(text, len, "%chugepages=%s", separator, size_text);
}

void hugepage_describe(uint64_t page_size, char *text, size_t len)
{
    if (!page_size) {
        snprintf(text, len, "ordinary pages");
        return;
    }
    char size_text[32];
    format_size(page_size, size_text, sizeof(size_text));
    snprintf(text, len, "%s hugepages", size_text);
}
