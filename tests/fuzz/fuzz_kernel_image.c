/* The kernel image parsers (bzImage setup header, x86-64 ELF through libelf) and the boot
 * parameter builder, on any file contents.
 *
 * Input: one byte chooses the guest memory size (1..16 MiB above the first MiB, so images
 * both fit and do not), the rest is the file. Invariants of an accepted image: every
 * segment's bytes lie inside the file, no segment copies more than it occupies, segments
 * sit at or above 1 MiB without wrapping, load_end covers every segment, the entry point
 * is inside a segment, and a bzImage's header does not declare more kernel than the file
 * has. boot_check_memory() and boot_load() agree, and a loaded guest has its kernel, its
 * command line and its initrd inside RAM and above the kernel. */
#include <string.h>

#include "fuzz.h"
#include "vmm/boot.h"
#include "vmm/guest_ram.h"
#include "vmm/kernel_image.h"
#include "vmm/layout.h"

#define RAM_MAX      (LAYOUT_HIGH_MEMORY + (16ull << 20))
#define INITRD_BYTES 4096
#define CMDLINE      "console=ttyS0"

static void check_image(const struct kernel_image *image, const uint8_t *file, size_t size)
{
    FUZZ_REQUIRE(image->segment_count >= 1 && image->segment_count <= KERNEL_IMAGE_MAX_SEGMENTS,
                 "%zu segments", image->segment_count);
    bool entry_inside = false;
    for (size_t i = 0; i < image->segment_count; i++) {
        const struct kernel_segment *seg = &image->segments[i];
        FUZZ_REQUIRE(seg->data >= file && seg->file_size <= size &&
                         (size_t)(seg->data - file) <= size - seg->file_size,
                     "segment %zu (%llu bytes at file offset %td) outside the %zu-byte file", i,
                     (unsigned long long)seg->file_size, seg->data - file, size);
        FUZZ_REQUIRE(seg->file_size <= seg->mem_size, "segment %zu copies more than it holds", i);
        FUZZ_REQUIRE(seg->paddr >= LAYOUT_KERNEL_START && seg->paddr + seg->mem_size >= seg->paddr,
                     "segment %zu at %#llx", i, (unsigned long long)seg->paddr);
        FUZZ_REQUIRE(image->load_end >= seg->paddr + seg->mem_size,
                     "load_end %#llx below the end of segment %zu (%#llx + %#llx)",
                     (unsigned long long)image->load_end, i, (unsigned long long)seg->paddr,
                     (unsigned long long)seg->mem_size);
        if (image->entry >= seg->paddr && image->entry - seg->paddr < seg->mem_size)
            entry_inside = true;
    }
    FUZZ_REQUIRE(entry_inside, "entry %#llx in no segment", (unsigned long long)image->entry);
    if (image->kind == KERNEL_BZIMAGE) {
        FUZZ_REQUIRE((uint64_t)image->hdr.syssize * 16 <= image->segments[0].file_size,
                     "header declares %llu bytes of kernel, file has %llu",
                     (unsigned long long)image->hdr.syssize * 16,
                     (unsigned long long)image->segments[0].file_size);
        FUZZ_REQUIRE(image->load_end >= (uint64_t)LAYOUT_KERNEL_START + image->hdr.init_size,
                     "load_end %#llx below what init_size %#x needs",
                     (unsigned long long)image->load_end, image->hdr.init_size);
    }
}

static void check_boot(const struct kernel_image *image, uint64_t mem_size)
{
    static struct guest_ram ram;
    static uint8_t initrd[INITRD_BYTES];
    char why[256];
    if (!ram.host)
        FUZZ_REQUIRE(guest_ram_init(&ram, RAM_MAX) == 0, "guest_ram_init");
    /* Pretend to have mem_size bytes: boot_load must not touch the rest. */
    struct guest_ram smaller = ram;
    smaller.size = smaller.low_size = mem_size;

    int fits = boot_check_memory(image, sizeof(initrd), mem_size, why, sizeof(why));
    struct boot_layout layout;
    int loaded =
        boot_load(&smaller, image, initrd, sizeof(initrd), CMDLINE, &layout, why, sizeof(why));
    /* boot_load checks the command line too; a kernel with a tiny cmdline_size refuses it. */
    bool cmdline_refused =
        image->kind == KERNEL_BZIMAGE && image->hdr.cmdline_size < sizeof(CMDLINE) - 1;
    FUZZ_REQUIRE((fits == 0) == (loaded == 0) || (fits == 0 && cmdline_refused),
                 "boot_check_memory says %d, boot_load says %d (%s)", fits, loaded, why);
    if (loaded)
        return;
    FUZZ_REQUIRE(image->load_end <= mem_size, "kernel (to %#llx) loaded into %#llx bytes",
                 (unsigned long long)image->load_end, (unsigned long long)mem_size);
    FUZZ_REQUIRE(layout.entry == image->entry && layout.zero_page == LAYOUT_ZERO_PAGE, "layout");
    FUZZ_REQUIRE(layout.initrd_size == sizeof(initrd) && layout.initrd_addr >= image->load_end &&
                     layout.initrd_addr + layout.initrd_size <= mem_size &&
                     layout.initrd_addr % 4096 == 0,
                 "initrd at %#llx, kernel ends at %#llx, memory %#llx",
                 (unsigned long long)layout.initrd_addr, (unsigned long long)image->load_end,
                 (unsigned long long)mem_size);
    const struct boot_params *params = guest_ram_ptr(&ram, LAYOUT_ZERO_PAGE, sizeof(*params));
    FUZZ_REQUIRE(params->hdr.cmd_line_ptr == LAYOUT_CMDLINE &&
                     !strcmp((const char *)ram.host + LAYOUT_CMDLINE, CMDLINE),
                 "command line");
    FUZZ_REQUIRE(params->hdr.ramdisk_image == layout.initrd_addr &&
                     params->hdr.ramdisk_size == sizeof(initrd),
                 "ramdisk fields");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_input in = fuzz_input_of(data, size);
    uint64_t mem_size = LAYOUT_HIGH_MEMORY + ((uint64_t)fuzz_u8(&in) + 1) * (64ull << 10);
    const uint8_t *file = data + in.pos;
    size_t file_size = size - in.pos;
    /* A private copy, so the parser cannot lean on bytes past the end of the file. */
    uint8_t *copy = malloc(file_size ? file_size : 1);
    FUZZ_REQUIRE(copy, "malloc");
    memcpy(copy, file, file_size);

    struct kernel_image image;
    char why[256];
    if (kernel_image_parse(copy, file_size, &image, why, sizeof(why)) == 0) {
        check_image(&image, copy, file_size);
        check_boot(&image, mem_size);
    } else {
        FUZZ_REQUIRE(why[0] != '\0', "rejected without a reason");
    }
    free(copy);
    return 0;
}
