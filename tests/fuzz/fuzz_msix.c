/* The MSI-X table and PBA of a PCI function, with the fuzzer as the guest (BAR accesses of
 * any width and offset, message control writes through config space), as the device
 * (msix_notify, msix_refresh) and as the VMM's interrupt sources (an interrupt arriving on
 * a vector's eventfd, an unmask() that fails).
 *
 * Invariants, after every operation: a vector is pending only while it is not deliverable;
 * a deliverable vector that the VMM accepted has nothing left behind (no PBA bit, no
 * interrupt waiting in its eventfd); mask() only after unmask(), poll() only while not
 * unmasked; reserved table bits read 0; the PBA reads as the pending bits. */
#include <string.h>

#include "devices/bus.h"
#include "devices/msix.h"
#include "devices/pci.h"
#include "fuzz.h"
#include "support/msix_function.h"
#include "support/pci_guest.h"

#define SLOT     1
#define MSIX_BAR 1

enum op { OP_BAR, OP_CONTROL, OP_NOTIFY, OP_INTERRUPT, OP_FAIL_UNMASK, OP_REFRESH, OP_COUNT };

struct fake_vmm {
    bool unmasked[MSIX_MAX_VECTORS];
    unsigned waiting[MSIX_MAX_VECTORS]; /* eventfd counter: interrupts that came in masked */
    bool fail_unmask[MSIX_MAX_VECTORS];
    unsigned long fires;
};

struct fixture {
    struct msix_function fn;
    struct fake_vmm vmm;
};

static int fake_unmask(void *ctx, uint16_t vector, uint64_t addr, uint32_t data)
{
    struct fake_vmm *vmm = ctx;
    (void)addr;
    (void)data;
    FUZZ_REQUIRE(vector < MSIX_MAX_VECTORS, "unmask vector %u", vector);
    vmm->unmasked[vector] = !vmm->fail_unmask[vector];
    return vmm->fail_unmask[vector] ? -ENOSPC : 0;
}

static void fake_mask(void *ctx, uint16_t vector)
{
    struct fake_vmm *vmm = ctx;
    FUZZ_REQUIRE(vector < MSIX_MAX_VECTORS && vmm->unmasked[vector],
                 "mask() of vector %u, which is not unmasked", vector);
    vmm->unmasked[vector] = false;
}

static bool fake_poll(void *ctx, uint16_t vector)
{
    struct fake_vmm *vmm = ctx;
    FUZZ_REQUIRE(vector < MSIX_MAX_VECTORS && !vmm->unmasked[vector],
                 "poll() of vector %u would steal from its irqfd", vector);
    bool waiting = vmm->waiting[vector] > 0;
    vmm->waiting[vector] = 0;
    return waiting;
}

static void fake_fire(void *ctx, uint64_t addr, uint32_t data)
{
    struct fake_vmm *vmm = ctx;
    (void)addr;
    (void)data;
    vmm->fires++;
}

static const struct msix_ops fake_ops = {
    .unmask = fake_unmask, .mask = fake_mask, .poll = fake_poll, .fire = fake_fire};

static void check(struct fixture *f, uint64_t bar)
{
    struct msix *msix = &f->fn.msix;
    for (uint16_t v = 0; v < msix->nvectors; v++) {
        bool deliverable = msix_is_deliverable(msix, v);
        bool pending = msix_is_pending(msix, v);
        FUZZ_REQUIRE(!(pending && deliverable), "vector %u pending while deliverable", v);
        FUZZ_REQUIRE(msix->vectors[v].active == f->vmm.unmasked[v],
                     "vector %u active %d, VMM has it unmasked %d", v, msix->vectors[v].active,
                     f->vmm.unmasked[v]);
        FUZZ_REQUIRE(!msix->vectors[v].active || deliverable, "vector %u routed while masked", v);
        if (msix->vectors[v].active)
            FUZZ_REQUIRE(!f->vmm.waiting[v], "vector %u unmasked with an interrupt left behind", v);
        uint32_t ctrl = guest_read32(&f->fn.mmio, bar + v * MSIX_ENTRY_SIZE + MSIX_ENTRY_CTRL);
        FUZZ_REQUIRE(!(ctrl & ~MSIX_ENTRY_MASKED), "vector %u control reads %#x", v, ctrl);
    }
}

/* Reading the PBA polls the eventfds of masked vectors: afterwards it must show exactly the
 * pending bits, and nothing past the last vector. Only at the end, as it changes state. */
static void check_pba(struct fixture *f, uint64_t bar)
{
    struct msix *msix = &f->fn.msix;
    for (uint32_t word = 0; word < (MSIX_MAX_VECTORS + 31) / 32; word++) {
        uint32_t bits = guest_read32(&f->fn.mmio, bar + MSIX_PBA_OFFSET + 4 * word);
        for (uint32_t bit = 0; bit < 32; bit++) {
            uint32_t v = word * 32 + bit;
            bool set = bits >> bit & 1;
            if (v >= msix->nvectors)
                FUZZ_REQUIRE(!set, "PBA bit of absent vector %u", v);
            else
                FUZZ_REQUIRE(set == msix_is_pending(msix, (uint16_t)v), "PBA bit %u", v);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct fixture f;
    struct fuzz_input in = fuzz_input_of(data, size);
    unsigned nvectors = 1 + fuzz_u8(&in) % MSIX_MAX_VECTORS;

    memset(&f, 0, sizeof(f));
    FUZZ_REQUIRE(msix_function_init(&f.fn, MSIX_BAR, nvectors, &fake_ops, &f.vmm) == 0,
                 "msix_function_init");
    uint64_t bar = f.fn.bar;
    uint32_t control = f.fn.msix.cap + MSIX_CAP_CONTROL;

    while (fuzz_more(&in)) {
        uint8_t op = fuzz_u8(&in);
        uint16_t vector = (uint16_t)(fuzz_u8(&in) % (nvectors + 1)); /* one past the end too */
        switch (op % OP_COUNT) {
        case OP_BAR: {
            struct fuzz_access a = fuzz_access_next(&in, MSIX_BAR_SIZE + 8);
            /* Aim most accesses at the table and PBA rather than the empty middle. */
            if (op & 0x80)
                a.offset %= nvectors * MSIX_ENTRY_SIZE + 8;
            else if (op & 0x40)
                a.offset = MSIX_PBA_OFFSET + a.offset % 24;
            fuzz_access_do(&f.fn.mmio, bar, &a);
            break;
        }
        case OP_CONTROL:
            pci_guest_write(&f.fn.pio, SLOT, control, 2, fuzz_u16(&in));
            break;
        case OP_NOTIFY:
            msix_notify(&f.fn.msix, vector);
            break;
        case OP_INTERRUPT:
            /* KVM delivers through the irqfd while routed; else the eventfd counts. */
            if (vector < nvectors && !f.vmm.unmasked[vector])
                f.vmm.waiting[vector]++;
            break;
        case OP_FAIL_UNMASK:
            if (vector < nvectors)
                f.vmm.fail_unmask[vector] = !f.vmm.fail_unmask[vector];
            break;
        case OP_REFRESH:
            msix_refresh(&f.fn.msix);
            break;
        }
        check(&f, bar);
    }
    check_pba(&f, bar);

    msix_function_unplug(&f.fn);
    for (unsigned v = 0; v < MSIX_MAX_VECTORS; v++)
        FUZZ_REQUIRE(!f.vmm.unmasked[v], "vector %u still unmasked after msix_destroy", v);
    msix_function_destroy(&f.fn);
    return 0;
}
