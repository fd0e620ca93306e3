#include "vmm/kernel_image.h"

#include <errno.h>
#include <gelf.h>
#include <libelf.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "vmm/layout.h"
#include "vmm/reason.h"

#define BZ_BOOT_FLAG_OFFSET    0x1FE
#define BZ_BOOT_FLAG           0xAA55
#define BZ_HEADER_MAGIC        0x53726448 /* "HdrS" */
#define BZ_MIN_PROTOCOL        0x020C     /* 2.12: xloadflags, and so XLF_KERNEL_64 */
#define BZ_SETUP_HEADER_OFFSET 0x1F1
#define BZ_ENTRY_64_OFFSET     0x200 /* the 64-bit entry is 512 bytes into the payload */

static uint64_t align_up(uint64_t value, uint64_t align)
{
    return (value + align - 1) & ~(align - 1);
}

static int bzimage_parse(const uint8_t *data, size_t size, struct kernel_image *image, char *why,
                         size_t why_len)
{
    struct setup_header hdr;
    memcpy(&hdr, data + BZ_SETUP_HEADER_OFFSET, sizeof(hdr));

    if (hdr.header != BZ_HEADER_MAGIC)
        return reason_fail(-EINVAL, why, why_len, "no \"HdrS\" boot header: not a bzImage");
    if (hdr.version < BZ_MIN_PROTOCOL)
        return reason_fail(-EINVAL, why, why_len,
                           "boot protocol %u.%02u is too old (need 2.12 or later)",
                           hdr.version >> 8, hdr.version & 0xff);
    if (!(hdr.loadflags & LOADED_HIGH))
        return reason_fail(-EINVAL, why, why_len,
                           "a zImage (loads low): only bzImages are supported");
    if (!(hdr.xloadflags & XLF_KERNEL_64))
        return reason_fail(-EINVAL, why, why_len,
                           "kernel has no 64-bit entry point (XLF_KERNEL_64)");

    /* setup_sects == 0 means 4, for compatibility with ancient images. */
    uint64_t setup_sects = hdr.setup_sects ? hdr.setup_sects : 4;
    uint64_t setup_size = (setup_sects + 1) * 512;
    if (setup_size >= size)
        return reason_fail(-EINVAL, why, why_len,
                           "setup code (%llu bytes) leaves no kernel in a %zu-byte file",
                           (unsigned long long)setup_size, size);
    uint64_t payload_size = size - setup_size;
    if ((uint64_t)hdr.syssize * 16 > payload_size)
        return reason_fail(-EINVAL, why, why_len,
                           "truncated: header says %llu bytes of kernel, file has %llu",
                           (unsigned long long)hdr.syssize * 16, (unsigned long long)payload_size);
    if (payload_size <= BZ_ENTRY_64_OFFSET)
        return reason_fail(-EINVAL, why, why_len,
                           "kernel too small to hold its 64-bit entry point");

    /* A relocatable kernel decompresses itself at pref_address when loaded below it, and
     * needs init_size bytes from there; count whichever is higher. */
    uint64_t run_base = LAYOUT_KERNEL_START;
    if (hdr.relocatable_kernel && hdr.pref_address > run_base)
        run_base = hdr.pref_address;
    uint64_t need = hdr.init_size > payload_size ? hdr.init_size : payload_size;
    /* A pref_address near the top would wrap load_end to a small value that "fits". */
    if (run_base > UINT64_MAX - 4095 - need)
        return reason_fail(-EINVAL, why, why_len,
                           "kernel prefers address 0x%llx: it and init_size %u bytes pass the end "
                           "of the address space",
                           (unsigned long long)run_base, hdr.init_size);

    image->kind = KERNEL_BZIMAGE;
    image->hdr = hdr;
    image->entry = LAYOUT_KERNEL_START + BZ_ENTRY_64_OFFSET;
    image->load_end = align_up(run_base + need, 4096);
    image->segment_count = 1;
    image->segments[0] = (struct kernel_segment){
        .paddr = LAYOUT_KERNEL_START,
        .data = data + setup_size,
        .file_size = payload_size,
        .mem_size = payload_size,
    };
    return 0;
}

/* Whether a PT_NOTE segment holds the "minivmm" freestanding note. Notes are 4-byte aligned
 * records: name size, descriptor size, type, then name and descriptor, each padded to 4.
 * The segment was checked to lie inside the file; sizes inside it are checked here. */
static bool elf_notes_freestanding(const uint8_t *notes, uint64_t size)
{
    static const char name[] = KERNEL_NOTE_NAME;
    uint64_t pos = 0;
    while (size - pos >= 12) {
        uint32_t header[3];
        memcpy(header, notes + pos, sizeof(header));
        uint64_t name_size = align_up(header[0], 4), desc_size = align_up(header[1], 4);
        pos += 12;
        if (name_size > size - pos || desc_size > size - pos - name_size)
            return false;
        if (header[0] == sizeof(name) && header[2] == KERNEL_NOTE_FREESTANDING &&
            memcmp(notes + pos, name, sizeof(name)) == 0)
            return true;
        pos += name_size + desc_size;
    }
    return false;
}

