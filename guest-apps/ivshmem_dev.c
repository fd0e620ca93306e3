/* ivshmem_dev: see ivshmem_dev.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "ivshmem_dev.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "abi/ivshmem_regs.h"

#define SYSFS_PCI        "/sys/bus/pci/devices"
#define PAT_MEMTYPE_LIST "/sys/kernel/debug/x86/pat_memtype_list"

bool ivshmem_fmt(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n >= 0 && (size_t)n < size;
}

static bool read_hex_attr(const char *dir, const char *attr, unsigned long *value)
{
    char path[256], buf[64];
    FILE *f;
    bool ok;

    ivshmem_fmt(path, sizeof(path), "%s/%s", dir, attr);
    f = fopen(path, "r");
    if (!f)
        return false;
    ok = fgets(buf, sizeof(buf), f) && sscanf(buf, "%lx", value) == 1;
    fclose(f);
    return ok;
}

/* BAR sizes and BAR2's address from the "resource" file: one "start end flags" line per
 * resource, BARs first. */
static void read_resources(struct ivshmem_dev *dev)
{
    char path[256], line[256];
    uint64_t start, end, flags;
    FILE *f;

    ivshmem_fmt(path, sizeof(path), "%s/resource", dev->sysfs);
    f = fopen(path, "r");
    if (!f)
        return;
    for (int bar = 0; bar <= 2 && fgets(line, sizeof(line), f); bar++) {
        if (sscanf(line, "%" SCNx64 " %" SCNx64 " %" SCNx64, &start, &end, &flags) != 3 ||
            end <= start)
            continue;
        if (bar == 0)
            dev->bar0_size = end - start + 1;
        if (bar == 2) {
            dev->bar2_start = start;
            dev->bar2_size = end - start + 1;
        }
    }
    fclose(f);
}

/* The MSI-X capability's table size, walking config space's capability list (bounded: a
 * hostile or broken list must not loop). Reads only the bytes it needs: each config dword
 * read is two exits to the VMM (ports 0xCF8 and 0xCFC). */
unsigned ivshmem_dev_msix_size(const struct ivshmem_dev *dev)
{
    uint8_t status, cap[4];
    char path[256];
    unsigned size = 0;
    int fd;

    ivshmem_fmt(path, sizeof(path), "%s/config", dev->sysfs);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    if (pread(fd, &status, 1, 6) == 1 && (status & 0x10) && /* STATUS.CAP_LIST */
        pread(fd, cap, 1, 0x34) == 1) {
        unsigned pos = cap[0] & 0xFC;
        for (int hops = 0; hops < 48 && pos >= 0x40 && pos + 4 <= 256; hops++) {
            if (pread(fd, cap, 4, pos) != 4)
                break;
            if (cap[0] == 0x11) { /* MSI-X: message control bits 10..0 = table size - 1 */
                size = ((cap[2] | cap[3] << 8) & 0x7FF) + 1;
                break;
            }
            pos = cap[1] & 0xFC;
        }
    }
    close(fd);
    return size;
}

static void read_driver(struct ivshmem_dev *dev)
{
    char path[256], target[256];
    ssize_t n;

    ivshmem_fmt(path, sizeof(path), "%s/driver", dev->sysfs);
    n = readlink(path, target, sizeof(target) - 1);
    if (n > 0) {
        target[n] = '\0';
        const char *base = strrchr(target, '/');
        ivshmem_fmt(dev->driver, sizeof(dev->driver), "%s", base ? base + 1 : target);
    }
    /* The driver's misc device is a child of the PCI device: <sysfs>/misc/ivshmemN. */
    ivshmem_fmt(path, sizeof(path), "%s/misc", dev->sysfs);
    DIR *d = opendir(path);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "ivshmem", 7) == 0) {
            ivshmem_fmt(dev->devnode, sizeof(dev->devnode), "/dev/%s", e->d_name);
            break;
        }
    }
    closedir(d);
}

static int skip_dots(const struct dirent *e)
{
    return e->d_name[0] != '.';
}

