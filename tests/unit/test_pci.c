/* PCI bus 0 through configuration mechanism #1, with the test process as the guest. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices/bus.h"
#include "devices/pci.h"
#include "support/pci_guest.h"
#include "support/pci_windows.h"

#define IO_START     0xC000ull
#define IO_END       0x10000ull
#define MMIO32_START 0xC0000000ull
#define MMIO32_END   0xFEC00000ull
#define MMIO64_START (1ull << 38)
#define MMIO64_END   (1ull << 39)

/* A test device: BAR0 32-bit memory 4 KiB, BAR1 I/O 32 bytes, BAR2 64-bit prefetchable
 * 1 MiB without io callback (VMM-mapped), BAR4 64-bit 16 KiB with io callback. */
#define BAR0_SIZE 0x1000ull
#define BAR1_SIZE 0x20ull
#define BAR2_SIZE 0x100000ull
#define BAR4_SIZE 0x4000ull

struct map_event {
    unsigned bar;
    uint64_t base;
    bool mapped;
};

struct testdev {
    struct pci_device pci;
    pthread_mutex_t lock;
    struct map_event events[4096];
    size_t nevents;
    bool mapped[PCI_NUM_BARS];
    uint64_t base[PCI_NUM_BARS];
    bool pairing_error;
    uint64_t io_hits[PCI_NUM_BARS];
    uint32_t written_offset, written_size;
    unsigned written_calls;
    uint32_t written_command; /* COMMAND as the hook read it */
};

struct bar_tag {
    struct testdev *dev;
    unsigned bar;
};

struct fixture {
    struct bus pio, mmio;
    struct pci_bus pci;
    struct testdev dev;
    struct bar_tag tags[PCI_NUM_BARS];
};

static void testdev_on_map(void *owner, unsigned bar, uint64_t base, bool mapped)
{
    struct testdev *d = owner;
    pthread_mutex_lock(&d->lock);
    if (d->nevents < sizeof(d->events) / sizeof(d->events[0]))
        d->events[d->nevents++] = (struct map_event){bar, base, mapped};
    /* mapped false must follow mapped true at the same base. */
    if (mapped == d->mapped[bar] || (!mapped && d->base[bar] != base))
        d->pairing_error = true;
    d->mapped[bar] = mapped;
    d->base[bar] = base;
    pthread_mutex_unlock(&d->lock);
}

static void testdev_config_written(void *owner, uint32_t offset, uint32_t size)
{
    struct testdev *d = owner;
    /* The hook runs with the pci_device lock held: only the _locked reader may be used. */
    d->written_command = pci_config_read_locked(&d->pci, PCI_COMMAND, 2);
    d->written_offset = offset;
    d->written_size = size;
    d->written_calls++;
}

static void testdev_bar_io(void *owner, uint64_t offset, void *data, uint32_t size, bool is_write)
{
    struct bar_tag *tag = owner;
    (void)offset;
    pthread_mutex_lock(&tag->dev->lock);
    tag->dev->io_hits[tag->bar]++;
    pthread_mutex_unlock(&tag->dev->lock);
    if (!is_write)
        memset(data, 0x5A, size);
}

static const struct pci_device_info testdev_info = {
    .vendor_id = 0x1234,
    .device_id = 0x5678,
    .revision = 0x42,
    .class_code = 0xFF0001,
    .subsystem_vendor_id = 0xABCD,
    .subsystem_id = 0xEF01,
};

static void testdev_init(struct fixture *f, struct testdev *d, bool with_bars)
{
    memset(d, 0, sizeof(*d));
    pthread_mutex_init(&d->lock, NULL);
    assert_int_equal(pci_device_init(&d->pci, &testdev_info, "testdev", d, testdev_on_map,
                                     testdev_config_written),
                     0);
    if (!with_bars)
        return;
    for (unsigned i = 0; i < PCI_NUM_BARS; i++)
        f->tags[i] = (struct bar_tag){d, i};
    assert_int_equal(pci_device_add_bar(&d->pci, 0, PCI_BAR_MEM32, BAR0_SIZE, false, testdev_bar_io,
                                        &f->tags[0]),
                     0);
    assert_int_equal(
        pci_device_add_bar(&d->pci, 1, PCI_BAR_IO, BAR1_SIZE, false, testdev_bar_io, &f->tags[1]),
        0);
    assert_int_equal(pci_device_add_bar(&d->pci, 2, PCI_BAR_MEM64, BAR2_SIZE, true, NULL, NULL), 0);
    assert_int_equal(pci_device_add_bar(&d->pci, 4, PCI_BAR_MEM64, BAR4_SIZE, false, testdev_bar_io,
                                        &f->tags[4]),
                     0);
}

static void testdev_destroy(struct testdev *d)
{
    pci_device_destroy(&d->pci);
    pthread_mutex_destroy(&d->lock);
}

static struct fixture *fixture_new(const struct pci_windows *windows)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(bus_init(&f->pio, "pio"), 0);
    assert_int_equal(bus_init(&f->mmio, "mmio"), 0);
    assert_int_equal(pci_bus_init(&f->pci, &f->pio, &f->mmio, windows), 0);
    return f;
}

static void fixture_free(struct fixture *f)
{
    pci_bus_destroy(&f->pci);
    assert_int_equal(f->pio.count, 0);
    assert_int_equal(f->mmio.count, 0);
    bus_destroy(&f->pio);
    bus_destroy(&f->mmio);
    free(f);
}

/* Fixture with the test device plugged in (slot 1). */
static int setup_dev(void **state)
{
    struct fixture *f = fixture_new(TEST_PCI_WINDOWS);
    testdev_init(f, &f->dev, true);
    assert_int_equal(pci_bus_add_device(&f->pci, &f->dev.pci), 0);
    *state = f;
    return 0;
}

static int teardown_dev(void **state)
{
    struct fixture *f = *state;
    pci_bus_remove_device(&f->pci, &f->dev.pci);
    assert_false(f->dev.pairing_error);
    for (unsigned i = 0; i < PCI_NUM_BARS; i++)
        assert_false(f->dev.mapped[i]);
    testdev_destroy(&f->dev);
    fixture_free(f);
    return 0;
}

static int setup_bare(void **state)
{
    *state = fixture_new(TEST_PCI_WINDOWS);
    return 0;
}

static int teardown_bare(void **state)
{
    fixture_free(*state);
    return 0;
}

static uint64_t bar_addr(struct fixture *f, unsigned slot, unsigned bar)
{
    uint32_t lo = pci_guest_read(&f->pio, slot, 0x10 + 4 * bar, 4);
    if (lo & 1)
        return lo & ~3u;
    uint64_t addr = lo & ~0xFu;
    if ((lo & 6) == 4)
        addr |= (uint64_t)pci_guest_read(&f->pio, slot, 0x14 + 4 * bar, 4) << 32;
    return addr;
}

