/* Where minivmm puts things in guest physical memory before the kernel runs. The kernel
 * reserves what it needs from the e820 map and the zero page, so these only have to stay
 * clear of each other and of the kernel image loaded at LAYOUT_KERNEL_START. */
#pragma once

#include "devices/pci.h"   /* struct pci_windows */
#include "vmm/guest_ram.h" /* PCI_HOLE_START */

#define LAYOUT_GDT          0x0500ull
#define LAYOUT_ZERO_PAGE    0x7000ull
#define LAYOUT_BOOT_STACK   0x8ff0ull
#define LAYOUT_PML4         0x9000ull
#define LAYOUT_PDPT         0xA000ull
#define LAYOUT_PD           0xB000ull /* four pages: 2 MiB pages for the first 4 GiB */
#define LAYOUT_CMDLINE      0x20000ull
#define LAYOUT_CMDLINE_MAX  0x10000ull
#define LAYOUT_EBDA_START   0x9FC00ull
#define LAYOUT_BIOS_START   0xF0000ull /* the MP table lives here, where Linux scans for it */
#define LAYOUT_MPTABLE      LAYOUT_BIOS_START
#define LAYOUT_HIGH_MEMORY  0x100000ull
#define LAYOUT_KERNEL_START LAYOUT_HIGH_MEMORY

/* In-kernel irqchip addresses (fixed by KVM's emulation) and KVM's private pages, which
 * must sit in the hole below 4 GiB and outside RAM. */
#define LAYOUT_IOAPIC           0xFEC00000ull
#define LAYOUT_LAPIC            0xFEE00000ull
#define LAYOUT_KVM_IDENTITY_MAP 0xFEFFC000ull
#define LAYOUT_KVM_TSS          0xFEFFD000ull

/* Windows the VMM assigns PCI BARs from, the way firmware would before the kernel runs:
 * 32-bit BARs in the hole below the IOAPIC, 64-bit BARs (the shared memory) far above
 * any guest RAM, I/O BARs above the legacy ports. */
#define LAYOUT_PCI_IO_START     0xC000ull
#define LAYOUT_PCI_IO_END       0x10000ull
#define LAYOUT_PCI_MMIO32_START PCI_HOLE_START
#define LAYOUT_PCI_MMIO32_END   LAYOUT_IOAPIC
#define LAYOUT_PCI_MMIO64_START (1ull << 38) /* 256 GiB */
#define LAYOUT_PCI_MMIO64_END   (1ull << 39)
/* The windows above, as pci_bus_init() takes them. */
#define LAYOUT_PCI_WINDOWS                                                                         \
    (&(const struct pci_windows){                                                                  \
        .io_start = LAYOUT_PCI_IO_START,                                                           \
        .io_end = LAYOUT_PCI_IO_END,                                                               \
        .mmio32_start = LAYOUT_PCI_MMIO32_START,                                                   \
        .mmio32_end = LAYOUT_PCI_MMIO32_END,                                                       \
        .mmio64_start = LAYOUT_PCI_MMIO64_START,                                                   \
        .mmio64_end = LAYOUT_PCI_MMIO64_END,                                                       \
    })