int ivshmem_dev_list(struct ivshmem_dev *devs, int max)
{
    struct dirent **names;
    int n = scandir(SYSFS_PCI, &names, skip_dots, alphasort);
    int found = 0;

    if (n < 0)
        return errno == ENOENT ? 0 : -errno;
    for (int i = 0; i < n; i++) {
        char dir[256];
        unsigned long vendor, device;

        if (ivshmem_fmt(dir, sizeof(dir), SYSFS_PCI "/%s", names[i]->d_name) &&
            strlen(names[i]->d_name) < sizeof(devs->bdf) && read_hex_attr(dir, "vendor", &vendor) &&
            read_hex_attr(dir, "device", &device) && vendor == 0x1af4 && device == 0x1110) {
            if (found < max) {
                struct ivshmem_dev *dev = &devs[found];
                memset(dev, 0, sizeof(*dev));
                ivshmem_fmt(dev->bdf, sizeof(dev->bdf), "%s", names[i]->d_name);
                ivshmem_fmt(dev->sysfs, sizeof(dev->sysfs), "%s", dir);
                read_resources(dev);
                read_driver(dev);
            }
            found++;
        }
        free(names[i]);
    }
    free(names);
    return found;
}

int ivshmem_dev_find(const char *spec, struct ivshmem_dev *dev, char *why, size_t why_size)
{
    struct ivshmem_dev devs[IVSHMEM_DEV_MAX];
    int n = ivshmem_dev_list(devs, IVSHMEM_DEV_MAX);

    if (n < 0) {
        ivshmem_fmt(why, why_size, "%s: %s", SYSFS_PCI, strerror(-n));
        return -ENODEV;
    }
    if (n > IVSHMEM_DEV_MAX)
        n = IVSHMEM_DEV_MAX;
    for (int i = 0; i < n; i++) {
        const char *bdf = devs[i].bdf;
        if (!spec || !*spec || strcmp(spec, bdf) == 0 ||
            (strlen(bdf) > 5 && strcmp(spec, bdf + 5) == 0) ||
            (devs[i].devnode[0] && strcmp(spec, devs[i].devnode) == 0)) {
            *dev = devs[i];
            return 0;
        }
    }
    if (!spec || !*spec)
        ivshmem_fmt(why, why_size, "no ivshmem device (1af4:1110) in %s", SYSFS_PCI);
    else
        ivshmem_fmt(why, why_size, "no ivshmem device '%s' (%d found)", spec, n);
    return -ENODEV;
}

/* BAR0 is trapped MMIO: KVM decodes the instruction to emulate it, and its emulator lacks
 * SSE forms like the movd a compiler may pick for a volatile load (that access then ends
 * in #UD, SIGILL). A plain 32-bit MOV into a general register is always emulated. */
static uint32_t reg_read(const volatile uint8_t *regs, unsigned off)
{
    uint32_t v;
    __asm__ volatile("movl %1, %0" : "=r"(v) : "m"(*(const volatile uint32_t *)(regs + off)));
    return v;
}

int ivshmem_dev_open(const struct ivshmem_dev *dev, bool need_driver, struct ivshmem_handle *h)
{
    char path[256];
    int fd, err;

    memset(h, 0, sizeof(*h));
    h->fd = -1;
    h->bar0_size = dev->bar0_size;
    h->bar2_size = dev->bar2_size;
    if (dev->devnode[0]) {
        h->via = "driver";
        h->fd = open(dev->devnode, O_RDWR | O_CLOEXEC);
        return h->fd < 0 ? -errno : 0;
    }
    h->via = "resource0";
    if (need_driver)
        return -ENODEV;
    h->msix_size = ivshmem_dev_msix_size(dev);
    if (dev->bar0_size < IVSHMEM_REG_IVPOSITION + 4)
        return -ENXIO;
    ivshmem_fmt(path, sizeof(path), "%s/resource0", dev->sysfs);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    h->regs_len = (size_t)sysconf(_SC_PAGESIZE);
    void *map = mmap(NULL, h->regs_len, PROT_READ, MAP_SHARED, fd, 0);
    err = map == MAP_FAILED ? -errno : 0;
    close(fd);
    if (err)
        return err;
    h->regs = map;
    return 0;
}

