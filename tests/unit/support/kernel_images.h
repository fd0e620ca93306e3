/* Kernel images built in memory: the smallest bzImage and ELF files the loader accepts,
 * so each test can corrupt exactly one field. Header-only (see support/text.h). */
#pragma once

#include <asm/bootparam.h>
#include <elf.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* bzImage: setup sectors, then a payload whose 64-bit entry is 0x200 bytes in. */
#define SYNTH_SETUP_SECTS  4
#define SYNTH_SETUP_SIZE   ((SYNTH_SETUP_SECTS + 1) * 512)
#define SYNTH_PAYLOAD_SIZE 0x2000
#define SYNTH_BZIMAGE_SIZE (SYNTH_SETUP_SIZE + SYNTH_PAYLOAD_SIZE)
#define SYNTH_INIT_SIZE    (4u << 20)
#define SYNTH_PREF_ADDRESS 0x1000000ull
/* Relocatable and preferring 16 MiB, it decompresses there and needs init_size above it. */
#define SYNTH_LOAD_END        (SYNTH_PREF_ADDRESS + SYNTH_INIT_SIZE)
#define SYNTH_CMDLINE_SIZE    2047
#define SYNTH_INITRD_ADDR_MAX 0x7FFFFFFFu

/* The header lives at 0x1F1; the struct is packed, so any alignment is fine. */
static inline struct setup_header *synth_hdr(uint8_t *image)
{
    return (struct setup_header *)(image + 0x1F1);
}

/* A pattern, not zeros, so a copy that lands at the wrong offset shows. */
static inline uint8_t synth_payload_byte(size_t i)
{
    return (uint8_t)(i * 7 + 3);
}

static inline void synth_bzimage_build(uint8_t image[SYNTH_BZIMAGE_SIZE])
{
    memset(image, 0, SYNTH_BZIMAGE_SIZE);
    for (size_t i = 0; i < SYNTH_PAYLOAD_SIZE; i++)
        image[SYNTH_SETUP_SIZE + i] = synth_payload_byte(i);
    struct setup_header *hdr = synth_hdr(image);
    hdr->setup_sects = SYNTH_SETUP_SECTS;
    hdr->boot_flag = 0xAA55;
    hdr->header = 0x53726448; /* "HdrS" */
    hdr->version = 0x020F;
    hdr->loadflags = LOADED_HIGH;
    hdr->xloadflags = XLF_KERNEL_64;
    hdr->syssize = SYNTH_PAYLOAD_SIZE / 16;
    hdr->init_size = SYNTH_INIT_SIZE;
    hdr->pref_address = SYNTH_PREF_ADDRESS;
    hdr->relocatable_kernel = 1;
    hdr->kernel_alignment = 0x200000;
    hdr->cmdline_size = SYNTH_CMDLINE_SIZE;
    hdr->initrd_addr_max = SYNTH_INITRD_ADDR_MAX;
}

/* ELF64: header and program headers first, segment contents from SYNTH_ELF_DATA. */
#define SYNTH_ELF_SIZE      0x3000
#define SYNTH_ELF_DATA      0x1000
#define SYNTH_ELF_MAX_PHDRS 20

struct synth_elf_segment {
    uint32_t type;
    uint64_t offset;
    uint64_t vaddr;
    uint64_t paddr;
    uint64_t filesz;
    uint64_t memsz;
};

/* A PT_LOAD segment whose contents start at SYNTH_ELF_DATA. */
static inline struct synth_elf_segment synth_elf_load(uint64_t vaddr, uint64_t paddr,
                                                      uint64_t filesz, uint64_t memsz)
{
    return (struct synth_elf_segment){PT_LOAD, SYNTH_ELF_DATA, vaddr, paddr, filesz, memsz};
}

/* buf must be SYNTH_ELF_SIZE bytes and 8-byte aligned (libelf reads it in place). */
static inline void synth_elf_build(uint8_t *buf, uint16_t type, uint16_t machine, uint64_t entry,
                                   const struct synth_elf_segment *segs, size_t count)
{
    memset(buf, 0, SYNTH_ELF_SIZE);
    for (size_t i = SYNTH_ELF_DATA; i < SYNTH_ELF_SIZE; i++)
        buf[i] = synth_payload_byte(i);

    Elf64_Ehdr ehdr = {0};
    memcpy(ehdr.e_ident, ELFMAG, SELFMAG);
    ehdr.e_ident[EI_CLASS] = ELFCLASS64;
    ehdr.e_ident[EI_DATA] = ELFDATA2LSB;
    ehdr.e_ident[EI_VERSION] = EV_CURRENT;
    ehdr.e_type = type;
    ehdr.e_machine = machine;
    ehdr.e_version = EV_CURRENT;
    ehdr.e_entry = entry;
    ehdr.e_phoff = sizeof(Elf64_Ehdr);
    ehdr.e_ehsize = sizeof(Elf64_Ehdr);
    ehdr.e_phentsize = sizeof(Elf64_Phdr);
    ehdr.e_phnum = (uint16_t)count;
    memcpy(buf, &ehdr, sizeof(ehdr));

    for (size_t i = 0; i < count && i < SYNTH_ELF_MAX_PHDRS; i++) {
        Elf64_Phdr phdr = {
            .p_type = segs[i].type,
            .p_flags = PF_R | PF_X,
            .p_offset = segs[i].offset,
            .p_vaddr = segs[i].vaddr,
            .p_paddr = segs[i].paddr,
            .p_filesz = segs[i].filesz,
            .p_memsz = segs[i].memsz,
            .p_align = 0x1000,
        };
        memcpy(buf + sizeof(ehdr) + i * sizeof(phdr), &phdr, sizeof(phdr));
    }
}
