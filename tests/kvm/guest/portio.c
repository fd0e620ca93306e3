/* Port I/O exits. tiny.phase selects what the measured loop does, tiny.reps how often:
 *   out    one `outb` to port 0x80 per iteration: the cost of one exit to the VMM
 *   outsb  `rep outsb` of a 4 KiB page to port 0x80
 *   insb   `rep insb` of a 4 KiB page from port 0x80 (minivmm answers 0xff: checked)
 * The guest prints every number zero-padded to a fixed width, so two runs that differ only
 * in tiny.reps make the same console exits and the host can subtract their exit counts
 * (minivmm --verbose) to get the loop's own exits. */
#include "tiny.h"

#define POST_PORT 0x80
#define PAGE_SIZE 4096

static uint8_t page[PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));

int tiny_main(void)
{
    uint64_t phase = tiny_param("phase", 0); /* 0 out, 1 outsb, 2 insb */
    uint64_t reps = tiny_param("reps", 1000);
    uint64_t tsc_hz = tiny_tsc_hz();
    if (tsc_hz == 0)
        tiny_fail("the PIT (channel 2, port 0x61) did not count: no TSC calibration");

    for (unsigned i = 0; i < PAGE_SIZE; i++)
        page[i] = (uint8_t)i;
    uint64_t bad = 0;
    uint64_t start = rdtsc();
    for (uint64_t r = 0; r < reps; r++) {
        if (phase == 0) {
            outb(POST_PORT, (uint8_t)r);
        } else if (phase == 1) {
            outsb(POST_PORT, page, PAGE_SIZE);
        } else {
            page[0] = page[PAGE_SIZE - 1] = 0;
            insb(POST_PORT, page, PAGE_SIZE);
            bad += page[0] != 0xff || page[PAGE_SIZE - 1] != 0xff;
        }
    }
    uint64_t ns = tiny_ticks_to_ns(rdtsc() - start, tsc_hz);
    if (phase == 2) {
        for (unsigned i = 0; i < PAGE_SIZE; i++)
            bad += reps && page[i] != 0xff;
        if (bad)
            tiny_fail("rep insb left %lu bytes or pages that are not the port's 0xff", bad);
    }
    uint64_t items = phase == 0 ? reps : reps * PAGE_SIZE;
    tiny_printf("RESULT portio phase=%01lu reps=%010lu items=%010lu ns=%015lu tsc_khz=%010lu\n",
                phase, reps, items, ns, tsc_hz / 1000);
    return TINY_EXIT_PASS;
}
