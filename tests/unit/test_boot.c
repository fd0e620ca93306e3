/* The boot parameter builder: what the kernel finds in guest RAM at its entry (zero
 * page, command line, initrd, e820 map), and the refusals when it would not fit. */
#include <elf.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/unit/support/kernel_images.h"
#include "tests/unit/support/text.h"
#include "vmm/boot.h"
#include "vmm/guest_ram.h"
#include "vmm/kernel_image.h"
#include "vmm/layout.h"

#define MIB     (1ull << 20)
#define GIB     (1ull << 30)
#define CMDLINE "console=ttyS0 root=/dev/ram0 panic=-1"

/* Each test's RAM, bzImage and initrd. */
struct fixture {
    struct guest_ram ram;
    uint8_t bzimage[SYNTH_BZIMAGE_SIZE];
    struct kernel_image image;
    uint8_t *initrd;
    size_t initrd_size;
    char why[256];
};

static uint8_t initrd_byte(size_t i)
{
    return (uint8_t)(i * 13 + 5);
}

/* Builds the fixture's kernel from its (possibly edited) bzImage bytes. */
static void fixture_parse(struct fixture *f)
{
    int ret = kernel_image_parse(f->bzimage, sizeof(f->bzimage), &f->image, f->why, sizeof(f->why));
    if (ret)
        fail_msg("synthetic bzImage rejected: %s", f->why);
}

static void fixture_set_initrd(struct fixture *f, size_t size)
{
    free(f->initrd);
    f->initrd = malloc(size);
    assert_non_null(f->initrd);
    for (size_t i = 0; i < size; i++)
        f->initrd[i] = initrd_byte(i);
    f->initrd_size = size;
}

static void fixture_init(struct fixture *f, uint64_t ram_size)
{
    memset(f, 0, sizeof(*f));
    assert_int_equal(guest_ram_init(&f->ram, ram_size), 0);
    /* Not zeros, so a field the loader forgets to write shows. */
    memset(f->ram.host, 0xCC, 2 * MIB);
    synth_bzimage_build(f->bzimage);
    fixture_parse(f);
    /* Not a whole number of pages, so the alignment of the start is tested. */
    fixture_set_initrd(f, 3 * 4096 + 123);
}

static int setup_128m(void **state)
{
    struct fixture *f = malloc(sizeof(*f));
    if (!f)
        return -1;
    fixture_init(f, 128 * MIB);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    guest_ram_destroy(&f->ram);
    free(f->initrd);
    free(f);
    return 0;
}

static struct boot_params *zero_page(struct fixture *f)
{
    struct boot_params *params = guest_ram_ptr(&f->ram, LAYOUT_ZERO_PAGE, sizeof(*params));
    assert_non_null(params);
    return params;
}

static int fixture_load(struct fixture *f, const char *cmdline, struct boot_layout *layout)
{
    f->why[0] = '\0';
    return boot_load(&f->ram, &f->image, f->initrd, f->initrd_size, cmdline, layout, f->why,
                     sizeof(f->why));
}

static void test_zero_page_and_cmdline(void **state)
{
    struct fixture *f = *state;
    struct boot_layout layout;
    int ret = fixture_load(f, CMDLINE, &layout);
    if (ret)
        fail_msg("boot_load: %d %s", ret, f->why);
    assert_int_equal(layout.entry, 0x100200);
    assert_int_equal(layout.zero_page, LAYOUT_ZERO_PAGE);

    struct boot_params *params = zero_page(f);
    /* The kernel's own header, with only the fields a loader owns changed. */
    struct setup_header expected = f->image.hdr;
    expected.type_of_loader = 0xFF;
    expected.vid_mode = 0xFFFF;
    expected.cmd_line_ptr = params->hdr.cmd_line_ptr;
    expected.ramdisk_image = (uint32_t)layout.initrd_addr;
    expected.ramdisk_size = (uint32_t)f->initrd_size;
    assert_memory_equal(&params->hdr, &expected, sizeof(expected));
    assert_int_equal(params->hdr.header, 0x53726448);
    assert_int_equal(params->hdr.version, 0x020F);
    assert_int_equal(params->hdr.type_of_loader, 0xFF);
    assert_int_equal(params->ext_cmd_line_ptr, 0);

    /* The command line, NUL included, where cmd_line_ptr says. */
    assert_int_not_equal(params->hdr.cmd_line_ptr, 0);
    const char *text = guest_ram_ptr(&f->ram, params->hdr.cmd_line_ptr, sizeof(CMDLINE));
    assert_non_null(text);
    assert_memory_equal(text, CMDLINE, sizeof(CMDLINE));

    /* The zero page is all the loader's: what it did not set is zero, not leftovers. */
    assert_int_equal(params->screen_info.orig_video_mode, 0);
    assert_int_equal(params->e820_table[params->e820_entries].addr, 0);
    assert_int_equal(params->e820_table[params->e820_entries].size, 0);
}

