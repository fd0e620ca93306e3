/* MSI-X capability, table and PBA, with the test process as the guest and a fake VMM. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "devices/bus.h"
#include "devices/msix.h"
#include "devices/pci.h"
#include "support/msix_function.h"
#include "support/pci_guest.h"

#define SLOT 1

enum ev_kind { EV_UNMASK, EV_MASK, EV_FIRE };

struct ev {
    enum ev_kind kind;
    uint16_t vector;
    uint64_t addr;
    uint32_t data;
};

/* The VMM side: records calls and checks the ops contract. */
struct fake_vmm {
    pthread_mutex_t lock;
    struct ev evs[1024];
    size_t n;
    size_t fires;
    unsigned incoming[MSIX_MAX_VECTORS]; /* eventfd counts: interrupts that came in masked */
    bool unmasked[MSIX_MAX_VECTORS];
    int fail_unmask; /* vector whose unmask fails, or -1 */
    unsigned polls;
    bool contract_broken;
};

static void record(struct fake_vmm *vmm, struct ev e)
{
    if (vmm->n < sizeof(vmm->evs) / sizeof(vmm->evs[0]))
        vmm->evs[vmm->n++] = e;
}

static int fake_unmask(void *ctx, uint16_t vector, uint64_t addr, uint32_t data)
{
    struct fake_vmm *vmm = ctx;
    pthread_mutex_lock(&vmm->lock);
    int ret = 0;
    if (vector == vmm->fail_unmask) {
        ret = -ENOSPC;
        vmm->unmasked[vector] = false;
    } else {
        record(vmm, (struct ev){EV_UNMASK, vector, addr, data});
        vmm->unmasked[vector] = true;
    }
    pthread_mutex_unlock(&vmm->lock);
    return ret;
}

static void fake_mask(void *ctx, uint16_t vector)
{
    struct fake_vmm *vmm = ctx;
    pthread_mutex_lock(&vmm->lock);
    if (!vmm->unmasked[vector])
        vmm->contract_broken = true;
    vmm->unmasked[vector] = false;
    record(vmm, (struct ev){EV_MASK, vector, 0, 0});
    pthread_mutex_unlock(&vmm->lock);
}

static bool fake_poll(void *ctx, uint16_t vector)
{
    struct fake_vmm *vmm = ctx;
    pthread_mutex_lock(&vmm->lock);
    if (vmm->unmasked[vector])
        vmm->contract_broken = true; /* would steal from KVM's irqfd */
    vmm->polls++;
    bool pending = vmm->incoming[vector] > 0;
    vmm->incoming[vector] = 0;
    pthread_mutex_unlock(&vmm->lock);
    return pending;
}

static void fake_fire(void *ctx, uint64_t addr, uint32_t data)
{
    struct fake_vmm *vmm = ctx;
    pthread_mutex_lock(&vmm->lock);
    record(vmm, (struct ev){EV_FIRE, 0, addr, data});
    vmm->fires++;
    pthread_mutex_unlock(&vmm->lock);
}

static const struct msix_ops fake_ops = {
    .unmask = fake_unmask,
    .mask = fake_mask,
    .poll = fake_poll,
    .fire = fake_fire,
};

struct fixture {
    struct msix_function fn;
    struct fake_vmm vmm;
    unsigned nvectors;
    unsigned cap;
};

static struct fixture *fixture_new(unsigned nvectors)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    pthread_mutex_init(&f->vmm.lock, NULL);
    f->vmm.fail_unmask = -1;
    f->nvectors = nvectors;
    assert_int_equal(msix_function_init(&f->fn, 2, nvectors, &fake_ops, &f->vmm), 0);
    f->cap = pci_guest_read(&f->fn.pio, SLOT, 0x34, 1);
    return f;
}

static void fixture_free(struct fixture *f)
{
    msix_function_unplug(&f->fn);
    for (unsigned v = 0; v < MSIX_MAX_VECTORS; v++)
        assert_false(f->vmm.unmasked[v]);
    assert_false(f->vmm.contract_broken);
    msix_function_destroy(&f->fn);
    pthread_mutex_destroy(&f->vmm.lock);
    free(f);
}

