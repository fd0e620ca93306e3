/* The debug-exit port: any write ends the machine with the value's low byte. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "devices/bus.h"
#include "devices/debug_exit.h"
#include "support/fake_machine.h"

static void expect_status(struct bus *bus, struct fake_machine *m, uint16_t port, uint32_t value,
                          uint32_t size, int status)
{
    int calls = m->calls;
    assert_true(bus_access(bus, port, &value, size, true));
    assert_int_equal(m->calls, calls + 1);
    assert_int_equal(m->reason, MACHINE_STOP_GUEST_STATUS);
    assert_int_equal(m->status, status);
}

static void test_writes_stop_with_low_byte(void **state)
{
    (void)state;
    struct bus bus;
    struct debug_exit dev;
    struct fake_machine m = {0};
    struct machine_control mc = {.request_stop = fake_request_stop, .ctx = &m};

    assert_int_equal(bus_init(&bus, "pio"), 0);
    assert_int_equal(debug_exit_init(&dev, &bus, DEBUG_EXIT_PORT, &mc), 0);

    expect_status(&bus, &m, 0xf4, 0x00, 1, 0);
    expect_status(&bus, &m, 0xf4, 0x2a, 1, 42);
    expect_status(&bus, &m, 0xf4, 0xff, 1, 255);
    expect_status(&bus, &m, 0xf4, 0x1234, 2, 0x34);
    expect_status(&bus, &m, 0xf4, 0x0100, 2, 0);
    expect_status(&bus, &m, 0xf4, 0xdeadbe01, 4, 1);
    expect_status(&bus, &m, 0xf4, 0x00000003, 4, 3);
    /* Any of the four ports. */
    expect_status(&bus, &m, 0xf5, 0x07, 1, 7);
    expect_status(&bus, &m, 0xf6, 0x0809, 2, 9);
    expect_status(&bus, &m, 0xf7, 0x11, 1, 0x11);

    /* Reads return 0 and stop nothing. */
    uint32_t v = 0xffffffff;
    assert_true(bus_access(&bus, 0xf4, &v, 4, false));
    assert_int_equal(v, 0);
    uint8_t b = 0xff;
    assert_true(bus_access(&bus, 0xf7, &b, 1, false));
    assert_int_equal(b, 0);
    assert_int_equal(m.calls, 10);

    /* Just outside the range it is not us. */
    assert_false(bus_access(&bus, 0xf8, &v, 1, true));
    assert_false(bus_access(&bus, 0xf6, &v, 4, true));
    assert_int_equal(m.calls, 10);

    debug_exit_destroy(&dev);
    assert_int_equal(bus.count, 0);
    bus_destroy(&bus);
}

static void test_other_base_and_clash(void **state)
{
    (void)state;
    struct bus bus;
    struct debug_exit a, b;
    struct fake_machine m = {0};
    struct machine_control mc = {.request_stop = fake_request_stop, .ctx = &m};

    assert_int_equal(bus_init(&bus, "pio"), 0);
    assert_int_equal(debug_exit_init(&a, &bus, 0x501, &mc), 0);
    assert_int_equal(debug_exit_init(&b, &bus, 0x502, &mc), -EEXIST);
    expect_status(&bus, &m, 0x504, 0x05, 1, 5);
    debug_exit_destroy(&a);
    bus_destroy(&bus);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writes_stop_with_low_byte),
        cmocka_unit_test(test_other_base_and_clash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
