/* Model-specific registers a vCPU starts with. Firmware sets these on real machines and
 * on QEMU (SeaBIOS), and a kernel booted straight into its 64-bit entry relies on them:
 * - IA32_MTRR_DEF_TYPE: MTRRs enabled, write-back by default. With MTRRs off, Linux 6.1
 *   also turns off PAT ("MTRRs disabled, skipping PAT initialization too"), so ioremap_wc
 *   and sysfs resource*_wc mappings silently become uncached.
 * - IA32_MISC_ENABLE.fast-string: on Intel, Linux drops ERMS and REP_GOOD without it,
 *   and so the string copies its memcpy and copy_user rely on. KVM resets it clear. */
#pragma once

#include <linux/kvm.h>
#include <stdint.h>

#define MSR_IA32_MISC_ENABLE             0x1A0
#define MSR_IA32_MISC_ENABLE_FAST_STRING (1ull << 0)
#define MSR_IA32_MTRR_DEF_TYPE           0x2FF
#define MSR_IA32_MTRR_DEF_TYPE_ENABLE    (1ull << 11)
#define MTRR_TYPE_WRITE_BACK             6
#define BOOT_MSR_COUNT                   2

/* Laid out as struct kvm_msrs with room for the boot MSRs (embedding that struct, whose
 * last member is a flexible array, would be a GNU extension), for KVM_SET_MSRS. */
struct boot_msrs {
    uint32_t nmsrs;
    uint32_t pad;
    struct kvm_msr_entry entries[BOOT_MSR_COUNT];
};

/* Fills msrs with the values above; KVM_SET_MSRS must then report BOOT_MSR_COUNT set. */
void boot_msrs_fill(struct boot_msrs *msrs);