static void test_kernel_copied(void **state)
{
    struct fixture *f = *state;
    struct boot_layout layout;
    assert_int_equal(fixture_load(f, "", &layout), 0);
    const uint8_t *kernel = guest_ram_ptr(&f->ram, 0x100000, SYNTH_PAYLOAD_SIZE);
    assert_non_null(kernel);
    assert_memory_equal(kernel, f->bzimage + SYNTH_SETUP_SIZE, SYNTH_PAYLOAD_SIZE);
    /* The setup sectors stay out of guest RAM at 1 MiB: the 64-bit entry is at +0x200. */
    assert_int_equal(kernel[0x200], synth_payload_byte(0x200));
    /* An empty command line is still a valid string. */
    const char *text = guest_ram_ptr(&f->ram, zero_page(f)->hdr.cmd_line_ptr, 1);
    assert_non_null(text);
    assert_int_equal(text[0], '\0');
}

static void test_initrd_placed(void **state)
{
    struct fixture *f = *state;
    struct boot_layout layout;
    assert_int_equal(fixture_load(f, CMDLINE, &layout), 0);
    uint64_t addr = layout.initrd_addr;
    uint64_t end = addr + f->initrd_size;
    assert_int_equal(layout.initrd_size, f->initrd_size);
    assert_int_equal(addr % 4096, 0);
    assert_true(addr >= f->image.load_end);
    assert_true(end <= f->ram.low_size);
    assert_true(end <= (uint64_t)SYNTH_INITRD_ADDR_MAX + 1);
    /* As high as it goes: less than a page below the top of RAM. */
    assert_true(end > f->ram.low_size - 4096);
    /* It does not overlap the kernel, the zero page or the command line. */
    assert_true(addr >= LAYOUT_KERNEL_START + SYNTH_PAYLOAD_SIZE);

    const uint8_t *bytes = guest_ram_ptr(&f->ram, addr, f->initrd_size);
    assert_non_null(bytes);
    assert_memory_equal(bytes, f->initrd, f->initrd_size);

    struct boot_params *params = zero_page(f);
    assert_int_equal(params->hdr.ramdisk_image, addr);
    assert_int_equal(params->hdr.ramdisk_size, f->initrd_size);
    assert_int_equal(params->ext_ramdisk_image, 0);
    assert_int_equal(params->ext_ramdisk_size, 0);
}

static void test_initrd_below_initrd_addr_max(void **state)
{
    struct fixture *f = *state;
    /* The kernel says it can reach only the first 56 MiB. */
    synth_hdr(f->bzimage)->initrd_addr_max = 56 * MIB - 1;
    fixture_parse(f);
    struct boot_layout layout;
    assert_int_equal(fixture_load(f, CMDLINE, &layout), 0);
    assert_true(layout.initrd_addr + f->initrd_size <= 56 * MIB);
    assert_true(layout.initrd_addr + f->initrd_size > 56 * MIB - 4096);
    assert_int_equal(layout.initrd_addr % 4096, 0);
    assert_memory_equal(guest_ram_ptr(&f->ram, layout.initrd_addr, f->initrd_size), f->initrd,
                        f->initrd_size);
}

static void test_no_initrd(void **state)
{
    struct fixture *f = *state;
    struct boot_layout layout;
    int ret = boot_load(&f->ram, &f->image, NULL, 0, CMDLINE, &layout, f->why, sizeof(f->why));
    assert_int_equal(ret, 0);
    assert_int_equal(layout.initrd_addr, 0);
    assert_int_equal(layout.initrd_size, 0);
    struct boot_params *params = zero_page(f);
    assert_int_equal(params->hdr.ramdisk_image, 0);
    assert_int_equal(params->hdr.ramdisk_size, 0);
}