static int setup(void **state)
{
    *state = fixture_new(8);
    return 0;
}

static int teardown(void **state)
{
    fixture_free(*state);
    return 0;
}

static void set_control(struct fixture *f, uint16_t ctrl)
{
    pci_guest_write(&f->fn.pio, SLOT, f->cap + 2, 2, ctrl);
}

static uint64_t entry(struct fixture *f, unsigned v, unsigned reg)
{
    return f->fn.bar + 16 * v + reg;
}

static void program(struct fixture *f, unsigned v, uint64_t addr, uint32_t data)
{
    guest_write32(&f->fn.mmio, entry(f, v, 0), (uint32_t)addr);
    guest_write32(&f->fn.mmio, entry(f, v, 4), (uint32_t)(addr >> 32));
    guest_write32(&f->fn.mmio, entry(f, v, 8), data);
}

static void set_vector_mask(struct fixture *f, unsigned v, bool masked)
{
    guest_write32(&f->fn.mmio, entry(f, v, 12), masked);
}

static uint64_t read_pba(struct fixture *f, unsigned qword)
{
    uint64_t v = 0;
    assert_true(bus_access(&f->fn.mmio, f->fn.bar + 0x800 + 8 * qword, &v, 8, false));
    return v;
}

static void assert_event(struct fixture *f, size_t i, enum ev_kind kind, unsigned vector,
                         uint64_t addr, uint32_t data)
{
    assert_true(i < f->vmm.n);
    struct ev *e = &f->vmm.evs[i];
    assert_int_equal(e->kind, kind);
    if (kind != EV_FIRE)
        assert_int_equal(e->vector, vector);
    if (kind != EV_MASK) {
        assert_int_equal(e->addr, addr);
        assert_int_equal(e->data, data);
    }
}

static void test_capability(void **state)
{
    struct fixture *f = *state;

    assert_true(pci_guest_read(&f->fn.pio, SLOT, 0x06, 2) & PCI_STATUS_CAP_LIST);
    assert_int_equal(pci_guest_read(&f->fn.pio, SLOT, f->cap, 1), 0x11);
    assert_int_equal(pci_guest_read(&f->fn.pio, SLOT, f->cap + 1, 1), 0); /* last */
    assert_int_equal(pci_guest_read(&f->fn.pio, SLOT, f->cap + 2, 2), 7); /* N - 1 */
    assert_int_equal(pci_guest_read(&f->fn.pio, SLOT, f->cap + 4, 4), 0x000 | 2);
    assert_int_equal(pci_guest_read(&f->fn.pio, SLOT, f->cap + 8, 4), 0x800 | 2);
    assert_int_equal(pci_guest_size_bar(&f->fn.pio, SLOT, 2), 0xFFFFF000);

    /* Only enable and function mask are writable. */
    set_control(f, 0xFFFF);
    assert_int_equal(pci_guest_read(&f->fn.pio, SLOT, f->cap + 2, 2), 0xC007);
    pci_guest_write(&f->fn.pio, SLOT, f->cap + 4, 4, 0xFFFFFFFF);
    pci_guest_write(&f->fn.pio, SLOT, f->cap + 8, 4, 0);
    pci_guest_write(&f->fn.pio, SLOT, f->cap, 2, 0);
    assert_int_equal(pci_guest_read(&f->fn.pio, SLOT, f->cap, 4), 0xC0070011);
    assert_int_equal(pci_guest_read(&f->fn.pio, SLOT, f->cap + 4, 4), 2);
    assert_int_equal(pci_guest_read(&f->fn.pio, SLOT, f->cap + 8, 4), 0x802);
    set_control(f, 0);
    assert_int_equal(f->vmm.n, 0);
}

