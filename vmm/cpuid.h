/* Per-vCPU CPUID: KVM's supported leaves with this vCPU's APIC ID and the VM's CPU count
 * filled in, so Linux numbers the CPUs as the MP table does. */
#pragma once

#include <linux/kvm.h>
#include <stdint.h>

void cpuid_customize(struct kvm_cpuid2 *cpuid, uint32_t apic_id, unsigned int cpus);
