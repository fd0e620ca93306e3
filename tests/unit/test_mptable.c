/* The MP table, read back the way Linux's mpparse does: by the byte layout of the
 * MultiProcessor Specification 1.4, not by the writer's own structs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/layout.h"
#include "vmm/mptable.h"

#define GPA         LAYOUT_MPTABLE
#define IOAPIC_ADDR 0xFEC00000ull
#define FILL        0xEE

/* MP spec 1.4, table 4-1 onwards: sizes and field offsets. */
#define MPF_SIZE         16
#define HEADER_SIZE      44
#define PROCESSOR_SIZE   20
#define OTHER_ENTRY_SIZE 8

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint8_t byte_sum(const uint8_t *p, size_t len)
{
    uint8_t sum = 0;
    for (size_t i = 0; i < len; i++)
        sum += p[i];
    return sum;
}

static size_t expected_size(unsigned int cpus)
{
    return MPF_SIZE + HEADER_SIZE + cpus * PROCESSOR_SIZE + (1 + 1 + 16 + 2) * OTHER_ENTRY_SIZE;
}

static void check_table(unsigned int cpus, uint64_t gpa, uint64_t ioapic_addr)
{
    uint8_t buf[4096];
    memset(buf, FILL, sizeof(buf));
    size_t used = mptable_write(buf, sizeof(buf), gpa, cpus, ioapic_addr);
    assert_int_equal(used, expected_size(cpus));
    /* Nothing written past what it says it used. */
    for (size_t i = used; i < sizeof(buf); i++)
        if (buf[i] != FILL)
            fail_msg("%u CPUs: byte %zu past the table was written", cpus, i);

    /* Floating pointer structure. */
    const uint8_t *mpf = buf;
    assert_memory_equal(mpf, "_MP_", 4);
    assert_int_equal(le32(mpf + 4), gpa + MPF_SIZE);
    assert_int_equal(mpf[8], 1); /* length in 16-byte paragraphs */
    assert_int_equal(mpf[9], 4); /* spec revision 1.4 */
    assert_int_equal(byte_sum(mpf, MPF_SIZE), 0);
    /* Feature byte 1 zero: a configuration table is present, no default config. */
    assert_int_equal(mpf[11], 0);

    /* Configuration table header, where the pointer says (relative to gpa). */
    const uint8_t *header = buf + (le32(mpf + 4) - gpa);
    assert_memory_equal(header, "PCMP", 4);
    uint16_t length = le16(header + 4);
    assert_int_equal(MPF_SIZE + length, used);
    assert_int_equal(header[6], 4);
    assert_int_equal(byte_sum(header, length), 0);
    assert_int_equal(le32(header + 36), LAYOUT_LAPIC);
    assert_int_equal(le16(header + 40), 0); /* no extended table */
    uint16_t entry_count = le16(header + 34);
    assert_int_equal(entry_count, cpus + 1 + 1 + 16 + 2);

    /* Walk the entries in order. */
    const uint8_t *entry = header + HEADER_SIZE;
    const uint8_t *end = header + length;
    unsigned int processors = 0, buses = 0, ioapics = 0, routes = 0, lints = 0;
    int isa_bus = -1;
    uint16_t routed_irqs = 0;
    uint8_t ioapic_id = 0xFF;
    for (unsigned int i = 0; i < entry_count; i++) {
        assert_true(entry < end);
        switch (entry[0]) {
        case 0:                                                     /* processor */
            assert_int_equal(entry[1], processors);                 /* APIC IDs 0..n-1, in order */
            assert_true(entry[3] & 0x01);                           /* enabled */
            assert_int_equal(!!(entry[3] & 0x02), processors == 0); /* only CPU 0 is BSP */
            assert_int_not_equal(entry[2], 0);                      /* a local APIC version */
            assert_true(le32(entry + 8) & (1u << 9)); /* the feature flags claim an APIC */
            processors++;
            entry += PROCESSOR_SIZE;
            break;
        case 1: /* bus */
            assert_memory_equal(entry + 2, "ISA   ", 6);
            isa_bus = entry[1];
            buses++;
            entry += OTHER_ENTRY_SIZE;
            break;
        case 2: /* I/O APIC */
            ioapic_id = entry[1];
            assert_true(entry[3] & 0x01);
            assert_int_equal(le32(entry + 4), (uint32_t)ioapic_addr);
            ioapics++;
            entry += OTHER_ENTRY_SIZE;
            break;
        case 3:                            /* I/O interrupt assignment */
            assert_int_equal(entry[1], 0); /* INT: vectored through the IOAPIC */
            assert_int_equal(entry[4], isa_bus);
            assert_int_equal(entry[5], entry[7]); /* ISA IRQ n on pin n */
            assert_int_equal(entry[6], ioapic_id);
            assert_true(entry[5] < 16);
            routed_irqs |= (uint16_t)(1u << entry[5]);
            routes++;
            entry += OTHER_ENTRY_SIZE;
            break;
        case 4:                               /* local interrupt assignment */
            assert_int_equal(entry[6], 0xFF); /* every local APIC */
            /* LINT0 ExtINT from the 8259, LINT1 NMI. */
            assert_int_equal(entry[1], entry[7] == 0 ? 3 : 1);
            assert_int_equal(entry[7], lints);
            lints++;
            entry += OTHER_ENTRY_SIZE;
            break;
        default:
            fail_msg("entry %u has unknown type %u", i, entry[0]);
        }
    }
    assert_ptr_equal(entry, end);
    assert_int_equal(processors, cpus);
    assert_int_equal(buses, 1);
    assert_int_equal(isa_bus, 0);
    assert_int_equal(ioapics, 1);
    assert_int_equal(ioapic_id, cpus);
    assert_int_equal(ioapic_id, mptable_ioapic_id(cpus));
    assert_int_equal(routes, 16);
    assert_int_equal(routed_irqs, 0xFFFF);
    assert_int_equal(lints, 2);
}

