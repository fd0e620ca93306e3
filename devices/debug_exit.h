/* The debug-exit port: a guest ends the machine with an exit status by writing it here,
 * as kvm-unit-tests do with outl(code, 0xf4). The status is the low byte of the value
 * written, whatever the access width and whichever of the four ports is written. */
#pragma once

#include <stdint.h>

#include "devices/bus.h"
#include "devices/device.h"

#define DEBUG_EXIT_PORT      0xf4
#define DEBUG_EXIT_NUM_PORTS 4

struct debug_exit {
    struct bus *pio;
    uint16_t base;
    struct machine_control mc;
};

/* Registers [base, base + 4) (base is normally DEBUG_EXIT_PORT). mc is copied. A write
 * then calls machine_request_stop(mc, MACHINE_STOP_GUEST_STATUS, value & 0xff); reads
 * return 0. Returns 0 or -errno. */
int debug_exit_init(struct debug_exit *dev, struct bus *pio, uint16_t base,
                    const struct machine_control *mc);

/* Unregisters the ports: call before bus_destroy. */
void debug_exit_destroy(struct debug_exit *dev);