/* Whether an access at addr reaches BAR bar of the test device. */
static bool reaches(struct fixture *f, struct bus *b, uint64_t addr, unsigned bar)
{
    uint64_t before = f->dev.io_hits[bar];
    uint32_t v = 0;
    bus_access(b, addr, &v, 4, false);
    return f->dev.io_hits[bar] == before + 1 && v == 0x5A5A5A5A;
}

/* ---- configuration mechanism #1 ---- */

static void test_address_latch(void **state)
{
    struct fixture *f = *state;
    uint32_t v;

    pci_guest_latch(&f->pio, 0x80001234);
    v = 0;
    assert_true(bus_access(&f->pio, 0xCF8, &v, 4, false));
    assert_int_equal(v, 0x80001234);
    /* Low two bits and reserved bits 30:28 read back as 0. */
    pci_guest_latch(&f->pio, 0xF00012FF);
    assert_int_equal(guest_read32(&f->pio, 0xCF8), 0x800012FC);

    /* Narrow accesses do not touch the latch (Linux's type 1 probe writes a byte to 0xCFB). */
    pci_guest_latch(&f->pio, 0x80000000);
    uint8_t b = 0x01;
    assert_true(bus_access(&f->pio, 0xCFB, &b, 1, true));
    uint16_t w = 0x1234;
    assert_true(bus_access(&f->pio, 0xCF8, &w, 2, true));
    assert_int_equal(guest_read32(&f->pio, 0xCF8), 0x80000000);
    w = 0;
    bus_access(&f->pio, 0xCF8, &w, 2, false);
    assert_int_equal(w, 0xFFFF);
    b = 0;
    bus_access(&f->pio, 0xCF9, &b, 1, false);
    assert_int_equal(b, 0xFF);
}

static void test_host_bridge_identity(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(pci_guest_read(&f->pio, 0, 0x00, 4), 0x12378086);
    assert_int_equal(pci_guest_read(&f->pio, 0, 0x00, 2), 0x8086);
    assert_int_equal(pci_guest_read(&f->pio, 0, 0x02, 2), 0x1237);
    assert_int_equal(pci_guest_read(&f->pio, 0, 0x08, 4) >> 8, 0x060000);
    assert_int_equal(pci_guest_read(&f->pio, 0, 0x0A, 2), 0x0600);
    assert_int_equal(pci_guest_read(&f->pio, 0, 0x0E, 1), 0x00); /* single function */
    assert_int_equal(pci_guest_read(&f->pio, 0, 0x34, 1), 0);
    for (unsigned bar = 0; bar < 6; bar++)
        assert_int_equal(pci_guest_size_bar(&f->pio, 0, bar), 0);
    /* Identity is read-only. */
    pci_guest_write(&f->pio, 0, 0x00, 4, 0);
    pci_guest_write(&f->pio, 0, 0x08, 4, 0);
    assert_int_equal(pci_guest_read(&f->pio, 0, 0x00, 4), 0x12378086);
    assert_int_equal(pci_guest_read(&f->pio, 0, 0x08, 4) >> 8, 0x060000);
}

static void test_every_width_and_offset(void **state)
{
    struct fixture *f = *state;
    uint8_t space[256];

    for (unsigned slot = 0; slot < 2; slot++) {
        for (unsigned reg = 0; reg < 256; reg += 4) {
            uint32_t v = pci_guest_read(&f->pio, slot, reg, 4);
            for (unsigned i = 0; i < 4; i++)
                space[reg + i] = (uint8_t)(v >> (8 * i));
        }
        assert_int_not_equal(space[0], 0xFF);
        for (unsigned reg = 0; reg < 256; reg++) {
            assert_int_equal(pci_guest_read(&f->pio, slot, reg, 1), space[reg]);
            if ((reg & 3) <= 2)
                assert_int_equal(pci_guest_read(&f->pio, slot, reg, 2),
                                 space[reg] | space[reg + 1] << 8);
        }
    }
    /* A dword at 0xCFD would cross the end of the data window: the bus leaves it unclaimed. */
    pci_guest_latch(&f->pio, PCI_GUEST_CONF1(0, 0, 0, 0));
    uint32_t v = 0;
    assert_false(bus_access(&f->pio, 0xCFD, &v, 4, false));
    assert_int_equal(v, 0xFFFFFFFF);
}

static void test_absent_functions_read_all_ones(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(pci_guest_read(&f->pio, 5, 0, 4), 0xFFFFFFFF);          /* empty slot */
    assert_int_equal(pci_guest_read(&f->pio, 31, 0x3C, 1), 0xFF);            /* empty slot */
    assert_int_equal(pci_guest_read_fn(&f->pio, 0, 0, 1, 0, 4), 0xFFFFFFFF); /* function 1 */
    assert_int_equal(pci_guest_read_fn(&f->pio, 1, 0, 0, 0, 4), 0xFFFFFFFF); /* bus 1 */
    assert_int_equal(pci_guest_read_fn(&f->pio, 1, 1, 0, 0, 2), 0xFFFF);
    /* Enable bit clear. */
    pci_guest_latch(&f->pio, 0x00000000);
    assert_int_equal(guest_read32(&f->pio, 0xCFC), 0xFFFFFFFF);
    /* AMD-style extended register bits select registers past 0xFF, which do not exist. */
    pci_guest_latch(&f->pio, 0x81000000);
    assert_int_equal(guest_read32(&f->pio, 0xCFC), 0xFFFFFFFF);

    /* Writes there go nowhere: the host bridge's COMMAND stays 0. */
    pci_guest_write_fn(&f->pio, 0, 0, 1, 0x04, 2, 0x0007);
    pci_guest_write_fn(&f->pio, 1, 0, 0, 0x04, 2, 0x0007);
    pci_guest_latch(&f->pio, 0x00000004);
    guest_write32(&f->pio, 0xCFC, 0x7);
    pci_guest_latch(&f->pio, 0x81000004);
    guest_write32(&f->pio, 0xCFC, 0x7);
    assert_int_equal(pci_guest_read(&f->pio, 0, 0x04, 2), 0);
    pci_guest_write(&f->pio, 0, 0x04, 2, 0x0007);
    assert_int_equal(pci_guest_read(&f->pio, 0, 0x04, 2), 0x0007);
}

/* ---- BARs ---- */

