/* The exit dispatcher fed fabricated kvm_run pages: each exit reaches the right bus with
 * the right data, or ends the VM with a reason a user can act on. */
#include <linux/kvm.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "devices/bus.h"
#include "tests/unit/support/text.h"
#include "vmm/exit_dispatch.h"

/* KVM maps kvm_run plus the PIO data page after it; I/O data sits at one page in. */
#define RUN_SIZE   (2 * 4096)
#define PIO_OFFSET 4096
#define PORT_BASE  0x3F8
#define PORT_LEN   8
#define MMIO_BASE  0xD0000000ull
#define MMIO_LEN   0x1000
#define MAX_CALLS  16

/* A device that records every access and answers reads with a running counter. */
struct call {
    uint64_t offset;
    uint32_t size;
    bool is_write;
    uint8_t data[8];
    const void *ptr;
};

struct recorder {
    struct call calls[MAX_CALLS];
    unsigned int count;
    uint8_t next_read;
};

static void recorder_io(void *owner, uint64_t offset, void *data, uint32_t size, bool is_write)
{
    struct recorder *rec = owner;
    if (rec->count == MAX_CALLS)
        fail_msg("more than %d device calls", MAX_CALLS);
    struct call *c = &rec->calls[rec->count++];
    c->offset = offset;
    c->size = size;
    c->is_write = is_write;
    c->ptr = data;
    if (!is_write)
        for (uint32_t i = 0; i < size; i++)
            ((uint8_t *)data)[i] = rec->next_read++;
    memcpy(c->data, data, size < 8 ? size : 8);
}

struct fixture {
    struct kvm_run *run;
    struct bus pio;
    struct bus mmio;
    struct recorder port_dev;
    struct recorder mmio_dev;
    struct exit_outcome outcome;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    /* Exactly RUN_SIZE, so an access past it is an AddressSanitizer report. */
    f->run = aligned_alloc(4096, RUN_SIZE);
    if (!f->run)
        return -1;
    memset(f->run, 0, RUN_SIZE);
    if (bus_init(&f->pio, "pio") || bus_init(&f->mmio, "mmio"))
        return -1;
    f->port_dev.next_read = 0xA0;
    f->mmio_dev.next_read = 0x10;
    if (bus_register(&f->pio, PORT_BASE, PORT_LEN, recorder_io, &f->port_dev, "rec") ||
        bus_register(&f->mmio, MMIO_BASE, MMIO_LEN, recorder_io, &f->mmio_dev, "rec"))
        return -1;
    /* A stale outcome, so one the dispatcher forgets to set shows. */
    f->outcome.action = EXIT_ACTION_CRASH;
    strcpy(f->outcome.reason, "stale");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    bus_destroy(&f->pio);
    bus_destroy(&f->mmio);
    free(f->run);
    free(f);
    return 0;
}

static uint8_t *pio_data(struct fixture *f)
{
    return (uint8_t *)f->run + PIO_OFFSET;
}

static void set_io(struct fixture *f, uint8_t direction, uint16_t port, uint8_t size,
                   uint32_t count)
{
    f->run->exit_reason = KVM_EXIT_IO;
    f->run->io.direction = direction;
    f->run->io.port = port;
    f->run->io.size = size;
    f->run->io.count = count;
    f->run->io.data_offset = PIO_OFFSET;
}

static void dispatch(struct fixture *f)
{
    exit_dispatch(f->run, RUN_SIZE, &f->pio, &f->mmio, &f->outcome);
}

static void expect_continue(struct fixture *f)
{
    if (f->outcome.action != EXIT_ACTION_CONTINUE)
        fail_msg("action %d (%s), expected CONTINUE", f->outcome.action, f->outcome.reason);
    assert_string_equal(f->outcome.reason, "");
}

static void test_io_out_sizes(void **state)
{
    struct fixture *f = *state;
    static const uint8_t sizes[] = {1, 2, 4};
    static const uint8_t bytes[] = {0x11, 0x22, 0x33, 0x44};
    for (size_t i = 0; i < 3; i++) {
        f->port_dev.count = 0;
        set_io(f, KVM_EXIT_IO_OUT, PORT_BASE + 3, sizes[i], 1);
        memcpy(pio_data(f), bytes, sizeof(bytes));
        dispatch(f);
        expect_continue(f);
        assert_int_equal(f->port_dev.count, 1);
        const struct call *c = &f->port_dev.calls[0];
        assert_int_equal(c->offset, 3);
        assert_int_equal(c->size, sizes[i]);
        assert_true(c->is_write);
        assert_memory_equal(c->data, bytes, sizes[i]);
        assert_ptr_equal(c->ptr, pio_data(f));
    }
    /* Nothing went to the MMIO bus. */
    assert_int_equal(f->mmio_dev.count, 0);
}

