/* Kernel recognition: a minimal bzImage and small ELF files built here, each corrupted
 * in one field, and the real guest kernel when the build has fetched it. */
#include <elf.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/unit/support/kernel_images.h"
#include "tests/unit/support/text.h"
#include "vmm/kernel_image.h"

#define MIB (1ull << 20)

/* Parses a buffer that must be refused, with why naming the problem. */
static void expect_reject(const uint8_t *data, size_t size, const char *mention)
{
    struct kernel_image image;
    char why[256] = "";
    int ret = kernel_image_parse(data, size, &image, why, sizeof(why));
    if (ret != -EINVAL)
        fail_msg("expected -EINVAL mentioning \"%s\", got %d", mention, ret);
    assert_contains(why, mention);
}

static void test_bzimage_builder_layout(void **state)
{
    (void)state;
    /* The builder itself, checked against the boot protocol's raw offsets rather than
     * the struct, so a wrong struct could not make both sides agree. */
    uint8_t image[SYNTH_BZIMAGE_SIZE];
    synth_bzimage_build(image);
    assert_int_equal(image[0x1FE], 0x55);
    assert_int_equal(image[0x1FF], 0xAA);
    assert_memory_equal(image + 0x202, "HdrS", 4);
    assert_int_equal(image[0x206] | image[0x207] << 8, 0x020F);
    assert_int_equal(image[0x1F1], SYNTH_SETUP_SECTS);
}

static void test_bzimage_accepted(void **state)
{
    (void)state;
    uint8_t data[SYNTH_BZIMAGE_SIZE];
    synth_bzimage_build(data);
    struct kernel_image image;
    char why[256] = "untouched";
    assert_int_equal(kernel_image_parse(data, sizeof(data), &image, why, sizeof(why)), 0);
    assert_int_equal(image.kind, KERNEL_BZIMAGE);
    assert_int_equal(image.entry, 0x100200);
    assert_int_equal(image.segment_count, 1);
    assert_int_equal(image.segments[0].paddr, 0x100000);
    assert_ptr_equal(image.segments[0].data, data + SYNTH_SETUP_SIZE);
    assert_int_equal(image.segments[0].file_size, SYNTH_PAYLOAD_SIZE);
    assert_int_equal(image.segments[0].mem_size, SYNTH_PAYLOAD_SIZE);
    /* Relocatable with pref_address 16 MiB: it runs from there and needs init_size. */
    assert_int_equal(image.load_end, SYNTH_LOAD_END);
    assert_memory_equal(&image.hdr, synth_hdr(data), sizeof(image.hdr));
}

static void test_bzimage_load_end_variants(void **state)
{
    (void)state;
    uint8_t data[SYNTH_BZIMAGE_SIZE];
    struct kernel_image image;
    char why[256];

    /* Not relocatable: it decompresses at 1 MiB whatever pref_address says. */
    synth_bzimage_build(data);
    synth_hdr(data)->relocatable_kernel = 0;
    assert_int_equal(kernel_image_parse(data, sizeof(data), &image, why, sizeof(why)), 0);
    assert_int_equal(image.load_end, 1 * MIB + SYNTH_INIT_SIZE);

    /* A pref_address below 1 MiB cannot pull the kernel below where it is loaded. */
    synth_bzimage_build(data);
    synth_hdr(data)->pref_address = 0x10000;
    assert_int_equal(kernel_image_parse(data, sizeof(data), &image, why, sizeof(why)), 0);
    assert_int_equal(image.load_end, 1 * MIB + SYNTH_INIT_SIZE);

    /* init_size smaller than the payload: the payload's size counts, rounded to a page. */
    synth_bzimage_build(data);
    synth_hdr(data)->init_size = 0x100;
    synth_hdr(data)->relocatable_kernel = 0;
    assert_int_equal(kernel_image_parse(data, sizeof(data), &image, why, sizeof(why)), 0);
    assert_int_equal(image.load_end, 1 * MIB + SYNTH_PAYLOAD_SIZE);

    /* An unaligned end is rounded up to the next page. */
    synth_bzimage_build(data);
    synth_hdr(data)->init_size = SYNTH_INIT_SIZE + 1;
    assert_int_equal(kernel_image_parse(data, sizeof(data), &image, why, sizeof(why)), 0);
    assert_int_equal(image.load_end, SYNTH_LOAD_END + 4096);
}

