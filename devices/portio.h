/* The port I/O channel device: a PCI function (1af4:10f0) whose BAR0 is 256 I/O ports
 * through which guest user space (ioperm + in/out, or /dev/port) exchanges bytes with the
 * other VMs of its --shm group. Registers: abi/portio_regs.h; behaviour: docs/portio.md.
 * Transport: devices/portio_channel.h (the caller passes the mapped channel memory).
 *
 * Threads: BAR accesses come from vCPU threads and take the device mutex, except that the
 * WAIT registers sleep (at most PORTIO_WAIT_MAX_MS, less when a signal such as the VMM's
 * vCPU kick arrives) with the mutex released. A VM that stops therefore gets its vCPU back
 * within PORTIO_WAIT_MAX_MS at worst, promptly when kicked. No KVM inside: the unit tests
 * and fuzzers drive portio_io()/portio_string_io() directly.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/pci.h"
#include "devices/portio_channel.h"

struct portio {
    pthread_mutex_t lock;
    struct pci_device pci;
    struct pci_bus *bus; /* NULL when used without a bus (tests) */
    void *channel;
    unsigned int own_id;

    /* Guest-visible state, under lock. */
    uint32_t peer;             /* PORTIO_PEER_NONE or 0..63 */
    uint32_t bound_generation; /* the partner's generation (odd), present or still to come */
    bool peer_gone;
    bool tx_refused_flag;
    bool rx_underrun_flag;
    uint32_t tx_refused;
    uint32_t rx_underrun;
    uint32_t bad_accesses;
    uint32_t tx_bytes;
    uint32_t rx_bytes;
    uint32_t corrupt_rings; /* reads of inconsistent ring counters (a broken peer VMM) */
    unsigned int latch_reg; /* register offset whose byte 0 was read last */
    uint32_t latch_value;
    _Atomic uint32_t exits; /* every BAR access */
};

/* Sets the device up for peer own_id of the channel at channel (PORTIO_CHANNEL_SIZE bytes,
 * formatted) and, when bus is not NULL, plugs it into the PCI bus. Returns 0, -EINVAL (bad
 * id or unformatted channel) or -errno from the PCI layer. */
int portio_init(struct portio *dev, struct pci_bus *bus, void *channel, unsigned int own_id);

/* Unplugs the device. No vCPU may be running. */
void portio_destroy(struct portio *dev);

/* BAR0 accesses (offset 0..255), as the bus calls them. */
void portio_io(void *owner, uint64_t offset, void *data, uint32_t size, bool is_write);
void portio_string_io(void *owner, uint64_t offset, void *data, uint32_t size, uint32_t count,
                      bool is_write);
