/* The CMOS RTC: a pinned clock shows up in BCD, status registers, and the RAM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#include "devices/bus.h"
#include "devices/cmos.h"
#include "devices/legacy_ports.h"

struct fixture {
    struct bus bus;
    struct cmos cmos;
    time_t now;
};

static time_t pinned_clock(void *ctx)
{
    struct fixture *f = ctx;
    return f->now;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    /* 2024-02-29 23:59:58 UTC, a Thursday. */
    f->now = 1709251198;
    assert_int_equal(bus_init(&f->bus, "pio"), 0);
    assert_int_equal(cmos_init(&f->cmos, &f->bus, pinned_clock, f), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    cmos_destroy(&f->cmos);
    assert_int_equal(f->bus.count, 0);
    bus_destroy(&f->bus);
    free(f);
    return 0;
}

/* CMOS_READ: index with NMI mask bit as Linux may set it, then data. */
static uint8_t cmos_get(struct fixture *f, uint8_t reg)
{
    uint8_t idx = reg | 0x80;
    uint8_t v = 0;
    assert_true(bus_access(&f->bus, 0x70, &idx, 1, true));
    assert_true(bus_access(&f->bus, 0x71, &v, 1, false));
    return v;
}

static void cmos_set(struct fixture *f, uint8_t reg, uint8_t v)
{
    assert_true(bus_access(&f->bus, 0x70, &reg, 1, true));
    assert_true(bus_access(&f->bus, 0x71, &v, 1, true));
}

static void test_time_in_bcd(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(cmos_get(f, 0x0b) & 0x06, 0x02); /* BCD, 24-hour */
    assert_int_equal(cmos_get(f, 0x00), 0x58);
    assert_int_equal(cmos_get(f, 0x02), 0x59);
    assert_int_equal(cmos_get(f, 0x04), 0x23);
    assert_int_equal(cmos_get(f, 0x06), 0x05); /* Thursday; Sunday is 1 */
    assert_int_equal(cmos_get(f, 0x07), 0x29);
    assert_int_equal(cmos_get(f, 0x08), 0x02);
    assert_int_equal(cmos_get(f, 0x09), 0x24);
    assert_int_equal(cmos_get(f, 0x32), 0x20);

    /* The registers follow the clock: two seconds on it is 1 March. */
    f->now += 2;
    assert_int_equal(cmos_get(f, 0x00), 0x00);
    assert_int_equal(cmos_get(f, 0x02), 0x00);
    assert_int_equal(cmos_get(f, 0x04), 0x00);
    assert_int_equal(cmos_get(f, 0x06), 0x06);
    assert_int_equal(cmos_get(f, 0x07), 0x01);
    assert_int_equal(cmos_get(f, 0x08), 0x03);

    /* 1999-12-31 13:05:09 UTC, a Friday. */
    f->now = 946645509;
    assert_int_equal(cmos_get(f, 0x00), 0x09);
    assert_int_equal(cmos_get(f, 0x02), 0x05);
    assert_int_equal(cmos_get(f, 0x04), 0x13);
    assert_int_equal(cmos_get(f, 0x06), 0x06);
    assert_int_equal(cmos_get(f, 0x07), 0x31);
    assert_int_equal(cmos_get(f, 0x08), 0x12);
    assert_int_equal(cmos_get(f, 0x09), 0x99);
    assert_int_equal(cmos_get(f, 0x32), 0x19);

    /* The guest cannot set the clock. */
    cmos_set(f, 0x00, 0x30);
    assert_int_equal(cmos_get(f, 0x00), 0x09);
}

static void test_status_registers(void **state)
{
    struct fixture *f = *state;

    /* Linux polls for UIP to clear: it must read clear every time. */
    for (int i = 0; i < 1000; i++)
        assert_int_equal(cmos_get(f, 0x0a) & 0x80, 0);
    assert_int_equal(cmos_get(f, 0x0a), 0x26);
    assert_int_equal(cmos_get(f, 0x0c), 0x00);
    assert_int_equal(cmos_get(f, 0x0d), 0x80);

    /* UIP cannot be written on; the other status A bits can. */
    cmos_set(f, 0x0a, 0xa6);
    assert_int_equal(cmos_get(f, 0x0a), 0x26);
    /* Status B keeps BCD and 24-hour mode whatever is written; other bits are kept. */
    cmos_set(f, 0x0b, 0x04 | 0x40);
    assert_int_equal(cmos_get(f, 0x0b), 0x42);
    cmos_set(f, 0x0c, 0xff);
    cmos_set(f, 0x0d, 0x00);
    assert_int_equal(cmos_get(f, 0x0c), 0x00);
    assert_int_equal(cmos_get(f, 0x0d), 0x80);
}