/* Found by tests/fuzz/fuzz_kernel_image.c: pref_address + init_size wrapped around, so
 * load_end came out small and the image was taken for one that fits in guest memory. */
static void test_bzimage_pref_address_wraps(void **state)
{
    (void)state;
    static uint8_t data[SYNTH_BZIMAGE_SIZE];
    struct kernel_image image;
    char why[200];

    synth_bzimage_build(data);
    synth_hdr(data)->pref_address = UINT64_MAX;
    synth_hdr(data)->init_size = UINT32_MAX;
    assert_int_equal(kernel_image_parse(data, sizeof(data), &image, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "address space"));

    synth_hdr(data)->pref_address = UINT64_MAX - 4095 - UINT32_MAX + 1;
    assert_int_equal(kernel_image_parse(data, sizeof(data), &image, why, sizeof(why)), -EINVAL);
    synth_hdr(data)->pref_address = UINT64_MAX - 4095 - UINT32_MAX;
    assert_int_equal(kernel_image_parse(data, sizeof(data), &image, why, sizeof(why)), 0);
    assert_true(image.load_end >= synth_hdr(data)->pref_address);
}

static void test_bzimage_setup_sects_zero_means_four(void **state)
{
    (void)state;
    uint8_t data[SYNTH_BZIMAGE_SIZE];
    synth_bzimage_build(data);
    synth_hdr(data)->setup_sects = 0;
    struct kernel_image image;
    char why[256];
    assert_int_equal(kernel_image_parse(data, sizeof(data), &image, why, sizeof(why)), 0);
    assert_ptr_equal(image.segments[0].data, data + 5 * 512);
    assert_int_equal(image.segments[0].file_size, SYNTH_PAYLOAD_SIZE);
}

static void test_bzimage_rejected(void **state)
{
    (void)state;
    uint8_t data[SYNTH_BZIMAGE_SIZE];

    synth_bzimage_build(data);
    synth_hdr(data)->boot_flag = 0xAA54;
    expect_reject(data, sizeof(data), "0xAA55");

    synth_bzimage_build(data);
    data[0x202] = 'h';
    expect_reject(data, sizeof(data), "HdrS");

    synth_bzimage_build(data);
    synth_hdr(data)->version = 0x0209;
    expect_reject(data, sizeof(data), "2.09");
    expect_reject(data, sizeof(data), "too old");

    /* 2.11 is the last protocol without xloadflags. */
    synth_bzimage_build(data);
    synth_hdr(data)->version = 0x020B;
    expect_reject(data, sizeof(data), "2.11");

    synth_bzimage_build(data);
    synth_hdr(data)->xloadflags = XLF_CAN_BE_LOADED_ABOVE_4G;
    expect_reject(data, sizeof(data), "XLF_KERNEL_64");

    synth_bzimage_build(data);
    synth_hdr(data)->loadflags = 0;
    expect_reject(data, sizeof(data), "zImage");

    /* syssize claims one paragraph more than the file holds. */
    synth_bzimage_build(data);
    synth_hdr(data)->syssize = SYNTH_PAYLOAD_SIZE / 16 + 1;
    expect_reject(data, sizeof(data), "truncated");

    /* The same, by cutting the file rather than growing the header. */
    synth_bzimage_build(data);
    expect_reject(data, sizeof(data) - 16, "truncated");

    /* setup_sects pointing past the end of the file. */
    synth_bzimage_build(data);
    synth_hdr(data)->setup_sects = SYNTH_BZIMAGE_SIZE / 512;
    expect_reject(data, sizeof(data), "no kernel");

    /* A payload too short to reach the 64-bit entry at 0x200. */
    synth_bzimage_build(data);
    synth_hdr(data)->syssize = 0x200 / 16;
    expect_reject(data, SYNTH_SETUP_SIZE + 0x200, "64-bit entry");
}

