/* The port I/O / MMIO bus: range bookkeeping and dispatch. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices/bus.h"

struct recorder {
    int calls;
    uint64_t offset;
    uint32_t size;
    bool is_write;
    uint8_t written[8];
    uint8_t fill; /* byte a read returns */
};

static void recorder_io(void *owner, uint64_t offset, void *data, uint32_t size, bool is_write)
{
    struct recorder *r = owner;
    r->calls++;
    r->offset = offset;
    r->size = size;
    r->is_write = is_write;
    if (is_write)
        memcpy(r->written, data, size);
    else
        memset(data, r->fill, size);
}

static int bus_setup(void **state)
{
    static struct bus bus;
    assert_int_equal(bus_init(&bus, "test"), 0);
    *state = &bus;
    return 0;
}

static int bus_teardown(void **state)
{
    bus_destroy(*state);
    return 0;
}

static void test_register_rejects_bad_ranges(void **state)
{
    struct bus *bus = *state;
    struct recorder r = {0};

    assert_int_equal(bus_register(bus, 0x100, 0, recorder_io, &r, "empty"), -EINVAL);
    assert_int_equal(bus_register(bus, UINT64_MAX, 2, recorder_io, &r, "wraps"), -EINVAL);
    assert_int_equal(bus_register(bus, 0x10, UINT64_MAX, recorder_io, &r, "wraps"), -EINVAL);
    assert_int_equal(bus_register(bus, 0x100, 4, NULL, &r, "no callback"), -EINVAL);
    assert_int_equal(bus->count, 0);
    /* The very last byte of the address space is a valid range. */
    assert_int_equal(bus_register(bus, UINT64_MAX, 1, recorder_io, &r, "top"), 0);
    uint8_t v = 0;
    r.fill = 0x5a;
    assert_true(bus_access(bus, UINT64_MAX, &v, 1, false));
    assert_int_equal(v, 0x5a);
    /* A range from 0 covering everything but the top byte ends exactly where it starts. */
    assert_int_equal(bus_register(bus, 0, UINT64_MAX, recorder_io, &r, "all"), 0);
}

static void test_register_rejects_overlaps(void **state)
{
    struct bus *bus = *state;
    struct recorder r = {0};

    assert_int_equal(bus_register(bus, 0x100, 0x10, recorder_io, &r, "a"), 0);
    assert_int_equal(bus_register(bus, 0x100, 0x10, recorder_io, &r, "same"), -EEXIST);
    assert_int_equal(bus_register(bus, 0x104, 2, recorder_io, &r, "inside"), -EEXIST);
    assert_int_equal(bus_register(bus, 0xf0, 0x11, recorder_io, &r, "over start"), -EEXIST);
    assert_int_equal(bus_register(bus, 0x10f, 4, recorder_io, &r, "over end"), -EEXIST);
    assert_int_equal(bus_register(bus, 0x80, 0x100, recorder_io, &r, "around"), -EEXIST);
    assert_int_equal(bus->count, 1);
    /* Touching either end is not an overlap. */
    assert_int_equal(bus_register(bus, 0xf0, 0x10, recorder_io, &r, "below"), 0);
    assert_int_equal(bus_register(bus, 0x110, 0x10, recorder_io, &r, "above"), 0);
    assert_int_equal(bus->count, 3);
    for (size_t i = 1; i < bus->count; i++)
        assert_true(bus->ranges[i - 1].base + bus->ranges[i - 1].len <= bus->ranges[i].base);
}

static void test_dispatch_to_the_right_range(void **state)
{
    struct bus *bus = *state;
    struct recorder r[40];

    /* More ranges than the initial capacity, registered out of order. */
    memset(r, 0, sizeof(r));
    for (int i = 39; i >= 0; i--) {
        r[i].fill = (uint8_t)i;
        assert_int_equal(bus_register(bus, 0x1000 + 0x10 * (uint64_t)i, 8, recorder_io, &r[i], "r"),
                         0);
    }
    for (int i = 0; i < 40; i++) {
        uint16_t v = 0;
        assert_true(bus_access(bus, 0x1000 + 0x10 * (uint64_t)i + 3, &v, 2, false));
        assert_int_equal(v, (uint16_t)(i * 0x101));
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].offset, 3);
        assert_int_equal(r[i].size, 2);
    }
    /* The gaps between ranges are unclaimed. */
    uint8_t b;
    assert_false(bus_access(bus, 0x1008, &b, 1, false));
}

static void test_callback_gets_offset_size_data(void **state)
{
    struct bus *bus = *state;
    struct recorder r = {.fill = 0xab};

    assert_int_equal(bus_register(bus, 0x3f8, 8, recorder_io, &r, "dev"), 0);
    uint32_t v = 0x11223344;
    assert_true(bus_access(bus, 0x3fc, &v, 4, true));
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.offset, 4);
    assert_int_equal(r.size, 4);
    assert_true(r.is_write);
    uint8_t le[4] = {0x44, 0x33, 0x22, 0x11};
    assert_memory_equal(r.written, le, 4);

    uint8_t out[2] = {0, 0};
    assert_true(bus_access(bus, 0x3f9, out, 2, false));
    assert_int_equal(r.calls, 2);
    assert_int_equal(r.offset, 1);
    assert_int_equal(r.size, 2);
    assert_false(r.is_write);
    assert_int_equal(out[0], 0xab);
    assert_int_equal(out[1], 0xab);
    assert_int_equal(atomic_load(&bus->unclaimed_reads), 0);
    assert_int_equal(atomic_load(&bus->unclaimed_writes), 0);
}

