#include "devices/portio.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "common/log.h"

/* ---- the selected partner (lock held) ---- */

static bool peer_selected(const struct portio *dev)
{
    return dev->peer < PORTIO_MAX_PEERS;
}

/* Whether the partner can take data now; notices its departure (sticky PEER_GONE). */
static bool partner_usable(struct portio *dev, bool *present_out)
{
    if (!peer_selected(dev)) {
        if (present_out)
            *present_out = false;
        return false;
    }
    uint32_t generation = portio_channel_generation(dev->channel, dev->peer);
    bool present = generation & 1;
    /* Before the partner's arrival the word is one less; anything else but its own
     * generation means it has left, whether or not anyone looked in between. */
    if (generation != dev->bound_generation && generation != dev->bound_generation - 1)
        dev->peer_gone = true;
    if (present_out)
        *present_out = present;
    return present && !dev->peer_gone;
}

static struct portio_ring *tx_ring(struct portio *dev)
{
    return portio_channel_ring(dev->channel, dev->own_id, dev->peer);
}

static struct portio_ring *rx_ring(struct portio *dev)
{
    return portio_channel_ring(dev->channel, dev->peer, dev->own_id);
}

static uint32_t rx_avail(struct portio *dev)
{
    if (!peer_selected(dev))
        return 0;
    bool corrupt = false;
    uint32_t avail = portio_ring_readable(rx_ring(dev), &corrupt);
    dev->corrupt_rings += corrupt;
    return avail;
}

static uint32_t tx_space(struct portio *dev)
{
    if (!partner_usable(dev, NULL))
        return 0;
    bool corrupt = false;
    uint32_t space = portio_ring_writable(tx_ring(dev), &corrupt);
    dev->corrupt_rings += corrupt;
    return space;
}

static uint32_t status(struct portio *dev)
{
    bool present;
    uint32_t s = 0;
    partner_usable(dev, &present);
    if (peer_selected(dev))
        s |= PORTIO_STATUS_PEER_SELECTED;
    if (present)
        s |= PORTIO_STATUS_PEER_PRESENT;
    if (dev->peer_gone)
        s |= PORTIO_STATUS_PEER_GONE;
    if (rx_avail(dev) > 0)
        s |= PORTIO_STATUS_RX_READY;
    if (tx_space(dev) > 0)
        s |= PORTIO_STATUS_TX_READY;
    if (dev->tx_refused_flag)
        s |= PORTIO_STATUS_TX_REFUSED;
    if (dev->rx_underrun_flag)
        s |= PORTIO_STATUS_RX_UNDERRUN;
    return s;
}

static uint32_t peers_bitmap(struct portio *dev, unsigned int first)
{
    uint32_t map = 0;
    for (unsigned int i = 0; i < 32; i++)
        if (portio_channel_generation(dev->channel, first + i) & 1)
            map |= 1u << i;
    return map;
}

/* ---- waiting (called without the lock) ---- */

static int64_t monotonic_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* Sleeps until the condition of WAIT_RX (rx) or WAIT_TX (!rx) holds, the partner is gone,
 * PORTIO_WAIT_MAX_MS passed or a signal interrupted the sleep. */
static void wait_for(struct portio *dev, bool rx)
{
    int64_t deadline = monotonic_ms() + PORTIO_WAIT_MAX_MS;
    for (;;) {
        pthread_mutex_lock(&dev->lock);
        if (!peer_selected(dev)) {
            pthread_mutex_unlock(&dev->lock);
            return;
        }
        struct portio_ring *ring = rx ? rx_ring(dev) : tx_ring(dev);
        uint32_t seq = portio_ring_seq(ring);
        bool usable = partner_usable(dev, NULL);
        bool done =
            rx ? rx_avail(dev) > 0 || !usable : !usable || tx_space(dev) >= PORTIO_WAIT_TX_MIN;
        pthread_mutex_unlock(&dev->lock);
        int64_t left = deadline - monotonic_ms();
        if (done || left <= 0)
            return;
        int ret = portio_ring_wait(ring, seq, (unsigned int)left);
        if (ret == -EINTR || ret == -ETIMEDOUT)
            return;
    }
}

/* ---- registers ---- */