static void test_too_small_and_empty(void **state)
{
    (void)state;
    uint8_t data[SYNTH_BZIMAGE_SIZE];
    synth_bzimage_build(data);
    /* Cut inside the setup header: the boot flag is there, the rest is not. */
    expect_reject(data, 0x200, "too small");
    expect_reject(data, 1, "too small");
    /* An empty file maps to no data at all. */
    expect_reject(NULL, 0, "too small");
    expect_reject(NULL, 0, "0 bytes");
}

static void test_why_truncated_safely(void **state)
{
    (void)state;
    uint8_t data[SYNTH_BZIMAGE_SIZE];
    synth_bzimage_build(data);
    data[0x202] = 0;
    char why[9];
    memset(why, 'x', sizeof(why));
    struct kernel_image image;
    assert_int_equal(kernel_image_parse(data, sizeof(data), &image, why, 8), -EINVAL);
    assert_int_equal(strlen(why), 7);
    assert_int_equal(why[8], 'x');
}

/* The Debian kernel the guest image is built from, when the build has fetched it. */
static uint8_t *read_real_kernel(size_t *size)
{
    const char *build_dir = getenv("MINIVMM_BUILD_DIR");
    if (!build_dir)
        return NULL;
    char path[4096];
    snprintf(path, sizeof(path), "%s/guest-image/bzImage", build_dir);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    uint8_t *data = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long len = ftell(f);
        data = len > 0 ? malloc((size_t)len) : NULL;
        rewind(f);
        if (data && fread(data, 1, (size_t)len, f) != (size_t)len) {
            free(data);
            data = NULL;
        }
        *size = (size_t)len;
    }
    fclose(f);
    assert_non_null(data);
    return data;
}

static void test_real_bzimage(void **state)
{
    (void)state;
    size_t size = 0;
    uint8_t *data = read_real_kernel(&size);
    if (!data) {
        print_message("no $MINIVMM_BUILD_DIR/guest-image/bzImage: build the guest image to "
                      "check the real kernel\n");
        skip();
    }

    struct kernel_image image;
    char why[256] = "";
    int ret = kernel_image_parse(data, size, &image, why, sizeof(why));
    if (ret)
        fail_msg("real kernel rejected: %s", why);
    assert_int_equal(image.kind, KERNEL_BZIMAGE);
    assert_int_equal(image.entry, 0x100200);
    assert_true(image.load_end >= 16 * MIB);
    assert_int_equal(image.load_end % 4096, 0);
    assert_true(image.hdr.version >= 0x020C);
    assert_true(image.hdr.xloadflags & XLF_KERNEL_64);
    assert_int_equal(image.segment_count, 1);
    assert_int_equal(image.segments[0].paddr, 0x100000);
    size_t setup_size = ((size_t)(image.hdr.setup_sects ? image.hdr.setup_sects : 4) + 1) * 512;
    assert_ptr_equal(image.segments[0].data, data + setup_size);
    assert_int_equal(image.segments[0].file_size, size - setup_size);

    uint8_t *copy = malloc(size);
    assert_non_null(copy);
    memcpy(copy, data, size);
    copy[0x202] ^= 0xFF;
    expect_reject(copy, size, "HdrS");

    memcpy(copy, data, size);
    copy[0x1FE] ^= 0xFF;
    expect_reject(copy, size, "0xAA55");

    memcpy(copy, data, size);
    expect_reject(copy, size / 2, "truncated");
    free(copy);
    free(data);
}

/* ELF files: one load segment at 2 MiB unless a test says otherwise. */
static _Alignas(8) uint8_t elf_buf[SYNTH_ELF_SIZE];