static void test_bar_sizing(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(pci_guest_size_bar(&f->pio, 1, 0), 0xFFFFF000);
    assert_int_equal(pci_guest_size_bar(&f->pio, 1, 1), 0x0000FFE1); /* I/O: 16-bit decode */
    /* 64-bit: type bits (prefetchable, 64-bit) stay in the low dword. */
    assert_int_equal(pci_guest_size_bar(&f->pio, 1, 2), 0xFFF0000C);
    assert_int_equal(pci_guest_size_bar(&f->pio, 1, 3), 0xFFFFFFFF);
    assert_int_equal(pci_guest_size_bar(&f->pio, 1, 4), 0xFFFFC004);
    assert_int_equal(pci_guest_size_bar(&f->pio, 1, 5), 0xFFFFFFFF);
    assert_int_equal(pci_guest_read(&f->pio, 1, 0x30, 4), 0); /* no expansion ROM */
    pci_guest_write(&f->pio, 1, 0x30, 4, 0xFFFFFFFF);
    assert_int_equal(pci_guest_read(&f->pio, 1, 0x30, 4), 0);
    /* Sizing (and restoring) with decode on puts everything back where it was. */
    for (unsigned bar = 0; bar < 6; bar++)
        assert_true(f->dev.mapped[bar] == (bar != 3 && bar != 5));
    assert_false(f->dev.pairing_error);
}

static void test_unimplemented_bar_reads_zero(void **state)
{
    struct fixture *f = *state;
    struct testdev d;
    testdev_init(f, &d, false);
    assert_int_equal(pci_device_add_bar(&d.pci, 2, PCI_BAR_MEM32, 0x100, false, NULL, NULL), 0);
    assert_int_equal(pci_bus_add_device(&f->pci, &d.pci), 0);
    for (unsigned bar = 0; bar < 6; bar++) {
        uint32_t mask = pci_guest_size_bar(&f->pio, 1, bar);
        assert_int_equal(mask, bar == 2 ? 0xFFFFFF00 : 0);
    }
    pci_bus_remove_device(&f->pci, &d.pci);
    testdev_destroy(&d);
}

static void test_firmware_assignment(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(f->dev.pci.slot, 1);
    assert_int_equal(pci_guest_read(&f->pio, 1, 0, 4), 0x56781234);
    uint16_t cmd = (uint16_t)pci_guest_read(&f->pio, 1, 0x04, 2);
    assert_int_equal(cmd & 3, PCI_COMMAND_IO | PCI_COMMAND_MEMORY);

    uint64_t b0 = bar_addr(f, 1, 0), b1 = bar_addr(f, 1, 1);
    uint64_t b2 = bar_addr(f, 1, 2), b4 = bar_addr(f, 1, 4);
    assert_true(b0 >= MMIO32_START && b0 + BAR0_SIZE <= MMIO32_END && b0 % BAR0_SIZE == 0);
    assert_true(b1 >= IO_START && b1 + BAR1_SIZE <= IO_END && b1 % BAR1_SIZE == 0);
    assert_true(b2 >= MMIO64_START && b2 + BAR2_SIZE <= MMIO64_END && b2 % BAR2_SIZE == 0);
    assert_true(b4 >= MMIO64_START && b4 + BAR4_SIZE <= MMIO64_END && b4 % BAR4_SIZE == 0);
    assert_true(b2 + BAR2_SIZE <= b4 || b4 + BAR4_SIZE <= b2);

    /* All mapped, on_map told so, and accesses reach the device. */
    assert_true(f->dev.mapped[0] && f->dev.base[0] == b0);
    assert_true(f->dev.mapped[1] && f->dev.base[1] == b1);
    assert_true(f->dev.mapped[2] && f->dev.base[2] == b2);
    assert_true(f->dev.mapped[4] && f->dev.base[4] == b4);
    assert_true(reaches(f, &f->mmio, b0 + 0x10, 0));
    assert_true(reaches(f, &f->pio, b1, 1));
    assert_true(reaches(f, &f->mmio, b4 + BAR4_SIZE - 4, 4));
    /* The VMM-mapped BAR is claimed by a placeholder: all ones, no device callback. */
    assert_true(bus_access(&f->mmio, b2, &(uint32_t){0}, 4, false));
    assert_int_equal(guest_read32(&f->mmio, b2), 0xFFFFFFFF);
    uint64_t ptr = 0;
    assert_true(pci_device_bar_mapped(&f->dev.pci, 4, &ptr));
    assert_int_equal(ptr, b4);
    assert_false(pci_device_bar_mapped(&f->dev.pci, 3, NULL));

    /* A second device gets the next slot and addresses that do not overlap the first. */
    struct testdev d2;
    struct bar_tag tag = {&d2, 0};
    testdev_init(f, &d2, false);
    assert_int_equal(
        pci_device_add_bar(&d2.pci, 0, PCI_BAR_MEM32, 0x100, false, testdev_bar_io, &tag), 0);
    assert_int_equal(pci_device_add_bar(&d2.pci, 1, PCI_BAR_IO, 0x100, false, testdev_bar_io, &tag),
                     0);
    assert_int_equal(pci_bus_add_device(&f->pci, &d2.pci), 0);
    assert_int_equal(d2.pci.slot, 2);
    uint64_t c0 = bar_addr(f, 2, 0), c1 = bar_addr(f, 2, 1);
    assert_true(c0 % 0x100 == 0 && (c0 >= b0 + BAR0_SIZE || c0 + 0x100 <= b0));
    assert_true(c1 % 0x100 == 0 && (c1 >= b1 + BAR1_SIZE || c1 + 0x100 <= b1));
    assert_int_equal(pci_bus_add_device(&f->pci, &d2.pci), -EBUSY);
    pci_bus_remove_device(&f->pci, &d2.pci);
    assert_int_equal(pci_guest_read(&f->pio, 2, 0, 4), 0xFFFFFFFF);
    assert_false(d2.mapped[0] || d2.mapped[1]);
    testdev_destroy(&d2);
}

