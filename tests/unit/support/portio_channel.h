/* Any number of devices/portio.c instances in one process, joined through one channel block
 * the way VMMs share the broker's memfd (support/portio_pair.h sets up the common pair),
 * and the guest's in/out on them as plain calls. Header-only (every tests/unit/test_*.c is
 * its own executable); used by test_portio.c and test_ivc_portio.c. */
#pragma once

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "devices/portio.h"
#include "devices/portio_channel.h"
#include "tests/unit/support/portio_pair.h"

/* A formatted channel block, sparse like the memfd: only the rings a test touches get
 * pages. */
static inline void *test_portio_channel_new(void)
{
    void *channel = portio_pair_channel_map();
    assert_non_null(channel);
    portio_channel_format(channel);
    return channel;
}

static inline void test_portio_channel_free(void *channel)
{
    portio_pair_channel_unmap(channel);
}

/* Peer id joins the channel (as the broker marks it, pid 100 + id) with device dev. */
static inline void test_portio_join(void *channel, struct portio *dev, unsigned int id)
{
    portio_channel_set_present(channel, id, 100 + id, true);
    assert_int_equal(portio_init(dev, NULL, channel, id), 0);
}

static inline uint32_t in32(struct portio *dev, unsigned int port)
{
    uint32_t v = 0;
    portio_io(dev, port, &v, 4, false);
    return v;
}

static inline void out32(struct portio *dev, unsigned int port, uint32_t v)
{
    portio_io(dev, port, &v, 4, true);
}

/* rep outsb / rep insb on the data port. */
static inline void outs(struct portio *dev, const void *buf, uint32_t len)
{
    portio_string_io(dev, PORTIO_DATA, (void *)buf, 1, len, true);
}

static inline void ins(struct portio *dev, void *buf, uint32_t len)
{
    portio_string_io(dev, PORTIO_DATA, buf, 1, len, false);
}