static void test_elf_physical_entry(void **state)
{
    (void)state;
    struct synth_elf_segment seg = synth_elf_load(0x200000, 0x200000, 0x100, 0x2000);
    synth_elf_build(elf_buf, ET_EXEC, EM_X86_64, 0x200010, &seg, 1);
    struct kernel_image image;
    char why[256] = "";
    int ret = kernel_image_parse(elf_buf, sizeof(elf_buf), &image, why, sizeof(why));
    if (ret)
        fail_msg("rejected: %s", why);
    assert_int_equal(image.kind, KERNEL_ELF);
    assert_int_equal(image.entry, 0x200010);
    assert_int_equal(image.segment_count, 1);
    assert_int_equal(image.segments[0].paddr, 0x200000);
    assert_ptr_equal(image.segments[0].data, elf_buf + SYNTH_ELF_DATA);
    assert_int_equal(image.segments[0].file_size, 0x100);
    assert_int_equal(image.segments[0].mem_size, 0x2000);
    assert_int_equal(image.load_end, 0x202000);
    /* ELF has no setup header to pass on. */
    assert_int_equal(image.hdr.header, 0);
}

static void test_elf_virtual_entry(void **state)
{
    (void)state;
    /* Like vmlinux: linked at the kernel's high virtual address, loaded at 16 MiB. */
    struct synth_elf_segment seg = synth_elf_load(0xFFFFFFFF81000000ull, 0x1000000, 0x800, 0x1800);
    synth_elf_build(elf_buf, ET_EXEC, EM_X86_64, 0xFFFFFFFF81000040ull, &seg, 1);
    struct kernel_image image;
    char why[256] = "";
    int ret = kernel_image_parse(elf_buf, sizeof(elf_buf), &image, why, sizeof(why));
    if (ret)
        fail_msg("rejected: %s", why);
    assert_int_equal(image.entry, 0x1000040);
    assert_int_equal(image.load_end, 0x1002000);

    /* The same file with its entry given physically. */
    synth_elf_build(elf_buf, ET_EXEC, EM_X86_64, 0x1000040, &seg, 1);
    assert_int_equal(kernel_image_parse(elf_buf, sizeof(elf_buf), &image, why, sizeof(why)), 0);
    assert_int_equal(image.entry, 0x1000040);
}

static void test_elf_several_segments(void **state)
{
    (void)state;
    /* Non-load and empty segments are skipped; the entry is in the second load segment
     * and load_end covers the highest one, whatever the order. */
    struct synth_elf_segment segs[] = {
        {PT_NOTE, SYNTH_ELF_DATA, 0, 0, 0x10, 0x10},
        synth_elf_load(0x3000000, 0x3000000, 0x100, 0x100),
        synth_elf_load(0x400000, 0x400000, 0x0, 0x0),
        synth_elf_load(0x1000000, 0x1000000, 0x200, 0x5000),
    };
    segs[3].offset = SYNTH_ELF_DATA + 0x100;
    synth_elf_build(elf_buf, ET_EXEC, EM_X86_64, 0x1004FFF, segs, 4);
    struct kernel_image image;
    char why[256] = "";
    int ret = kernel_image_parse(elf_buf, sizeof(elf_buf), &image, why, sizeof(why));
    if (ret)
        fail_msg("rejected: %s", why);
    assert_int_equal(image.segment_count, 2);
    assert_int_equal(image.segments[0].paddr, 0x3000000);
    assert_int_equal(image.segments[1].paddr, 0x1000000);
    assert_ptr_equal(image.segments[1].data, elf_buf + SYNTH_ELF_DATA + 0x100);
    assert_int_equal(image.segments[1].mem_size, 0x5000);
    assert_int_equal(image.entry, 0x1004FFF);
    assert_int_equal(image.load_end, 0x3001000);
}

