#include "devices/debug_exit.h"

#include <string.h>

static void debug_exit_io(void *owner, uint64_t offset, void *data, uint32_t size, bool is_write)
{
    struct debug_exit *dev = owner;

    (void)offset;
    if (!is_write) {
        memset(data, 0, size);
        return;
    }
    /* data is little-endian guest order, so its first byte is the value's low byte for
     * any width. */
    uint8_t status = ((const uint8_t *)data)[0];
    machine_request_stop(&dev->mc, MACHINE_STOP_GUEST_STATUS, status);
}

int debug_exit_init(struct debug_exit *dev, struct bus *pio, uint16_t base,
                    const struct machine_control *mc)
{
    memset(dev, 0, sizeof(*dev));
    dev->pio = pio;
    dev->base = base;
    dev->mc = *mc;
    return bus_register(pio, base, DEBUG_EXIT_NUM_PORTS, debug_exit_io, dev, "debug-exit");
}

void debug_exit_destroy(struct debug_exit *dev)
{
    bus_unregister(dev->pio, dev->base, dev);
}