static void test_unclaimed_reads_all_ones_and_counts(void **state)
{
    struct bus *bus = *state;
    struct recorder r = {0};

    assert_int_equal(bus_register(bus, 0x60, 1, recorder_io, &r, "dev"), 0);
    for (uint32_t size = 1; size <= 8; size *= 2) {
        uint64_t v = 0;
        assert_false(bus_access(bus, 0x2f8, &v, size, false));
        uint64_t ones = size == 8 ? UINT64_MAX : (1ull << (8 * size)) - 1;
        assert_int_equal(v, ones);
    }
    assert_int_equal(atomic_load(&bus->unclaimed_reads), 4);

    uint32_t w = 0x12345678;
    assert_false(bus_access(bus, 0x2f8, &w, 4, true));
    assert_false(bus_access(bus, 0x61, &w, 1, true));
    assert_int_equal(w, 0x12345678); /* a dropped write leaves the buffer alone */
    assert_int_equal(atomic_load(&bus->unclaimed_writes), 2);
    assert_int_equal(atomic_load(&bus->unclaimed_reads), 4);
    assert_int_equal(r.calls, 0);
}

static void test_straddling_access_is_unclaimed(void **state)
{
    struct bus *bus = *state;
    struct recorder r = {0};

    assert_int_equal(bus_register(bus, 0x10, 4, recorder_io, &r, "dev"), 0);
    uint32_t v = 0;
    assert_false(bus_access(bus, 0x12, &v, 4, false));
    assert_int_equal(v, 0xffffffff);
    assert_false(bus_access(bus, 0x13, &v, 2, true));
    /* Starting before the range and reaching into it is unclaimed as well. */
    assert_false(bus_access(bus, 0x0f, &v, 2, false));
    assert_int_equal(r.calls, 0);
    assert_int_equal(atomic_load(&bus->unclaimed_reads), 2);
    assert_int_equal(atomic_load(&bus->unclaimed_writes), 1);
    /* Ending exactly at the end is inside. */
    assert_true(bus_access(bus, 0x12, &v, 2, false));
    assert_int_equal(r.calls, 1);
}

static void test_unregister(void **state)
{
    struct bus *bus = *state;
    struct recorder a = {.fill = 1}, b = {.fill = 2};

    assert_int_equal(bus_register(bus, 0x70, 2, recorder_io, &a, "a"), 0);
    assert_int_equal(bus_register(bus, 0x72, 2, recorder_io, &b, "b"), 0);
    assert_int_equal(bus_unregister(bus, 0x70, &b), -ENOENT); /* not b's */
    assert_int_equal(bus_unregister(bus, 0x71, &a), -ENOENT); /* not a base */
    assert_int_equal(bus_unregister(bus, 0x70, &a), 0);
    assert_int_equal(bus_unregister(bus, 0x70, &a), -ENOENT);

    uint8_t v = 0;
    assert_false(bus_access(bus, 0x70, &v, 1, false));
    assert_int_equal(v, 0xff);
    assert_true(bus_access(bus, 0x72, &v, 1, false));
    assert_int_equal(v, 2);
    /* The freed range can be claimed again. */
    assert_int_equal(bus_register(bus, 0x70, 2, recorder_io, &b, "b again"), 0);
    assert_true(bus_access(bus, 0x71, &v, 1, false));
    assert_int_equal(v, 2);
}

/* A device that maps a second range when written, as a PCI COMMAND write maps a BAR. */
struct remapper {
    struct bus *bus;
    struct recorder bar;
    int register_result;
    int unregister_result;
};

static void remapper_io(void *owner, uint64_t offset, void *data, uint32_t size, bool is_write)
{
    struct remapper *m = owner;
    (void)offset;
    (void)size;
    if (!is_write)
        return;
    if (*(uint8_t *)data == 1)
        m->register_result = bus_register(m->bus, 0xc000, 0x40, recorder_io, &m->bar, "bar");
    else
        m->unregister_result = bus_unregister(m->bus, 0xc000, &m->bar);
}

static void test_callback_may_register(void **state)
{
    struct bus *bus = *state;
    struct remapper m = {.bus = bus, .bar = {.fill = 0x77}, .register_result = 1};

    /* A deadlock would hang here: let SIGALRM end the test instead. */
    alarm(10);
    assert_int_equal(bus_register(bus, 0xcfc, 4, remapper_io, &m, "cmd"), 0);
    uint8_t one = 1;
    assert_true(bus_access(bus, 0xcfc, &one, 1, true));
    assert_int_equal(m.register_result, 0);
    uint32_t v = 0;
    assert_true(bus_access(bus, 0xc010, &v, 4, false));
    assert_int_equal(v, 0x77777777);

    uint8_t zero = 0;
    m.unregister_result = 1;
    assert_true(bus_access(bus, 0xcfc, &zero, 1, true));
    assert_int_equal(m.unregister_result, 0);
    assert_false(bus_access(bus, 0xc010, &v, 4, false));
    alarm(0);
}