static void test_elf_rejected(void **state)
{
    (void)state;
    struct synth_elf_segment seg = synth_elf_load(0x200000, 0x200000, 0x100, 0x2000);

    synth_elf_build(elf_buf, ET_EXEC, EM_AARCH64, 0x200000, &seg, 1);
    expect_reject(elf_buf, sizeof(elf_buf), "not x86-64");

    synth_elf_build(elf_buf, ET_EXEC, EM_X86_64, 0x200000, &seg, 1);
    ((Elf64_Ehdr *)elf_buf)->e_type = ET_DYN;
    expect_reject(elf_buf, sizeof(elf_buf), "not an executable");

    /* File contents run past the end of the file. */
    struct synth_elf_segment beyond = synth_elf_load(0x200000, 0x200000, 0x2001, 0x3000);
    synth_elf_build(elf_buf, ET_EXEC, EM_X86_64, 0x200000, &beyond, 1);
    expect_reject(elf_buf, sizeof(elf_buf), "outside the file");
    beyond = synth_elf_load(0x200000, 0x200000, 0x10, 0x10);
    beyond.offset = SYNTH_ELF_SIZE + 0x1000;
    synth_elf_build(elf_buf, ET_EXEC, EM_X86_64, 0x200000, &beyond, 1);
    expect_reject(elf_buf, sizeof(elf_buf), "outside the file");
    /* An offset so large that offset + size wraps. */
    beyond.offset = UINT64_MAX - 4;
    synth_elf_build(elf_buf, ET_EXEC, EM_X86_64, 0x200000, &beyond, 1);
    expect_reject(elf_buf, sizeof(elf_buf), "outside the file");

    /* More file bytes than memory bytes is not a valid segment either. */
    struct synth_elf_segment inverted = synth_elf_load(0x200000, 0x200000, 0x200, 0x100);
    synth_elf_build(elf_buf, ET_EXEC, EM_X86_64, 0x200000, &inverted, 1);
    expect_reject(elf_buf, sizeof(elf_buf), "segment 0");

    struct synth_elf_segment low = synth_elf_load(0x8000, 0x8000, 0x100, 0x100);
    synth_elf_build(elf_buf, ET_EXEC, EM_X86_64, 0x8000, &low, 1);
    expect_reject(elf_buf, sizeof(elf_buf), "below 1 MiB");
    low = synth_elf_load(0xFFFFF, 0xFFFFF, 0x10, 0x10);
    synth_elf_build(elf_buf, ET_EXEC, EM_X86_64, 0xFFFFF, &low, 1);
    expect_reject(elf_buf, sizeof(elf_buf), "below 1 MiB");

    struct synth_elf_segment wraps =
        synth_elf_load(0xFFFFFFFFFFFFF000ull, 0xFFFFFFFFFFFFF000ull, 0x100, 0x2000);
    synth_elf_build(elf_buf, ET_EXEC, EM_X86_64, 0xFFFFFFFFFFFFF000ull, &wraps, 1);
    expect_reject(elf_buf, sizeof(elf_buf), "wraps");
    /* Found by tests/fuzz/fuzz_kernel_image.c: a segment ending in the last page of the
     * address space did not wrap, but its page-rounded end did, to a load_end of 0. */
    wraps =
        synth_elf_load(0x1100000000100000ull, 0x1100000000100000ull, 0x100, 0xEEFFFFFFFFEFFFFFull);
    synth_elf_build(elf_buf, ET_EXEC, EM_X86_64, 0x1100000000100000ull, &wraps, 1);
    expect_reject(elf_buf, sizeof(elf_buf), "wraps");
    wraps = synth_elf_load(0xFFFFFFFFFFFFFF00ull, 0xFFFFFFFFFFFFFF00ull, 0x10, 0x10);
    synth_elf_build(elf_buf, ET_EXEC, EM_X86_64, 0xFFFFFFFFFFFFFF00ull, &wraps, 1);
    expect_reject(elf_buf, sizeof(elf_buf), "wraps");

    struct synth_elf_segment note = {PT_NOTE, SYNTH_ELF_DATA, 0x200000, 0x200000, 0x10, 0x10};
    synth_elf_build(elf_buf, ET_EXEC, EM_X86_64, 0x200000, &note, 1);
    expect_reject(elf_buf, sizeof(elf_buf), "no loadable segments");
    synth_elf_build(elf_buf, ET_EXEC, EM_X86_64, 0x200000, NULL, 0);
    expect_reject(elf_buf, sizeof(elf_buf), "no loadable segments");

    /* Entry just past the segment's memory, and far away. */
    synth_elf_build(elf_buf, ET_EXEC, EM_X86_64, 0x202000, &seg, 1);
    expect_reject(elf_buf, sizeof(elf_buf), "0x202000 is in no loadable segment");
    synth_elf_build(elf_buf, ET_EXEC, EM_X86_64, 0xFFFFFFFF80000000ull, &seg, 1);
    expect_reject(elf_buf, sizeof(elf_buf), "in no loadable segment");
}

