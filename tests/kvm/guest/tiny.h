/* The runtime of the tiny guests: freestanding x86-64 programs that minivmm loads as ELF.
 * start.S and kernel.c do a few hundred instructions of kernel-mode set-up (GDT with user
 * segments, TSS, IDT, page tables with the U/S bit, x2APIC), then enter tiny_main() at CPL3
 * with IOPL=3: on a paravirtual KVM (PVM) only user code runs at native speed. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "abi/debug_exit.h"

/* Exit statuses through the debug-exit port; 0 is avoided because minivmm also exits 0
 * when the guest resets, so a reset can never look like a pass. */
#define TINY_EXIT_PASS      32
#define TINY_EXIT_FAIL      33
#define TINY_EXIT_EXCEPTION 34

#define TINY_IRQ_VECTOR   0x40 /* the vector MSI-X messages are programmed with */
#define TINY_TIMER_VECTOR 0x41 /* the x2APIC timer that bounds tiny_idle() */
#define TINY_IDLE_VECTOR  0x80 /* the gate behind tiny_idle() */

#define COM1_PORT 0x3f8

/* Each guest defines it; it runs at CPL3 and its return value is the exit status. */
int tiny_main(void);

/* Set up by the kernel-mode part: interrupts taken on TINY_IRQ_VECTOR, and whether the
 * local APIC runs in x2APIC mode (needed to receive them). */
extern volatile uint64_t tiny_irq_count;
extern bool tiny_x2apic_enabled;

static inline void outb(uint16_t port, uint8_t value)
{
    __asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port));
}

static inline void outl(uint16_t port, uint32_t value)
{
    __asm__ volatile("outl %0, %1" : : "a"(value), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
    uint8_t value;
    __asm__ volatile("inb %1, %0" : "=a"(value) : "Nd"(port));
    return value;
}

static inline uint32_t inl(uint16_t port)
{
    uint32_t value;
    __asm__ volatile("inl %1, %0" : "=a"(value) : "Nd"(port));
    return value;
}

static inline void outsb(uint16_t port, const void *buf, uint64_t count)
{
    __asm__ volatile("rep outsb" : "+S"(buf), "+c"(count) : "d"(port) : "memory");
}

static inline void insb(uint16_t port, void *buf, uint64_t count)
{
    __asm__ volatile("rep insb" : "+D"(buf), "+c"(count) : "d"(port) : "memory");
}

static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

static inline void cpu_relax(void)
{
    __asm__ volatile("pause" ::: "memory");
}

static inline uint32_t mmio_read32(uint64_t addr)
{
    return *(volatile uint32_t *)addr;
}

static inline void mmio_write32(uint64_t addr, uint32_t value)
{
    *(volatile uint32_t *)addr = value;
}

void tiny_putc(char c);
void tiny_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
__attribute__((noreturn)) void tiny_exit(int status);
/* Prints "FAIL: ..." and ends the VM with TINY_EXIT_FAIL. */
__attribute__((noreturn, format(printf, 1, 2))) void tiny_fail(const char *fmt, ...);

/* The value of "tiny.NAME=VALUE" on the kernel command line (minivmm --append), with
 * K/M/G suffixes; fallback when absent or unreadable. */
uint64_t tiny_param(const char *name, uint64_t fallback);

/* TSC ticks per second, measured against the PIT's channel 2 (a 1.193182 MHz clock that
 * KVM's in-kernel PIT derives from the host's clock). 0 if the PIT did not respond. */
uint64_t tiny_tsc_hz(void);
uint64_t tiny_ticks_to_ns(uint64_t ticks, uint64_t tsc_hz);

/* Halts until an interrupt arrives (a doorbell's MSI-X) or about ns nanoseconds pass (KVM's
 * APIC timer counts at 1 GHz; at most ~4.29 s), whichever is first: the idle guest leaves
 * its host CPU to the others. Needs the x2APIC (tiny_x2apic_enabled). An interrupt that
 * arrived just before the call is not seen, so callers bound ns by how late they can be. */
static inline void tiny_idle(uint64_t ns)
{
    uint32_t count = ns > 0xFFFFFFFFull ? 0xFFFFFFFFu : ns ? (uint32_t)ns : 1;
    __asm__ volatile("int $0x80" : : "D"(count) : "memory");
}

/* PCI configuration space through ports 0xCF8/0xCFC (bus 0 only). */
uint32_t pci_read32(unsigned slot, unsigned offset);
void pci_write32(unsigned slot, unsigned offset, uint32_t value);
/* The first slot holding vendor:device, or -1. */
int pci_find(uint16_t vendor, uint16_t device);
/* The address of memory BAR bar of the device in slot (64-bit BARs read whole). */
uint64_t pci_bar_address(unsigned slot, unsigned bar);

void *memset(void *dst, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);

/* Sorts values ascending (insertion sort: the guests sort a few thousand samples once). */
void tiny_sort(uint64_t *values, size_t count);