static void test_table_programming(void **state)
{
    struct fixture *f = *state;

    for (unsigned v = 0; v < f->nvectors; v++) {
        assert_int_equal(guest_read32(&f->fn.mmio, entry(f, v, 0)), 0);
        assert_int_equal(guest_read32(&f->fn.mmio, entry(f, v, 4)), 0);
        assert_int_equal(guest_read32(&f->fn.mmio, entry(f, v, 8)), 0);
        assert_int_equal(guest_read32(&f->fn.mmio, entry(f, v, 12)), 1); /* masked */
    }
    program(f, 3, 0x12345678FEE01003ull, 0x4041);
    assert_int_equal(guest_read32(&f->fn.mmio, entry(f, 3, 0)), 0xFEE01000); /* dword aligned */
    assert_int_equal(guest_read32(&f->fn.mmio, entry(f, 3, 4)), 0x12345678);
    assert_int_equal(guest_read32(&f->fn.mmio, entry(f, 3, 8)), 0x4041);
    /* Reserved vector control bits read 0. */
    guest_write32(&f->fn.mmio, entry(f, 3, 12), 0xFFFFFFFE);
    assert_int_equal(guest_read32(&f->fn.mmio, entry(f, 3, 12)), 0);
    guest_write32(&f->fn.mmio, entry(f, 3, 12), 0xFFFFFFFF);
    assert_int_equal(guest_read32(&f->fn.mmio, entry(f, 3, 12)), 1);

    /* 64-bit accesses are two dwords. */
    uint64_t q = 0x00000000FEE02000ull;
    assert_true(bus_access(&f->fn.mmio, entry(f, 5, 0), &q, 8, true));
    q = 0x0000000100000055ull; /* data 0x55, vector control 1 */
    assert_true(bus_access(&f->fn.mmio, entry(f, 5, 8), &q, 8, true));
    q = 0;
    assert_true(bus_access(&f->fn.mmio, entry(f, 5, 0), &q, 8, false));
    assert_int_equal(q, 0xFEE02000ull);
    assert_true(bus_access(&f->fn.mmio, entry(f, 5, 8), &q, 8, false));
    assert_int_equal(q, 0x0000000100000055ull);
    assert_int_equal(msix_bad_accesses(&f->fn.msix), 0);
    assert_int_equal(f->vmm.n, 0); /* MSI-X is disabled: nothing reached the VMM */
}

static void test_enable_and_vector_mask(void **state)
{
    struct fixture *f = *state;

    program(f, 0, 0xFEE00000, 0x30);
    set_vector_mask(f, 0, false); /* unmasked, but MSI-X is off */
    assert_int_equal(f->vmm.n, 0);
    assert_false(msix_is_deliverable(&f->fn.msix, 0));

    set_control(f, MSIX_CONTROL_ENABLE);
    assert_true(msix_is_deliverable(&f->fn.msix, 0));
    assert_false(msix_is_deliverable(&f->fn.msix, 1));
    assert_int_equal(f->vmm.n, 1);
    assert_event(f, 0, EV_UNMASK, 0, 0xFEE00000, 0x30);

    set_vector_mask(f, 0, true);
    assert_int_equal(f->vmm.n, 2);
    assert_event(f, 1, EV_MASK, 0, 0, 0);
    set_vector_mask(f, 0, true); /* already masked: nothing */
    assert_int_equal(f->vmm.n, 2);

    program(f, 1, 0xFEE01000, 0x31);
    set_vector_mask(f, 1, false);
    assert_event(f, 2, EV_UNMASK, 1, 0xFEE01000, 0x31);
    set_vector_mask(f, 1, false); /* already unmasked, same message: nothing */
    assert_int_equal(f->vmm.n, 3);

    set_control(f, 0);
    assert_int_equal(f->vmm.n, 4);
    assert_event(f, 3, EV_MASK, 1, 0, 0);
    assert_false(f->vmm.unmasked[1]);
}