/* The "minivmm" note marks a freestanding guest; broken or foreign notes do not. */
static void test_elf_freestanding_note(void **state)
{
    (void)state;
    const uint64_t note_offset = SYNTH_ELF_DATA + 0x800;
    struct synth_elf_segment segs[2] = {
        synth_elf_load(0x200000, 0x200000, 0x100, 0x2000),
        {PT_NOTE, note_offset, 0x200800, 0x200800, 24, 24},
    };
    /* name size 8, descriptor size 4, type, "minivmm\0", descriptor */
    uint32_t note[6] = {8, 4, KERNEL_NOTE_FREESTANDING, 0, 0, 1};
    memcpy(&note[3], "minivmm", 8);
    struct kernel_image image;
    char why[256] = "";

    synth_elf_build(elf_buf, ET_EXEC, EM_X86_64, 0x200000, segs, 1);
    assert_int_equal(kernel_image_parse(elf_buf, sizeof(elf_buf), &image, why, sizeof(why)), 0);
    assert_false(image.freestanding);

    synth_elf_build(elf_buf, ET_EXEC, EM_X86_64, 0x200000, segs, 2);
    memcpy(elf_buf + note_offset, note, sizeof(note));
    assert_int_equal(kernel_image_parse(elf_buf, sizeof(elf_buf), &image, why, sizeof(why)), 0);
    assert_true(image.freestanding);

    uint32_t other_type[6];
    memcpy(other_type, note, sizeof(note));
    other_type[2] = 2;
    memcpy(elf_buf + note_offset, other_type, sizeof(other_type));
    assert_int_equal(kernel_image_parse(elf_buf, sizeof(elf_buf), &image, why, sizeof(why)), 0);
    assert_false(image.freestanding);

    /* A name size that runs past the segment is not read beyond it. */
    uint32_t oversized[6];
    memcpy(oversized, note, sizeof(note));
    oversized[0] = 0xFFFFFFF0u;
    memcpy(elf_buf + note_offset, oversized, sizeof(oversized));
    assert_int_equal(kernel_image_parse(elf_buf, sizeof(elf_buf), &image, why, sizeof(why)), 0);
    assert_false(image.freestanding);
}

static void test_elf_too_many_segments(void **state)
{
    (void)state;
    struct synth_elf_segment segs[KERNEL_IMAGE_MAX_SEGMENTS + 1];
    for (size_t i = 0; i < KERNEL_IMAGE_MAX_SEGMENTS + 1; i++)
        segs[i] = synth_elf_load(0x200000 + i * 0x1000, 0x200000 + i * 0x1000, 0x10, 0x10);
    synth_elf_build(elf_buf, ET_EXEC, EM_X86_64, 0x200000, segs, KERNEL_IMAGE_MAX_SEGMENTS);
    struct kernel_image image;
    char why[256] = "";
    assert_int_equal(kernel_image_parse(elf_buf, sizeof(elf_buf), &image, why, sizeof(why)), 0);
    assert_int_equal(image.segment_count, KERNEL_IMAGE_MAX_SEGMENTS);

    synth_elf_build(elf_buf, ET_EXEC, EM_X86_64, 0x200000, segs, KERNEL_IMAGE_MAX_SEGMENTS + 1);
    expect_reject(elf_buf, sizeof(elf_buf), "more than 16");
}

