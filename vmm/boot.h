/* Lays out a guest for the Linux x86 64-bit boot protocol: kernel, initrd, command line
 * and zero page in guest RAM. No KVM here, so the result can be inspected in unit tests. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "vmm/guest_ram.h"
#include "vmm/kernel_image.h"

struct boot_layout {
    uint64_t entry;       /* where the boot vCPU starts, in 64-bit mode */
    uint64_t zero_page;   /* passed in RSI */
    uint64_t initrd_addr; /* 0 when there is no initrd */
    uint64_t initrd_size;
};

/* The same memory checks boot_load makes, without guest RAM: lets minivmm refuse an
 * image that cannot fit before it creates anything. Returns 0 or -EINVAL with why. */
int boot_check_memory(const struct kernel_image *image, uint64_t initrd_size, uint64_t mem_size,
                      char *why, size_t why_len);

/* Copies the image's segments, the initrd and the command line into ram and builds the
 * zero page. Returns 0, or -EINVAL (image or initrd does not fit in this much memory,
 * command line too long) with a one-line reason in why. */
int boot_load(struct guest_ram *ram, const struct kernel_image *image, const uint8_t *initrd,
              size_t initrd_size, const char *cmdline, struct boot_layout *layout, char *why,
              size_t why_len);