/* vCPU threads keep accessing while another thread adds and removes ranges (the array is
 * reallocated and shifted under them): every access to a range that stays put reaches it,
 * and an access to a range that comes and goes either reaches it whole or is unclaimed. */
#define CHURN_READERS  3
#define CHURN_ACCESSES 100000
#define STABLE_BASE    0x8000
#define CHURN_BASE     0x1000
#define CHURN_RANGES   40 /* past the initial capacity, so the array grows and moves */

struct churn {
    struct bus *bus;
    atomic_bool stop;
    atomic_uint_fast64_t stable_calls;
    atomic_uint_fast64_t churn_hits, churn_misses, churn_torn;
    atomic_uint_fast64_t errors; /* counted, not asserted: cmocka asserts only on its thread */
};

static void counting_io(void *owner, uint64_t offset, void *data, uint32_t size, bool is_write)
{
    atomic_uint_fast64_t *calls = owner;
    (void)is_write;
    atomic_fetch_add(calls, 1);
    memset(data, (int)(0x10 + offset), size);
}

static void *churn_reader(void *arg)
{
    struct churn *c = arg;
    for (unsigned i = 0; i < CHURN_ACCESSES; i++) {
        uint32_t v = 0;
        if (!bus_access(c->bus, STABLE_BASE + 4, &v, 4, false) || v != 0x14141414)
            atomic_fetch_add(&c->errors, 1);
        uint32_t w = 0;
        if (bus_access(c->bus, CHURN_BASE + (i % CHURN_RANGES) * 0x10, &w, 4, false))
            atomic_fetch_add(&c->churn_hits, 1);
        else
            atomic_fetch_add(&c->churn_misses, 1);
        if (w != 0x10101010 && w != 0xffffffff)
            atomic_fetch_add(&c->churn_torn, 1);
    }
    return NULL;
}

static void *churn_writer(void *arg)
{
    struct churn *c = arg;
    static atomic_uint_fast64_t churn_calls;
    while (!atomic_load(&c->stop)) {
        for (unsigned i = 0; i < CHURN_RANGES; i++)
            if (bus_register(c->bus, CHURN_BASE + i * 0x10, 0x10, counting_io, &churn_calls,
                             "churn"))
                atomic_fetch_add(&c->errors, 1);
        for (unsigned i = 0; i < CHURN_RANGES; i++)
            if (bus_unregister(c->bus, CHURN_BASE + i * 0x10, &churn_calls))
                atomic_fetch_add(&c->errors, 1);
    }
    return NULL;
}

static void test_accesses_while_ranges_change(void **state)
{
    struct churn c = {.bus = *state};
    pthread_t readers[CHURN_READERS], writer;

    assert_int_equal(bus_register(c.bus, STABLE_BASE, 0x10, counting_io, &c.stable_calls, "stable"),
                     0);
    alarm(30);
    assert_int_equal(pthread_create(&writer, NULL, churn_writer, &c), 0);
    for (unsigned i = 0; i < CHURN_READERS; i++)
        assert_int_equal(pthread_create(&readers[i], NULL, churn_reader, &c), 0);
    for (unsigned i = 0; i < CHURN_READERS; i++)
        pthread_join(readers[i], NULL);
    atomic_store(&c.stop, true);
    pthread_join(writer, NULL);
    alarm(0);

    uint64_t total = (uint64_t)CHURN_READERS * CHURN_ACCESSES;
    assert_int_equal(atomic_load(&c.errors), 0);
    assert_int_equal(atomic_load(&c.stable_calls), total);
    assert_int_equal(atomic_load(&c.churn_hits) + atomic_load(&c.churn_misses), total);
    assert_int_equal(atomic_load(&c.bus->unclaimed_reads), atomic_load(&c.churn_misses));
    assert_int_equal(atomic_load(&c.churn_torn), 0);
    assert_int_equal(c.bus->count, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_register_rejects_bad_ranges, bus_setup, bus_teardown),
        cmocka_unit_test_setup_teardown(test_register_rejects_overlaps, bus_setup, bus_teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_to_the_right_range, bus_setup, bus_teardown),
        cmocka_unit_test_setup_teardown(test_callback_gets_offset_size_data, bus_setup,
                                        bus_teardown),
        cmocka_unit_test_setup_teardown(test_unclaimed_reads_all_ones_and_counts, bus_setup,
                                        bus_teardown),
        cmocka_unit_test_setup_teardown(test_straddling_access_is_unclaimed, bus_setup,
                                        bus_teardown),
        cmocka_unit_test_setup_teardown(test_unregister, bus_setup, bus_teardown),
        cmocka_unit_test_setup_teardown(test_callback_may_register, bus_setup, bus_teardown),
        cmocka_unit_test_setup_teardown(test_accesses_while_ranges_change, bus_setup, bus_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