static void test_ram_reads_back(void **state)
{
    struct fixture *f = *state;

    for (int reg = 0x0e; reg < 0x80; reg++) {
        if (reg == 0x32)
            continue;
        cmos_set(f, (uint8_t)reg, (uint8_t)(reg ^ 0xa5));
    }
    for (int reg = 0x0e; reg < 0x80; reg++) {
        if (reg == 0x32)
            continue;
        assert_int_equal(cmos_get(f, (uint8_t)reg), (uint8_t)(reg ^ 0xa5));
    }
    /* The alarm registers are storage too. */
    cmos_set(f, 0x01, 0x30);
    cmos_set(f, 0x03, 0x15);
    cmos_set(f, 0x05, 0x07);
    assert_int_equal(cmos_get(f, 0x01), 0x30);
    assert_int_equal(cmos_get(f, 0x03), 0x15);
    assert_int_equal(cmos_get(f, 0x05), 0x07);
    /* The NMI mask bit selects nothing: 0x8e is register 0x0e. */
    cmos_set(f, 0x8e, 0x3c);
    assert_int_equal(cmos_get(f, 0x0e), 0x3c);
    /* The index port is write-only. */
    uint8_t v = 0;
    assert_true(bus_access(&f->bus, 0x70, &v, 1, false));
    assert_int_equal(v, 0xff);
}

static void test_default_clock_is_host_time(void **state)
{
    (void)state;
    struct bus bus;
    struct cmos cmos;

    assert_int_equal(bus_init(&bus, "pio"), 0);
    assert_int_equal(cmos_init(&cmos, &bus, NULL, NULL), 0);
    time_t before = time(NULL);
    uint8_t idx = 0x09, year = 0;
    assert_true(bus_access(&bus, 0x70, &idx, 1, true));
    assert_true(bus_access(&bus, 0x71, &year, 1, false));
    struct tm tm;
    gmtime_r(&before, &tm);
    int expect = (tm.tm_year + 1900) % 100;
    assert_int_equal(year, (expect / 10) << 4 | (expect % 10));
    cmos_destroy(&cmos);
    bus_destroy(&bus);
}

static void never_called(void *owner, uint64_t offset, void *data, uint32_t size, bool is_write)
{
    (void)owner;
    (void)offset;
    (void)data;
    (void)size;
    (void)is_write;
    fail();
}

/* legacy_ports has no test file of its own; it is small enough to check here. */
static void test_legacy_ports(void **state)
{
    (void)state;
    struct bus bus;
    struct legacy_ports ports;

    assert_int_equal(bus_init(&bus, "pio"), 0);
    assert_int_equal(legacy_ports_init(&ports, &bus), 0);
    uint8_t v = 0x12;
    assert_true(bus_access(&bus, 0x80, &v, 1, true));
    assert_true(bus_access(&bus, 0xed, &v, 1, true));
    v = 0;
    assert_true(bus_access(&bus, 0x80, &v, 1, false));
    assert_int_equal(v, 0xff);
    assert_int_equal(atomic_load(&bus.unclaimed_reads), 0);
    assert_int_equal(atomic_load(&bus.unclaimed_writes), 0);
    /* COM2 stays absent: all ones from the bus. */
    assert_false(bus_access(&bus, 0x2f8 + 1, &v, 1, false));
    assert_int_equal(v, 0xff);
    legacy_ports_destroy(&ports);
    assert_int_equal(bus.count, 0);

    /* A clash unwinds whatever was registered. */
    struct legacy_ports again;
    assert_int_equal(bus_register(&bus, 0xed, 1, never_called, NULL, "taken"), 0);
    assert_int_not_equal(legacy_ports_init(&again, &bus), 0);
    assert_int_equal(bus.count, 1);
    bus_destroy(&bus);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_time_in_bcd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_registers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ram_reads_back, setup, teardown),
        cmocka_unit_test(test_default_clock_is_host_time),
        cmocka_unit_test(test_legacy_ports),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
