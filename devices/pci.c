#include "devices/pci.h"

#include <errno.h>
#include <string.h>

#include "common/log.h"

/* 0xCF8 latch: enable (31), extended register (27:24, AMD style), bus (23:16), device
 * (15:11), function (10:8), register (7:2). Reserved bits read back as 0. */
#define CONF1_ENABLE    0x80000000u
#define CONF1_KEPT_BITS 0x8FFFFFFCu

#define IO_SPACE_SIZE 0x10000ull

static bool ranges_overlap(uint32_t a, uint32_t alen, uint32_t b, uint32_t blen)
{
    return a < b + blen && b < a + alen;
}

static bool config_access_ok(uint32_t offset, uint32_t size)
{
    return (size == 1 || size == 2 || size == 4) && offset < PCI_CONFIG_SIZE &&
           size <= PCI_CONFIG_SIZE - offset;
}

static uint32_t get_le(const uint8_t *p, uint32_t size)
{
    uint32_t v = 0;
    for (uint32_t i = 0; i < size; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static void put_le(uint8_t *p, uint32_t size, uint32_t v)
{
    for (uint32_t i = 0; i < size; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t bar_offset(unsigned bar)
{
    return PCI_BAR0 + 4 * bar;
}

/* The address bits of a BAR as stored in bytes (config or wmask). */
static uint64_t bar_address_of(const struct pci_device *dev, const uint8_t *bytes, unsigned bar)
{
    uint32_t lo = get_le(&bytes[bar_offset(bar)], 4);

    switch (dev->bars[bar].type) {
    case PCI_BAR_IO:
        return lo & ~3u;
    case PCI_BAR_MEM32:
        return lo & ~0xFu;
    case PCI_BAR_MEM64:
        return (lo & ~0xFu) | (uint64_t)get_le(&bytes[bar_offset(bar + 1)], 4) << 32;
    default:
        return 0;
    }
}

static bool bar_decode_enabled(const struct pci_device *dev, unsigned bar)
{
    uint16_t cmd = (uint16_t)get_le(&dev->config[PCI_COMMAND], 2);
    if (dev->bars[bar].type == PCI_BAR_IO)
        return cmd & PCI_COMMAND_IO;
    return cmd & PCI_COMMAND_MEMORY;
}

/* Where the BAR should be mapped now, if anywhere. */
static bool bar_wanted(const struct pci_device *dev, unsigned bar, uint64_t *base)
{
    const struct pci_bar *b = &dev->bars[bar];

    if (b->type == PCI_BAR_NONE || !bar_decode_enabled(dev, bar) || b->low_pending)
        return false;
    uint64_t addr = bar_address_of(dev, dev->config, bar);
    /* 0 is "unassigned", all writable bits set is the sizing pattern. Linux sizes a 64-bit
     * BAR one half at a time (low ~0, restore, high ~0, restore), so a high dword of all
     * ones is sizing too. */
    if (addr == 0 || addr == bar_address_of(dev, dev->wmask, bar))
        return false;
    if (b->type == PCI_BAR_MEM64 &&
        get_le(&dev->config[bar_offset(bar + 1)], 4) == get_le(&dev->wmask[bar_offset(bar + 1)], 4))
        return false;
    if (addr + b->size - 1 < addr)
        return false;
    if (b->type == PCI_BAR_IO && addr + b->size > IO_SPACE_SIZE)
        return false;
    *base = addr;
    return true;
}

static void pci_placeholder_io(void *owner, uint64_t offset, void *data, uint32_t size,
                               bool is_write)
{
    (void)owner;
    (void)offset;
    if (!is_write)
        memset(data, 0xff, size);
}

static struct bus *bar_bus(const struct pci_device *dev, unsigned bar)
{
    return dev->bars[bar].type == PCI_BAR_IO ? dev->bus->pio : dev->bus->mmio;
}

static void bar_unmap(struct pci_device *dev, unsigned bar)
{
    struct pci_bar *b = &dev->bars[bar];

    if (!b->mapped)
        return;
    if (b->io)
        bus_unregister(bar_bus(dev, bar), b->base, b->io_owner);
    else
        bus_unregister(bar_bus(dev, bar), b->base, dev);
    b->mapped = false;
    if (dev->on_map)
        dev->on_map(dev->owner, bar, b->base, false);
}

static int bar_map(struct pci_device *dev, unsigned bar, uint64_t base)
{
    struct pci_bar *b = &dev->bars[bar];
    int err;

    if (b->io) {
        err = bus_register(bar_bus(dev, bar), base, b->size, b->io, b->io_owner, dev->name);
        if (!err && b->string_io)
            bus_set_string_io(bar_bus(dev, bar), base, b->io_owner, b->string_io);
    } else
        err = bus_register(bar_bus(dev, bar), base, b->size, pci_placeholder_io, dev, dev->name);
    if (err) {
        log_debug("pci %02x.0 %s: BAR%u at %#llx (size %#llx) not mapped: %s", dev->slot, dev->name,
                  bar, (unsigned long long)base, (unsigned long long)b->size, strerror(-err));
        return err;
    }
    b->mapped = true;
    b->base = base;
    if (dev->on_map)
        dev->on_map(dev->owner, bar, base, true);
    return 0;
}

/* Brings every BAR's mapping in line with config space. Caller holds the device lock. */
static void pci_update_mappings(struct pci_device *dev)
{
    if (!dev->bus)
        return;
    for (unsigned bar = 0; bar < PCI_NUM_BARS; bar++) {
        struct pci_bar *b = &dev->bars[bar];
        uint64_t base = 0;
        bool want = bar_wanted(dev, bar, &base);

        if (b->mapped && (!want || b->base != base))
            bar_unmap(dev, bar);
        if (want && !b->mapped)
            bar_map(dev, bar, base);
    }
}

static void pci_unmap_all(struct pci_device *dev)
{
    for (unsigned bar = 0; bar < PCI_NUM_BARS; bar++)
        bar_unmap(dev, bar);
}

int pci_device_init(struct pci_device *dev, const struct pci_device_info *info, const char *name,
                    void *owner, pci_on_map_fn on_map, pci_config_written_fn config_written)
{
    int err;

    memset(dev, 0, sizeof(*dev));
    dev->name = name;
    dev->owner = owner;
    dev->on_map = on_map;
    dev->config_written = config_written;
    dev->cap_free = PCI_CAP_START;

    if ((err = pthread_mutex_init(&dev->lock, NULL)))
        return -err;

    uint8_t *c = dev->config;
    put_le(&c[PCI_VENDOR_ID], 2, info->vendor_id);
    put_le(&c[PCI_DEVICE_ID], 2, info->device_id);
    c[PCI_REVISION_ID] = info->revision;
    put_le(&c[PCI_CLASS_PROG], 3, info->class_code & 0xFFFFFF);
    c[PCI_HEADER_TYPE] = 0x00; /* type 0, single function */
    put_le(&c[PCI_SUBSYSTEM_VENDOR_ID], 2, info->subsystem_vendor_id);
    put_le(&c[PCI_SUBSYSTEM_ID], 2, info->subsystem_id);

    put_le(&dev->wmask[PCI_COMMAND], 2,
           PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE);
    put_le(&dev->w1c[PCI_STATUS], 2, PCI_STATUS_W1C);
    dev->wmask[PCI_CACHE_LINE_SIZE] = 0xFF;
    dev->wmask[PCI_LATENCY_TIMER] = 0xFF;
    dev->wmask[PCI_INTERRUPT_LINE] = 0xFF;
    return 0;
}

void pci_device_destroy(struct pci_device *dev)
{
    pthread_mutex_destroy(&dev->lock);
}

static bool is_pow2(uint64_t v)
{
    return v && !(v & (v - 1));
}

int pci_device_add_bar(struct pci_device *dev, unsigned bar, enum pci_bar_type type, uint64_t size,
                       bool prefetchable, bus_io_fn io, void *io_owner)
{
    uint64_t min, max;
    unsigned slots = type == PCI_BAR_MEM64 ? 2 : 1;

    switch (type) {
    case PCI_BAR_IO:
        min = 4;
        max = IO_SPACE_SIZE;
        break;
    case PCI_BAR_MEM32:
        min = 16;
        max = 1ull << 31;
        break;
    case PCI_BAR_MEM64:
        min = 16;
        max = 1ull << 62;
        break;
    default:
        return -EINVAL;
    }
    if (bar >= PCI_NUM_BARS || bar + slots > PCI_NUM_BARS || !is_pow2(size) || size < min ||
        size > max || (prefetchable && type == PCI_BAR_IO))
        return -EINVAL;

    int ret = 0;
    pthread_mutex_lock(&dev->lock);
    if (dev->bus) {
        ret = -EBUSY;
        goto out;
    }
    /* A slot is taken if it is implemented or holds the upper half of a 64-bit BAR. */
    for (unsigned i = bar; i < bar + slots; i++) {
        if (dev->bars[i].type != PCI_BAR_NONE || (i > 0 && dev->bars[i - 1].type == PCI_BAR_MEM64))
            ret = -EINVAL;
    }
    if (ret)
        goto out;

    dev->bars[bar] = (struct pci_bar){
        .type = type, .prefetchable = prefetchable, .size = size, .io = io, .io_owner = io_owner};
    uint64_t addr_mask = ~(size - 1);
    uint32_t type_bits;
    if (type == PCI_BAR_IO) {
        type_bits = PCI_BAR_IO_SPACE;
        put_le(&dev->wmask[bar_offset(bar)], 4, (uint32_t)addr_mask & 0xFFFC);
    } else {
        type_bits = (type == PCI_BAR_MEM64 ? PCI_BAR_MEM_TYPE_64 : 0) |
                    (prefetchable ? PCI_BAR_MEM_PREFETCH : 0);
        put_le(&dev->wmask[bar_offset(bar)], 4, (uint32_t)addr_mask & ~0xFu);
        if (type == PCI_BAR_MEM64)
            put_le(&dev->wmask[bar_offset(bar + 1)], 4, (uint32_t)(addr_mask >> 32));
    }
    put_le(&dev->config[bar_offset(bar)], 4, type_bits);
out:
    pthread_mutex_unlock(&dev->lock);
    return ret;
}

int pci_device_set_bar_string_io(struct pci_device *dev, unsigned bar, bus_string_fn string_io)
{
    int ret = 0;
    if (bar >= PCI_NUM_BARS)
        return -EINVAL;
    pthread_mutex_lock(&dev->lock);
    if (dev->bus)
        ret = -EBUSY;
    else if (!dev->bars[bar].io)
        ret = -EINVAL;
    else
        dev->bars[bar].string_io = string_io;
    pthread_mutex_unlock(&dev->lock);
    return ret;
}

int pci_device_add_capability(struct pci_device *dev, uint8_t cap_id, unsigned len)
{
    if (len < 2 || len > PCI_CONFIG_SIZE - PCI_CAP_START)
        return -EINVAL;
    unsigned size = (len + 3) & ~3u;
    int ret;

    pthread_mutex_lock(&dev->lock);
    if (dev->bus) {
        ret = -EBUSY;
    } else if (dev->cap_free + size > PCI_CONFIG_SIZE) {
        ret = -ENOSPC;
    } else {
        uint8_t off = (uint8_t)dev->cap_free;
        dev->config[off] = cap_id;
        dev->config[off + 1] = 0;
        if (dev->last_cap)
            dev->config[dev->last_cap + 1] = off;
        else
            dev->config[PCI_CAPABILITY_LIST] = off;
        dev->config[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
        dev->last_cap = off;
        dev->cap_free = (uint16_t)(off + size);
        ret = off;
    }
    pthread_mutex_unlock(&dev->lock);
    return ret;
}

void pci_config_set(struct pci_device *dev, uint32_t offset, uint32_t size, uint32_t value)
{
    if (!config_access_ok(offset, size))
        return;
    pthread_mutex_lock(&dev->lock);
    put_le(&dev->config[offset], size, value);
    pthread_mutex_unlock(&dev->lock);
}

void pci_config_set_wmask(struct pci_device *dev, uint32_t offset, uint32_t size, uint32_t mask)
{
    if (!config_access_ok(offset, size))
        return;
    pthread_mutex_lock(&dev->lock);
    put_le(&dev->wmask[offset], size, mask);
    pthread_mutex_unlock(&dev->lock);
}

void pci_config_set_w1c(struct pci_device *dev, uint32_t offset, uint32_t size, uint32_t mask)
{
    if (!config_access_ok(offset, size))
        return;
    pthread_mutex_lock(&dev->lock);
    put_le(&dev->w1c[offset], size, mask);
    pthread_mutex_unlock(&dev->lock);
}

uint32_t pci_config_read_locked(struct pci_device *dev, uint32_t offset, uint32_t size)
{
    if (!config_access_ok(offset, size))
        return 0xFFFFFFFFu;
    return get_le(&dev->config[offset], size);
}

uint32_t pci_config_read(struct pci_device *dev, uint32_t offset, uint32_t size)
{
    pthread_mutex_lock(&dev->lock);
    uint32_t v = pci_config_read_locked(dev, offset, size);
    pthread_mutex_unlock(&dev->lock);
    return v;
}

void pci_config_write(struct pci_device *dev, uint32_t offset, uint32_t size, uint32_t value)
{
    if (!config_access_ok(offset, size))
        return;

    pthread_mutex_lock(&dev->lock);
    for (uint32_t i = 0; i < size; i++) {
        uint32_t o = offset + i;
        uint8_t b = (uint8_t)(value >> (8 * i));
        dev->config[o] = (uint8_t)((dev->config[o] & ~dev->wmask[o]) | (b & dev->wmask[o]));
        dev->config[o] &= (uint8_t) ~(b & dev->w1c[o]);
    }

    bool touches_command = ranges_overlap(offset, size, PCI_COMMAND, 2);
    bool touches_bars = ranges_overlap(offset, size, PCI_BAR0, 4 * PCI_NUM_BARS);
    /* A 64-bit BAR is moved low dword first, then high dword: the low write unmaps it and
     * the high write (or a COMMAND write) maps it at the final address. */
    for (unsigned bar = 0; bar < PCI_NUM_BARS; bar++) {
        struct pci_bar *b = &dev->bars[bar];
        if (b->type != PCI_BAR_MEM64)
            continue;
        if (touches_command || ranges_overlap(offset, size, bar_offset(bar + 1), 4))
            b->low_pending = false;
        else if (ranges_overlap(offset, size, bar_offset(bar), 4))
            b->low_pending = true;
    }
    if (touches_command || touches_bars)
        pci_update_mappings(dev);
    if (dev->config_written)
        dev->config_written(dev->owner, offset, size);
    pthread_mutex_unlock(&dev->lock);
}

bool pci_device_bar_mapped(struct pci_device *dev, unsigned bar, uint64_t *base)
{
    if (bar >= PCI_NUM_BARS)
        return false;
    pthread_mutex_lock(&dev->lock);
    bool mapped = dev->bars[bar].mapped;
    if (mapped && base)
        *base = dev->bars[bar].base;
    pthread_mutex_unlock(&dev->lock);
    return mapped;
}

/* ---- configuration mechanism #1 ---- */

static void pci_address_io(void *owner, uint64_t offset, void *data, uint32_t size, bool is_write)
{
    struct pci_bus *bus = owner;

    /* Only a dword access at 0xCF8 is the latch; narrower accesses to 0xCF8-0xCFB (e.g.
     * the 0xCF9 reset control register of real chipsets) are not modelled. */
    if (offset != 0 || size != 4) {
        if (!is_write)
            memset(data, 0xff, size);
        return;
    }
    pthread_mutex_lock(&bus->lock);
    if (is_write)
        bus->address = get_le(data, 4) & CONF1_KEPT_BITS;
    else
        put_le(data, 4, bus->address);
    pthread_mutex_unlock(&bus->lock);
}

static void pci_data_io(void *owner, uint64_t offset, void *data, uint32_t size, bool is_write)
{
    struct pci_bus *bus = owner;
    struct pci_device *dev = NULL;

    pthread_mutex_lock(&bus->lock);
    uint32_t addr = bus->address;
    unsigned busnr = (addr >> 16) & 0xFF, slot = (addr >> 11) & 0x1F, fn = (addr >> 8) & 0x7;
    unsigned ext = (addr >> 24) & 0xF;
    if ((addr & CONF1_ENABLE) && busnr == 0 && fn == 0 && ext == 0)
        dev = bus->slots[slot];
    pthread_mutex_unlock(&bus->lock);

    uint32_t reg = (addr & 0xFC) + (uint32_t)offset;
    if (!dev || !config_access_ok(reg, size)) {
        if (!is_write)
            memset(data, 0xff, size);
        return;
    }
    /* Devices are only removed with the vCPUs stopped, so dev stays valid here. */
    if (is_write)
        pci_config_write(dev, reg, size, get_le(data, size));
    else
        put_le(data, size, pci_config_read(dev, reg, size));
}

int pci_bus_init(struct pci_bus *bus, struct bus *pio, struct bus *mmio,
                 const struct pci_windows *windows)
{
    static const struct pci_device_info host_bridge = {
        .vendor_id = PCI_HOST_BRIDGE_VENDOR,
        .device_id = PCI_HOST_BRIDGE_DEVICE,
        .revision = 0x02,
        .class_code = PCI_HOST_BRIDGE_CLASS,
    };
    int err;

    memset(bus, 0, sizeof(*bus));
    if (!windows || windows->io_start > windows->io_end ||
        windows->mmio32_start > windows->mmio32_end ||
        windows->mmio64_start > windows->mmio64_end || windows->io_end > IO_SPACE_SIZE ||
        windows->mmio32_end > (1ull << 32))
        return -EINVAL;
    bus->pio = pio;
    bus->mmio = mmio;
    bus->windows = *windows;
    bus->io_next = windows->io_start;
    bus->mmio32_next = windows->mmio32_start;
    bus->mmio64_next = windows->mmio64_start;

    if ((err = pthread_mutex_init(&bus->lock, NULL)))
        return -err;
    if ((err = pci_device_init(&bus->host_bridge, &host_bridge, "host bridge", NULL, NULL, NULL)))
        goto err_lock;
    bus->host_bridge.bus = bus;
    bus->host_bridge.slot = 0;
    bus->slots[0] = &bus->host_bridge;

    if ((err = bus_register(pio, PCI_CONFIG_ADDRESS_PORT, 4, pci_address_io, bus, "pci address")))
        goto err_bridge;
    if ((err = bus_register(pio, PCI_CONFIG_DATA_PORT, 4, pci_data_io, bus, "pci data")))
        goto err_address;
    return 0;

err_address:
    bus_unregister(pio, PCI_CONFIG_ADDRESS_PORT, bus);
err_bridge:
    pci_device_destroy(&bus->host_bridge);
err_lock:
    pthread_mutex_destroy(&bus->lock);
    return err;
}

void pci_bus_destroy(struct pci_bus *bus)
{
    bus_unregister(bus->pio, PCI_CONFIG_DATA_PORT, bus);
    bus_unregister(bus->pio, PCI_CONFIG_ADDRESS_PORT, bus);
    for (unsigned slot = 1; slot < PCI_MAX_SLOTS; slot++) {
        if (bus->slots[slot])
            pci_bus_remove_device(bus, bus->slots[slot]);
    }
    pci_device_destroy(&bus->host_bridge);
    pthread_mutex_destroy(&bus->lock);
}

/* Next naturally aligned address for size in [*next, end), or -ENOSPC. */
static int window_alloc(uint64_t *next, uint64_t end, uint64_t size, uint64_t *addr)
{
    uint64_t base = (*next + size - 1) & ~(size - 1);
    if (base < *next || base > end || size > end - base)
        return -ENOSPC;
    *addr = base;
    *next = base + size;
    return 0;
}

int pci_bus_add_device(struct pci_bus *bus, struct pci_device *dev)
{
    int ret = 0;
    unsigned slot;

    pthread_mutex_lock(&bus->lock);
    pthread_mutex_lock(&dev->lock);
    if (dev->bus) {
        ret = -EBUSY;
        goto out;
    }
    for (slot = 1; slot < PCI_MAX_SLOTS && bus->slots[slot]; slot++)
        ;
    if (slot == PCI_MAX_SLOTS) {
        ret = -ENOSPC;
        goto out;
    }

    uint64_t io_next = bus->io_next, mmio32_next = bus->mmio32_next;
    uint64_t mmio64_next = bus->mmio64_next;
    uint64_t addr[PCI_NUM_BARS] = {0};
    bool done[PCI_NUM_BARS] = {false};
    uint16_t decode = 0;

    /* Largest first, so alignment wastes as little of the windows as possible. */
    for (;;) {
        int pick = -1;
        for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
            if (dev->bars[i].type != PCI_BAR_NONE && !done[i] &&
                (pick < 0 || dev->bars[i].size > dev->bars[pick].size))
                pick = (int)i;
        }
        if (pick < 0)
            break;
        const struct pci_bar *b = &dev->bars[pick];
        switch (b->type) {
        case PCI_BAR_IO:
            ret = window_alloc(&io_next, bus->windows.io_end, b->size, &addr[pick]);
            decode |= PCI_COMMAND_IO;
            break;
        case PCI_BAR_MEM32:
            ret = window_alloc(&mmio32_next, bus->windows.mmio32_end, b->size, &addr[pick]);
            decode |= PCI_COMMAND_MEMORY;
            break;
        default:
            ret = window_alloc(&mmio64_next, bus->windows.mmio64_end, b->size, &addr[pick]);
            decode |= PCI_COMMAND_MEMORY;
            break;
        }
        if (ret) {
            log_debug("pci %s: BAR%d (size %#llx) does not fit its window", dev->name, pick,
                      (unsigned long long)b->size);
            goto out;
        }
        done[pick] = true;
    }

    uint8_t saved[PCI_CONFIG_SIZE];
    memcpy(saved, dev->config, sizeof(saved));
    for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
        if (dev->bars[i].type == PCI_BAR_NONE)
            continue;
        uint32_t lo = get_le(&dev->config[bar_offset(i)], 4);
        lo = (lo & (dev->bars[i].type == PCI_BAR_IO ? 3u : 0xFu)) | (uint32_t)addr[i];
        put_le(&dev->config[bar_offset(i)], 4, lo);
        if (dev->bars[i].type == PCI_BAR_MEM64)
            put_le(&dev->config[bar_offset(i + 1)], 4, (uint32_t)(addr[i] >> 32));
        dev->bars[i].low_pending = false;
    }
    uint16_t cmd = (uint16_t)get_le(&dev->config[PCI_COMMAND], 2);
    put_le(&dev->config[PCI_COMMAND], 2, cmd | decode);

    dev->bus = bus;
    dev->slot = slot;
    pci_update_mappings(dev);
    for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
        if (dev->bars[i].type != PCI_BAR_NONE && !dev->bars[i].mapped) {
            log_debug("pci %s: BAR%u at %#llx overlaps a range already on the bus", dev->name, i,
                      (unsigned long long)addr[i]);
            ret = -ENOSPC;
        }
    }
    if (ret) {
        pci_unmap_all(dev);
        memcpy(dev->config, saved, sizeof(saved));
        dev->bus = NULL;
        dev->slot = 0;
        goto out;
    }
    bus->slots[slot] = dev;
    bus->io_next = io_next;
    bus->mmio32_next = mmio32_next;
    bus->mmio64_next = mmio64_next;
out:
    pthread_mutex_unlock(&dev->lock);
    pthread_mutex_unlock(&bus->lock);
    return ret;
}

void pci_bus_remove_device(struct pci_bus *bus, struct pci_device *dev)
{
    pthread_mutex_lock(&bus->lock);
    pthread_mutex_lock(&dev->lock);
    if (dev->bus == bus && dev != &bus->host_bridge) {
        pci_unmap_all(dev);
        bus->slots[dev->slot] = NULL;
        dev->bus = NULL;
        dev->slot = 0;
    }
    pthread_mutex_unlock(&dev->lock);
    pthread_mutex_unlock(&bus->lock);
}
