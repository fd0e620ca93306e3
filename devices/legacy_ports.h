/* Ports a Linux guest touches during boot that no device behind them needs to answer,
 * claimed so those accesses are cheap and do not show up as unclaimed. The list and the
 * reasons for each port, and for the ports deliberately left out, are in legacy_ports.c. */
#pragma once

#include "devices/bus.h"

struct legacy_ports {
    struct bus *pio;
};

/* Registers every port of the list. Returns 0 or -errno, with nothing left registered. */
int legacy_ports_init(struct legacy_ports *dev, struct bus *pio);

/* Unregisters the ports: call before bus_destroy. */
void legacy_ports_destroy(struct legacy_ports *dev);
