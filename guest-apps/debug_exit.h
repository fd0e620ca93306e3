/*
 * The debug-exit port: how a guest ends the VM with an exit status.
 *
 * Contract (minivmm implements it, like QEMU's isa-debug-exit and kvm-unit-tests):
 * a 1-, 2- or 4-byte write of value V to I/O port DEBUG_EXIT_PORT ends the VM, and
 * minivmm exits with status V & 0xff. (QEMU's isa-debug-exit,iobase=0xf4,iosize=4
 * exits with (V << 1) | 1 instead, so a guest run under QEMU gives (2V + 1) & 0xff.)
 *
 * The VMM may include this header for the constants; the guest-side helper lives in
 * debug_exit.c (guest programs only).
 */
#pragma once

#include <stdint.h>

#define DEBUG_EXIT_PORT      0xf4
#define DEBUG_EXIT_PORT_SIZE 4

enum debug_exit_via {
    DEBUG_EXIT_AUTO,    /* ioperm, then /dev/port if that faults or is refused */
    DEBUG_EXIT_IOPERM,  /* ioperm(0xf4, 4, 1) + a 4-byte outl from user mode */
    DEBUG_EXIT_DEVPORT, /* a 1-byte write to /dev/port at 0xf4: the kernel does the outb */
};

/*
 * End the VM with status (status & 0xff), after the console has sent all pending output.
 * Needs root in the guest. Returns only when the VM did not end; then it has said why on
 * stderr, each line starting with PROG.
 */
void debug_exit(uint32_t status, enum debug_exit_via via, const char *prog);