static void test_function_mask(void **state)
{
    struct fixture *f = *state;

    program(f, 2, 0xFEE00000, 0x40);
    program(f, 6, 0xFEE00000, 0x41);
    set_vector_mask(f, 2, false);
    set_vector_mask(f, 6, false);
    set_control(f, MSIX_CONTROL_ENABLE | MSIX_CONTROL_FMASK);
    assert_int_equal(f->vmm.n, 0);
    assert_false(msix_is_deliverable(&f->fn.msix, 2));

    set_control(f, MSIX_CONTROL_ENABLE);
    assert_int_equal(f->vmm.n, 2);
    assert_event(f, 0, EV_UNMASK, 2, 0xFEE00000, 0x40);
    assert_event(f, 1, EV_UNMASK, 6, 0xFEE00000, 0x41);

    set_control(f, MSIX_CONTROL_ENABLE | MSIX_CONTROL_FMASK);
    assert_int_equal(f->vmm.n, 4);
    assert_event(f, 2, EV_MASK, 2, 0, 0);
    assert_event(f, 3, EV_MASK, 6, 0, 0);

    /* Vector mask changes under the function mask reach nobody. */
    set_vector_mask(f, 2, true);
    assert_int_equal(f->vmm.n, 4);
    set_control(f, MSIX_CONTROL_ENABLE);
    assert_int_equal(f->vmm.n, 5);
    assert_event(f, 4, EV_UNMASK, 6, 0xFEE00000, 0x41);
    set_control(f, 0);
}

static void test_message_change_while_deliverable(void **state)
{
    struct fixture *f = *state;

    program(f, 4, 0xFEE00000, 0x50);
    set_control(f, MSIX_CONTROL_ENABLE);
    set_vector_mask(f, 4, false);
    assert_int_equal(f->vmm.n, 1);

    guest_write32(&f->fn.mmio, entry(f, 4, 8), 0x51);
    assert_int_equal(f->vmm.n, 2);
    assert_event(f, 1, EV_UNMASK, 4, 0xFEE00000, 0x51);
    guest_write32(&f->fn.mmio, entry(f, 4, 8), 0x51); /* same value: nothing */
    assert_int_equal(f->vmm.n, 2);

    /* A 64-bit write of the address is one update. */
    uint64_t q = 0x00000000FEE03000ull;
    bus_access(&f->fn.mmio, entry(f, 4, 0), &q, 8, true);
    assert_int_equal(f->vmm.n, 3);
    assert_event(f, 2, EV_UNMASK, 4, 0xFEE03000, 0x51);

    /* Changing a masked vector's message does not reach the VMM until unmask. */
    set_vector_mask(f, 4, true);
    guest_write32(&f->fn.mmio, entry(f, 4, 8), 0x52);
    assert_int_equal(f->vmm.n, 4);
    set_vector_mask(f, 4, false);
    assert_event(f, 4, EV_UNMASK, 4, 0xFEE03000, 0x52);
    set_control(f, 0);
}

static void test_pba_reflects_masked_interrupts(void **state)
{
    struct fixture *f = *state;

    program(f, 3, 0xFEE00000, 0x60);
    set_control(f, MSIX_CONTROL_ENABLE);
    assert_int_equal(read_pba(f, 0), 0);

    /* Two interrupts arrive at the VMM while vector 3 is masked. */
    f->vmm.incoming[3] = 2;
    unsigned polls = f->vmm.polls;
    assert_int_equal(read_pba(f, 0), 1u << 3);
    assert_true(f->vmm.polls > polls);
    assert_int_equal(f->vmm.incoming[3], 0);
    assert_true(msix_is_pending(&f->fn.msix, 3));
    uint32_t lo = 0;
    assert_true(bus_access(&f->fn.mmio, f->fn.bar + 0x800, &lo, 4, false));
    assert_int_equal(lo, 1u << 3);
    assert_int_equal(f->vmm.fires, 0);

    /* Unmask: delivered once, pending cleared, then the fast path is installed. */
    set_vector_mask(f, 3, false);
    assert_int_equal(f->vmm.n, 2);
    assert_event(f, 0, EV_FIRE, 3, 0xFEE00000, 0x60);
    assert_event(f, 1, EV_UNMASK, 3, 0xFEE00000, 0x60);
    assert_int_equal(read_pba(f, 0), 0);
    assert_false(msix_is_pending(&f->fn.msix, 3));

    /* The function mask keeps things pending the same way. */
    set_control(f, MSIX_CONTROL_ENABLE | MSIX_CONTROL_FMASK);
    f->vmm.incoming[3] = 1;
    assert_int_equal(read_pba(f, 0), 1u << 3);
    set_control(f, MSIX_CONTROL_ENABLE);
    assert_event(f, 3, EV_FIRE, 3, 0xFEE00000, 0x60);
    assert_event(f, 4, EV_UNMASK, 3, 0xFEE00000, 0x60);
    assert_int_equal(f->vmm.fires, 2);
    set_control(f, 0);
}

