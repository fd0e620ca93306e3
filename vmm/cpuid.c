#include "vmm/cpuid.h"

#include <asm/kvm_para.h>

#define CPUID_FEATURES           0x1
#define CPUID_EXT_TOPOLOGY       0xB
#define CPUID_EXT_TOPOLOGY_V2    0x1F
#define CPUID_AMD_SIZE_IDS       0x80000008
#define CPUID_AMD_TOPOLOGY_EXT   0x8000001E
#define CPUID_1_ECX_TSC_DEADLINE (1u << 24)
#define CPUID_1_ECX_HYPERVISOR   (1u << 31)
#define CPUID_1_EDX_HTT          (1u << 28)

static unsigned int bits_for(unsigned int count)
{
    unsigned int bits = 0;
    while ((1u << bits) < count)
        bits++;
    return bits;
}

void cpuid_customize(struct kvm_cpuid2 *cpuid, uint32_t apic_id, unsigned int cpus)
{
    for (uint32_t i = 0; i < cpuid->nent; i++) {
        struct kvm_cpuid_entry2 *e = &cpuid->entries[i];
        switch (e->function) {
        case CPUID_FEATURES:
            /* EBX[31:24] initial APIC ID, EBX[23:16] logical processors per package. */
            e->ebx = (e->ebx & 0xFFFF) | (apic_id << 24) | ((cpus & 0xFF) << 16);
            e->ecx |= CPUID_1_ECX_HYPERVISOR;
            if (cpus > 1)
                e->edx |= CPUID_1_EDX_HTT;
            else
                e->edx &= ~CPUID_1_EDX_HTT;
            break;
        case CPUID_EXT_TOPOLOGY:
        case CPUID_EXT_TOPOLOGY_V2:
            /* One thread per core, all cores in one package. EDX is the x2APIC ID. */
            if (e->index == 0) {
                e->eax = 0;
                e->ebx = 1;
                e->ecx = (1u << 8) | 0;
            } else if (e->index == 1) {
                e->eax = bits_for(cpus);
                e->ebx = cpus;
                e->ecx = (2u << 8) | 1;
            } else {
                e->eax = e->ebx = 0;
                e->ecx = e->index;
            }
            e->edx = apic_id;
            break;
        case CPUID_AMD_SIZE_IDS:
            /* ECX[15:12] APIC ID bits for cores, ECX[7:0] cores per package minus one. */
            e->ecx = (e->ecx & ~0xF0FFu) | (bits_for(cpus) << 12) | ((cpus - 1) & 0xFF);
            break;
        case CPUID_AMD_TOPOLOGY_EXT:
            e->eax = apic_id;
            /* EBX[7:0] core ID, EBX[15:8] threads per core minus one: leaf 0xB says one
             * thread per core, and Linux believes whichever it reads. */
            e->ebx &= ~0xFFFFu;
            e->ebx |= apic_id & 0xFF;
            break;
        case KVM_CPUID_FEATURES:
            /* Tells Linux its port 0x80 delays are pointless here, saving an exit each. */
            e->eax |= 1u << KVM_FEATURE_NOP_IO_DELAY;
            break;
        default:
            break;
        }
    }
}

void cpuid_enable_tsc_deadline(struct kvm_cpuid2 *cpuid)
{
    for (uint32_t i = 0; i < cpuid->nent; i++) {
        if (cpuid->entries[i].function == CPUID_FEATURES)
            cpuid->entries[i].ecx |= CPUID_1_ECX_TSC_DEADLINE;
    }
}