/* The current value of the register at reg (a multiple of 4). Lock held. */
static uint32_t register_value(struct portio *dev, unsigned int reg)
{
    switch (reg) {
    case PORTIO_REG_ID:
        return PORTIO_ID_VALUE;
    case PORTIO_REG_STATUS:
        return status(dev);
    case PORTIO_REG_RX_AVAIL:
    case PORTIO_REG_WAIT_RX:
        return rx_avail(dev);
    case PORTIO_REG_TX_SPACE:
    case PORTIO_REG_WAIT_TX:
        return tx_space(dev);
    case PORTIO_REG_PEER:
        return dev->peer;
    case PORTIO_REG_OWN_ID:
        return dev->own_id;
    case PORTIO_REG_PEERS_LO:
        return peers_bitmap(dev, 0);
    case PORTIO_REG_PEERS_HI:
        return peers_bitmap(dev, 32);
    case PORTIO_REG_TX_REFUSED:
        return dev->tx_refused;
    case PORTIO_REG_RX_UNDERRUN:
        return dev->rx_underrun;
    case PORTIO_REG_BAD_ACCESSES:
        return dev->bad_accesses;
    case PORTIO_REG_RING_BYTES:
        return PORTIO_RING_BYTES;
    case PORTIO_REG_EXITS:
        return atomic_load(&dev->exits);
    case PORTIO_REG_TX_BYTES:
        return dev->tx_bytes;
    case PORTIO_REG_RX_BYTES:
        return dev->rx_bytes;
    default: /* CONTROL and the reserved registers */
        return 0;
    }
}

static void registers_read(struct portio *dev, unsigned int offset, uint8_t *data, uint32_t size,
                           bool may_wait)
{
    /* A WAIT register sleeps before it is sampled, and only on a read of its byte 0. */
    if (may_wait && (offset == PORTIO_REG_WAIT_RX || offset == PORTIO_REG_WAIT_TX))
        wait_for(dev, offset == PORTIO_REG_WAIT_RX);
    pthread_mutex_lock(&dev->lock);
    for (uint32_t i = 0; i < size; i++) {
        unsigned int at = offset + i;
        unsigned int reg = at & ~3u, byte = at & 3u;
        if (byte == 0 || dev->latch_reg != reg) {
            dev->latch_value = register_value(dev, reg);
            dev->latch_reg = reg;
        }
        data[i] = (uint8_t)(dev->latch_value >> (8 * byte));
    }
    pthread_mutex_unlock(&dev->lock);
}

static void select_peer(struct portio *dev, uint32_t value)
{
    dev->peer_gone = false;
    if (value >= PORTIO_MAX_PEERS) {
        dev->peer = PORTIO_PEER_NONE;
        dev->bad_accesses++;
        return;
    }
    dev->peer = value;
    /* The partner is the VM present now or, when the ID is free, the next one to take it:
     * each change of presence adds one to the generation. */
    dev->bound_generation = portio_channel_generation(dev->channel, value) | 1;
}

static void control(struct portio *dev, uint32_t value)
{
    if (value & PORTIO_CONTROL_RESET_COUNTERS) {
        dev->tx_refused = dev->rx_underrun = dev->bad_accesses = 0;
        dev->tx_bytes = dev->rx_bytes = 0;
        dev->tx_refused_flag = dev->rx_underrun_flag = false;
    }
    if ((value & PORTIO_CONTROL_DRAIN_RX) && peer_selected(dev))
        portio_ring_drain(rx_ring(dev));
}

static void registers_write(struct portio *dev, unsigned int offset, const uint8_t *data,
                            uint32_t size)
{
    uint32_t value = 0;
    for (uint32_t i = 0; i < size; i++)
        value |= (uint32_t)data[i] << (8 * i);
    pthread_mutex_lock(&dev->lock);
    if (offset == PORTIO_REG_PEER)
        select_peer(dev, value);
    else if (offset == PORTIO_REG_CONTROL)
        control(dev, value);
    else
        dev->bad_accesses++;
    pthread_mutex_unlock(&dev->lock);
}

/* ---- data ---- */

static void data_write(struct portio *dev, const uint8_t *data, uint32_t len)
{
    pthread_mutex_lock(&dev->lock);
    if (partner_usable(dev, NULL) && portio_ring_write(tx_ring(dev), data, len)) {
        dev->tx_bytes += len;
    } else {
        dev->tx_refused += len;
        dev->tx_refused_flag = true;
    }
    pthread_mutex_unlock(&dev->lock);
}

static void data_read(struct portio *dev, uint8_t *data, uint32_t len)
{
    pthread_mutex_lock(&dev->lock);
    /* What a departed partner had delivered is still there to drain. */
    if (peer_selected(dev) && portio_ring_read(rx_ring(dev), data, len)) {
        dev->rx_bytes += len;
    } else {
        memset(data, 0xff, len);
        dev->rx_underrun += len;
        dev->rx_underrun_flag = true;
    }
    pthread_mutex_unlock(&dev->lock);
}

