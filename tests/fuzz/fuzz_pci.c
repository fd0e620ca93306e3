/* PCI config space through configuration mechanism #1, as a guest reaches it: latch writes,
 * data-port accesses of every width, and accesses to wherever the guest moved the BARs of
 * two devices (so BARs can collide with each other and with the config ports).
 *
 * Invariants, after every operation: a guest write changes only bits the device marked
 * writable or write-1-to-clear, and write-1-to-clear bits only go from 1 to 0; on_map calls
 * are strictly paired; a mapped BAR sits where its register says, naturally aligned, with
 * its decode bit on, and accesses there reach its device. */
#include <string.h>

#include "devices/bus.h"
#include "devices/pci.h"
#include "fuzz.h"
#include "support/pci_guest.h"
#include "support/pci_windows.h"

#define DEVICES 2

enum op { OP_LATCH, OP_CONFIG, OP_DATA_PORT, OP_BAR, OP_COUNT };

struct fuzz_dev {
    struct pci_device pci;
    bool announced[PCI_NUM_BARS]; /* on_map(true) seen and not yet undone */
    uint64_t announced_base[PCI_NUM_BARS];
    unsigned io_hits;
};

static void dev_io(void *owner, uint64_t offset, void *data, uint32_t size, bool is_write)
{
    struct fuzz_dev *d = owner;
    (void)offset;
    d->io_hits++;
    if (!is_write)
        memset(data, 0x5a, size);
}

static void dev_on_map(void *owner, unsigned bar, uint64_t base, bool mapped)
{
    struct fuzz_dev *d = owner;
    FUZZ_REQUIRE(bar < PCI_NUM_BARS, "bar %u", bar);
    if (mapped) {
        FUZZ_REQUIRE(!d->announced[bar], "BAR%u mapped twice", bar);
        d->announced_base[bar] = base;
    } else {
        FUZZ_REQUIRE(d->announced[bar] && d->announced_base[bar] == base,
                     "BAR%u unmapped at %#llx, mapped at %#llx", bar, (unsigned long long)base,
                     (unsigned long long)d->announced_base[bar]);
    }
    d->announced[bar] = mapped;
}

static void dev_setup(struct fuzz_dev *d, struct pci_bus *bus, uint16_t device_id)
{
    const struct pci_device_info info = {
        .vendor_id = 0x1234, .device_id = device_id, .revision = 3, .class_code = 0xff0000};
    memset(d, 0, sizeof(*d));
    FUZZ_REQUIRE(pci_device_init(&d->pci, &info, "fuzz", d, dev_on_map, NULL) == 0, "init");
    /* One BAR of each kind, one left to the VMM (no io callback), one capability with a
     * writable byte and a write-1-to-clear byte. */
    FUZZ_REQUIRE(pci_device_add_bar(&d->pci, 0, PCI_BAR_IO, 0x20, false, dev_io, d) == 0, "bar0");
    FUZZ_REQUIRE(pci_device_add_bar(&d->pci, 1, PCI_BAR_MEM32, 0x1000, false, dev_io, d) == 0,
                 "bar1");
    FUZZ_REQUIRE(pci_device_add_bar(&d->pci, 2, PCI_BAR_MEM64, 0x4000, true, NULL, NULL) == 0,
                 "bar2");
    int cap = pci_device_add_capability(&d->pci, 0x09, 8);
    FUZZ_REQUIRE(cap >= PCI_CAP_START, "capability: %d", cap);
    pci_config_set_wmask(&d->pci, (uint32_t)cap + 2, 1, 0xF0);
    pci_config_set(&d->pci, (uint32_t)cap + 3, 1, 0xFF);
    pci_config_set_w1c(&d->pci, (uint32_t)cap + 3, 1, 0x0F);
    FUZZ_REQUIRE(pci_bus_add_device(bus, &d->pci) == 0, "add device");
}

static uint64_t bar_register(const struct pci_device *dev, unsigned bar)
{
    uint64_t lo;
    memcpy(&lo, &dev->config[PCI_BAR0 + 4 * bar], 4);
    lo &= 0xFFFFFFFFu;
    if (dev->bars[bar].type == PCI_BAR_IO)
        return lo & ~3ull;
    uint64_t addr = lo & ~0xFull;
    if (dev->bars[bar].type == PCI_BAR_MEM64) {
        uint32_t hi;
        memcpy(&hi, &dev->config[PCI_BAR0 + 4 * (bar + 1)], 4);
        addr |= (uint64_t)hi << 32;
    }
    return addr;
}

static void check_config_change(const struct pci_device *dev, const uint8_t *before)
{
    for (unsigned o = 0; o < PCI_CONFIG_SIZE; o++) {
        uint8_t changed = before[o] ^ dev->config[o];
        FUZZ_REQUIRE(!(changed & ~(dev->wmask[o] | dev->w1c[o])),
                     "read-only bits %#x of config byte %#x changed", changed, o);
        uint8_t w1c_only = dev->w1c[o] & ~dev->wmask[o];
        FUZZ_REQUIRE(!(dev->config[o] & w1c_only & ~before[o]),
                     "write-1-to-clear bits of config byte %#x were set", o);
    }
}