static void test_unmask_delivers_unread_pending(void **state)
{
    struct fixture *f = *state;

    program(f, 1, 0xFEE00000, 0x70);
    set_control(f, MSIX_CONTROL_ENABLE);
    f->vmm.incoming[1] = 1; /* the guest never looked at the PBA */
    set_vector_mask(f, 1, false);
    assert_int_equal(f->vmm.n, 2);
    assert_event(f, 0, EV_FIRE, 1, 0xFEE00000, 0x70);
    assert_event(f, 1, EV_UNMASK, 1, 0xFEE00000, 0x70);
    /* Nothing came in: a later unmask does not fire. */
    set_vector_mask(f, 1, true);
    set_vector_mask(f, 1, false);
    assert_int_equal(f->vmm.fires, 1);
    set_control(f, 0);
}

static void test_notify(void **state)
{
    struct fixture *f = *state;

    program(f, 7, 0xFEE00000, 0x77);
    /* Disabled: pending. */
    msix_notify(&f->fn.msix, 7);
    assert_int_equal(f->vmm.fires, 0);
    assert_int_equal(read_pba(f, 0), 1u << 7);
    msix_notify(&f->fn.msix, 7); /* coalesces */
    set_control(f, MSIX_CONTROL_ENABLE);
    assert_int_equal(f->vmm.fires, 0);
    set_vector_mask(f, 7, false);
    assert_int_equal(f->vmm.fires, 1);
    assert_event(f, 0, EV_FIRE, 7, 0xFEE00000, 0x77);
    assert_int_equal(read_pba(f, 0), 0);

    /* Deliverable: fired at once, never pending. */
    msix_notify(&f->fn.msix, 7);
    assert_int_equal(f->vmm.fires, 2);
    assert_int_equal(read_pba(f, 0), 0);

    /* Out of range: ignored. */
    msix_notify(&f->fn.msix, 8);
    msix_notify(&f->fn.msix, 0xFFFF);
    assert_int_equal(f->vmm.fires, 2);
    set_control(f, 0);
}

