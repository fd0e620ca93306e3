/* The MC146818-style CMOS RTC at ports 0x70 (index; bit 7 is the NMI mask, ignored) and
 * 0x71 (data). The clock registers follow the host's UTC time on every read, in BCD and
 * 24-hour mode; the update cycle is never in progress (UIP reads 0), so Linux's wait for
 * it ends at once. Everything else is 128 bytes of RAM.
 *
 * Not emulated: interrupts (IRQ 8 is never raised; alarm, periodic and update interrupt
 * enables are stored but do nothing, status C reads 0), setting the clock (writes to the
 * clock registers are dropped, so the guest always reads host time), binary and 12-hour
 * modes (status B's DM and 24/12 bits are fixed), and the second 128-byte bank at
 * 0x72/0x73. */
#pragma once

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "devices/bus.h"

#define CMOS_PORT      0x70
#define CMOS_NUM_PORTS 2
#define CMOS_RAM_SIZE  128

/* Current time, seconds since the epoch (UTC). Tests pass a fixed clock. */
typedef time_t (*cmos_clock_fn)(void *ctx);

struct cmos {
    pthread_mutex_t lock; /* index then data is not atomic across vCPUs otherwise */
    struct bus *pio;
    cmos_clock_fn clock;
    void *clock_ctx;
    uint8_t index;
    uint8_t ram[CMOS_RAM_SIZE];
};

/* Registers ports 0x70-0x71. clock may be NULL for time(NULL). Returns 0 or -errno. */
int cmos_init(struct cmos *dev, struct bus *pio, cmos_clock_fn clock, void *clock_ctx);

/* Unregisters the ports: call after the vCPUs have stopped, before bus_destroy. */
void cmos_destroy(struct cmos *dev);
