/*
 * ivshmem_dev: finding and opening ivshmem PCI devices (1af4:1110) from a Linux guest, with
 * or without the ivshmem_guest driver (guest-kernel-module/). Shared by ivshmem-info and
 * shm-ring.
 *
 * Without the driver everything goes through sysfs: BAR addresses from
 * /sys/bus/pci/devices/<BDF>/resource, the MSI-X table size from config space, the
 * registers by mmap of resource0 and the shared memory by mmap of resource2 (Linux maps
 * these uncached: UC-). With the driver, /dev/ivshmemN answers the INFO ioctl and maps the
 * shared memory write-back. The driver requests BAR0, which makes resource0 unmappable
 * (CONFIG_IO_STRICT_DEVMEM), but leaves BAR2 alone, so resource2 works either way.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "abi/ivshmem_guest_ioctl.h"

#define IVSHMEM_DEV_MAX 32

struct ivshmem_dev {
    char bdf[32];        /* 0000:00:01.0 */
    char sysfs[96];      /* /sys/bus/pci/devices/<bdf> */
    char driver[64];     /* the bound driver's name, "" for none */
    char devnode[64];    /* /dev/ivshmemN when ivshmem_guest is bound, else "" */
    uint64_t bar0_size;  /* 0 when absent */
    uint64_t bar2_start; /* guest-physical address */
    uint64_t bar2_size;  /* 0 when absent */
};

/* snprintf that says whether it all fit (false: truncated). */
bool ivshmem_fmt(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Fills devs (up to max) with the ivshmem devices, sorted by BDF. Returns how many there
 * are (which may exceed max) or -errno. */
int ivshmem_dev_list(struct ivshmem_dev *devs, int max);

/* The MSI-X table size from config space, 0 without MSI-X. Not part of the listing: each
 * config read is a pair of exits to the VMM, which programs that use the driver skip. */
unsigned ivshmem_dev_msix_size(const struct ivshmem_dev *dev);

/* Finds one device: spec NULL or "" = the first, else a BDF (0000:00:01.0 or 00:01.0) or a
 * device node (/dev/ivshmem0). Returns 0 or -ENODEV (message in why). */
int ivshmem_dev_find(const char *spec, struct ivshmem_dev *dev, char *why, size_t why_size);

/* An open device, for repeated register reads: the driver's device node (fd, opened
 * read-write) when dev->devnode is set, else BAR0 mapped read-only through resource0. */
struct ivshmem_handle {
    int fd;                 /* /dev/ivshmemN, or -1 */
    volatile uint8_t *regs; /* resource0 mapping, or NULL */
    size_t regs_len;
    uint64_t bar0_size;
    uint64_t bar2_size;
    unsigned msix_size;
    const char *via; /* "driver" or "resource0" */
};

/* Opens dev as above; with need_driver only through the driver. Returns 0 or -errno
 * (-ENODEV: need_driver and no driver bound). */
int ivshmem_dev_open(const struct ivshmem_dev *dev, bool need_driver, struct ivshmem_handle *h);

/* What the device says about itself: the driver's INFO ioctl, or the same facts read from
 * BAR0 (info->vectors is then the MSI-X table size and IVSHMEM_GUEST_INFO_IRQ is clear: no
 * driver handles interrupts). Returns 0 or -errno. */
int ivshmem_handle_info(const struct ivshmem_handle *h, struct ivshmem_guest_info *info);

void ivshmem_handle_close(struct ivshmem_handle *h);

/* ivshmem_dev_open + ivshmem_handle_info + ivshmem_handle_close; *via says which way. */
int ivshmem_dev_query(const struct ivshmem_dev *dev, struct ivshmem_guest_info *info,
                      const char **via);

/* Maps the whole of BAR2 read-write: through the driver (use_driver, needs dev->devnode)
 * or through resource2. Returns the mapping (size in *size) or NULL with errno set. */
void *ivshmem_dev_map_shm(const struct ivshmem_dev *dev, bool use_driver, uint64_t *size);

/* The memory types the kernel's page attribute table holds for BAR2's range, from debugfs
 * (/sys/kernel/debug/x86/pat_memtype_list): each distinct one once, comma-separated, e.g.
 * "write-back" or "uncached-minus". Only mappings that exist right now are listed: call it
 * while holding one. Returns 0, -ENOENT (no entry for BAR2) or -errno (no debugfs). */
int ivshmem_dev_memtype(const struct ivshmem_dev *dev, char *types, size_t size);