static void test_bad_accesses_ignored_and_counted(void **state)
{
    struct fixture *f = *state;
    uint8_t buf[8];
    uint64_t bad = 0;

    program(f, 0, 0xFEE00000, 0x11);
    struct {
        uint64_t offset;
        uint32_t size;
        bool write;
    } cases[] = {
        {0x0, 2, true},    {0x0, 1, false},   {0x2, 4, true},    {0x4, 8, true},
        {0x8, 2, false},   {0x7E, 2, true},   {0x80, 4, true},   {0x80, 4, false}, /* past table */
        {0x400, 4, true},  {0x7FC, 4, false}, {0x800, 4, true},  {0x800, 8, true}, /* PBA write */
        {0x800, 2, false}, {0x801, 4, false}, {0x804, 8, false}, {0x808, 4, false},
        {0xFF8, 8, false}, {0xFFC, 4, true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(buf, 0xAB, sizeof(buf));
        assert_true(bus_access(&f->fn.mmio, f->fn.bar + cases[i].offset, buf, cases[i].size,
                               cases[i].write));
        bad++;
        assert_int_equal(msix_bad_accesses(&f->fn.msix), bad);
        if (!cases[i].write) {
            for (uint32_t b = 0; b < cases[i].size; b++)
                assert_int_equal(buf[b], 0);
        }
    }
    assert_int_equal(guest_read32(&f->fn.mmio, entry(f, 0, 0)), 0xFEE00000);
    assert_int_equal(guest_read32(&f->fn.mmio, entry(f, 0, 4)), 0);
    assert_int_equal(guest_read32(&f->fn.mmio, entry(f, 0, 8)), 0x11);
    assert_int_equal(guest_read32(&f->fn.mmio, entry(f, 0, 12)), 1);
    assert_int_equal(f->vmm.n, 0);
}

static void test_unmask_failure(void **state)
{
    struct fixture *f = *state;

    f->vmm.fail_unmask = 2;
    program(f, 2, 0xFEE00000, 0x22);
    set_control(f, MSIX_CONTROL_ENABLE);
    set_vector_mask(f, 2, false);
    assert_int_equal(f->vmm.n, 0);
    assert_int_equal(atomic_load(&f->fn.msix.unmask_failures), 1);
    /* Masking again does not call mask() for a vector that never got unmasked. */
    set_vector_mask(f, 2, true);
    assert_false(f->vmm.contract_broken);
    /* It is still deliverable by fire(), and retried on the next change. */
    set_vector_mask(f, 2, false);
    msix_notify(&f->fn.msix, 2);
    assert_int_equal(f->vmm.fires, 1);
    /* Interrupts waiting at the VMM are found by a PBA read and delivered, not left pending. */
    f->vmm.incoming[2] = 1;
    assert_int_equal(read_pba(f, 0), 0);
    assert_int_equal(f->vmm.fires, 2);
    f->vmm.fail_unmask = -1;
    guest_write32(&f->fn.mmio, entry(f, 2, 8), 0x23);
    assert_true(f->vmm.unmasked[2]);
    set_control(f, 0);
}

static void test_max_vectors(void **state)
{
    (void)state;
    struct pci_device dev;
    struct msix m;
    static const struct pci_device_info info = {.vendor_id = 1};
    assert_int_equal(pci_device_init(&dev, &info, "x", NULL, NULL, NULL), 0);
    assert_int_equal(msix_init(&m, &dev, 0, 0, &fake_ops, NULL), -EINVAL);
    assert_int_equal(msix_init(&m, &dev, 0, 129, &fake_ops, NULL), -EINVAL);
    assert_int_equal(msix_init(&m, &dev, 6, 1, &fake_ops, NULL), -EINVAL);
    assert_int_equal(msix_init(&m, &dev, 0, 1, NULL, NULL), -EINVAL);
    pci_device_destroy(&dev);

    struct fixture *f = fixture_new(128);
    assert_int_equal(pci_guest_read(&f->fn.pio, SLOT, f->cap + 2, 2), 127);
    program(f, 127, 0xFEE0F000, 0x7F);
    assert_int_equal(guest_read32(&f->fn.mmio, entry(f, 127, 8)), 0x7F);
    msix_notify(&f->fn.msix, 127);
    msix_notify(&f->fn.msix, 64);
    msix_notify(&f->fn.msix, 0);
    assert_int_equal(read_pba(f, 0), 1);
    assert_int_equal(read_pba(f, 1), 1ull << 63 | 1);
    assert_int_equal(msix_bad_accesses(&f->fn.msix), 0);
    read_pba(f, 2); /* past the PBA */
    assert_int_equal(msix_bad_accesses(&f->fn.msix), 1);
    set_control(f, MSIX_CONTROL_ENABLE);
    set_vector_mask(f, 127, false);
    assert_int_equal(f->vmm.fires, 1);
    assert_event(f, 0, EV_FIRE, 127, 0xFEE0F000, 0x7F);
    set_control(f, 0);
    fixture_free(f);
}

static void test_destroy_masks_unmasked_vectors(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(4);
    program(f, 0, 0xFEE00000, 1);
    program(f, 3, 0xFEE00000, 2);
    set_control(f, MSIX_CONTROL_ENABLE);
    set_vector_mask(f, 0, false);
    set_vector_mask(f, 3, false);
    assert_true(f->vmm.unmasked[0] && f->vmm.unmasked[3]);
    fixture_free(f); /* asserts every vector is masked at the VMM again */
}

struct notifier {
    struct msix *msix;
    int count;
};

static void *notifier_main(void *arg)
{
    struct notifier *n = arg;
    for (int i = 0; i < n->count; i++)
        msix_notify(n->msix, (uint16_t)(i % 2));
    return NULL;
}

static void test_concurrent_notify_and_masking(void **state)
{
    struct fixture *f = *state;
    struct notifier n = {&f->fn.msix, 20000};
    pthread_t t;

    program(f, 0, 0xFEE00000, 0x90);
    program(f, 1, 0xFEE00000, 0x91);
    set_control(f, MSIX_CONTROL_ENABLE);
    assert_int_equal(pthread_create(&t, NULL, notifier_main, &n), 0);
    for (int i = 0; i < 5000; i++) {
        set_vector_mask(f, (unsigned)i % 2, i % 3 == 0);
        if (i % 7 == 0)
            set_control(f, i % 2 ? MSIX_CONTROL_ENABLE : MSIX_CONTROL_ENABLE | MSIX_CONTROL_FMASK);
        read_pba(f, 0);
    }
    pthread_join(t, NULL);
    set_control(f, MSIX_CONTROL_ENABLE);
    set_vector_mask(f, 0, false);
    set_vector_mask(f, 1, false);
    /* Whatever was pending has been delivered on unmask. */
    assert_int_equal(read_pba(f, 0), 0);
    assert_true(f->vmm.fires > 0);
    assert_false(f->vmm.contract_broken);
    set_control(f, 0);
}

static void test_garbage(void **state)
{
    struct fixture *f = *state;
    uint64_t seed = 42;

    for (int i = 0; i < 100000; i++) {
        uint64_t r = test_rand(&seed);
        uint64_t val = test_rand(&seed);
        static const uint32_t sizes[] = {1, 2, 4, 8};
        uint32_t size = sizes[r & 3];
        uint64_t off = (r >> 8) % MSIX_BAR_SIZE;
        if (r & 0x100000)
            off &= 0x8FC; /* mostly the table and PBA */
        if (off + size > MSIX_BAR_SIZE)
            off = MSIX_BAR_SIZE - size;
        bus_access(&f->fn.mmio, f->fn.bar + off, &val, size, (r >> 30) & 1);
        if ((r >> 40) % 16 == 0)
            set_control(f, (uint16_t)val);
        if ((r >> 44) % 64 == 0)
            msix_notify(&f->fn.msix, (uint16_t)(val % 10));
        if ((r >> 50) % 32 == 0)
            f->vmm.incoming[val % 8]++;
        if ((r >> 56) % 128 == 0)
            pci_guest_write(&f->fn.pio, SLOT, (unsigned)(val & 0xFC), 4, (uint32_t)(val >> 32));
    }
    assert_false(f->vmm.contract_broken);
    /* unmask() never fails here, so the VMM has exactly the deliverable vectors unmasked. */
    for (unsigned v = 0; v < 8; v++)
        assert_true(f->vmm.unmasked[v] == msix_is_deliverable(&f->fn.msix, (uint16_t)v));
    assert_int_equal(pci_guest_read(&f->fn.pio, SLOT, 0, 2), 0x1234);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_capability, setup, teardown),
        cmocka_unit_test_setup_teardown(test_table_programming, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enable_and_vector_mask, setup, teardown),
        cmocka_unit_test_setup_teardown(test_function_mask, setup, teardown),
        cmocka_unit_test_setup_teardown(test_message_change_while_deliverable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pba_reflects_masked_interrupts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unmask_delivers_unread_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_accesses_ignored_and_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unmask_failure, setup, teardown),
        cmocka_unit_test(test_max_vectors),
        cmocka_unit_test(test_destroy_masks_unmasked_vectors),
        cmocka_unit_test_setup_teardown(test_concurrent_notify_and_masking, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