static void test_io_in_sizes(void **state)
{
    struct fixture *f = *state;
    static const uint8_t sizes[] = {1, 2, 4};
    uint8_t expected = 0xA0;
    for (size_t i = 0; i < 3; i++) {
        f->port_dev.count = 0;
        set_io(f, KVM_EXIT_IO_IN, PORT_BASE, sizes[i], 1);
        memset(pio_data(f), 0, 8);
        dispatch(f);
        expect_continue(f);
        assert_int_equal(f->port_dev.count, 1);
        assert_false(f->port_dev.calls[0].is_write);
        assert_int_equal(f->port_dev.calls[0].offset, 0);
        for (uint8_t b = 0; b < sizes[i]; b++)
            assert_int_equal(pio_data(f)[b], expected++);
        /* Not a byte more than the access size. */
        assert_int_equal(pio_data(f)[sizes[i]], 0);
    }
}

static void test_string_out(void **state)
{
    struct fixture *f = *state;
    /* rep outsw, five words: the port stays, the data pointer walks the buffer. */
    set_io(f, KVM_EXIT_IO_OUT, PORT_BASE + 1, 2, 5);
    for (uint8_t i = 0; i < 10; i++)
        pio_data(f)[i] = (uint8_t)(0x40 + i);
    dispatch(f);
    expect_continue(f);
    assert_int_equal(f->port_dev.count, 5);
    for (unsigned int i = 0; i < 5; i++) {
        const struct call *c = &f->port_dev.calls[i];
        assert_int_equal(c->offset, 1); /* the same port every time */
        assert_int_equal(c->size, 2);
        assert_true(c->is_write);
        assert_ptr_equal(c->ptr, pio_data(f) + 2 * i);
        assert_int_equal(c->data[0], 0x40 + 2 * i);
        assert_int_equal(c->data[1], 0x41 + 2 * i);
    }
}

static void test_string_in(void **state)
{
    struct fixture *f = *state;
    set_io(f, KVM_EXIT_IO_IN, PORT_BASE + 5, 2, 5);
    memset(pio_data(f), 0, 16);
    dispatch(f);
    expect_continue(f);
    assert_int_equal(f->port_dev.count, 5);
    for (unsigned int i = 0; i < 5; i++) {
        assert_int_equal(f->port_dev.calls[i].offset, 5);
        assert_ptr_equal(f->port_dev.calls[i].ptr, pio_data(f) + 2 * i);
    }
    /* Each element landed in its own slot, in order. */
    for (uint8_t i = 0; i < 10; i++)
        assert_int_equal(pio_data(f)[i], 0xA0 + i);
    assert_int_equal(pio_data(f)[10], 0);
}

static void test_unclaimed_port(void **state)
{
    struct fixture *f = *state;
    set_io(f, KVM_EXIT_IO_IN, 0x80, 4, 1);
    memset(pio_data(f), 0, 8);
    dispatch(f);
    expect_continue(f);
    assert_memory_equal(pio_data(f), "\xff\xff\xff\xff", 4);
    assert_int_equal(pio_data(f)[4], 0);
    assert_int_equal(atomic_load(&f->pio.unclaimed_reads), 1);

    /* A write nobody claims is dropped and counted; the VM goes on. */
    set_io(f, KVM_EXIT_IO_OUT, 0x80, 1, 1);
    dispatch(f);
    expect_continue(f);
    assert_int_equal(atomic_load(&f->pio.unclaimed_writes), 1);
    assert_int_equal(f->port_dev.count, 0);

    /* An access that runs off the end of the device's range is not the device's. */
    set_io(f, KVM_EXIT_IO_IN, PORT_BASE + PORT_LEN - 1, 2, 1);
    dispatch(f);
    expect_continue(f);
    assert_int_equal(f->port_dev.count, 0);
    assert_memory_equal(pio_data(f), "\xff\xff", 2);
}

static void expect_malformed(struct fixture *f)
{
    f->port_dev.count = 0;
    dispatch(f);
    assert_int_equal(f->outcome.action, EXIT_ACTION_CRASH);
    assert_contains(f->outcome.reason, "malformed");
    assert_int_equal(f->port_dev.count, 0);
}