static void test_e820_small(void **state)
{
    struct fixture *f = *state;
    struct boot_layout layout;
    assert_int_equal(fixture_load(f, CMDLINE, &layout), 0);
    struct boot_params *params = zero_page(f);
    assert_int_equal(params->e820_entries, 3);
    const struct boot_e820_entry *e = params->e820_table;
    assert_int_equal(e[0].addr, 0);
    assert_int_equal(e[0].size, 0x9FC00);
    assert_int_equal(e[0].type, E820_TYPE_RAM);
    assert_int_equal(e[1].addr, 0xF0000);
    assert_int_equal(e[1].size, 0x10000);
    assert_int_equal(e[1].type, E820_TYPE_RESERVED);
    assert_int_equal(e[2].addr, 0x100000);
    assert_int_equal(e[2].size, 128 * MIB - 0x100000);
    assert_int_equal(e[2].type, E820_TYPE_RAM);
}

/* Over 3 GiB the RAM splits around the PCI hole. MAP_NORESERVE makes 5 GiB cheap, but a
 * host with strict overcommit may still refuse it. */
static bool big_ram_init(struct guest_ram *ram, uint64_t size)
{
    int ret = guest_ram_init(ram, size);
    if (ret == -ENOMEM) {
        print_message("cannot map %llu GiB even with MAP_NORESERVE (strict overcommit?)\n",
                      (unsigned long long)(size / GIB));
        return false;
    }
    assert_int_equal(ret, 0);
    return true;
}

static void test_e820_above_4g(void **state)
{
    (void)state;
    struct fixture *f = malloc(sizeof(*f));
    assert_non_null(f);
    memset(f, 0, sizeof(*f));
    if (!big_ram_init(&f->ram, 5 * GIB)) {
        free(f);
        skip();
    }
    assert_int_equal(f->ram.low_size, 0xC0000000);
    assert_int_equal(f->ram.high_size, 2 * GIB);
    synth_bzimage_build(f->bzimage);
    fixture_parse(f);
    fixture_set_initrd(f, 4096);

    struct boot_layout layout;
    assert_int_equal(fixture_load(f, CMDLINE, &layout), 0);
    struct boot_params *params = zero_page(f);
    assert_int_equal(params->e820_entries, 4);
    const struct boot_e820_entry *e = params->e820_table;
    assert_int_equal(e[0].addr, 0);
    assert_int_equal(e[0].size, 0x9FC00);
    assert_int_equal(e[1].addr, 0xF0000);
    assert_int_equal(e[1].type, E820_TYPE_RESERVED);
    assert_int_equal(e[2].addr, 0x100000);
    assert_int_equal(e[2].addr + e[2].size, 0xC0000000);
    assert_int_equal(e[2].type, E820_TYPE_RAM);
    assert_int_equal(e[3].addr, 4 * GIB);
    assert_int_equal(e[3].size, 2 * GIB);
    assert_int_equal(e[3].type, E820_TYPE_RAM);

    /* RAM now reaches past initrd_addr_max (2 GiB - 1): the initrd goes just below it. */
    assert_int_equal(layout.initrd_addr, 2 * GIB - 4096);
    assert_int_equal(params->hdr.ramdisk_image, 2 * GIB - 4096);
    assert_int_equal(params->ext_ramdisk_image, 0);

    guest_ram_destroy(&f->ram);
    free(f->initrd);
    free(f);
}

