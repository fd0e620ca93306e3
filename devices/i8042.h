/* A minimal i8042 keyboard controller, there so Linux can reboot the machine through it.
 *
 * Emulated: the status register of an idle controller (output buffer empty, system flag
 * set, keyboard not locked), the command byte and the rest of the 32-byte controller RAM
 * (0x20-0x3f read, 0x60-0x7f write), self-test (0xaa -> 0x55), keyboard interface test
 * (0xab -> 0x00), keyboard/aux enable and disable (0xad/0xae/0xa7/0xa8, which only set or
 * clear the command byte bits), the output port (0xd0 read, 0xd1 write), writes into the
 * output buffer (0xd2), and reset: a pulse of output line 0 (0xfe, or any 0xf0-0xfe with bit
 * 0 clear) or an output port write with bit 0 clear requests MACHINE_STOP_RESET.
 *
 * Not emulated: a keyboard or a mouse (bytes written to port 0x60 for the keyboard are
 * dropped, so Linux's atkbd probe times out in the background), interrupts (IRQ 1 and 12
 * are never raised), A20 gating (A20 is always on under KVM), parity and timeout errors.
 * The aux port reads as absent: 0xd3 (aux loopback) answers without the aux-data status
 * bit and 0xa9 (aux interface test) reports a stuck clock line, which makes Linux give up
 * on the aux port at once instead of waiting for timeouts. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/bus.h"
#include "devices/device.h"

#define I8042_DATA_PORT    0x60
#define I8042_COMMAND_PORT 0x64

struct i8042 {
    pthread_mutex_t lock;
    struct bus *pio;
    struct machine_control mc;
    uint8_t ram[32]; /* ram[0] is the command byte */
    uint8_t out_port;
    uint8_t outbuf;        /* byte the guest reads next from port 0x60 */
    bool outbuf_full;      /* status OBF */
    bool last_was_command; /* status bit 3: the last write went to port 0x64 */
    uint8_t pending;       /* command waiting for its data byte on port 0x60, or 0 */
};

/* Registers ports 0x60 and 0x64. mc is copied. Returns 0 or -errno. */
int i8042_init(struct i8042 *dev, struct bus *pio, const struct machine_control *mc);

/* Unregisters the ports: call after the vCPUs have stopped, before bus_destroy. */
void i8042_destroy(struct i8042 *dev);
