/* Per-vCPU CPUID: KVM's supported leaves with this vCPU's APIC ID and the VM's CPU count
 * filled in, so Linux numbers the CPUs as the MP table does. */
#pragma once

#include <linux/kvm.h>
#include <stdint.h>

void cpuid_customize(struct kvm_cpuid2 *cpuid, uint32_t apic_id, unsigned int cpus);

/* Sets the TSC-deadline timer bit (leaf 1 ECX[24]). KVM_GET_SUPPORTED_CPUID leaves it out
 * even when the in-kernel local APIC emulates that timer mode, which KVM announces with
 * KVM_CAP_TSC_DEADLINE_TIMER instead; without the bit Linux programs its timer through
 * the APIC's memory-mapped count register, an emulated MMIO exit each time. */
void cpuid_enable_tsc_deadline(struct kvm_cpuid2 *cpuid);
