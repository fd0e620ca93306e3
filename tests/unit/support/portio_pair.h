/* Two port I/O channel devices, peers 0 and 1 of one group, over one channel block in this
 * process, the way two VMMs share the broker's memfd: the set-up of tests/unit/test_portio.c
 * and tests/fuzz/fuzz_portio.c. Header-only (see support/text.h). */
#pragma once

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>

#include "devices/pci.h"
#include "devices/portio.h"
#include "devices/portio_channel.h"

struct portio_pair {
    void *channel;      /* the caller's */
    struct portio a, b; /* peers 0 and 1 */
};

/* A channel block of zeros, sparse like the memfd (only the rings in use get pages), or NULL
 * with errno set. */
static inline void *portio_pair_channel_map(void)
{
    void *channel = mmap(NULL, PORTIO_CHANNEL_SIZE, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return channel == MAP_FAILED ? NULL : channel;
}

/* Puts a used channel block back to its state after portio_pair_channel_map(), as far as
 * anyone can tell: header and ring counters zero. Ring data stays: with head == tail none of
 * it is readable. Dropping the pages instead (madvise) costs a page fault per ring control
 * page on the next use, which is most of a fuzz input's time. */
static inline void portio_pair_channel_reset(void *channel)
{
    memset(channel, 0, PORTIO_HEADER_SIZE);
    for (unsigned int from = 0; from < PORTIO_MAX_PEERS; from++)
        for (unsigned int to = 0; to < PORTIO_MAX_PEERS; to++)
            memset(portio_channel_ring(channel, from, to), 0, sizeof(struct portio_ring));
}

static inline void portio_pair_channel_unmap(void *channel)
{
    munmap(channel, PORTIO_CHANNEL_SIZE);
}

/* Formats channel (zeros, from portio_pair_channel_map()), marks peers 0 and 1 present as
 * the broker would, and sets up a (on bus_a) and b (on bus_b); a NULL bus leaves that device
 * off any PCI bus. Returns 0 or -errno, with no device left set up. */
static inline int portio_pair_init(struct portio_pair *pair, void *channel, struct pci_bus *bus_a,
                                   struct pci_bus *bus_b)
{
    pair->channel = channel;
    portio_channel_format(channel);
    portio_channel_set_present(channel, 0, 100, true);
    portio_channel_set_present(channel, 1, 101, true);
    int err = portio_init(&pair->a, bus_a, channel, 0);
    if (err)
        return err;
    if ((err = portio_init(&pair->b, bus_b, channel, 1)))
        portio_destroy(&pair->a);
    return err;
}

/* Tears both devices down; the channel stays the caller's. */
static inline void portio_pair_destroy(struct portio_pair *pair)
{
    portio_destroy(&pair->a);
    portio_destroy(&pair->b);
}
