/* The debug-exit port: how a guest ends the VM with an exit status, as kvm-unit-tests do
 * with outl(code, 0xf4). A 1-, 2- or 4-byte write of V to any of the DEBUG_EXIT_NUM_PORTS
 * ports from DEBUG_EXIT_PORT ends the VM, and minivmm exits with status V & 0xff; reads
 * return 0. (QEMU's isa-debug-exit,iobase=0xf4,iosize=4 exits with (V << 1) | 1 instead, so
 * a guest run under QEMU gives (2V + 1) & 0xff.) Guests should keep to statuses 0..63:
 * minivmm's own exit codes start at 64 (README, "Exit codes"). */
#pragma once

#define DEBUG_EXIT_PORT      0xf4
#define DEBUG_EXIT_NUM_PORTS 4