static int elf_parse(const uint8_t *data, size_t size, struct kernel_image *image, char *why,
                     size_t why_len)
{
    if (elf_version(EV_CURRENT) == EV_NONE)
        return reason_fail(-EINVAL, why, why_len, "libelf: %s", elf_errmsg(-1));
    /* libelf takes a non-const pointer but only reads an ELF_C_READ_MMAP-less memory image. */
    Elf *elf = elf_memory((char *)data, size);
    if (!elf)
        return reason_fail(-EINVAL, why, why_len, "libelf: %s", elf_errmsg(-1));

    int ret = 0;
    GElf_Ehdr ehdr;
    size_t phnum;
    if (elf_kind(elf) != ELF_K_ELF || !gelf_getehdr(elf, &ehdr)) {
        ret = reason_fail(-EINVAL, why, why_len, "not an ELF file");
        goto out;
    }
    if (gelf_getclass(elf) != ELFCLASS64 || ehdr.e_machine != EM_X86_64) {
        ret = reason_fail(-EINVAL, why, why_len, "ELF file is not x86-64 (class %d, machine %u)",
                          gelf_getclass(elf), ehdr.e_machine);
        goto out;
    }
    if (ehdr.e_type != ET_EXEC) {
        ret = reason_fail(-EINVAL, why, why_len, "ELF file is not an executable (type %u)",
                          ehdr.e_type);
        goto out;
    }
    if (elf_getphdrnum(elf, &phnum) != 0) {
        ret = reason_fail(-EINVAL, why, why_len, "ELF program headers unreadable: %s",
                          elf_errmsg(-1));
        goto out;
    }

    image->kind = KERNEL_ELF;
    image->segment_count = 0;
    image->load_end = 0;
    image->entry = 0;
    bool entry_found = false;
    for (size_t i = 0; i < phnum; i++) {
        GElf_Phdr phdr;
        if (!gelf_getphdr(elf, (int)i, &phdr)) {
            ret = reason_fail(-EINVAL, why, why_len, "ELF program header %zu unreadable", i);
            goto out;
        }
        if (phdr.p_type == PT_NOTE && phdr.p_offset <= size &&
            phdr.p_filesz <= size - phdr.p_offset &&
            elf_notes_freestanding(data + phdr.p_offset, phdr.p_filesz))
            image->freestanding = true;
        if (phdr.p_type != PT_LOAD || phdr.p_memsz == 0)
            continue;
        if (phdr.p_filesz > phdr.p_memsz || phdr.p_offset > size ||
            phdr.p_filesz > size - phdr.p_offset) {
            ret = reason_fail(-EINVAL, why, why_len, "ELF segment %zu lies outside the file", i);
            goto out;
        }
        /* The end is rounded up to a page below: that must not wrap either. */
        if (phdr.p_paddr > UINT64_MAX - 4095 || phdr.p_memsz > UINT64_MAX - 4095 - phdr.p_paddr ||
            phdr.p_paddr < LAYOUT_KERNEL_START) {
            ret = reason_fail(-EINVAL, why, why_len,
                              "ELF segment %zu at 0x%llx: below 1 MiB or wraps around", i,
                              (unsigned long long)phdr.p_paddr);
            goto out;
        }
        if (image->segment_count == KERNEL_IMAGE_MAX_SEGMENTS) {
            ret = reason_fail(-EINVAL, why, why_len, "more than %d ELF load segments",
                              KERNEL_IMAGE_MAX_SEGMENTS);
            goto out;
        }
        image->segments[image->segment_count++] = (struct kernel_segment){
            .paddr = phdr.p_paddr,
            .data = data + phdr.p_offset,
            .file_size = phdr.p_filesz,
            .mem_size = phdr.p_memsz,
        };
        uint64_t end = align_up(phdr.p_paddr + phdr.p_memsz, 4096);
        if (end > image->load_end)
            image->load_end = end;
        /* vmlinux links at high virtual addresses; its entry is given as a virtual
         * address in some builds and physical in others: translate through the segment
         * that holds it. */
        if (!entry_found && ehdr.e_entry >= phdr.p_vaddr &&
            ehdr.e_entry - phdr.p_vaddr < phdr.p_memsz) {
            image->entry = phdr.p_paddr + (ehdr.e_entry - phdr.p_vaddr);
            entry_found = true;
        } else if (!entry_found && ehdr.e_entry >= phdr.p_paddr &&
                   ehdr.e_entry - phdr.p_paddr < phdr.p_memsz) {
            image->entry = ehdr.e_entry;
            entry_found = true;
        }
    }
    if (image->segment_count == 0) {
        ret = reason_fail(-EINVAL, why, why_len, "ELF file has no loadable segments");
        goto out;
    }
    if (!entry_found)
        ret = reason_fail(-EINVAL, why, why_len, "ELF entry point 0x%llx is in no loadable segment",
                          (unsigned long long)ehdr.e_entry);
out:
    elf_end(elf);
    return ret;
}

int kernel_image_parse(const uint8_t *data, size_t size, struct kernel_image *image, char *why,
                       size_t why_len)
{
    memset(image, 0, sizeof(*image));
    if (size >= SELFMAG && memcmp(data, ELFMAG, SELFMAG) == 0)
        return elf_parse(data, size, image, why, why_len);
    if (size < BZ_SETUP_HEADER_OFFSET + sizeof(struct setup_header))
        return reason_fail(-EINVAL, why, why_len, "file is %zu bytes: too small to be a kernel",
                           size);
    uint16_t boot_flag;
    memcpy(&boot_flag, data + BZ_BOOT_FLAG_OFFSET, sizeof(boot_flag));
    if (boot_flag != BZ_BOOT_FLAG)
        return reason_fail(-EINVAL, why, why_len,
                           "neither an ELF file nor a bzImage (no 0xAA55 boot flag)");
    return bzimage_parse(data, size, image, why, why_len);
}
