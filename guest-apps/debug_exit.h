/* The guest side of the debug-exit port (abi/debug_exit.h): ending the VM with an exit
 * status from a Linux guest program. */
#pragma once

#include <stdint.h>

#include "abi/debug_exit.h"

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