static void test_elf32_rejected(void **state)
{
    (void)state;
    /* A well-formed 32-bit i386 executable: wrong class for a 64-bit entry. */
    memset(elf_buf, 0, sizeof(elf_buf));
    Elf32_Ehdr ehdr = {0};
    memcpy(ehdr.e_ident, ELFMAG, SELFMAG);
    ehdr.e_ident[EI_CLASS] = ELFCLASS32;
    ehdr.e_ident[EI_DATA] = ELFDATA2LSB;
    ehdr.e_ident[EI_VERSION] = EV_CURRENT;
    ehdr.e_type = ET_EXEC;
    ehdr.e_machine = EM_386;
    ehdr.e_version = EV_CURRENT;
    ehdr.e_entry = 0x200000;
    ehdr.e_phoff = sizeof(ehdr);
    ehdr.e_ehsize = sizeof(ehdr);
    ehdr.e_phentsize = sizeof(Elf32_Phdr);
    ehdr.e_phnum = 1;
    Elf32_Phdr phdr = {.p_type = PT_LOAD,
                       .p_offset = SYNTH_ELF_DATA,
                       .p_vaddr = 0x200000,
                       .p_paddr = 0x200000,
                       .p_filesz = 0x100,
                       .p_memsz = 0x100};
    memcpy(elf_buf, &ehdr, sizeof(ehdr));
    memcpy(elf_buf + sizeof(ehdr), &phdr, sizeof(phdr));
    expect_reject(elf_buf, sizeof(elf_buf), "not x86-64");

    /* A 32-bit class with the x86-64 machine is still refused. */
    ((Elf32_Ehdr *)elf_buf)->e_machine = EM_X86_64;
    expect_reject(elf_buf, sizeof(elf_buf), "class 1");
}

static void test_elf_broken_headers(void **state)
{
    (void)state;
    /* The ELF magic and nothing after it. */
    static const uint8_t magic_only[8] = {0x7F, 'E', 'L', 'F', ELFCLASS64, ELFDATA2LSB, 1, 0};
    struct kernel_image image;
    char why[256] = "";
    assert_int_equal(kernel_image_parse(magic_only, sizeof(magic_only), &image, why, sizeof(why)),
                     -EINVAL);
    assert_true(why[0] != '\0');

    /* Program headers said to lie beyond the end of the file: libelf clamps the count to
     * what the file holds, so this reads as an ELF file with nothing to load. */
    struct synth_elf_segment seg = synth_elf_load(0x200000, 0x200000, 0x100, 0x2000);
    synth_elf_build(elf_buf, ET_EXEC, EM_X86_64, 0x200000, &seg, 1);
    ((Elf64_Ehdr *)elf_buf)->e_phoff = SYNTH_ELF_SIZE - 8;
    assert_int_equal(kernel_image_parse(elf_buf, sizeof(elf_buf), &image, why, sizeof(why)),
                     -EINVAL);
    assert_contains(why, "ELF");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bzimage_builder_layout),
        cmocka_unit_test(test_bzimage_accepted),
        cmocka_unit_test(test_bzimage_load_end_variants),
        cmocka_unit_test(test_bzimage_pref_address_wraps),
        cmocka_unit_test(test_bzimage_setup_sects_zero_means_four),
        cmocka_unit_test(test_bzimage_rejected),
        cmocka_unit_test(test_too_small_and_empty),
        cmocka_unit_test(test_why_truncated_safely),
        cmocka_unit_test(test_real_bzimage),
        cmocka_unit_test(test_elf_physical_entry),
        cmocka_unit_test(test_elf_virtual_entry),
        cmocka_unit_test(test_elf_several_segments),
        cmocka_unit_test(test_elf_rejected),
        cmocka_unit_test(test_elf_too_many_segments),
        cmocka_unit_test(test_elf_freestanding_note),
        cmocka_unit_test(test_elf32_rejected),
        cmocka_unit_test(test_elf_broken_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
