/* The Intel MultiProcessor Specification 1.4 table: how a firmware-less guest learns its
 * CPUs (by APIC ID), the IOAPIC and the routing of ISA interrupts. Linux scans the BIOS
 * area for the floating pointer when there are no ACPI tables. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Writes the floating pointer and configuration table for cpus processors (APIC IDs
 * 0..cpus-1, CPU 0 the bootstrap processor) into buf, which the guest sees at gpa.
 * Returns the bytes used, or 0 if max is too small. */
size_t mptable_write(void *buf, size_t max, uint64_t gpa, unsigned int cpus, uint64_t ioapic_addr);

/* The IOAPIC's ID in the table: the first after the CPUs'. */
static inline uint8_t mptable_ioapic_id(unsigned int cpus)
{
    return (uint8_t)cpus;
}
