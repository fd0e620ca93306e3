#include "vmm/boot.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vmm/layout.h"
#include "vmm/reason.h"

#define LOADER_TYPE_UNDEFINED 0xFF /* boot protocol: a loader with no assigned ID */
#define ELF_KERNEL_ALIGNMENT  0x1000000

static int boot_check_kernel_fits(const struct kernel_image *image, uint64_t low_size, char *why,
                                  size_t why_len)
{
    if (image->load_end > low_size)
        return reason_fail(-EINVAL, why, why_len,
                           "kernel needs %llu MiB of guest memory to boot, have %llu MiB below "
                           "the PCI hole (raise --mem)",
                           (unsigned long long)((image->load_end + (1ull << 20) - 1) >> 20),
                           (unsigned long long)(low_size >> 20));
    return 0;
}

/* The initrd goes as high as the kernel allows, so the kernel's own decompression and
 * early allocations below it have the most room. */
static int boot_initrd_address(const struct kernel_image *image, uint64_t low_size, uint64_t size,
                               uint64_t *addr, char *why, size_t why_len)
{
    uint64_t limit = low_size;
    if (image->kind == KERNEL_BZIMAGE && image->hdr.initrd_addr_max &&
        (uint64_t)image->hdr.initrd_addr_max + 1 < limit)
        limit = (uint64_t)image->hdr.initrd_addr_max + 1;
    if (size > limit || ((limit - size) & ~0xFFFull) < image->load_end)
        return reason_fail(-EINVAL, why, why_len,
                           "initrd (%llu KiB) does not fit above the kernel (ends at %llu MiB) "
                           "below %llu MiB (raise --mem)",
                           (unsigned long long)(size >> 10),
                           (unsigned long long)(image->load_end >> 20),
                           (unsigned long long)(limit >> 20));
    *addr = (limit - size) & ~0xFFFull;
    return 0;
}

int boot_check_memory(const struct kernel_image *image, uint64_t initrd_size, uint64_t mem_size,
                      char *why, size_t why_len)
{
    uint64_t low_size = mem_size < PCI_HOLE_START ? mem_size : PCI_HOLE_START;
    uint64_t initrd_addr;
    int ret = boot_check_kernel_fits(image, low_size, why, why_len);
    if (!ret && initrd_size)
        ret = boot_initrd_address(image, low_size, initrd_size, &initrd_addr, why, why_len);
    return ret;
}

static int boot_copy_segments(struct guest_ram *ram, const struct kernel_image *image, char *why,
                              size_t why_len)
{
    int ret = boot_check_kernel_fits(image, ram->low_size, why, why_len);
    if (ret)
        return ret;
    for (size_t i = 0; i < image->segment_count; i++) {
        const struct kernel_segment *seg = &image->segments[i];
        uint8_t *dst = guest_ram_ptr(ram, seg->paddr, seg->mem_size);
        if (!dst)
            return reason_fail(-EINVAL, why, why_len,
                               "kernel segment at 0x%llx (%llu bytes) is not in RAM",
                               (unsigned long long)seg->paddr, (unsigned long long)seg->mem_size);
        memcpy(dst, seg->data, seg->file_size);
        memset(dst + seg->file_size, 0, seg->mem_size - seg->file_size);
    }
    return 0;
}

int boot_load(struct guest_ram *ram, const struct kernel_image *image, const uint8_t *initrd,
              size_t initrd_size, const char *cmdline, struct boot_layout *layout, char *why,
              size_t why_len)
{
    memset(layout, 0, sizeof(*layout));
    int ret = boot_copy_segments(ram, image, why, why_len);
    if (ret)
        return ret;

    struct boot_params *params = guest_ram_ptr(ram, LAYOUT_ZERO_PAGE, sizeof(*params));
    memset(params, 0, sizeof(*params));
    if (image->kind == KERNEL_BZIMAGE) {
        params->hdr = image->hdr;
    } else {
        /* A vmlinux has no setup header: give the fields the 64-bit entry reads. */
        params->hdr.boot_flag = 0xAA55;
        params->hdr.header = 0x53726448;
        params->hdr.version = 0x020F;
        params->hdr.kernel_alignment = ELF_KERNEL_ALIGNMENT;
    }
    params->hdr.type_of_loader = LOADER_TYPE_UNDEFINED;
    params->hdr.vid_mode = 0xFFFF; /* "normal": no video mode to set */

    size_t cmdline_len = strlen(cmdline);
    uint64_t cmdline_max = LAYOUT_CMDLINE_MAX - 1;
    if (image->kind == KERNEL_BZIMAGE && image->hdr.cmdline_size < cmdline_max)
        cmdline_max = image->hdr.cmdline_size;
    if (cmdline_len > cmdline_max)
        return reason_fail(-EINVAL, why, why_len,
                           "kernel command line is %zu bytes, kernel takes %llu", cmdline_len,
                           (unsigned long long)cmdline_max);
    char *cmdline_dst = guest_ram_ptr(ram, LAYOUT_CMDLINE, cmdline_len + 1);
    memcpy(cmdline_dst, cmdline, cmdline_len + 1);
    params->hdr.cmd_line_ptr = (uint32_t)LAYOUT_CMDLINE;
    params->ext_cmd_line_ptr = 0;

    if (initrd && initrd_size) {
        ret = boot_initrd_address(image, ram->low_size, initrd_size, &layout->initrd_addr, why,
                                  why_len);
        if (ret)
            return ret;
        memcpy(guest_ram_ptr(ram, layout->initrd_addr, initrd_size), initrd, initrd_size);
        layout->initrd_size = initrd_size;
        params->hdr.ramdisk_image = (uint32_t)layout->initrd_addr;
        params->hdr.ramdisk_size = (uint32_t)initrd_size;
        params->ext_ramdisk_image = (uint32_t)(layout->initrd_addr >> 32);
        params->ext_ramdisk_size = (uint32_t)((uint64_t)initrd_size >> 32);
    }

    struct e820_range ranges[E820_MAX_RANGES];
    size_t count = guest_ram_e820(ram, ranges, E820_MAX_RANGES);
    for (size_t i = 0; i < count; i++) {
        params->e820_table[i].addr = ranges[i].addr;
        params->e820_table[i].size = ranges[i].size;
        params->e820_table[i].type = ranges[i].type;
    }
    params->e820_entries = (uint8_t)count;

    layout->entry = image->entry;
    layout->zero_page = LAYOUT_ZERO_PAGE;
    return 0;
}