static void test_guest_ram_ptr_hole(void **state)
{
    (void)state;
    struct guest_ram ram;
    if (!big_ram_init(&ram, 5 * GIB))
        skip();
    uint8_t *host = ram.host;
    assert_ptr_equal(guest_ram_ptr(&ram, 0, 1), host);
    assert_ptr_equal(guest_ram_ptr(&ram, 0xBFFFFFFF, 1), host + 0xBFFFFFFF);
    assert_ptr_equal(guest_ram_ptr(&ram, 0xBFFFF000, 4096), host + 0xBFFFF000);
    /* In the hole, and across either edge of it. */
    assert_null(guest_ram_ptr(&ram, 0xC0000000, 1));
    assert_null(guest_ram_ptr(&ram, 0xBFFFFFF8, 16));
    assert_null(guest_ram_ptr(&ram, 0xFEE00000, 4));
    assert_null(guest_ram_ptr(&ram, 0xFFFFFFFF, 1));
    assert_null(guest_ram_ptr(&ram, 0xFFFFFFF8, 16));
    assert_null(guest_ram_ptr(&ram, 0, 0xC0000001));
    /* High RAM follows low RAM in the host mapping. */
    assert_ptr_equal(guest_ram_ptr(&ram, 4 * GIB, 1), host + 0xC0000000);
    assert_ptr_equal(guest_ram_ptr(&ram, 6 * GIB - 1, 1), host + 5 * GIB - 1);
    assert_ptr_equal(guest_ram_ptr(&ram, 4 * GIB, 2 * GIB), host + 0xC0000000);
    assert_null(guest_ram_ptr(&ram, 4 * GIB, 2 * GIB + 1));
    assert_null(guest_ram_ptr(&ram, 6 * GIB - 8, 16));
    assert_null(guest_ram_ptr(&ram, 6 * GIB, 1));
    assert_null(guest_ram_ptr(&ram, UINT64_MAX, 1));
    /* Writable through the pointer, at both ends. */
    *(uint8_t *)guest_ram_ptr(&ram, 6 * GIB - 1, 1) = 0x5A;
    assert_int_equal(host[5 * GIB - 1], 0x5A);
    guest_ram_destroy(&ram);
    assert_null(ram.host);
}

static void test_guest_ram_exactly_3g(void **state)
{
    (void)state;
    /* RAM that ends exactly at the hole has no high part and no fourth e820 range. */
    struct guest_ram ram;
    if (!big_ram_init(&ram, 3 * GIB))
        skip();
    assert_int_equal(ram.low_size, 3 * GIB);
    assert_int_equal(ram.high_size, 0);
    struct e820_range ranges[E820_MAX_RANGES];
    assert_int_equal(guest_ram_e820(&ram, ranges, E820_MAX_RANGES), 3);
    assert_int_equal(ranges[2].addr + ranges[2].size, 3 * GIB);
    assert_null(guest_ram_ptr(&ram, 4 * GIB, 1));
    /* A short output array gets the first ranges only. */
    assert_int_equal(guest_ram_e820(&ram, ranges, 2), 2);
    assert_int_equal(ranges[1].type, E820_TYPE_RESERVED);
    guest_ram_destroy(&ram);
}

static void test_elf_kernel(void **state)
{
    struct fixture *f = *state;
    /* A vmlinux-like ELF: 0x100 bytes of file, 0x3000 of memory (the rest is bss). */
    static _Alignas(8) uint8_t elf[SYNTH_ELF_SIZE];
    struct synth_elf_segment seg = synth_elf_load(0xFFFFFFFF81000000ull, 0x1000000, 0x100, 0x3000);
    synth_elf_build(elf, ET_EXEC, EM_X86_64, 0xFFFFFFFF81000010ull, &seg, 1);
    assert_int_equal(kernel_image_parse(elf, sizeof(elf), &f->image, f->why, sizeof(f->why)), 0);
    /* Stale bytes where the bss goes: the loader must clear them. */
    memset(guest_ram_ptr(&f->ram, 0x1000000, 0x3000), 0xCC, 0x3000);

    struct boot_layout layout;
    int ret = fixture_load(f, CMDLINE, &layout);
    if (ret)
        fail_msg("boot_load: %s", f->why);
    assert_int_equal(layout.entry, 0x1000010);
    const uint8_t *seg_mem = guest_ram_ptr(&f->ram, 0x1000000, 0x3000);
    assert_memory_equal(seg_mem, elf + SYNTH_ELF_DATA, 0x100);
    for (size_t i = 0x100; i < 0x3000; i++)
        if (seg_mem[i] != 0)
            fail_msg("bss byte 0x%zx is 0x%02x, not zero", i, seg_mem[i]);

    /* No setup header in the file: the loader supplies the fields the kernel reads. */
    struct boot_params *params = zero_page(f);
    assert_int_equal(params->hdr.boot_flag, 0xAA55);
    assert_int_equal(params->hdr.header, 0x53726448);
    assert_true(params->hdr.version >= 0x020C);
    assert_int_equal(params->hdr.type_of_loader, 0xFF);
    assert_int_not_equal(params->hdr.kernel_alignment, 0);
    const char *text = guest_ram_ptr(&f->ram, params->hdr.cmd_line_ptr, sizeof(CMDLINE));
    assert_memory_equal(text, CMDLINE, sizeof(CMDLINE));
    assert_int_equal(params->hdr.ramdisk_image, layout.initrd_addr);
    assert_true(layout.initrd_addr >= f->image.load_end);
    assert_int_equal(params->e820_entries, 3);
}

