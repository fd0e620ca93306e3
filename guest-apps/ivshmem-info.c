/*
 * ivshmem-info: list the ivshmem PCI devices (1af4:1110) the guest sees, one fact per line,
 * so that a person reads it and a test greps it:
 *   ivshmem <bdf>: bar2 <bytes> bytes at <address>
 *   ivshmem <bdf>: peer id <IVPosition>
 *   ivshmem <bdf>: vectors <n> (<MSI-X table size / in use by the driver / no MSI-X>)
 *   ivshmem <bdf>: minivmm extension: yes, peers <hex bitmap> (<IDs>), max <n>
 *                  | no (peer presence unknown)
 *   ivshmem <bdf>: driver <name> (<devnode>) | driver none
 *   ivshmem <bdf>: registers via <driver|resource0>
 *   ivshmem devices: <count>
 * Works with and without the ivshmem_guest driver (ivshmem_dev.h says how).
 * Exit status: 0 when at least one device was listed and all of it could be read; 1 when
 * none was found or something could not be read (said on stderr); 2 usage.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ivshmem_dev.h"

static void print_peers(uint64_t peers)
{
    const char *sep = "";
    printf(" (");
    for (int id = 0; id < 64; id++) {
        if (peers & (1ull << id)) {
            printf("%s%d", sep, id);
            sep = " ";
        }
    }
    printf(")");
}

static int print_device(const struct ivshmem_dev *dev)
{
    struct ivshmem_guest_info info;
    const char *via;
    const char *bdf = dev->bdf;
    int err;

    if (dev->bar2_size)
        printf("ivshmem %s: bar2 %" PRIu64 " bytes at 0x%" PRIx64 "\n", bdf, dev->bar2_size,
               dev->bar2_start);
    else
        printf("ivshmem %s: bar2 absent\n", bdf);

    err = ivshmem_dev_query(dev, &info, &via);
    if (err) {
        printf("ivshmem %s: registers unreadable via %s\n", bdf, via);
        fprintf(stderr, "ivshmem-info: %s: registers via %s: %s\n", bdf, via, strerror(-err));
    } else {
        printf("ivshmem %s: peer id %" PRIu32 "\n", bdf, info.own_id);
    }

    unsigned msix_size = ivshmem_dev_msix_size(dev);
    if (msix_size == 0)
        printf("ivshmem %s: vectors 0 (no MSI-X: no interrupts)\n", bdf);
    else if (!err && (info.flags & IVSHMEM_GUEST_INFO_IRQ))
        printf("ivshmem %s: vectors %u (MSI-X, %" PRIu32 " in use by the driver)\n", bdf, msix_size,
               info.vectors);
    else
        printf("ivshmem %s: vectors %u (MSI-X)\n", bdf, msix_size);

    if (!err) {
        if (info.flags & IVSHMEM_GUEST_INFO_EXT) {
            printf("ivshmem %s: minivmm extension: yes, peers 0x%" PRIx64, bdf,
                   (uint64_t)info.peers);
            print_peers(info.peers);
            printf(", max %" PRIu32, info.max_peers);
            if (info.peers_changed_vector != IVSHMEM_GUEST_VECTOR_OFF)
                printf(", peers-changed vector %" PRIu32, info.peers_changed_vector);
            printf("\n");
        } else {
            printf("ivshmem %s: minivmm extension: no (peer presence unknown)\n", bdf);
        }
    }

    if (dev->driver[0])
        printf("ivshmem %s: driver %s%s%s%s\n", bdf, dev->driver, dev->devnode[0] ? " (" : "",
               dev->devnode, dev->devnode[0] ? ")" : "");
    else
        printf("ivshmem %s: driver none\n", bdf);
    if (!err)
        printf("ivshmem %s: registers via %s\n", bdf, via);
    return err ? 1 : 0;
}

int main(int argc, char **argv)
{
    struct ivshmem_dev devs[IVSHMEM_DEV_MAX];
    int failures = 0;

    if (argc != 1) {
        fprintf(stderr, "usage: %s   (list the ivshmem devices)\n", argv[0]);
        return 2;
    }
    int n = ivshmem_dev_list(devs, IVSHMEM_DEV_MAX);
    if (n < 0) {
        fprintf(stderr, "ivshmem-info: /sys/bus/pci/devices: %s\n", strerror(-n));
        return 1;
    }
    for (int i = 0; i < n && i < IVSHMEM_DEV_MAX; i++)
        failures += print_device(&devs[i]);
    printf("ivshmem devices: %d\n", n);
    if (n == 0)
        fprintf(stderr, "ivshmem-info: no ivshmem device (1af4:1110)\n");
    return n == 0 || failures ? 1 : 0;
}
