/* The debug-exit port (abi/debug_exit.h): a guest write ends the machine with the low byte
 * of the value written as its status. */
#pragma once

#include <stdint.h>

#include "abi/debug_exit.h"
#include "devices/bus.h"
#include "devices/device.h"

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