static void test_kernel_needs_more_memory(void **state)
{
    (void)state;
    struct fixture *f = malloc(sizeof(*f));
    assert_non_null(f);
    /* The synthetic kernel needs 20 MiB: exactly that is enough, a page less is not. */
    fixture_init(f, SYNTH_LOAD_END);
    struct boot_layout layout;
    int ret = boot_load(&f->ram, &f->image, NULL, 0, "", &layout, f->why, sizeof(f->why));
    if (ret)
        fail_msg("kernel ending at the top of RAM rejected: %s", f->why);
    guest_ram_destroy(&f->ram);

    assert_int_equal(guest_ram_init(&f->ram, 16 * MIB), 0);
    assert_int_equal(fixture_load(f, CMDLINE, &layout), -EINVAL);
    assert_contains(f->why, "--mem");
    assert_contains(f->why, "16 MiB");
    guest_ram_destroy(&f->ram);

    assert_int_equal(guest_ram_init(&f->ram, SYNTH_LOAD_END - 4096), 0);
    assert_int_equal(boot_load(&f->ram, &f->image, NULL, 0, "", &layout, f->why, sizeof(f->why)),
                     -EINVAL);
    assert_contains(f->why, "--mem");
    teardown((void **)&f);
}

static void test_initrd_too_large(void **state)
{
    struct fixture *f = *state;
    /* Only one MiB between the kernel's end (20 MiB) and initrd_addr_max. */
    synth_hdr(f->bzimage)->initrd_addr_max = SYNTH_LOAD_END + MIB - 1;
    fixture_parse(f);
    struct boot_layout layout;

    fixture_set_initrd(f, MIB);
    int ret = fixture_load(f, CMDLINE, &layout);
    if (ret)
        fail_msg("initrd that exactly fits rejected: %s", f->why);
    assert_int_equal(layout.initrd_addr, SYNTH_LOAD_END);

    fixture_set_initrd(f, MIB + 1);
    assert_int_equal(fixture_load(f, CMDLINE, &layout), -EINVAL);
    assert_contains(f->why, "initrd");
    assert_contains(f->why, "--mem");

    /* Larger than all of RAM below the limit. */
    fixture_set_initrd(f, 32 * MIB);
    assert_int_equal(fixture_load(f, CMDLINE, &layout), -EINVAL);
    assert_contains(f->why, "initrd");

    /* Larger than RAM itself, with no initrd_addr_max in the way. */
    synth_hdr(f->bzimage)->initrd_addr_max = SYNTH_INITRD_ADDR_MAX;
    fixture_parse(f);
    fixture_set_initrd(f, 129 * MIB);
    assert_int_equal(fixture_load(f, CMDLINE, &layout), -EINVAL);
    assert_contains(f->why, "initrd");
}