int ivshmem_handle_info(const struct ivshmem_handle *h, struct ivshmem_guest_info *info)
{
    const volatile uint8_t *regs = h->regs;

    memset(info, 0, sizeof(*info));
    if (h->fd >= 0)
        return ioctl(h->fd, IVSHMEM_GUEST_INFO, info) ? -errno : 0;
    if (!regs)
        return -EBADF;
    info->shm_size = h->bar2_size;
    info->own_id = reg_read(regs, IVSHMEM_REG_IVPOSITION);
    info->vectors = h->msix_size;
    info->peers_changed_vector = IVSHMEM_GUEST_VECTOR_OFF;
    if (h->bar0_size >= IVSHMEM_REG_MAX_PEERS + 4 &&
        reg_read(regs, IVSHMEM_REG_EXT_ID) == IVSHMEM_EXT_SIGNATURE) {
        info->flags |= IVSHMEM_GUEST_INFO_EXT;
        info->peers = reg_read(regs, IVSHMEM_REG_PEERS_LO) |
                      (uint64_t)reg_read(regs, IVSHMEM_REG_PEERS_HI) << 32;
        info->max_peers = reg_read(regs, IVSHMEM_REG_MAX_PEERS);
        info->peers_changed_vector = reg_read(regs, IVSHMEM_REG_PEERS_CHANGED_VECTOR);
    } else {
        info->flags |= IVSHMEM_GUEST_INFO_PEERS_UNKNOWN;
    }
    return 0;
}

void ivshmem_handle_close(struct ivshmem_handle *h)
{
    if (h->fd >= 0)
        close(h->fd);
    if (h->regs)
        munmap((void *)h->regs, h->regs_len);
    h->fd = -1;
    h->regs = NULL;
}

int ivshmem_dev_query(const struct ivshmem_dev *dev, struct ivshmem_guest_info *info,
                      const char **via)
{
    struct ivshmem_handle h;
    int err = ivshmem_dev_open(dev, false, &h);

    *via = h.via;
    if (err == 0)
        err = ivshmem_handle_info(&h, info);
    ivshmem_handle_close(&h);
    return err;
}

void *ivshmem_dev_map_shm(const struct ivshmem_dev *dev, bool use_driver, uint64_t *size)
{
    char path[256];
    uint64_t len = dev->bar2_size;
    void *map;
    int fd, err;

    if (use_driver) {
        struct ivshmem_guest_info info;
        if (!dev->devnode[0]) {
            errno = ENODEV;
            return NULL;
        }
        fd = open(dev->devnode, O_RDWR | O_CLOEXEC);
        if (fd < 0)
            return NULL;
        if (ioctl(fd, IVSHMEM_GUEST_INFO, &info) != 0) {
            err = errno;
            close(fd);
            errno = err;
            return NULL;
        }
        len = info.shm_size;
    } else {
        ivshmem_fmt(path, sizeof(path), "%s/resource2", dev->sysfs);
        fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0)
            return NULL;
    }
    if (len == 0 || len > SIZE_MAX) {
        close(fd);
        errno = ENXIO;
        return NULL;
    }
    map = mmap(NULL, (size_t)len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    err = errno;
    close(fd);
    if (map == MAP_FAILED) {
        errno = err;
        return NULL;
    }
    *size = len;
    return map;
}

int ivshmem_dev_memtype(const struct ivshmem_dev *dev, char *types, size_t size)
{
    FILE *f = fopen(PAT_MEMTYPE_LIST, "r");
    if (!f)
        return -errno;
    uint64_t lo = dev->bar2_start, hi = dev->bar2_start + dev->bar2_size;
    char line[256], seen[8][32];
    unsigned nseen = 0;
    types[0] = '\0';
    /* Lines look like "PAT: [mem 0x...-0x...] write-back": one per reservation. */
    while (fgets(line, sizeof(line), f) && nseen < 8) {
        uint64_t start, end;
        char type[32];
        if (sscanf(line, "PAT: [mem %" SCNx64 "-%" SCNx64 "] %31s", &start, &end, type) != 3 ||
            end <= lo || start >= hi)
            continue;
        unsigned i = 0;
        while (i < nseen && strcmp(seen[i], type) != 0)
            i++;
        if (i < nseen)
            continue;
        memcpy(seen[nseen++], type, sizeof(type));
        size_t used = strlen(types);
        ivshmem_fmt(types + used, size - used, "%s%s", used ? "," : "", type);
    }
    fclose(f);
    return nseen ? 0 : -ENOENT;
}
