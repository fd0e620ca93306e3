/* The minimal i8042: reset, and the commands Linux's probe sends. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "devices/bus.h"
#include "devices/i8042.h"
#include "support/fake_machine.h"

#define STR_OBF 0x01
#define STR_IBF 0x02

struct fixture {
    struct bus bus;
    struct i8042 kbc;
    struct fake_machine machine;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(bus_init(&f->bus, "pio"), 0);
    struct machine_control mc = {.request_stop = fake_request_stop, .ctx = &f->machine};
    assert_int_equal(i8042_init(&f->kbc, &f->bus, &mc), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    i8042_destroy(&f->kbc);
    assert_int_equal(f->bus.count, 0);
    bus_destroy(&f->bus);
    free(f);
    return 0;
}

static uint8_t in(struct fixture *f, uint16_t port)
{
    uint8_t v = 0;
    assert_true(bus_access(&f->bus, port, &v, 1, false));
    return v;
}

static void out(struct fixture *f, uint16_t port, uint8_t v)
{
    assert_true(bus_access(&f->bus, port, &v, 1, true));
}

/* Linux's i8042_command(): wait for IBF clear, write, then wait for OBF and read. */
static uint8_t command_reply(struct fixture *f, uint8_t cmd)
{
    assert_int_equal(in(f, 0x64) & STR_IBF, 0);
    out(f, 0x64, cmd);
    assert_true(in(f, 0x64) & STR_OBF);
    uint8_t reply = in(f, 0x60);
    assert_int_equal(in(f, 0x64) & STR_OBF, 0);
    return reply;
}

static void test_idle_status(void **state)
{
    struct fixture *f = *state;
    uint8_t st = in(f, 0x64);

    /* Empty: i8042_flush() finds nothing to drain, and the controller is not 0xff. */
    assert_int_equal(st & (STR_OBF | STR_IBF), 0);
    assert_true(st & 0x04); /* system flag: POST passed */
    assert_true(st & 0x10); /* key lock off, or Linux warns */
    assert_int_equal(f->machine.calls, 0);
}

static void test_fe_requests_reset(void **state)
{
    struct fixture *f = *state;

    out(f, 0x64, 0xfe);
    assert_int_equal(f->machine.calls, 1);
    assert_int_equal(f->machine.reason, MACHINE_STOP_RESET);
    assert_int_equal(f->machine.status, 0);
    /* Linux's reboot loop tries ten times; each asks again, the VMM keeps the first. */
    out(f, 0x64, 0xfe);
    assert_int_equal(f->machine.calls, 2);
}

static void test_other_reset_paths(void **state)
{
    struct fixture *f = *state;

    /* 0xff pulses no line. */
    out(f, 0x64, 0xff);
    assert_int_equal(f->machine.calls, 0);
    /* Writing the output port with bit 0 clear holds the CPU in reset. */
    out(f, 0x64, 0xd1);
    out(f, 0x60, 0xdf);
    assert_int_equal(f->machine.calls, 0);
    assert_int_equal(command_reply(f, 0xd0) & 0x03, 0x03);
    out(f, 0x64, 0xd1);
    out(f, 0x60, 0xde);
    assert_int_equal(f->machine.calls, 1);
    assert_int_equal(f->machine.reason, MACHINE_STOP_RESET);
}

static void test_self_tests(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(command_reply(f, 0xaa), 0x55);
    assert_int_equal(command_reply(f, 0xab), 0x00);
    /* No aux port: the interface test reports a fault, loopback lacks the aux-data bit. */
    assert_int_not_equal(command_reply(f, 0xa9), 0x00);
    out(f, 0x64, 0xd3);
    out(f, 0x60, 0x5a);
    uint8_t st = in(f, 0x64);
    assert_true(st & STR_OBF);
    assert_int_equal(st & 0x20, 0);
    assert_int_equal(in(f, 0x60), 0x5a);
    assert_int_equal(f->machine.calls, 0);
}

static void test_command_byte(void **state)
{
    struct fixture *f = *state;

    /* Linux reads the CTR twice and wants the same value. */
    uint8_t ctr = command_reply(f, 0x20);
    assert_int_equal(command_reply(f, 0x20), ctr);
    assert_true(ctr & 0x04);

    /* Disable the keyboard interface and its interrupt, write it back. */
    ctr = (uint8_t)((ctr | 0x10) & ~0x01);
    out(f, 0x64, 0x60);
    out(f, 0x60, ctr);
    assert_int_equal(in(f, 0x64) & (STR_OBF | STR_IBF), 0);
    assert_int_equal(command_reply(f, 0x20), ctr);

    /* Enable/disable commands toggle the interface bits. */
    out(f, 0x64, 0xae);
    assert_int_equal(command_reply(f, 0x20) & 0x10, 0);
    out(f, 0x64, 0xad);
    assert_int_equal(command_reply(f, 0x20) & 0x10, 0x10);
    out(f, 0x64, 0xa8);
    assert_int_equal(command_reply(f, 0x20) & 0x20, 0);
    out(f, 0x64, 0xa7);
    assert_int_equal(command_reply(f, 0x20) & 0x20, 0x20);

    /* The rest of the controller RAM reads back too. */
    out(f, 0x64, 0x65);
    out(f, 0x60, 0x99);
    assert_int_equal(command_reply(f, 0x25), 0x99);
}

static void test_keyboard_bytes_are_dropped(void **state)
{
    struct fixture *f = *state;

    /* atkbd's GETID to the keyboard: no keyboard answers, nothing hangs. */
    out(f, 0x60, 0xf2);
    assert_int_equal(in(f, 0x64) & (STR_OBF | STR_IBF), 0);
    /* A command in progress is abandoned by the next command. */
    out(f, 0x64, 0x60);
    out(f, 0x64, 0x20);
    uint8_t ctr = in(f, 0x60);
    out(f, 0x60, 0x00); /* now a keyboard byte, not a CTR write */
    assert_int_equal(command_reply(f, 0x20), ctr);
    assert_int_equal(f->machine.calls, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_idle_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fe_requests_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_reset_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_self_tests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_command_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keyboard_bytes_are_dropped, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