void portio_string_io(void *owner, uint64_t offset, void *data, uint32_t size, uint32_t count,
                      bool is_write)
{
    struct portio *dev = owner;
    atomic_fetch_add(&dev->exits, 1);
    uint64_t len = (uint64_t)size * count;
    if ((size != 1 && size != 2 && size != 4) || offset >= PORTIO_BAR_SIZE || len == 0 ||
        offset + size > PORTIO_BAR_SIZE) {
        if (!is_write)
            memset(data, 0xff, len);
        return;
    }
    if (offset >= PORTIO_DATA && len <= UINT32_MAX) {
        if (is_write)
            data_write(dev, data, (uint32_t)len);
        else
            data_read(dev, data, (uint32_t)len);
        return;
    }
    /* A register, or an absurd length: element by element, as the CPU would. */
    for (uint32_t i = 0; i < count; i++) {
        uint8_t *element = (uint8_t *)data + (size_t)i * size;
        if (offset >= PORTIO_DATA) {
            if (is_write)
                data_write(dev, element, size);
            else
                data_read(dev, element, size);
        } else if (is_write) {
            if ((offset == PORTIO_REG_PEER || offset == PORTIO_REG_CONTROL) && size <= 4) {
                registers_write(dev, (unsigned int)offset, element, size);
            } else {
                pthread_mutex_lock(&dev->lock);
                dev->bad_accesses++;
                pthread_mutex_unlock(&dev->lock);
            }
        } else if (size <= 4) {
            /* One wait per exit: a kick ends one sleep only, so waiting for every element
             * of a rep ins would hold the vCPU count times PORTIO_WAIT_MAX_MS. */
            registers_read(dev, (unsigned int)offset, element, size, i == 0);
        } else {
            memset(element, 0xff, size);
        }
    }
}

void portio_io(void *owner, uint64_t offset, void *data, uint32_t size, bool is_write)
{
    struct portio *dev = owner;
    if ((size != 1 && size != 2 && size != 4) || offset >= PORTIO_BAR_SIZE ||
        offset + size > PORTIO_BAR_SIZE || (offset < PORTIO_DATA && offset + size > PORTIO_DATA)) {
        /* Not a width an x86 in/out has, or straddling registers and data. */
        atomic_fetch_add(&dev->exits, 1);
        if (is_write) {
            pthread_mutex_lock(&dev->lock);
            dev->bad_accesses++;
            pthread_mutex_unlock(&dev->lock);
        } else {
            memset(data, 0xff, size);
        }
        return;
    }
    portio_string_io(owner, offset, data, size, 1, is_write);
}

/* ---- life cycle ---- */

int portio_init(struct portio *dev, struct pci_bus *bus, void *channel, unsigned int own_id)
{
    static const struct pci_device_info info = {
        .vendor_id = PORTIO_PCI_VENDOR_ID,
        .device_id = PORTIO_PCI_DEVICE_ID,
        .revision = PORTIO_PCI_REVISION,
        .class_code = PORTIO_PCI_CLASS,
        .subsystem_vendor_id = PORTIO_PCI_VENDOR_ID,
        .subsystem_id = PORTIO_PCI_DEVICE_ID,
    };
    if (!channel || own_id >= PORTIO_MAX_PEERS || !portio_channel_valid(channel))
        return -EINVAL;
    memset(dev, 0, sizeof(*dev));
    dev->channel = channel;
    dev->own_id = own_id;
    dev->peer = PORTIO_PEER_NONE;
    dev->latch_reg = PORTIO_REGS_END; /* no register latched yet */
    int err = pthread_mutex_init(&dev->lock, NULL);
    if (err)
        return -err;
    if (!bus)
        return 0;
    if ((err = pci_device_init(&dev->pci, &info, "portio", dev, NULL, NULL)))
        goto err_lock;
    if ((err = pci_device_add_bar(&dev->pci, PORTIO_BAR, PCI_BAR_IO, PORTIO_BAR_SIZE, false,
                                  portio_io, dev)) ||
        (err = pci_device_set_bar_string_io(&dev->pci, PORTIO_BAR, portio_string_io)))
        goto err_pci;
    if ((err = pci_bus_add_device(bus, &dev->pci))) {
        log_error("portio: pci_bus_add_device (I/O BAR of %d ports): %s", PORTIO_BAR_SIZE,
                  strerror(-err));
        goto err_pci;
    }
    dev->bus = bus;
    return 0;

err_pci:
    pci_device_destroy(&dev->pci);
err_lock:
    pthread_mutex_destroy(&dev->lock);
    return err;
}

void portio_destroy(struct portio *dev)
{
    if (dev->bus) {
        pci_bus_remove_device(dev->bus, &dev->pci);
        pci_device_destroy(&dev->pci);
        dev->bus = NULL;
    }
    if (dev->tx_refused || dev->rx_underrun || dev->bad_accesses || dev->corrupt_rings)
        log_debug("portio: %u bytes refused, %u bytes underrun, %u bad accesses, %u reads of "
                  "inconsistent rings",
                  dev->tx_refused, dev->rx_underrun, dev->bad_accesses, dev->corrupt_rings);
    pthread_mutex_destroy(&dev->lock);
}
