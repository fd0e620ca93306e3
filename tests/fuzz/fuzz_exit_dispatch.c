/* The vCPU exit dispatcher on fabricated kvm_run pages: KVM fills them, but a page whose
 * I/O exit points its data outside the mapping, or an MMIO length past the data array, must
 * end as a crash with a reason, never as an access outside the page.
 *
 * The input is the kvm_run page itself (any exit reason, port, size, count, data offset),
 * after a 16-bit extra length for the mapping. The page is allocated at exactly its size so
 * ASan sees any access past it. Invariants: a port I/O exit reaches the device exactly count
 * times, each time with data inside the page; only CONTINUE comes without a reason; the
 * reason is always terminated. */
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>

#include "devices/bus.h"
#include "fuzz.h"
#include "vmm/exit_dispatch.h"

#define PORT      0x3f8
#define PORTS     8
#define MMIO_BASE 0xd0000000ull

struct device {
    const uint8_t *page;
    size_t page_size;
    unsigned accesses;
};

static void device_io(void *owner, uint64_t offset, void *data, uint32_t size, bool is_write)
{
    struct device *d = owner;
    (void)offset;
    d->accesses++;
    const uint8_t *p = data;
    /* MMIO data lives in the page too, in run->mmio.data. */
    FUZZ_REQUIRE(
        p >= d->page && size <= d->page_size && (size_t)(p - d->page) <= d->page_size - size,
        "access of %u bytes at page offset %td (page %zu bytes)", size, p - d->page, d->page_size);
    if (!is_write)
        memset(data, 0xa5, size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_input in = fuzz_input_of(data, size);
    size_t page_size = sizeof(struct kvm_run) + fuzz_u16(&in) % 8192;
    uint8_t *page = calloc(1, page_size);
    FUZZ_REQUIRE(page, "calloc");
    size_t rest = size - in.pos;
    memcpy(page, data + in.pos, rest < page_size ? rest : page_size);
    struct kvm_run *run = (struct kvm_run *)page;

    struct bus pio, mmio;
    struct device dev = {.page = page, .page_size = page_size};
    FUZZ_REQUIRE(bus_init(&pio, "pio") == 0 && bus_init(&mmio, "mmio") == 0, "bus_init");
    FUZZ_REQUIRE(bus_register(&pio, PORT, PORTS, device_io, &dev, "dev") == 0, "register");
    FUZZ_REQUIRE(bus_register(&mmio, MMIO_BASE, 0x1000, device_io, &dev, "dev") == 0, "register");
    /* Aim most exits at the device so the accesses are checked. */
    if (run->exit_reason == KVM_EXIT_IO)
        run->io.port = PORT + run->io.port % (PORTS + 1);
    if (run->exit_reason == KVM_EXIT_MMIO)
        run->mmio.phys_addr = MMIO_BASE + run->mmio.phys_addr % 0x1001;

    struct kvm_run before;
    memcpy(&before, run, sizeof(before));
    struct exit_outcome outcome;
    memset(&outcome, 0x5a, sizeof(outcome));
    exit_dispatch(run, page_size, &pio, &mmio, &outcome);

    FUZZ_REQUIRE(memchr(outcome.reason, '\0', sizeof(outcome.reason)), "reason not terminated");
    FUZZ_REQUIRE(outcome.action == EXIT_ACTION_CONTINUE || outcome.action == EXIT_ACTION_RESET ||
                     outcome.action == EXIT_ACTION_CRASH,
                 "action %d", outcome.action);
    FUZZ_REQUIRE((outcome.action == EXIT_ACTION_CONTINUE) == (outcome.reason[0] == '\0'),
                 "action %d with reason '%s'", outcome.action, outcome.reason);
    if (before.exit_reason == KVM_EXIT_IO && outcome.action == EXIT_ACTION_CONTINUE &&
        before.io.port + before.io.size <= PORT + PORTS)
        FUZZ_REQUIRE(dev.accesses == before.io.count, "%u accesses for a count of %u", dev.accesses,
                     before.io.count);

    bus_destroy(&mmio);
    bus_destroy(&pio);
    free(page);
    return 0;
}