static void test_one_cpu(void **state)
{
    (void)state;
    check_table(1, GPA, IOAPIC_ADDR);
}

static void test_two_cpus(void **state)
{
    (void)state;
    check_table(2, GPA, IOAPIC_ADDR);
}

static void test_eight_cpus(void **state)
{
    (void)state;
    check_table(8, GPA, IOAPIC_ADDR);
}

static void test_max_cpus(void **state)
{
    (void)state;
    check_table(64, GPA, IOAPIC_ADDR);
    /* APIC ID 0xFF means "all": 254 CPUs and an IOAPIC with ID 254 is the most there is. */
    uint8_t big[8192];
    assert_int_not_equal(mptable_write(big, sizeof(big), GPA, 254, IOAPIC_ADDR), 0);
    assert_int_equal(mptable_write(big, sizeof(big), GPA, 255, IOAPIC_ADDR), 0);
}

static void test_other_addresses(void **state)
{
    (void)state;
    /* The pointer is relative to where the guest sees the buffer, not a fixed address,
     * and the IOAPIC address is the caller's. */
    check_table(2, 0x9FC00, 0xFEC01000);
}

static void test_too_small(void **state)
{
    (void)state;
    uint8_t buf[512];
    memset(buf, FILL, sizeof(buf));
    size_t need = expected_size(4);
    assert_int_equal(mptable_write(buf, need - 1, GPA, 4, IOAPIC_ADDR), 0);
    assert_int_equal(mptable_write(buf, 0, GPA, 4, IOAPIC_ADDR), 0);
    /* Refused without writing anything. */
    for (size_t i = 0; i < sizeof(buf); i++)
        assert_int_equal(buf[i], FILL);
    assert_int_equal(mptable_write(buf, need, GPA, 4, IOAPIC_ADDR), need);
    /* No CPUs is not a machine. */
    assert_int_equal(mptable_write(buf, sizeof(buf), GPA, 0, IOAPIC_ADDR), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_cpu),         cmocka_unit_test(test_two_cpus),
        cmocka_unit_test(test_eight_cpus),      cmocka_unit_test(test_max_cpus),
        cmocka_unit_test(test_other_addresses), cmocka_unit_test(test_too_small),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
