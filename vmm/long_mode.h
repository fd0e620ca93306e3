/* The CPU state the Linux 64-bit boot protocol starts a kernel in: long mode, paging on
 * with the low 4 GiB identity-mapped, flat segments __BOOT_CS (0x10) and __BOOT_DS (0x18)
 * from a GDT, interrupts off. */
#pragma once

#include <linux/kvm.h>
#include <stdint.h>

#include "vmm/guest_ram.h"

#define BOOT_CS_SELECTOR  0x10
#define BOOT_DS_SELECTOR  0x18
#define BOOT_TSS_SELECTOR 0x20

/* Writes the GDT and page tables into guest RAM (addresses from layout.h).
 * Returns 0, or -EINVAL when RAM is too small to hold them. */
int long_mode_write_tables(struct guest_ram *ram);

/* Fills special registers for long mode with the tables above; other fields of sregs
 * (APIC base, interrupt bitmap) are kept as KVM_GET_SREGS returned them. */
void long_mode_set_sregs(struct kvm_sregs *sregs);

/* General registers at the kernel entry: RIP entry, RSI the zero page. */
void long_mode_set_regs(struct kvm_regs *regs, uint64_t entry, uint64_t zero_page);