static void check_bars(struct fuzz_dev *d, struct pci_bus *bus)
{
    uint16_t cmd = (uint16_t)pci_config_read(&d->pci, PCI_COMMAND, 2);
    for (unsigned bar = 0; bar < PCI_NUM_BARS; bar++) {
        const struct pci_bar *b = &d->pci.bars[bar];
        uint64_t base;
        bool mapped = pci_device_bar_mapped(&d->pci, bar, &base);
        FUZZ_REQUIRE(mapped == d->announced[bar], "BAR%u mapped %d, on_map says %d", bar, mapped,
                     d->announced[bar]);
        if (!mapped)
            continue;
        FUZZ_REQUIRE(base == d->announced_base[bar] && base == bar_register(&d->pci, bar),
                     "BAR%u mapped at %#llx, register says %#llx", bar, (unsigned long long)base,
                     (unsigned long long)bar_register(&d->pci, bar));
        FUZZ_REQUIRE(base != 0 && base % b->size == 0, "BAR%u at %#llx", bar,
                     (unsigned long long)base);
        FUZZ_REQUIRE(cmd & (b->type == PCI_BAR_IO ? PCI_COMMAND_IO : PCI_COMMAND_MEMORY),
                     "BAR%u mapped with decode off (command %#x)", bar, cmd);
        if (b->type == PCI_BAR_IO)
            FUZZ_REQUIRE(base + b->size <= 0x10000, "I/O BAR%u at %#llx", bar,
                         (unsigned long long)base);
        if (b->io) {
            unsigned hits = d->io_hits;
            uint32_t v = 0;
            bus_access(b->type == PCI_BAR_IO ? bus->pio : bus->mmio, base + b->size - 1, &v, 1,
                       false);
            FUZZ_REQUIRE(d->io_hits == hits + 1 && v == 0x5a, "BAR%u at %#llx does not reach it",
                         bar, (unsigned long long)base);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_input in = fuzz_input_of(data, size);
    struct bus pio, mmio;
    struct pci_bus pci;
    static struct fuzz_dev devs[DEVICES];

    FUZZ_REQUIRE(bus_init(&pio, "pio") == 0 && bus_init(&mmio, "mmio") == 0, "bus_init");
    FUZZ_REQUIRE(pci_bus_init(&pci, &pio, &mmio, TEST_PCI_WINDOWS) == 0, "pci_bus_init");
    for (unsigned i = 0; i < DEVICES; i++)
        dev_setup(&devs[i], &pci, (uint16_t)(0x100 + i));

    while (fuzz_more(&in)) {
        uint8_t before[DEVICES + 1][PCI_CONFIG_SIZE];
        for (unsigned i = 0; i < DEVICES; i++)
            memcpy(before[i], devs[i].pci.config, PCI_CONFIG_SIZE);
        memcpy(before[DEVICES], pci.host_bridge.config, PCI_CONFIG_SIZE);

        uint8_t op = fuzz_u8(&in);
        switch (op % OP_COUNT) {
        case OP_LATCH:
            pci_guest_latch(&pio, fuzz_u32(&in));
            break;
        case OP_CONFIG: {
            /* The common case made likely: enable bit, bus 0, one of the three slots. */
            uint8_t reg = fuzz_u8(&in);
            struct fuzz_access a = fuzz_access_next(&in, 4);
            pci_guest_latch(&pio, PCI_GUEST_CONF1(0, (op >> 2) % (DEVICES + 1), 0, reg));
            fuzz_access_do(&pio, PCI_CONFIG_DATA_PORT, &a);
            break;
        }
        case OP_DATA_PORT: {
            struct fuzz_access a = fuzz_access_next(&in, 8);
            fuzz_access_do(&pio, PCI_CONFIG_ADDRESS_PORT, &a);
            break;
        }
        case OP_BAR: {
            struct fuzz_dev *d = &devs[(op >> 2) % DEVICES];
            unsigned bar = (op >> 3) % 3;
            uint64_t base;
            if (!pci_device_bar_mapped(&d->pci, bar, &base))
                break;
            const struct pci_bar *b = &d->pci.bars[bar];
            struct fuzz_access a = fuzz_access_next(&in, b->size + 8);
            fuzz_access_do(b->type == PCI_BAR_IO ? &pio : &mmio, base, &a);
            break;
        }
        }

        for (unsigned i = 0; i < DEVICES; i++) {
            check_config_change(&devs[i].pci, before[i]);
            check_bars(&devs[i], &pci);
        }
        check_config_change(&pci.host_bridge, before[DEVICES]);
    }

    for (unsigned i = 0; i < DEVICES; i++) {
        pci_bus_remove_device(&pci, &devs[i].pci);
        for (unsigned bar = 0; bar < PCI_NUM_BARS; bar++)
            FUZZ_REQUIRE(!devs[i].announced[bar], "BAR%u still announced after removal", bar);
        pci_device_destroy(&devs[i].pci);
    }
    pci_bus_destroy(&pci);
    bus_destroy(&mmio);
    bus_destroy(&pio);
    return 0;
}