static void test_io_malformed(void **state)
{
    struct fixture *f = *state;
    /* Data offset past the mapping. */
    set_io(f, KVM_EXIT_IO_IN, PORT_BASE, 1, 1);
    f->run->io.data_offset = RUN_SIZE + 64;
    expect_malformed(f);
    f->run->io.data_offset = UINT64_MAX;
    expect_malformed(f);

    /* No such access size. */
    set_io(f, KVM_EXIT_IO_OUT, PORT_BASE, 3, 1);
    expect_malformed(f);
    set_io(f, KVM_EXIT_IO_OUT, PORT_BASE, 8, 1);
    expect_malformed(f);
    set_io(f, KVM_EXIT_IO_OUT, PORT_BASE, 0, 1);
    expect_malformed(f);

    /* The elements run past the end, by one byte or by four billion of them. */
    set_io(f, KVM_EXIT_IO_IN, PORT_BASE, 4, 2);
    f->run->io.data_offset = RUN_SIZE - 7;
    expect_malformed(f);
    set_io(f, KVM_EXIT_IO_IN, PORT_BASE, 4, UINT32_MAX);
    expect_malformed(f);
    assert_contains(f->outcome.reason, "0x3f8");

    /* Found by tests/fuzz/fuzz_exit_dispatch.c: data over struct kvm_run itself. An IN of
     * many elements at offset 0 overwrote io.count with the bytes read, and the loop ran past
     * the end of the mapping. */
    set_io(f, KVM_EXIT_IO_IN, PORT_BASE + 7, 2, 1000);
    f->run->io.data_offset = 0;
    expect_malformed(f);
    set_io(f, KVM_EXIT_IO_IN, PORT_BASE, 1, 1);
    f->run->io.data_offset = sizeof(struct kvm_run) - 1;
    expect_malformed(f);
    set_io(f, KVM_EXIT_IO_IN, PORT_BASE, 1, 1);
    f->run->io.data_offset = sizeof(struct kvm_run);
    dispatch(f);
    expect_continue(f);
    f->port_dev.count = 0;

    /* Ending exactly at the end of the mapping is fine. */
    set_io(f, KVM_EXIT_IO_IN, PORT_BASE, 4, 2);
    f->run->io.data_offset = RUN_SIZE - 8;
    dispatch(f);
    expect_continue(f);
    assert_int_equal(f->port_dev.count, 2);
}

