#include "vmm/mptable.h"

#include <string.h>

#include "vmm/layout.h"

#define MP_SPEC_REV              4 /* 1.4 */
#define MP_ENTRY_PROCESSOR       0
#define MP_ENTRY_BUS             1
#define MP_ENTRY_IOAPIC          2
#define MP_ENTRY_IO_INTERRUPT    3
#define MP_ENTRY_LOCAL_INTERRUPT 4
#define MP_CPU_ENABLED           0x01
#define MP_CPU_BSP               0x02
#define MP_IOAPIC_ENABLED        0x01
#define MP_INT_TYPE_INT          0
#define MP_INT_TYPE_NMI          1
#define MP_INT_TYPE_EXTINT       3
#define MP_ISA_IRQS              16
#define MP_ALL_LAPICS            0xFF
#define MP_LAPIC_VERSION         0x14
#define MP_IOAPIC_VERSION        0x11
/* CPUID.1 family 6 signature and the FPU/APIC feature bits, enough for Linux's parser. */
#define MP_CPU_SIGNATURE 0x600
#define MP_CPU_FEATURES  0x201

struct __attribute__((packed)) mp_floating_pointer {
    char signature[4]; /* "_MP_" */
    uint32_t config_table;
    uint8_t length_paragraphs;
    uint8_t spec_rev;
    uint8_t checksum;
    uint8_t feature[5];
};

struct __attribute__((packed)) mp_config_header {
    char signature[4]; /* "PCMP" */
    uint16_t length;
    uint8_t spec_rev;
    uint8_t checksum;
    char oem_id[8];
    char product_id[12];
    uint32_t oem_table;
    uint16_t oem_table_size;
    uint16_t entry_count;
    uint32_t lapic_addr;
    uint16_t ext_length;
    uint8_t ext_checksum;
    uint8_t reserved;
};

struct __attribute__((packed)) mp_processor {
    uint8_t type;
    uint8_t apic_id;
    uint8_t apic_version;
    uint8_t flags;
    uint32_t signature;
    uint32_t features;
    uint32_t reserved[2];
};

struct __attribute__((packed)) mp_bus {
    uint8_t type;
    uint8_t bus_id;
    char bus_type[6];
};

struct __attribute__((packed)) mp_ioapic {
    uint8_t type;
    uint8_t apic_id;
    uint8_t version;
    uint8_t flags;
    uint32_t addr;
};

struct __attribute__((packed)) mp_interrupt {
    uint8_t type;
    uint8_t int_type;
    uint16_t flags; /* 0: polarity and trigger conform to the bus (ISA: edge, high) */
    uint8_t src_bus;
    uint8_t src_irq;
    uint8_t dst_apic;
    uint8_t dst_pin;
};

static uint8_t mp_checksum(const void *data, size_t len)
{
    const uint8_t *bytes = data;
    uint8_t sum = 0;
    for (size_t i = 0; i < len; i++)
        sum += bytes[i];
    return (uint8_t)-sum;
}

size_t mptable_write(void *buf, size_t max, uint64_t gpa, unsigned int cpus, uint64_t ioapic_addr)
{
    size_t needed = sizeof(struct mp_floating_pointer) + sizeof(struct mp_config_header) +
                    cpus * sizeof(struct mp_processor) + sizeof(struct mp_bus) +
                    sizeof(struct mp_ioapic) + (MP_ISA_IRQS + 2) * sizeof(struct mp_interrupt);
    if (max < needed || cpus == 0 || cpus >= MP_ALL_LAPICS)
        return 0;
    memset(buf, 0, needed);

    uint8_t *base = buf;
    struct mp_floating_pointer *mpf = buf;
    struct mp_config_header *header = (void *)(base + sizeof(*mpf));
    uint8_t *entry = (uint8_t *)(header + 1);
    uint8_t ioapic_id = mptable_ioapic_id(cpus);
    uint16_t entries = 0;

    for (unsigned int cpu = 0; cpu < cpus; cpu++) {
        struct mp_processor *proc = (void *)entry;
        proc->type = MP_ENTRY_PROCESSOR;
        proc->apic_id = (uint8_t)cpu;
        proc->apic_version = MP_LAPIC_VERSION;
        proc->flags = MP_CPU_ENABLED | (cpu == 0 ? MP_CPU_BSP : 0);
        proc->signature = MP_CPU_SIGNATURE;
        proc->features = MP_CPU_FEATURES;
        entry += sizeof(*proc);
        entries++;
    }

    struct mp_bus *isa = (void *)entry;
    isa->type = MP_ENTRY_BUS;
    isa->bus_id = 0;
    memcpy(isa->bus_type, "ISA   ", 6);
    entry += sizeof(*isa);
    entries++;

    struct mp_ioapic *ioapic = (void *)entry;
    ioapic->type = MP_ENTRY_IOAPIC;
    ioapic->apic_id = ioapic_id;
    ioapic->version = MP_IOAPIC_VERSION;
    ioapic->flags = MP_IOAPIC_ENABLED;
    ioapic->addr = (uint32_t)ioapic_addr;
    entry += sizeof(*ioapic);
    entries++;

    /* KVM's default routing wires ISA IRQ n to IOAPIC pin n, the PIT included. */
    for (uint8_t irq = 0; irq < MP_ISA_IRQS; irq++) {
        struct mp_interrupt *route = (void *)entry;
        route->type = MP_ENTRY_IO_INTERRUPT;
        route->int_type = MP_INT_TYPE_INT;
        route->src_bus = isa->bus_id;
        route->src_irq = irq;
        route->dst_apic = ioapic_id;
        route->dst_pin = irq;
        entry += sizeof(*route);
        entries++;
    }

    /* Every local APIC: LINT0 takes the 8259's ExtINT, LINT1 is NMI, as on a PC. */
    static const uint8_t lint_types[2] = {MP_INT_TYPE_EXTINT, MP_INT_TYPE_NMI};
    for (uint8_t pin = 0; pin < 2; pin++) {
        struct mp_interrupt *lint = (void *)entry;
        lint->type = MP_ENTRY_LOCAL_INTERRUPT;
        lint->int_type = lint_types[pin];
        lint->src_bus = isa->bus_id;
        lint->dst_apic = MP_ALL_LAPICS;
        lint->dst_pin = pin;
        entry += sizeof(*lint);
        entries++;
    }

    memcpy(header->signature, "PCMP", 4);
    header->length = (uint16_t)(entry - (uint8_t *)header);
    header->spec_rev = MP_SPEC_REV;
    memcpy(header->oem_id, "MINIVMM ", 8);
    memcpy(header->product_id, "MINIVMM     ", 12);
    header->entry_count = entries;
    header->lapic_addr = (uint32_t)LAYOUT_LAPIC;
    header->checksum = mp_checksum(header, header->length);

    memcpy(mpf->signature, "_MP_", 4);
    mpf->config_table = (uint32_t)(gpa + sizeof(*mpf));
    mpf->length_paragraphs = 1;
    mpf->spec_rev = MP_SPEC_REV;
    mpf->checksum = mp_checksum(mpf, sizeof(*mpf));
    return (size_t)(entry - base);
}
