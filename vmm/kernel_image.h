/* Recognises and checks a kernel image before anything is loaded: a bzImage (x86 boot
 * protocol 2.12 or later, with the 64-bit entry) or an x86-64 ELF executable (vmlinux,
 * or a small test guest). Pure functions over a byte buffer, so corrupt images are easy
 * to test. */
#pragma once

#include <asm/bootparam.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KERNEL_IMAGE_MAX_SEGMENTS 16

/* An ELF note named "minivmm" of this type marks a freestanding guest (tests/kvm/ has them):
 * no Linux inside, so it may run on a paravirtual KVM (PVM), which cannot boot Linux. */
#define KERNEL_NOTE_NAME         "minivmm"
#define KERNEL_NOTE_FREESTANDING 1

enum kernel_kind { KERNEL_BZIMAGE, KERNEL_ELF };

struct kernel_segment {
    uint64_t paddr;      /* guest physical load address */
    const uint8_t *data; /* bytes to copy, inside the image buffer */
    uint64_t file_size;  /* how many bytes to copy */
    uint64_t mem_size;   /* bytes the segment occupies; the rest is zeroed */
};

struct kernel_image {
    enum kernel_kind kind;
    uint64_t entry;          /* guest physical 64-bit entry point */
    uint64_t load_end;       /* first byte above everything the kernel needs while booting */
    struct setup_header hdr; /* bzImage: its header; ELF: zero */
    bool freestanding;       /* ELF with the KERNEL_NOTE_FREESTANDING note */
    size_t segment_count;
    struct kernel_segment segments[KERNEL_IMAGE_MAX_SEGMENTS];
};

/* Fills image from the file contents. On error returns -EINVAL (not a kernel we can
 * boot) and writes a one-line reason to why. The segments point into data. */
int kernel_image_parse(const uint8_t *data, size_t size, struct kernel_image *image, char *why,
                       size_t why_len);