static void test_check_memory_agrees_with_load(void **state)
{
    struct fixture *f = *state;
    char why[256];
    /* Kernel alone: the same boundary boot_load applies (see test_kernel_needs_more_memory). */
    assert_int_equal(boot_check_memory(&f->image, 0, SYNTH_LOAD_END, why, sizeof(why)), 0);
    assert_int_equal(boot_check_memory(&f->image, 0, SYNTH_LOAD_END - 4096, why, sizeof(why)),
                     -EINVAL);
    assert_contains(why, "--mem");
    /* RAM above the hole does not help a kernel that must sit below it. */
    assert_int_equal(boot_check_memory(&f->image, 0, 5 * GIB, why, sizeof(why)), 0);

    /* The initrd boundary of test_initrd_too_large. */
    synth_hdr(f->bzimage)->initrd_addr_max = SYNTH_LOAD_END + MIB - 1;
    fixture_parse(f);
    assert_int_equal(boot_check_memory(&f->image, MIB, 128 * MIB, why, sizeof(why)), 0);
    assert_int_equal(boot_check_memory(&f->image, MIB + 1, 128 * MIB, why, sizeof(why)), -EINVAL);
    assert_contains(why, "initrd");
    /* An initrd bigger than size_t on a 32-bit host would be; still refused, not wrapped. */
    assert_int_equal(boot_check_memory(&f->image, UINT64_MAX, 128 * MIB, why, sizeof(why)),
                     -EINVAL);

    /* And boot_load agrees on both sides of that boundary. */
    struct boot_layout layout;
    fixture_set_initrd(f, MIB);
    assert_int_equal(fixture_load(f, CMDLINE, &layout), 0);
    fixture_set_initrd(f, MIB + 1);
    assert_int_equal(fixture_load(f, CMDLINE, &layout), -EINVAL);
}

static void test_cmdline_too_long(void **state)
{
    struct fixture *f = *state;
    synth_hdr(f->bzimage)->cmdline_size = 16;
    fixture_parse(f);
    struct boot_layout layout;
    /* cmdline_size counts the characters, not the NUL. */
    int ret = fixture_load(f, "0123456789abcdef", &layout);
    if (ret)
        fail_msg("16-byte command line rejected: %s", f->why);
    assert_string_equal(guest_ram_ptr(&f->ram, zero_page(f)->hdr.cmd_line_ptr, 17),
                        "0123456789abcdef");
    assert_int_equal(fixture_load(f, "0123456789abcdefg", &layout), -EINVAL);
    assert_contains(f->why, "command line");
    assert_contains(f->why, "17");
    assert_contains(f->why, "16");
}

static void test_cmdline_too_long_for_layout(void **state)
{
    struct fixture *f = *state;
    /* A kernel that claims a huge cmdline_size is held to the room the layout reserves. */
    synth_hdr(f->bzimage)->cmdline_size = 0xFFFFFFFF;
    fixture_parse(f);
    size_t len = LAYOUT_CMDLINE_MAX;
    char *cmdline = malloc(len + 1);
    assert_non_null(cmdline);
    memset(cmdline, 'a', len);
    cmdline[len] = '\0';
    struct boot_layout layout;
    assert_int_equal(fixture_load(f, cmdline, &layout), -EINVAL);
    assert_contains(f->why, "command line");
    cmdline[len - 1] = '\0';
    assert_int_equal(fixture_load(f, cmdline, &layout), 0);
    free(cmdline);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_zero_page_and_cmdline, setup_128m, teardown),
        cmocka_unit_test_setup_teardown(test_kernel_copied, setup_128m, teardown),
        cmocka_unit_test_setup_teardown(test_initrd_placed, setup_128m, teardown),
        cmocka_unit_test_setup_teardown(test_initrd_below_initrd_addr_max, setup_128m, teardown),
        cmocka_unit_test_setup_teardown(test_no_initrd, setup_128m, teardown),
        cmocka_unit_test_setup_teardown(test_e820_small, setup_128m, teardown),
        cmocka_unit_test(test_e820_above_4g),
        cmocka_unit_test(test_guest_ram_ptr_hole),
        cmocka_unit_test(test_guest_ram_exactly_3g),
        cmocka_unit_test_setup_teardown(test_elf_kernel, setup_128m, teardown),
        cmocka_unit_test(test_kernel_needs_more_memory),
        cmocka_unit_test_setup_teardown(test_initrd_too_large, setup_128m, teardown),
        cmocka_unit_test_setup_teardown(test_check_memory_agrees_with_load, setup_128m, teardown),
        cmocka_unit_test_setup_teardown(test_cmdline_too_long, setup_128m, teardown),
        cmocka_unit_test_setup_teardown(test_cmdline_too_long_for_layout, setup_128m, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