static void test_decode_bits_map_and_unmap(void **state)
{
    struct fixture *f = *state;
    uint64_t b0 = bar_addr(f, 1, 0), b1 = bar_addr(f, 1, 1), b4 = bar_addr(f, 1, 4);

    /* Memory decode off: memory BARs go, the I/O BAR stays. */
    pci_guest_write(&f->pio, 1, 0x04, 2, PCI_COMMAND_IO);
    assert_false(reaches(f, &f->mmio, b0, 0));
    assert_false(reaches(f, &f->mmio, b4, 4));
    assert_true(reaches(f, &f->pio, b1, 1));
    assert_false(f->dev.mapped[0] || f->dev.mapped[2] || f->dev.mapped[4]);
    assert_true(f->dev.mapped[1]);
    assert_int_equal(f->mmio.count, 0);

    /* I/O decode off too, then memory back on. */
    pci_guest_write(&f->pio, 1, 0x04, 2, 0);
    assert_false(reaches(f, &f->pio, b1, 1));
    assert_false(f->dev.mapped[1]);
    pci_guest_write(&f->pio, 1, 0x04, 1, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    assert_true(reaches(f, &f->mmio, b0, 0));
    assert_true(reaches(f, &f->mmio, b4, 4));
    assert_false(reaches(f, &f->pio, b1, 1));
    assert_true(f->dev.mapped[2] && f->dev.base[2] == bar_addr(f, 1, 2));
    /* Only the defined COMMAND bits stick. */
    pci_guest_write(&f->pio, 1, 0x04, 2, 0xFFFF);
    assert_int_equal(pci_guest_read(&f->pio, 1, 0x04, 2), 0x0407);
    assert_true(reaches(f, &f->pio, b1, 1));
    assert_false(f->dev.pairing_error);
}

static void test_moving_bars(void **state)
{
    struct fixture *f = *state;
    uint64_t b0 = bar_addr(f, 1, 0), b1 = bar_addr(f, 1, 1);
    size_t n = f->dev.nevents;

    pci_guest_write(&f->pio, 1, 0x10, 4, 0xD0000000);
    assert_false(reaches(f, &f->mmio, b0, 0));
    assert_true(reaches(f, &f->mmio, 0xD0000000, 0));
    assert_int_equal(f->dev.nevents, n + 2);
    assert_true(f->dev.events[n].bar == 0 && !f->dev.events[n].mapped &&
                f->dev.events[n].base == b0);
    assert_true(f->dev.events[n + 1].bar == 0 && f->dev.events[n + 1].mapped &&
                f->dev.events[n + 1].base == 0xD0000000);
    /* Misaligned low bits are not writable: the BAR lands on its natural alignment. */
    pci_guest_write(&f->pio, 1, 0x10, 4, 0xD0001234);
    assert_int_equal(bar_addr(f, 1, 0), 0xD0001000);
    assert_true(reaches(f, &f->mmio, 0xD0001000, 0));

    /* Byte-wide moves of the I/O BAR. */
    pci_guest_write(&f->pio, 1, 0x15, 1, 0xE0);
    assert_false(reaches(f, &f->pio, b1, 1));
    assert_true(reaches(f, &f->pio, 0xE000 | (b1 & 0xE0), 1));
    /* The upper half of an I/O BAR is hardwired to 0. */
    pci_guest_write(&f->pio, 1, 0x16, 2, 0xFFFF);
    assert_int_equal(pci_guest_read(&f->pio, 1, 0x14, 4) >> 16, 0);

    /* Address 0 means unassigned: not mapped even with decode on. */
    pci_guest_write(&f->pio, 1, 0x10, 4, 0);
    assert_false(f->dev.mapped[0]);
    assert_false(reaches(f, &f->mmio, 0, 0));
    assert_false(f->dev.pairing_error);
}

static void test_sizing_value_never_maps(void **state)
{
    struct fixture *f = *state;
    uint64_t b0 = bar_addr(f, 1, 0);

    /* Decode stays on during sizing: the all-ones pattern must not map at 0xFFFFF000. */
    pci_guest_write(&f->pio, 1, 0x10, 4, 0xFFFFFFFF);
    assert_false(f->dev.mapped[0]);
    assert_false(reaches(f, &f->mmio, 0xFFFFF000, 0));
    pci_guest_write(&f->pio, 1, 0x10, 4, (uint32_t)b0);
    assert_true(reaches(f, &f->mmio, b0, 0));

    pci_guest_write(&f->pio, 1, 0x14, 4, 0xFFFFFFFF);
    assert_false(f->dev.mapped[1]);
    assert_int_equal(f->pio.count, 2); /* 0xCF8, 0xCFC, and nothing else */
    assert_false(f->dev.pairing_error);
}

static void test_64bit_bar_half_writes(void **state)
{
    struct fixture *f = *state;
    uint64_t b4 = bar_addr(f, 1, 4);
    uint64_t target = 0x7000000000ull; /* 448 GiB */
    size_t n = f->dev.nevents;

    /* Low dword first (as Linux does): unmapped, not mapped at new-low/old-high. */
    pci_guest_write(&f->pio, 1, 0x20, 4, (uint32_t)target);
    assert_false(f->dev.mapped[4]);
    assert_false(reaches(f, &f->mmio, b4, 4));
    assert_false(reaches(f, &f->mmio, (b4 & ~0xFFFFFFFFull) | (uint32_t)target, 4));
    pci_guest_write(&f->pio, 1, 0x24, 4, (uint32_t)(target >> 32));
    assert_true(f->dev.mapped[4]);
    assert_true(reaches(f, &f->mmio, target, 4));
    for (size_t i = n; i < f->dev.nevents; i++) {
        if (f->dev.events[i].mapped)
            assert_int_equal(f->dev.events[i].base, target);
    }

    /* Low dword rewritten twice before the high dword: still only the final address. */
    uint64_t back = 0x4100000000ull;
    pci_guest_write(&f->pio, 1, 0x20, 4, 0xFFFFFFFF);
    pci_guest_write(&f->pio, 1, 0x20, 4, (uint32_t)back);
    assert_false(f->dev.mapped[4]);
    pci_guest_write(&f->pio, 1, 0x24, 4, (uint32_t)(back >> 32));
    assert_true(reaches(f, &f->mmio, back, 4));

    /* High dword first (not what Linux does): unmapped after the low write, back with the
     * next COMMAND write. */
    pci_guest_write(&f->pio, 1, 0x24, 4, 0x42);
    pci_guest_write(&f->pio, 1, 0x20, 4, 0x8000);
    assert_false(f->dev.mapped[4]);
    pci_guest_write(&f->pio, 1, 0x04, 2, 0x0003);
    assert_true(reaches(f, &f->mmio, 0x4200008000ull, 4));
    pci_guest_write(&f->pio, 1, 0x20, 4, (uint32_t)back);
    pci_guest_write(&f->pio, 1, 0x24, 4, (uint32_t)(back >> 32));
    assert_true(reaches(f, &f->mmio, back, 4));

    /* A guest that only rewrites one half gets the BAR back with the next COMMAND write. */
    pci_guest_write(&f->pio, 1, 0x20, 4, 0x10000);
    assert_false(f->dev.mapped[4]);
    pci_guest_write(&f->pio, 1, 0x04, 2, 0x0003);
    assert_true(reaches(f, &f->mmio, 0x4100010000ull, 4));

    /* Linux's sizing sequence with decode on: no mapping until the last write, and none
     * at a sizing address. */
    uint64_t b2 = bar_addr(f, 1, 2);
    n = f->dev.nevents;
    pci_guest_write(&f->pio, 1, 0x18, 4, 0xFFFFFFFF);
    assert_int_equal(pci_guest_read(&f->pio, 1, 0x18, 4), 0xFFF0000C);
    pci_guest_write(&f->pio, 1, 0x18, 4, (uint32_t)b2 | 0xC);
    pci_guest_write(&f->pio, 1, 0x1C, 4, 0xFFFFFFFF);
    assert_int_equal(pci_guest_read(&f->pio, 1, 0x1C, 4), 0xFFFFFFFF);
    assert_false(f->dev.mapped[2]);
    pci_guest_write(&f->pio, 1, 0x1C, 4, (uint32_t)(b2 >> 32));
    assert_true(f->dev.mapped[2]);
    assert_int_equal(f->dev.nevents, n + 2); /* one unmap, one map at the same address */
    assert_int_equal(f->dev.base[2], b2);
    /* Both halves all ones, then a new address. */
    pci_guest_write(&f->pio, 1, 0x18, 4, 0xFFFFFFFF);
    pci_guest_write(&f->pio, 1, 0x1C, 4, 0xFFFFFFFF);
    assert_int_equal(pci_guest_read(&f->pio, 1, 0x1C, 4), 0xFFFFFFFF);
    assert_false(f->dev.mapped[2]);
    pci_guest_write(&f->pio, 1, 0x18, 4, 0x00200000);
    pci_guest_write(&f->pio, 1, 0x1C, 4, 0x50);
    assert_true(f->dev.mapped[2]);
    assert_int_equal(f->dev.base[2], 0x5000200000ull);
    assert_false(f->dev.pairing_error);
}

static void test_bar_over_another_bar(void **state)
{
    struct fixture *f = *state;
    struct testdev d2;
    struct bar_tag tag = {&d2, 0};
    testdev_init(f, &d2, false);
    assert_int_equal(
        pci_device_add_bar(&d2.pci, 0, PCI_BAR_MEM32, 0x1000, false, testdev_bar_io, &tag), 0);
    assert_int_equal(pci_bus_add_device(&f->pci, &d2.pci), 0);
    uint64_t b0 = bar_addr(f, 1, 0), c0 = bar_addr(f, 2, 0);

    /* Device 2's BAR onto device 1's: -EEXIST inside, left unmapped, nothing breaks. */
    pci_guest_write(&f->pio, 2, 0x10, 4, (uint32_t)b0);
    assert_false(d2.mapped[0]);
    assert_false(pci_device_bar_mapped(&d2.pci, 0, NULL));
    assert_true(reaches(f, &f->mmio, b0, 0));
    /* A partly overlapping 64-bit BAR of device 1 onto the placeholder of BAR2. */
    uint64_t b2 = bar_addr(f, 1, 2);
    pci_guest_write(&f->pio, 1, 0x20, 4, (uint32_t)b2);
    pci_guest_write(&f->pio, 1, 0x24, 4, (uint32_t)(b2 >> 32));
    assert_false(f->dev.mapped[4]);
    /* Moving elsewhere maps it again. */
    pci_guest_write(&f->pio, 2, 0x10, 4, (uint32_t)c0);
    assert_true(d2.mapped[0]);
    pci_guest_write(&f->pio, 1, 0x20, 4, 0);
    pci_guest_write(&f->pio, 1, 0x24, 4, 0x60);
    assert_true(f->dev.mapped[4]);
    /* A BAR over RAM is not known to the bus: it maps (the VMM's memory slot wins). */
    pci_guest_write(&f->pio, 1, 0x10, 4, 0x00100000);
    assert_true(f->dev.mapped[0]);

    pci_bus_remove_device(&f->pci, &d2.pci);
    assert_false(d2.pairing_error);
    testdev_destroy(&d2);
}

/* ---- fields, capabilities, hooks ---- */

static void test_read_only_fields(void **state)
{
    struct fixture *f = *state;
    uint8_t before[64];
    for (unsigned r = 0; r < 64; r++)
        before[r] = (uint8_t)pci_guest_read(&f->pio, 1, r, 1);

    static const unsigned ro[] = {0x00, 0x01, 0x02, 0x03, 0x08, 0x09, 0x0A, 0x0B, 0x0E,
                                  0x2C, 0x2D, 0x2E, 0x2F, 0x34, 0x3D, 0x3E, 0x3F};
    for (size_t i = 0; i < sizeof(ro) / sizeof(ro[0]); i++) {
        pci_guest_write(&f->pio, 1, ro[i], 1, 0xA5);
        pci_guest_write(&f->pio, 1, ro[i], 1, 0x00);
        assert_int_equal(pci_guest_read(&f->pio, 1, ro[i], 1), before[ro[i]]);
    }
    assert_int_equal(pci_guest_read(&f->pio, 1, 0x08, 4), 0xFF000142);
    assert_int_equal(pci_guest_read(&f->pio, 1, 0x2C, 4), 0xEF01ABCD);
    assert_int_equal(pci_guest_read(&f->pio, 1, 0x3D, 1), 0); /* no INTx pin */

    /* Plain read/write bytes. */
    pci_guest_write(&f->pio, 1, 0x3C, 1, 11);
    assert_int_equal(pci_guest_read(&f->pio, 1, 0x3C, 1), 11);
    pci_guest_write(&f->pio, 1, 0x0C, 2, 0x4010);
    assert_int_equal(pci_guest_read(&f->pio, 1, 0x0C, 2), 0x4010);

    /* STATUS: error bits are write-1-to-clear; the model never sets them, so 0 stays 0. */
    pci_guest_write(&f->pio, 1, 0x06, 2, 0xFFFF);
    assert_int_equal(pci_guest_read(&f->pio, 1, 0x06, 2), 0);
}

static void test_status_w1c(void **state)
{
    struct fixture *f = *state;
    struct testdev d;
    testdev_init(f, &d, false);
    /* Pretend the device flagged a master abort and signalled a system error. */
    pci_config_set(&d.pci, PCI_STATUS, 2, 0x6000);
    assert_int_equal(pci_bus_add_device(&f->pci, &d.pci), 0);
    pci_guest_write(&f->pio, 1, 0x06, 2, 0x2000);
    assert_int_equal(pci_guest_read(&f->pio, 1, 0x06, 2), 0x4000);
    pci_guest_write(&f->pio, 1, 0x04, 4, 0x00000000); /* COMMAND and STATUS(0) */
    assert_int_equal(pci_guest_read(&f->pio, 1, 0x06, 2), 0x4000);
    pci_guest_write(&f->pio, 1, 0x04, 4, 0xFFFF0000);
    assert_int_equal(pci_guest_read(&f->pio, 1, 0x06, 2), 0);
    pci_bus_remove_device(&f->pci, &d.pci);
    testdev_destroy(&d);
}

static void test_capability_list(void **state)
{
    struct fixture *f = *state;
    struct testdev d;
    testdev_init(f, &d, false);
    int a = pci_device_add_capability(&d.pci, 0x09, 3); /* vendor specific */
    int b = pci_device_add_capability(&d.pci, 0x11, 12);
    int c = pci_device_add_capability(&d.pci, 0x05, 14);
    assert_true(a >= 0x40 && b > a && c > b);
    assert_true(a % 4 == 0 && b % 4 == 0 && c % 4 == 0);
    assert_int_equal(b - a, 4);
    pci_config_set(&d.pci, (uint32_t)b + 2, 2, 0x0003);
    pci_config_set_wmask(&d.pci, (uint32_t)b + 2, 2, 0xC000);
    assert_int_equal(pci_bus_add_device(&f->pci, &d.pci), 0);
    assert_int_equal(pci_device_add_capability(&d.pci, 0x10, 4), -EBUSY);
    assert_int_equal(pci_device_add_bar(&d.pci, 0, PCI_BAR_MEM32, 0x1000, false, NULL, NULL),
                     -EBUSY);

    assert_true(pci_guest_read(&f->pio, 1, 0x06, 2) & PCI_STATUS_CAP_LIST);
    static const uint8_t ids[] = {0x09, 0x11, 0x05};
    unsigned ptr = pci_guest_read(&f->pio, 1, 0x34, 1), n = 0;
    while (ptr && n < 48) {
        assert_true(ptr >= 0x40 && ptr % 4 == 0);
        assert_int_equal(pci_guest_read(&f->pio, 1, ptr, 1), ids[n]);
        ptr = pci_guest_read(&f->pio, 1, ptr + 1, 1);
        n++;
    }
    assert_int_equal(n, 3);

    /* IDs, next pointers and the capability pointer are read-only; opened bits are not. */
    pci_guest_write(&f->pio, 1, (unsigned)b, 4, 0xFFFFFFFF);
    assert_int_equal(pci_guest_read(&f->pio, 1, (unsigned)b, 4),
                     0xC0030000u | (unsigned)c << 8 | 0x11);
    pci_guest_write(&f->pio, 1, 0x34, 1, 0x80);
    assert_int_equal(pci_guest_read(&f->pio, 1, 0x34, 1), a);
    pci_guest_write(&f->pio, 1, 0x06, 2, 0xFFFF);
    assert_true(pci_guest_read(&f->pio, 1, 0x06, 2) & PCI_STATUS_CAP_LIST);

    pci_bus_remove_device(&f->pci, &d.pci);
    testdev_destroy(&d);

    /* The 192 bytes of capability space run out. */
    testdev_init(f, &d, false);
    assert_int_equal(pci_device_add_capability(&d.pci, 0x09, 1), -EINVAL);
    assert_int_equal(pci_device_add_capability(&d.pci, 0x09, 188), 0x40);
    assert_int_equal(pci_device_add_capability(&d.pci, 0x09, 4), 0xFC);
    assert_int_equal(pci_device_add_capability(&d.pci, 0x09, 4), -ENOSPC);
    testdev_destroy(&d);
}

static void test_config_written_hook(void **state)
{
    struct fixture *f = *state;
    unsigned calls = f->dev.written_calls;

    pci_guest_write(&f->pio, 1, 0x42, 2, 0xBEEF);
    assert_int_equal(f->dev.written_calls, calls + 1);
    assert_int_equal(f->dev.written_offset, 0x42);
    assert_int_equal(f->dev.written_size, 2);
    pci_guest_write(&f->pio, 1, 0xFF, 1, 1);
    assert_int_equal(f->dev.written_offset, 0xFF);
    assert_int_equal(f->dev.written_size, 1);
    /* Reads do not call it. */
    pci_guest_read(&f->pio, 1, 0x42, 2);
    assert_int_equal(f->dev.written_calls, calls + 2);
}

/* The hook reads its own config space through pci_config_read_locked() and sees the write
 * that called it; the device mutex is not recursive, so taking it again would hang here. */
static void test_config_written_hook_reads_config(void **state)
{
    struct fixture *f = *state;

    alarm(10);
    pci_guest_write(&f->pio, 1, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    assert_int_equal(f->dev.written_command, PCI_COMMAND_MEMORY);
    pci_guest_write(&f->pio, 1, PCI_COMMAND, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
    assert_int_equal(f->dev.written_command, PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
    alarm(0);
}

/* ---- firmware-style assignment limits ---- */

static void test_assignment_out_of_window(void **state)
{
    (void)state;
    /* Room for one 64 KiB 32-bit BAR and one 256-byte I/O BAR. */
    struct pci_windows w = {
        .io_start = 0xC000,
        .io_end = 0xC100,
        .mmio32_start = 0xE0000000,
        .mmio32_end = 0xE0010000,
        .mmio64_start = 1ull << 40,
        .mmio64_end = (1ull << 40) + 0x100000,
    };
    struct fixture *f = fixture_new(&w);
    struct testdev a, b, c;

    testdev_init(f, &a, false);
    assert_int_equal(pci_device_add_bar(&a.pci, 0, PCI_BAR_MEM32, 0x10000, false, NULL, NULL), 0);
    assert_int_equal(pci_device_add_bar(&a.pci, 1, PCI_BAR_IO, 0x100, false, NULL, NULL), 0);
    assert_int_equal(pci_bus_add_device(&f->pci, &a.pci), 0);
    assert_int_equal(bar_addr(f, 1, 0), 0xE0000000);
    assert_int_equal(bar_addr(f, 1, 1), 0xC000);

    testdev_init(f, &b, false);
    assert_int_equal(pci_device_add_bar(&b.pci, 0, PCI_BAR_MEM32, 0x10, false, NULL, NULL), 0);
    assert_int_equal(pci_bus_add_device(&f->pci, &b.pci), -ENOSPC);
    assert_null(b.pci.bus);
    assert_int_equal(pci_guest_read(&f->pio, 2, 0, 4), 0xFFFFFFFF);
    assert_int_equal(b.nevents, 0);
    testdev_destroy(&b);

    /* A 64-bit BAR bigger than its window. */
    testdev_init(f, &b, false);
    assert_int_equal(pci_device_add_bar(&b.pci, 0, PCI_BAR_MEM64, 0x200000, true, NULL, NULL), 0);
    assert_int_equal(pci_bus_add_device(&f->pci, &b.pci), -ENOSPC);
    testdev_destroy(&b);

    /* Fits, but the range is already claimed on the bus: -ENOSPC, nothing left behind. */
    testdev_init(f, &c, false);
    assert_int_equal(pci_device_add_bar(&c.pci, 0, PCI_BAR_MEM64, 0x1000, false, NULL, NULL), 0);
    struct bar_tag tag = {&c, 0};
    assert_int_equal(bus_register(&f->mmio, (1ull << 40) + 0x800, 0x10, testdev_bar_io, &tag, "x"),
                     0);
    assert_int_equal(pci_bus_add_device(&f->pci, &c.pci), -ENOSPC);
    assert_null(c.pci.bus);
    assert_false(c.mapped[0]);
    assert_int_equal(pci_config_read(&c.pci, 0x10, 4), 0x4);
    assert_int_equal(pci_config_read(&c.pci, 0x04, 2), 0);
    assert_int_equal(bus_unregister(&f->mmio, (1ull << 40) + 0x800, &tag), 0);
    /* The failed attempt did not consume window space. */
    assert_int_equal(pci_bus_add_device(&f->pci, &c.pci), 0);
    assert_int_equal(bar_addr(f, 2, 0), 1ull << 40);

    pci_bus_remove_device(&f->pci, &c.pci);
    pci_bus_remove_device(&f->pci, &a.pci);
    testdev_destroy(&c);
    testdev_destroy(&a);
    fixture_free(f);
}

static void test_bad_windows(void **state)
{
    struct fixture *f = *state;
    struct pci_bus bus;
    struct pci_windows w = {0xC000, 0x10000, 0xC0000000, 0xFEC00000, 1ull << 38, 1ull << 39};

    assert_int_equal(pci_bus_init(&bus, &f->pio, &f->mmio, NULL), -EINVAL);
    w.io_end = 0x10004;
    assert_int_equal(pci_bus_init(&bus, &f->pio, &f->mmio, &w), -EINVAL);
    w.io_end = 0x10000;
    w.mmio32_end = (1ull << 32) + 0x1000;
    assert_int_equal(pci_bus_init(&bus, &f->pio, &f->mmio, &w), -EINVAL);
    w.mmio32_end = 0xFEC00000;
    w.mmio64_start = w.mmio64_end + 1;
    assert_int_equal(pci_bus_init(&bus, &f->pio, &f->mmio, &w), -EINVAL);
    /* The config ports belong to the first PCI bus on this port bus. */
    assert_int_equal(pci_bus_init(&bus, &f->pio, &f->mmio, TEST_PCI_WINDOWS), -EEXIST);
    assert_int_equal(f->pio.count, 2);
}

static void test_slots_run_out(void **state)
{
    struct fixture *f = *state;
    static struct testdev devs[32];

    for (unsigned i = 0; i < 31; i++) {
        testdev_init(f, &devs[i], false);
        assert_int_equal(pci_bus_add_device(&f->pci, &devs[i].pci), 0);
        assert_int_equal(devs[i].pci.slot, i + 1);
    }
    testdev_init(f, &devs[31], false);
    assert_int_equal(pci_bus_add_device(&f->pci, &devs[31].pci), -ENOSPC);
    testdev_destroy(&devs[31]);
    for (unsigned slot = 0; slot < 32; slot++)
        assert_int_not_equal(pci_guest_read(&f->pio, slot, 0, 4), 0xFFFFFFFF);
    /* pci_bus_destroy takes care of devices still plugged in. */
    for (unsigned i = 0; i < 31; i += 2)
        pci_bus_remove_device(&f->pci, &devs[i].pci);
    pci_bus_destroy(&f->pci);
    for (unsigned i = 0; i < 31; i++) {
        assert_null(devs[i].pci.bus);
        testdev_destroy(&devs[i]);
    }
    /* Re-init so the teardown has something to destroy. */
    assert_int_equal(pci_bus_init(&f->pci, &f->pio, &f->mmio, TEST_PCI_WINDOWS), 0);
}

static void test_bad_bar_descriptions(void **state)
{
    struct fixture *f = *state;
    struct testdev d;
    testdev_init(f, &d, false);
    struct pci_device *p = &d.pci;

    assert_int_equal(pci_device_add_bar(p, 6, PCI_BAR_MEM32, 0x1000, false, NULL, NULL), -EINVAL);
    assert_int_equal(pci_device_add_bar(p, 5, PCI_BAR_MEM64, 0x1000, false, NULL, NULL), -EINVAL);
    assert_int_equal(pci_device_add_bar(p, 0, PCI_BAR_MEM32, 0x1800, false, NULL, NULL), -EINVAL);
    assert_int_equal(pci_device_add_bar(p, 0, PCI_BAR_MEM32, 8, false, NULL, NULL), -EINVAL);
    assert_int_equal(pci_device_add_bar(p, 0, PCI_BAR_MEM32, 1ull << 32, false, NULL, NULL),
                     -EINVAL);
    assert_int_equal(pci_device_add_bar(p, 0, PCI_BAR_IO, 2, false, NULL, NULL), -EINVAL);
    assert_int_equal(pci_device_add_bar(p, 0, PCI_BAR_IO, 0x20, true, NULL, NULL), -EINVAL);
    assert_int_equal(pci_device_add_bar(p, 0, PCI_BAR_NONE, 0x20, false, NULL, NULL), -EINVAL);
    assert_int_equal(pci_device_add_bar(p, 0, PCI_BAR_MEM64, 0x1000, false, NULL, NULL), 0);
    assert_int_equal(pci_device_add_bar(p, 1, PCI_BAR_MEM32, 0x1000, false, NULL, NULL), -EINVAL);
    assert_int_equal(pci_device_add_bar(p, 0, PCI_BAR_MEM32, 0x1000, false, NULL, NULL), -EINVAL);
    assert_int_equal(pci_device_add_bar(p, 2, PCI_BAR_MEM32, 0x1000, false, NULL, NULL), 0);
    assert_int_equal(pci_device_add_bar(p, 1, PCI_BAR_MEM64, 0x1000, false, NULL, NULL), -EINVAL);
    testdev_destroy(&d);
}

/* ---- robustness ---- */

/* Independent check that the model is consistent: a BAR is on the bus exactly where config
 * space and COMMAND say it should be, and on_map agrees. */
static void check_consistent(struct fixture *f)
{
    uint16_t cmd = (uint16_t)pci_guest_read(&f->pio, 1, 0x04, 2);
    static const struct {
        unsigned bar;
        uint64_t size;
        bool io;
    } bars[] = {
        {0, BAR0_SIZE, false}, {1, BAR1_SIZE, true}, {2, BAR2_SIZE, false}, {4, BAR4_SIZE, false}};

    assert_int_equal(pci_guest_read(&f->pio, 1, 0, 4), 0x56781234);
    for (size_t i = 0; i < 4; i++) {
        unsigned bar = bars[i].bar;
        uint64_t base = 0;
        bool mapped = pci_device_bar_mapped(&f->dev.pci, bar, &base);
        assert_true(mapped == f->dev.mapped[bar]);
        if (!mapped)
            continue;
        assert_true(cmd & (bars[i].io ? PCI_COMMAND_IO : PCI_COMMAND_MEMORY));
        assert_int_equal(base, bar_addr(f, 1, bar));
        assert_int_equal(base, f->dev.base[bar]);
        assert_true(base != 0 && base % bars[i].size == 0 && base + bars[i].size > base);
        struct bus *b = bars[i].io ? &f->pio : &f->mmio;
        uint32_t v = 0;
        assert_true(bus_access(b, base + bars[i].size - 4, &v, 4, false));
    }
    assert_false(f->dev.pairing_error);
}

static void test_garbage_everywhere(void **state)
{
    struct fixture *f = *state;
    uint64_t seed = 0x1234567;
    static const uint32_t patterns[] = {0,          0xFFFFFFFF, 0x80000000,
                                        0xFFFFFFF0, 0x7FFFFFFF, 0x00000001};

    for (unsigned slot = 0; slot < 3; slot++) {
        for (unsigned reg = 0; reg < 256; reg++) {
            for (unsigned size = 1; size <= 4; size *= 2) {
                if ((reg & 3) + size > 4)
                    continue;
                for (size_t p = 0; p < sizeof(patterns) / sizeof(patterns[0]); p++)
                    pci_guest_write(&f->pio, slot, reg, size, patterns[p]);
                pci_guest_write(&f->pio, slot, reg, size, (uint32_t)test_rand(&seed));
            }
        }
        check_consistent(f);
    }
    for (int i = 0; i < 200000; i++) {
        uint64_t r = test_rand(&seed);
        unsigned size = 1u << (r & 3);
        if (size == 8)
            size = 4;
        unsigned reg = (unsigned)(r >> 8) & 0xFF;
        uint32_t v = (uint32_t)(r >> 32);
        /* Bias towards COMMAND and the BARs, where the mapping logic lives. */
        if (r & 0x10000)
            reg = 0x04 + ((unsigned)(r >> 17) % 0x24);
        if ((r >> 20) % 5 == 0)
            v = 0xFFFFFFFF;
        if ((reg & 3) + size > 4)
            reg &= ~3u;
        pci_guest_write(&f->pio, 1, reg, size, v);
        if (i % 1000 == 0)
            check_consistent(f);
    }
    check_consistent(f);
    assert_int_equal(pci_guest_read(&f->pio, 0, 0, 4), 0x12378086);
    assert_int_equal(pci_guest_read(&f->pio, 1, 0, 4), 0x56781234);
    /* Raw accessors reject out-of-range requests. */
    assert_int_equal(pci_config_read(&f->dev.pci, 255, 2), 0xFFFFFFFF);
    assert_int_equal(pci_config_read(&f->dev.pci, 0, 3), 0xFFFFFFFF);
    pci_config_write(&f->dev.pci, 254, 4, 0);
    pci_config_write(&f->dev.pci, 1000, 1, 0);
    check_consistent(f);
}

struct race {
    struct fixture *f;
    atomic_bool stop;
};

static void *race_accessor(void *arg)
{
    struct race *r = arg;
    while (!atomic_load(&r->stop)) {
        uint64_t base;
        if (pci_device_bar_mapped(&r->f->dev.pci, 0, &base))
            guest_read32(&r->f->mmio, base);
        guest_read32(&r->f->mmio, 0xD0000000);
    }
    return NULL;
}

/* A vCPU moving and toggling the BAR while another vCPU accesses it. */
static void test_concurrent_remap(void **state)
{
    struct fixture *f = *state;
    struct race r = {.f = f};
    pthread_t t;

    assert_int_equal(pthread_create(&t, NULL, race_accessor, &r), 0);
    for (int i = 0; i < 20000; i++) {
        pci_config_write(&f->dev.pci, 0x10, 4, i & 1 ? 0xD0000000 : 0xD0010000);
        pci_config_write(&f->dev.pci, 0x04, 2, i & 2 ? 0x3 : 0x1);
    }
    atomic_store(&r.stop, true);
    pthread_join(t, NULL);
    pci_config_write(&f->dev.pci, 0x04, 2, 0x3);
    check_consistent(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_address_latch, setup_bare, teardown_bare),
        cmocka_unit_test_setup_teardown(test_host_bridge_identity, setup_bare, teardown_bare),
        cmocka_unit_test_setup_teardown(test_every_width_and_offset, setup_dev, teardown_dev),
        cmocka_unit_test_setup_teardown(test_absent_functions_read_all_ones, setup_bare,
                                        teardown_bare),
        cmocka_unit_test_setup_teardown(test_bar_sizing, setup_dev, teardown_dev),
        cmocka_unit_test_setup_teardown(test_unimplemented_bar_reads_zero, setup_bare,
                                        teardown_bare),
        cmocka_unit_test_setup_teardown(test_firmware_assignment, setup_dev, teardown_dev),
        cmocka_unit_test_setup_teardown(test_decode_bits_map_and_unmap, setup_dev, teardown_dev),
        cmocka_unit_test_setup_teardown(test_moving_bars, setup_dev, teardown_dev),
        cmocka_unit_test_setup_teardown(test_sizing_value_never_maps, setup_dev, teardown_dev),
        cmocka_unit_test_setup_teardown(test_64bit_bar_half_writes, setup_dev, teardown_dev),
        cmocka_unit_test_setup_teardown(test_bar_over_another_bar, setup_dev, teardown_dev),
        cmocka_unit_test_setup_teardown(test_read_only_fields, setup_dev, teardown_dev),
        cmocka_unit_test_setup_teardown(test_status_w1c, setup_bare, teardown_bare),
        cmocka_unit_test_setup_teardown(test_capability_list, setup_bare, teardown_bare),
        cmocka_unit_test_setup_teardown(test_config_written_hook_reads_config, setup_dev,
                                        teardown_dev),
        cmocka_unit_test_setup_teardown(test_config_written_hook, setup_dev, teardown_dev),
        cmocka_unit_test(test_assignment_out_of_window),
        cmocka_unit_test_setup_teardown(test_bad_windows, setup_bare, teardown_bare),
        cmocka_unit_test_setup_teardown(test_slots_run_out, setup_bare, teardown_bare),
        cmocka_unit_test_setup_teardown(test_bad_bar_descriptions, setup_bare, teardown_bare),
        cmocka_unit_test_setup_teardown(test_garbage_everywhere, setup_dev, teardown_dev),
        cmocka_unit_test_setup_teardown(test_concurrent_remap, setup_dev, teardown_dev),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