static void test_mmio(void **state)
{
    struct fixture *f = *state;
    f->run->exit_reason = KVM_EXIT_MMIO;
    f->run->mmio.phys_addr = MMIO_BASE + 0x10;
    f->run->mmio.len = 4;
    f->run->mmio.is_write = 1;
    memcpy(f->run->mmio.data, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    dispatch(f);
    expect_continue(f);
    assert_int_equal(f->mmio_dev.count, 1);
    assert_int_equal(f->mmio_dev.calls[0].offset, 0x10);
    assert_int_equal(f->mmio_dev.calls[0].size, 4);
    assert_true(f->mmio_dev.calls[0].is_write);
    assert_memory_equal(f->mmio_dev.calls[0].data, "\x01\x02\x03\x04", 4);
    assert_int_equal(f->port_dev.count, 0);

    /* An 8-byte read fills all of mmio.data. */
    f->run->mmio.phys_addr = MMIO_BASE + 0xFF8;
    f->run->mmio.len = 8;
    f->run->mmio.is_write = 0;
    memset(f->run->mmio.data, 0, 8);
    dispatch(f);
    expect_continue(f);
    assert_int_equal(f->mmio_dev.count, 2);
    assert_int_equal(f->mmio_dev.calls[1].offset, 0xFF8);
    assert_false(f->mmio_dev.calls[1].is_write);
    assert_memory_equal(f->run->mmio.data, "\x10\x11\x12\x13\x14\x15\x16\x17", 8);

    /* A 2-byte read leaves the rest of data alone. */
    f->run->mmio.phys_addr = MMIO_BASE;
    f->run->mmio.len = 2;
    memset(f->run->mmio.data, 0, 8);
    dispatch(f);
    assert_memory_equal(f->run->mmio.data, "\x18\x19\x00\x00", 4);
}

static void test_mmio_unclaimed_and_malformed(void **state)
{
    struct fixture *f = *state;
    f->run->exit_reason = KVM_EXIT_MMIO;
    f->run->mmio.phys_addr = 0xFEBF0000;
    f->run->mmio.len = 4;
    f->run->mmio.is_write = 0;
    memset(f->run->mmio.data, 0, 8);
    dispatch(f);
    expect_continue(f);
    assert_memory_equal(f->run->mmio.data, "\xff\xff\xff\xff\x00", 5);
    assert_int_equal(atomic_load(&f->mmio.unclaimed_reads), 1);

    f->run->mmio.phys_addr = MMIO_BASE;
    f->run->mmio.len = 0;
    dispatch(f);
    assert_int_equal(f->outcome.action, EXIT_ACTION_CRASH);
    assert_contains(f->outcome.reason, "MMIO");
    f->run->mmio.len = 9;
    dispatch(f);
    assert_int_equal(f->outcome.action, EXIT_ACTION_CRASH);
    assert_int_equal(f->mmio_dev.count, 0);
}

static void test_shutdown_is_triple_fault(void **state)
{
    struct fixture *f = *state;
    f->run->exit_reason = KVM_EXIT_SHUTDOWN;
    dispatch(f);
    assert_int_equal(f->outcome.action, EXIT_ACTION_CRASH);
    assert_contains(f->outcome.reason, "triple fault");
}

static void test_internal_error(void **state)
{
    struct fixture *f = *state;
    f->run->exit_reason = KVM_EXIT_INTERNAL_ERROR;
    f->run->internal.suberror = KVM_INTERNAL_ERROR_EMULATION;
    dispatch(f);
    assert_int_equal(f->outcome.action, EXIT_ACTION_CRASH);
    assert_contains(f->outcome.reason, "emulation");

    /* Another suberror is still fatal, but is not called an emulation failure. */
    f->run->internal.suberror = KVM_INTERNAL_ERROR_DELIVERY_EV;
    dispatch(f);
    assert_int_equal(f->outcome.action, EXIT_ACTION_CRASH);
    assert_contains(f->outcome.reason, "internal error");
    assert_not_contains(f->outcome.reason, "emulation");
}

static void test_system_events(void **state)
{
    struct fixture *f = *state;
    f->run->exit_reason = KVM_EXIT_SYSTEM_EVENT;
    f->run->system_event.type = KVM_SYSTEM_EVENT_SHUTDOWN;
    dispatch(f);
    assert_int_equal(f->outcome.action, EXIT_ACTION_RESET);
    assert_contains(f->outcome.reason, "shutdown");

    f->run->system_event.type = KVM_SYSTEM_EVENT_RESET;
    dispatch(f);
    assert_int_equal(f->outcome.action, EXIT_ACTION_RESET);
    assert_contains(f->outcome.reason, "reset");

    f->run->system_event.type = KVM_SYSTEM_EVENT_CRASH;
    dispatch(f);
    assert_int_equal(f->outcome.action, EXIT_ACTION_CRASH);
    assert_contains(f->outcome.reason, "crash");
}

static void test_fail_entry(void **state)
{
    struct fixture *f = *state;
    f->run->exit_reason = KVM_EXIT_FAIL_ENTRY;
    f->run->fail_entry.hardware_entry_failure_reason = 0x80000021;
    f->run->fail_entry.cpu = 1;
    dispatch(f);
    assert_int_equal(f->outcome.action, EXIT_ACTION_CRASH);
    assert_contains(f->outcome.reason, "entry");
    /* The hardware reason is what one looks up in the SDM. */
    assert_contains(f->outcome.reason, "0x80000021");
}

static void test_unknown_reason(void **state)
{
    struct fixture *f = *state;
    f->run->exit_reason = 0x1234;
    dispatch(f);
    assert_int_equal(f->outcome.action, EXIT_ACTION_CRASH);
    assert_contains(f->outcome.reason, "4660"); /* 0x1234: names the exit */

    /* Exits minivmm never enables are unknown too, not silently continued. */
    f->run->exit_reason = KVM_EXIT_DEBUG;
    dispatch(f);
    assert_int_equal(f->outcome.action, EXIT_ACTION_CRASH);
}

static void test_intr_continues(void **state)
{
    struct fixture *f = *state;
    /* A signal kicked the vCPU out of KVM_RUN: nothing to do but go on. */
    f->run->exit_reason = KVM_EXIT_INTR;
    dispatch(f);
    expect_continue(f);
    assert_int_equal(f->port_dev.count + f->mmio_dev.count, 0);
    f->run->exit_reason = KVM_EXIT_HLT;
    strcpy(f->outcome.reason, "stale");
    dispatch(f);
    expect_continue(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_io_out_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_io_in_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_string_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_string_in, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unclaimed_port, setup, teardown),
        cmocka_unit_test_setup_teardown(test_io_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mmio, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mmio_unclaimed_and_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_is_triple_fault, setup, teardown),
        cmocka_unit_test_setup_teardown(test_internal_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_system_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fail_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_reason, setup, teardown),
        cmocka_unit_test_setup_teardown(test_intr_continues, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
