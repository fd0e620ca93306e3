/* The ivshmem device with no KVM: the test process is the guest (config space, BAR0, the MSI-X
 * table), the broker client (peer table calls) and the VMM (a fake that records and checks
 * the ops), as QEMU's qtest ivshmem test does it. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/types.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices/bus.h"
#include "devices/ivshmem.h"
#include "devices/pci.h"
#include "support/fds.h"
#include "support/ivshmem_vmm.h"
#include "support/pci_guest.h"
#include "support/pci_windows.h"

#define SLOT     1
#define SHM_SIZE 0x10000ull
#define VECTORS  4

struct fixture {
    struct bus pio, mmio;
    struct pci_bus pci;
    struct ivshmem dev;
    struct fake_vmm vmm;
    void *shm;
    unsigned vectors;
    int open_fds_before;
};

static struct fixture *fixture_new(unsigned vectors)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->open_fds_before = test_open_fd_count();
    fake_vmm_init(&f->vmm);
    f->vectors = vectors;
    f->shm = aligned_alloc(4096, SHM_SIZE);
    assert_non_null(f->shm);
    assert_int_equal(bus_init(&f->pio, "pio"), 0);
    assert_int_equal(bus_init(&f->mmio, "mmio"), 0);
    assert_int_equal(pci_bus_init(&f->pci, &f->pio, &f->mmio, TEST_PCI_WINDOWS), 0);
    assert_int_equal(ivshmem_init(&f->dev, &f->pci, f->shm, SHM_SIZE, vectors, &fake_ops, &f->vmm),
                     0);
    return f;
}

static void fixture_free(struct fixture *f)
{
    ivshmem_destroy(&f->dev);
    assert_string_equal(f->vmm.broken, "");
    assert_int_equal(f->vmm.nbinds, 0);
    assert_int_equal(f->vmm.npio_binds, 0);
    assert_false(f->vmm.mem_mapped);
    assert_false(f->vmm.status_mapped);
    for (unsigned v = 0; v < IVSHMEM_MAX_VECTORS; v++)
        assert_false(f->vmm.routes[v].on);
    pci_bus_destroy(&f->pci);
    assert_int_equal(f->pio.count, 0);
    assert_int_equal(f->mmio.count, 0);
    bus_destroy(&f->pio);
    bus_destroy(&f->mmio);
    fake_vmm_destroy(&f->vmm);
    free(f->shm);
    int before = f->open_fds_before;
    free(f);
    assert_int_equal(test_open_fd_count(), before);
}

static int setup(void **state)
{
    *state = fixture_new(VECTORS);
    return 0;
}

static int teardown(void **state)
{
    fixture_free(*state);
    return 0;
}

/* Eventfds for a peer: the device gets fds[], the test keeps dups[] to see the counters. */
static void make_eventfds(int *fds, int *dups, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        fds[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        assert_true(fds[i] >= 0);
        if (dups) {
            dups[i] = dup(fds[i]);
            assert_true(dups[i] >= 0);
        }
    }
}

static void close_all(int *fds, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        close(fds[i]);
}

static uint64_t eventfd_take(int fd)
{
    uint64_t v = 0;
    if (read(fd, &v, sizeof(v)) != sizeof(v))
        return 0;
    return v;
}

static void eventfd_kick(int fd)
{
    uint64_t one = 1;
    assert_int_equal(write(fd, &one, sizeof(one)), sizeof(one));
}

static int add_peer(struct fixture *f, uint32_t id, unsigned n, int *dups)
{
    int fds[IVSHMEM_MAX_VECTORS];
    make_eventfds(fds, dups, n);
    return ivshmem_peer_add(&f->dev, id, fds, n);
}

static int set_own(struct fixture *f, uint32_t id, unsigned n, int *dups)
{
    int fds[IVSHMEM_MAX_VECTORS];
    make_eventfds(fds, dups, n);
    return ivshmem_set_own(&f->dev, id, fds, n);
}

static uint64_t bar_addr(struct fixture *f, unsigned bar)
{
    uint32_t lo = pci_guest_read(&f->pio, SLOT, 0x10 + 4 * bar, 4);
    if (lo & PCI_BAR_IO_SPACE)
        return lo & ~3u;
    uint64_t addr = lo & ~0xFu;
    if ((lo & 6) == 4)
        addr |= (uint64_t)pci_guest_read(&f->pio, SLOT, 0x14 + 4 * bar, 4) << 32;
    return addr;
}

static uint32_t reg_read(struct fixture *f, unsigned reg)
{
    return guest_read32(&f->mmio, bar_addr(f, 0) + reg);
}

static void reg_write(struct fixture *f, unsigned reg, uint32_t v)
{
    assert_true(guest_write32(&f->mmio, bar_addr(f, 0) + reg, v));
}

/* A doorbell write that reaches the VMM (the slow path). BAR0 may be unmapped in the fuzz
 * and concurrency tests, so this does not insist that the write is claimed. */
static void ring(struct fixture *f, uint32_t peer, uint32_t vector)
{
    guest_write32(&f->mmio, bar_addr(f, 0) + IVSHMEM_REG_DOORBELL, peer << 16 | vector);
}

static bool bound(struct fixture *f, uint64_t gpa, uint32_t datamatch, int *fd)
{
    ssize_t i = find_binding(f->vmm.binds, f->vmm.nbinds, gpa, datamatch);
    if (i >= 0 && fd)
        *fd = f->vmm.binds[i].fd;
    return i >= 0;
}

/* Is the device's fd a the same eventfd as the test's dup b? (All eventfds share one
 * anonymous inode, so fstat cannot tell; the counter can.) */
static bool same_file(int a, int b)
{
    eventfd_kick(a);
    uint64_t got = eventfd_take(b);
    if (!got)
        eventfd_take(a);
    return got == 1;
}

/* Every binding belongs to a present peer's vector at BAR0 + 12, and while BAR0 is mapped
 * every present peer's vector is bound. */
static void check_bindings(struct fixture *f)
{
    struct ivshmem *d = &f->dev;
    uint64_t base = 0;
    bool mapped = pci_device_bar_mapped(&d->pci, 0, &base);
    size_t expected = 0;

    for (unsigned i = 0; i < IVSHMEM_MAX_PEERS; i++) {
        if (d->peers[i].present)
            expected += d->peers[i].nfds;
    }
    assert_int_equal(f->vmm.nbinds, mapped ? expected : 0);
    for (size_t b = 0; b < f->vmm.nbinds; b++) {
        struct binding *bd = &f->vmm.binds[b];
        assert_int_equal(bd->gpa, base + IVSHMEM_REG_DOORBELL);
        bool found = false;
        for (unsigned i = 0; i < IVSHMEM_MAX_PEERS; i++) {
            struct ivshmem_peer *p = &d->peers[i];
            if (p->present && p->id == bd->datamatch >> 16 && (bd->datamatch & 0xFFFF) < p->nfds &&
                p->fds[bd->datamatch & 0xFFFF] == bd->fd)
                found = true;
        }
        assert_true(found);
    }
    assert_string_equal(f->vmm.broken, "");
}

static void msix_enable(struct fixture *f, bool on)
{
    unsigned cap = pci_guest_read(&f->pio, SLOT, 0x34, 1);
    pci_guest_write(&f->pio, SLOT, cap + 2, 2, on ? 0x8000 : 0);
}

static void msix_program(struct fixture *f, unsigned v, uint64_t addr, uint32_t data, bool masked)
{
    uint64_t e = bar_addr(f, 1) + 16 * v;
    guest_write32(&f->mmio, e, (uint32_t)addr);
    guest_write32(&f->mmio, e + 4, (uint32_t)(addr >> 32));
    guest_write32(&f->mmio, e + 8, data);
    guest_write32(&f->mmio, e + 12, masked);
}

/* ---- tests ---- */

static void test_identity(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(f->dev.pci.slot, SLOT);
    assert_int_equal(pci_guest_read(&f->pio, SLOT, 0x00, 2), 0x1af4);
    assert_int_equal(pci_guest_read(&f->pio, SLOT, 0x02, 2), 0x1110);
    assert_int_equal(pci_guest_read(&f->pio, SLOT, 0x08, 1), 1);
    assert_int_equal(pci_guest_read(&f->pio, SLOT, 0x08, 4) >> 8, 0x050000);
    assert_int_equal(pci_guest_read(&f->pio, SLOT, 0x2C, 2), 0x1af4);
    assert_int_equal(pci_guest_read(&f->pio, SLOT, 0x2E, 2), 0x1100);
    assert_int_equal(pci_guest_read(&f->pio, SLOT, 0x0E, 1), 0);
    assert_int_equal(pci_guest_read(&f->pio, SLOT, 0x3D, 1), 0); /* no INTx */
    /* The host bridge is still at 00:00.0. */
    assert_int_equal(pci_guest_read(&f->pio, 0, 0x00, 4), 0x12378086);
}

static void test_bar_layout(void **state)
{
    struct fixture *f = *state;

    /* Mapped once, by the firmware-style assignment. */
    assert_int_equal(f->vmm.map_calls, 1);
    assert_int_equal(f->vmm.unmap_calls, 0);

    assert_int_equal(pci_guest_read(&f->pio, SLOT, 0x04, 2) & 3,
                     PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
    assert_int_equal(pci_guest_size_bar(&f->pio, SLOT, 0), 0xFFFFFF00);
    assert_int_equal(pci_guest_size_bar(&f->pio, SLOT, 1), 0xFFFFF000);
    assert_int_equal(pci_guest_size_bar(&f->pio, SLOT, 2), (uint32_t) ~(SHM_SIZE - 1) | 0xC);
    assert_int_equal(pci_guest_size_bar(&f->pio, SLOT, 3), 0xFFFFFFFF);
    assert_int_equal(pci_guest_size_bar(&f->pio, SLOT, 4), 0xFFFFF000);
    assert_int_equal(pci_guest_size_bar(&f->pio, SLOT, 5), 0xFFFD); /* 16-bit decode */

    uint64_t b0 = bar_addr(f, 0), b1 = bar_addr(f, 1), b2 = bar_addr(f, 2);
    uint64_t b4 = bar_addr(f, 4), b5 = bar_addr(f, 5);
    assert_true(b4 >= 0xC0000000 && b4 < 0xFEC00000 && b4 % 4096 == 0);
    assert_true(b5 >= 0xC000 && b5 < 0x10000 && b5 % 4 == 0);
    assert_true(b0 >= 0xC0000000 && b0 < 0xFEC00000 && b0 % 256 == 0);
    assert_true(b1 >= 0xC0000000 && b1 < 0xFEC00000 && b1 % 4096 == 0);
    assert_true(b2 >= 1ull << 38 && b2 % SHM_SIZE == 0);

    /* MSI-X: the table and PBA in BAR1. */
    unsigned cap = pci_guest_read(&f->pio, SLOT, 0x34, 1);
    assert_int_equal(pci_guest_read(&f->pio, SLOT, cap, 1), 0x11);
    assert_int_equal(pci_guest_read(&f->pio, SLOT, cap + 2, 2), VECTORS - 1);
    assert_int_equal(pci_guest_read(&f->pio, SLOT, cap + 4, 4), 1);
    assert_int_equal(pci_guest_read(&f->pio, SLOT, cap + 8, 4), 0x801);
    assert_int_equal(guest_read32(&f->mmio, b1 + 12), 1); /* vector 0 starts masked */

    /* The shared memory went to the VMM at BAR2's address, not onto the MMIO bus as I/O. */
    assert_true(f->vmm.mem_mapped);
    assert_int_equal(f->vmm.mem_gpa, b2);
    assert_ptr_equal(f->vmm.mem_host, f->shm);
    assert_int_equal(f->vmm.mem_size, SHM_SIZE);
    /* Sizing BAR2 with decode on took it away between its low and high dword writes. */
    assert_int_equal(f->vmm.map_calls, 2);
    assert_int_equal(f->vmm.unmap_calls, 1);
}

static void test_no_vectors_no_msix(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(0);

    assert_int_equal(pci_guest_size_bar(&f->pio, SLOT, 0), 0xFFFFFF00);
    assert_int_equal(pci_guest_size_bar(&f->pio, SLOT, 1), 0);
    assert_int_equal(pci_guest_read(&f->pio, SLOT, 0x14, 4), 0);
    assert_int_equal(pci_guest_size_bar(&f->pio, SLOT, 2), (uint32_t) ~(SHM_SIZE - 1) | 0xC);
    assert_int_equal(pci_guest_size_bar(&f->pio, SLOT, 3), 0xFFFFFFFF);
    assert_int_equal(pci_guest_read(&f->pio, SLOT, 0x34, 1), 0);
    assert_false(pci_guest_read(&f->pio, SLOT, 0x06, 2) & PCI_STATUS_CAP_LIST);
    assert_true(f->vmm.mem_mapped);

    /* Without vectors the peers-changed vector has nothing to raise. */
    assert_int_equal(set_own(f, 0, 0, NULL), 0);
    reg_write(f, IVSHMEM_REG_PEERS_CHANGED_VECTOR, 0);
    assert_int_equal(add_peer(f, 1, 0, NULL), 0);
    assert_int_equal(f->vmm.nfires, 0);
    assert_int_equal(reg_read(f, IVSHMEM_REG_PEERS_LO), 3);
    fixture_free(f);
}

static void test_registers(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(reg_read(f, IVSHMEM_REG_IVPOSITION), 0);
    assert_int_equal(reg_read(f, IVSHMEM_REG_EXT_ID), 0x4D565031);
    assert_int_equal(reg_read(f, IVSHMEM_REG_MAX_PEERS), 64);
    assert_int_equal(reg_read(f, IVSHMEM_REG_PEERS_CHANGED_VECTOR), 0xFFFFFFFF);
    assert_int_equal(reg_read(f, IVSHMEM_REG_PEERS_LO), 0);
    assert_int_equal(reg_read(f, IVSHMEM_REG_PEERS_HI), 0);
    assert_int_equal(reg_read(f, IVSHMEM_REG_DOORBELL), 0);
    assert_int_equal(reg_read(f, IVSHMEM_REG_FEATURES),
                     IVSHMEM_FEATURE_STATUS_PAGE | IVSHMEM_FEATURE_DOORBELL_PORT);
    for (unsigned reg = 40; reg < 256; reg += 4)
        assert_int_equal(reg_read(f, reg), 0);

    assert_int_equal(set_own(f, 0x1234, 1, NULL), 0);
    assert_int_equal(reg_read(f, IVSHMEM_REG_IVPOSITION), 0x1234);

    /* Read/write registers keep what is written; read-only ones ignore writes. */
    reg_write(f, IVSHMEM_REG_INTRMASK, 0xDEADBEEF);
    reg_write(f, IVSHMEM_REG_INTRSTATUS, 0x12345678);
    reg_write(f, IVSHMEM_REG_IVPOSITION, 7);
    reg_write(f, IVSHMEM_REG_EXT_ID, 0);
    reg_write(f, IVSHMEM_REG_MAX_PEERS, 1);
    reg_write(f, IVSHMEM_REG_PEERS_LO, 0xFF);
    reg_write(f, 100, 0xFF);
    assert_int_equal(reg_read(f, IVSHMEM_REG_INTRMASK), 0xDEADBEEF);
    assert_int_equal(reg_read(f, IVSHMEM_REG_INTRSTATUS), 0x12345678);
    assert_int_equal(reg_read(f, IVSHMEM_REG_IVPOSITION), 0x1234);
    assert_int_equal(reg_read(f, IVSHMEM_REG_EXT_ID), 0x4D565031);
    assert_int_equal(reg_read(f, IVSHMEM_REG_MAX_PEERS), 64);
    assert_int_equal(reg_read(f, 100), 0);
    assert_int_equal(atomic_load(&f->dev.bad_accesses), 0);

    /* Narrow and wide reads return the covered bytes. */
    uint64_t b0 = bar_addr(f, 0);
    uint8_t b = 0;
    bus_access(&f->mmio, b0 + IVSHMEM_REG_EXT_ID + 3, &b, 1, false);
    assert_int_equal(b, 0x4D);
    uint16_t w = 0;
    bus_access(&f->mmio, b0 + IVSHMEM_REG_IVPOSITION, &w, 2, false);
    assert_int_equal(w, 0x1234);
    bus_access(&f->mmio, b0 + IVSHMEM_REG_INTRMASK + 1, &w, 2, false);
    assert_int_equal(w, 0xADBE);
    uint64_t q = 0;
    bus_access(&f->mmio, b0 + IVSHMEM_REG_INTRMASK, &q, 8, false);
    assert_int_equal(q, 0x12345678DEADBEEFull);
    bus_access(&f->mmio, b0 + 252, &q, 4, false);
    assert_int_equal((uint32_t)q, 0);

    /* Writes other than aligned dwords are ignored and counted. */
    b = 0;
    bus_access(&f->mmio, b0 + IVSHMEM_REG_INTRMASK, &b, 1, true);
    w = 0;
    bus_access(&f->mmio, b0 + IVSHMEM_REG_INTRMASK + 2, &w, 2, true);
    q = 0;
    bus_access(&f->mmio, b0 + IVSHMEM_REG_INTRMASK, &q, 8, true);
    uint32_t d = 0;
    bus_access(&f->mmio, b0 + IVSHMEM_REG_INTRMASK + 1, &d, 4, true);
    assert_int_equal(reg_read(f, IVSHMEM_REG_INTRMASK), 0xDEADBEEF);
    assert_int_equal(atomic_load(&f->dev.bad_accesses), 4);

    /* PEERS_CHANGED_VECTOR is read/write with any value. */
    reg_write(f, IVSHMEM_REG_PEERS_CHANGED_VECTOR, 3);
    assert_int_equal(reg_read(f, IVSHMEM_REG_PEERS_CHANGED_VECTOR), 3);
    reg_write(f, IVSHMEM_REG_PEERS_CHANGED_VECTOR, 0xABCDEF);
    assert_int_equal(reg_read(f, IVSHMEM_REG_PEERS_CHANGED_VECTOR), 0xABCDEF);
}

static void test_doorbell_slow_path(void **state)
{
    struct fixture *f = *state;
    int own[2], peer[3], wide[2];

    assert_int_equal(set_own(f, 3, 2, own), 0);
    assert_int_equal(add_peer(f, 7, 3, peer), 0);
    assert_int_equal(add_peer(f, 0x1207, 2, wide), 0);

    ring(f, 7, 1);
    assert_int_equal(eventfd_take(peer[1]), 1);
    assert_int_equal(eventfd_take(peer[0]), 0);
    assert_int_equal(eventfd_take(peer[2]), 0);
    ring(f, 7, 2);
    ring(f, 7, 2);
    assert_int_equal(eventfd_take(peer[2]), 2);
    /* Ringing yourself works too. */
    ring(f, 3, 0);
    assert_int_equal(eventfd_take(own[0]), 1);
    /* All 16 bits of the peer ID: 0x1207 is not 0x07. */
    ring(f, 0x1207, 1);
    assert_int_equal(eventfd_take(wide[1]), 1);
    assert_int_equal(eventfd_take(peer[1]), 0);
    assert_int_equal(atomic_load(&f->dev.doorbells_slow), 5);

    /* Absent peers and vectors are ignored and counted, not truncated. */
    uint64_t ignored = atomic_load(&f->dev.doorbells_ignored);
    ring(f, 9, 0);
    ring(f, 7, 3);
    ring(f, 7, 0x0101); /* vector 257, not 1 */
    ring(f, 0x0307, 1); /* not peer 7 */
    ring(f, 0xFFFF, 0xFFFF);
    assert_int_equal(atomic_load(&f->dev.doorbells_ignored), ignored + 5);
    for (unsigned i = 0; i < 3; i++)
        assert_int_equal(eventfd_take(peer[i]), 0);
    assert_int_equal(eventfd_take(wide[1]), 0);

    /* A removed peer no longer receives. */
    assert_int_equal(ivshmem_peer_remove(&f->dev, 7), 0);
    ring(f, 7, 1);
    assert_int_equal(eventfd_take(peer[1]), 0);
    assert_int_equal(atomic_load(&f->dev.doorbells_ignored), ignored + 6);

    close_all(own, 2);
    close_all(peer, 3);
    close_all(wide, 2);
}

static void test_presence_bitmap(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(set_own(f, 2, 1, NULL), 0);
    assert_int_equal(reg_read(f, IVSHMEM_REG_PEERS_LO), 1u << 2);
    assert_int_equal(add_peer(f, 0, 1, NULL), 0);
    assert_int_equal(add_peer(f, 31, 1, NULL), 0);
    assert_int_equal(add_peer(f, 32, 1, NULL), 0);
    assert_int_equal(add_peer(f, 63, 1, NULL), 0);
    assert_int_equal(add_peer(f, 64, 1, NULL), 0);    /* valid, but in no bitmap */
    assert_int_equal(add_peer(f, 65535, 1, NULL), 0); /* the same */
    assert_int_equal(reg_read(f, IVSHMEM_REG_PEERS_LO), 1u << 0 | 1u << 2 | 1u << 31);
    assert_int_equal(reg_read(f, IVSHMEM_REG_PEERS_HI), 1u << 0 | 1u << 31);
    assert_int_equal(ivshmem_peers_bitmap(&f->dev), 0x8000000180000005ull);
    assert_int_equal(ivshmem_peer_remove(&f->dev, 31), 0);
    assert_int_equal(ivshmem_peer_remove(&f->dev, 64), 0);
    assert_int_equal(ivshmem_peer_remove(&f->dev, 31), -ENOENT);
    assert_int_equal(reg_read(f, IVSHMEM_REG_PEERS_LO), 1u << 0 | 1u << 2);
    /* A new own ID moves the own bit. */
    assert_int_equal(set_own(f, 5, 1, NULL), 0);
    assert_int_equal(reg_read(f, IVSHMEM_REG_PEERS_LO), 1u << 0 | 1u << 5);
    assert_int_equal(reg_read(f, IVSHMEM_REG_IVPOSITION), 5);
}

/* The status page: mapped read-only at BAR4, PEERS as the registers say, the generation moving
 * with every change. */
static void test_status_page(void **state)
{
    struct fixture *f = *state;
    const volatile uint64_t *page = f->vmm.status_host;

    assert_true(f->vmm.status_mapped);
    assert_int_equal(f->vmm.status_gpa, bar_addr(f, 4));
    assert_int_equal(page[0], 0);
    uint64_t generation = page[1];

    assert_int_equal(set_own(f, 2, 1, NULL), 0);
    assert_int_equal(add_peer(f, 40, 1, NULL), 0);
    assert_int_equal(page[0], 1ull << 2 | 1ull << 40);
    assert_int_equal(page[1], generation + 2);
    /* Replacing a present peer's eventfds is no change. */
    assert_int_equal(add_peer(f, 40, 2, NULL), 0);
    assert_int_equal(page[1], generation + 2);
    assert_int_equal(ivshmem_peer_remove(&f->dev, 40), 0);
    assert_int_equal(page[0], 1ull << 2);
    assert_int_equal(page[1], generation + 3);
    for (unsigned i = 2; i < IVSHMEM_STATUS_SIZE / 8; i++)
        assert_int_equal(page[i], 0);
}

/* Where the VMM cannot map the page, FEATURES says so instead of showing a page of zeroes. */
static void test_status_page_unmapped(void **state)
{
    (void)state;
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->open_fds_before = test_open_fd_count();
    fake_vmm_init(&f->vmm);
    f->vmm.fail_status_map = -EINVAL;
    f->shm = aligned_alloc(4096, SHM_SIZE);
    assert_non_null(f->shm);
    assert_int_equal(bus_init(&f->pio, "pio"), 0);
    assert_int_equal(bus_init(&f->mmio, "mmio"), 0);
    assert_int_equal(pci_bus_init(&f->pci, &f->pio, &f->mmio, TEST_PCI_WINDOWS), 0);
    assert_int_equal(ivshmem_init(&f->dev, &f->pci, f->shm, SHM_SIZE, 1, &fake_ops, &f->vmm), 0);
    assert_false(f->vmm.status_mapped);
    assert_int_equal(reg_read(f, IVSHMEM_REG_FEATURES), IVSHMEM_FEATURE_DOORBELL_PORT);
    fixture_free(f);
}

/* The doorbell port: an ioeventfd per present peer and vector at BAR5, the same slow path as
 * BAR0 + 12 for what reaches the VMM, nothing for other widths. */
static void test_doorbell_port(void **state)
{
    struct fixture *f = *state;
    int own[1], peer[2];

    assert_int_equal(set_own(f, 1, 1, own), 0);
    assert_int_equal(add_peer(f, 6, 2, peer), 0);
    uint64_t port = bar_addr(f, 5);
    assert_int_equal(f->vmm.npio_binds, 3);
    for (size_t b = 0; b < f->vmm.npio_binds; b++)
        assert_int_equal(f->vmm.pio_binds[b].gpa, port);
    assert_true(find_binding(f->vmm.pio_binds, f->vmm.npio_binds, port, 6u << 16 | 1) >= 0);

    assert_true(guest_write32(&f->pio, port, 6u << 16 | 1));
    assert_int_equal(eventfd_take(peer[1]), 1);
    uint8_t b = 1;
    bus_access(&f->pio, port, &b, 1, true);
    uint16_t w = 6;
    bus_access(&f->pio, port + 2, &w, 2, true);
    assert_int_equal(atomic_load(&f->dev.bad_accesses), 2);
    assert_int_equal(eventfd_take(peer[0]), 0);
    assert_int_equal(guest_read32(&f->pio, port), 0);

    /* Removing the peer unbinds its port doorbells too; turning off I/O decode the rest. */
    assert_int_equal(ivshmem_peer_remove(&f->dev, 6), 0);
    assert_int_equal(f->vmm.npio_binds, 1);
    uint32_t cmd = pci_guest_read(&f->pio, SLOT, 0x04, 2);
    pci_guest_write(&f->pio, SLOT, 0x04, 2, cmd & ~PCI_COMMAND_IO);
    assert_int_equal(f->vmm.npio_binds, 0);
    assert_int_equal(f->vmm.nbinds, 1);
    pci_guest_write(&f->pio, SLOT, 0x04, 2, cmd);
    assert_int_equal(f->vmm.npio_binds, 1);
    assert_string_equal(f->vmm.broken, "");
    close_all(own, 1);
    close_all(peer, 2);
}

static void test_peers_changed_vector(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(set_own(f, 1, VECTORS, NULL), 0);
    msix_enable(f, true);
    msix_program(f, 2, 0xFEE00000, 0x42, false);
    assert_int_equal(f->vmm.nfires, 0);

    /* Off by default. */
    assert_int_equal(add_peer(f, 8, 1, NULL), 0);
    assert_int_equal(f->vmm.nfires, 0);

    reg_write(f, IVSHMEM_REG_PEERS_CHANGED_VECTOR, 2);
    assert_int_equal(add_peer(f, 9, 1, NULL), 0);
    assert_int_equal(f->vmm.nfires, 1);
    assert_int_equal(f->vmm.fires[0].addr, 0xFEE00000);
    assert_int_equal(f->vmm.fires[0].data, 0x42);
    /* Replacing a present peer's eventfds is no change of the set. */
    assert_int_equal(add_peer(f, 9, 2, NULL), 0);
    assert_int_equal(f->vmm.nfires, 1);
    /* IDs outside the bitmap count as changes too. */
    assert_int_equal(add_peer(f, 1000, 1, NULL), 0);
    assert_int_equal(f->vmm.nfires, 2);
    assert_int_equal(ivshmem_peer_remove(&f->dev, 9), 0);
    assert_int_equal(f->vmm.nfires, 3);
    /* A new own ID: one change. Same own ID again: none. */
    assert_int_equal(set_own(f, 2, VECTORS, NULL), 0);
    assert_int_equal(f->vmm.nfires, 4);
    assert_int_equal(set_own(f, 2, VECTORS, NULL), 0);
    assert_int_equal(f->vmm.nfires, 4);

    /* Masked: pending in the PBA, delivered when the guest unmasks. */
    uint64_t e2 = bar_addr(f, 1) + 2 * 16;
    guest_write32(&f->mmio, e2 + 12, 1);
    assert_int_equal(ivshmem_peer_remove(&f->dev, 8), 0);
    assert_int_equal(f->vmm.nfires, 4);
    assert_int_equal(guest_read32(&f->mmio, bar_addr(f, 1) + 0x800), 1u << 2);
    guest_write32(&f->mmio, e2 + 12, 0);
    assert_int_equal(f->vmm.nfires, 5);
    assert_int_equal(guest_read32(&f->mmio, bar_addr(f, 1) + 0x800), 0);

    /* A vector the device does not have: nothing. */
    reg_write(f, IVSHMEM_REG_PEERS_CHANGED_VECTOR, VECTORS);
    assert_int_equal(add_peer(f, 10, 1, NULL), 0);
    reg_write(f, IVSHMEM_REG_PEERS_CHANGED_VECTOR, 0xFFFFFFFF);
    assert_int_equal(add_peer(f, 11, 1, NULL), 0);
    assert_int_equal(f->vmm.nfires, 5);
    msix_enable(f, false);
}

static void test_doorbell_bindings(void **state)
{
    struct fixture *f = *state;
    uint64_t db = bar_addr(f, 0) + IVSHMEM_REG_DOORBELL;
    int own[3], peer[2], fd = -1;

    assert_int_equal(f->vmm.nbinds, 0);
    assert_int_equal(set_own(f, 2, 3, own), 0);
    assert_int_equal(add_peer(f, 0x4000, 2, peer), 0);
    assert_int_equal(f->vmm.nbinds, 5);
    for (unsigned v = 0; v < 3; v++) {
        assert_true(bound(f, db, 2u << 16 | v, &fd));
        assert_true(same_file(fd, own[v]));
    }
    for (unsigned v = 0; v < 2; v++) {
        assert_true(bound(f, db, 0x4000u << 16 | v, &fd));
        assert_true(same_file(fd, peer[v]));
    }
    check_bindings(f);

    /* Removal unbinds that peer's doorbells only and closes its fds. */
    int dev_fds[2] = {f->dev.peers[1].fds[0], f->dev.peers[1].fds[1]};
    assert_int_equal(f->dev.peers[1].id, 0x4000);
    assert_int_equal(ivshmem_peer_remove(&f->dev, 0x4000), 0);
    assert_int_equal(f->vmm.nbinds, 3);
    assert_false(bound(f, db, 0x4000u << 16, NULL));
    assert_false(test_fd_is_open(dev_fds[0]) || test_fd_is_open(dev_fds[1]));
    check_bindings(f);

    /* Re-adding a present peer replaces its bindings and closes the old fds. */
    int p1[1], p2[2];
    assert_int_equal(add_peer(f, 6, 1, p1), 0);
    int old_fd = f->dev.peers[1].fds[0];
    assert_int_equal(add_peer(f, 6, 2, p2), 0);
    assert_false(test_fd_is_open(old_fd));
    assert_true(bound(f, db, 6u << 16 | 1, &fd));
    assert_true(same_file(fd, p2[1]));
    assert_true(bound(f, db, 6u << 16, &fd));
    assert_true(same_file(fd, p2[0]));
    check_bindings(f);

    /* A binding the VMM refuses is logged and skipped: the slow path still serves it, and
     * it is never unbound. */
    f->vmm.fail_bind_for = 7u << 16 | 1;
    int p3[2];
    assert_int_equal(add_peer(f, 7, 2, p3), 0);
    assert_true(bound(f, db, 7u << 16, NULL));
    assert_false(bound(f, db, 7u << 16 | 1, NULL));
    ring(f, 7, 1);
    assert_int_equal(eventfd_take(p3[1]), 1);
    assert_int_equal(ivshmem_peer_remove(&f->dev, 7), 0);
    assert_false(bound(f, db, 7u << 16, NULL));
    f->vmm.fail_bind_for = -1;
    assert_string_equal(f->vmm.broken, "");

    close_all(own, 3);
    close_all(peer, 2);
    close_all(p1, 1);
    close_all(p2, 2);
    close_all(p3, 2);
}

static void test_rebind_when_bar0_moves(void **state)
{
    struct fixture *f = *state;
    uint64_t old = bar_addr(f, 0);

    assert_int_equal(set_own(f, 0, 2, NULL), 0);
    assert_int_equal(add_peer(f, 1, 2, NULL), 0);
    assert_int_equal(f->vmm.nbinds, 4);

    pci_guest_write(&f->pio, SLOT, 0x10, 4, 0xE0000000);
    assert_int_equal(bar_addr(f, 0), 0xE0000000);
    check_bindings(f);
    assert_true(bound(f, 0xE000000C, 1u << 16 | 1, NULL));
    assert_false(bound(f, old + 12, 1u << 16 | 1, NULL));
    assert_true(guest_read32(&f->mmio, 0xE0000000 + IVSHMEM_REG_EXT_ID) == 0x4D565031);

    /* Memory decode off: nothing bound (a write would go nowhere), nothing mapped. */
    pci_guest_write(&f->pio, SLOT, 0x04, 2, 0);
    assert_int_equal(f->vmm.nbinds, 0);
    assert_false(f->vmm.mem_mapped);
    assert_false(bus_access(&f->mmio, 0xE0000000, &(uint32_t){0}, 4, false));
    /* Peers coming and going meanwhile are bound when decode returns. */
    assert_int_equal(add_peer(f, 2, 1, NULL), 0);
    assert_int_equal(ivshmem_peer_remove(&f->dev, 1), 0);
    assert_int_equal(f->vmm.nbinds, 0);
    pci_guest_write(&f->pio, SLOT, 0x04, 2, PCI_COMMAND_MEMORY);
    assert_int_equal(f->vmm.nbinds, 3);
    check_bindings(f);
    assert_true(f->vmm.mem_mapped);

    /* Sizing BAR0 with decode on leaves the doorbells where they were. */
    assert_int_equal(pci_guest_size_bar(&f->pio, SLOT, 0), 0xFFFFFF00);
    assert_int_equal(f->vmm.nbinds, 3);
    check_bindings(f);
}

static void test_shared_memory_follows_bar2(void **state)
{
    struct fixture *f = *state;
    uint64_t old = bar_addr(f, 2);
    uint64_t target = 0x6000000000ull;

    pci_guest_write(&f->pio, SLOT, 0x18, 4, (uint32_t)target);
    assert_false(f->vmm.mem_mapped); /* low dword written: unmapped, not remapped yet */
    pci_guest_write(&f->pio, SLOT, 0x1C, 4, (uint32_t)(target >> 32));
    assert_true(f->vmm.mem_mapped);
    assert_int_equal(f->vmm.mem_gpa, target);
    assert_int_equal(f->vmm.map_calls, 2);
    assert_int_equal(f->vmm.unmap_calls, 1);
    assert_int_not_equal(old, target);

    /* The VMM refusing the slot (e.g. over RAM) leaves it unmapped, without unmap calls. */
    f->vmm.fail_map = -EEXIST;
    pci_guest_write(&f->pio, SLOT, 0x18, 4, 0);
    pci_guest_write(&f->pio, SLOT, 0x1C, 4, 0x61);
    assert_false(f->vmm.mem_mapped);
    f->vmm.fail_map = 0;
    pci_guest_write(&f->pio, SLOT, 0x04, 2, 0);
    assert_int_equal(f->vmm.unmap_calls, 2);
    pci_guest_write(&f->pio, SLOT, 0x04, 2, PCI_COMMAND_MEMORY);
    assert_true(f->vmm.mem_mapped);
    assert_int_equal(f->vmm.mem_gpa, 0x6100000000ull);
}

static void test_own_interrupts(void **state)
{
    struct fixture *f = *state;
    int own[VECTORS];

    /* Vectors unmasked before the own eventfds are known get routed when they arrive. */
    msix_enable(f, true);
    msix_program(f, 0, 0xFEE00000, 0x20, false);
    assert_int_equal(f->vmm.route_calls, 0);
    assert_int_equal(set_own(f, 4, VECTORS, own), 0);
    assert_true(f->vmm.routes[0].on);
    assert_true(same_file(f->vmm.routes[0].fd, own[0]));
    assert_int_equal(f->vmm.routes[0].data, 0x20);

    msix_program(f, 1, 0xFEE01000, 0x21, false);
    assert_true(f->vmm.routes[1].on);
    assert_true(same_file(f->vmm.routes[1].fd, own[1]));
    assert_int_equal(f->vmm.routes[1].addr, 0xFEE01000);
    /* New message while unmasked: the route is updated. */
    guest_write32(&f->mmio, bar_addr(f, 1) + 16 + 8, 0x22);
    assert_int_equal(f->vmm.routes[1].data, 0x22);

    /* Masked: the route goes; a peer's interrupt waits in the eventfd and shows in the PBA. */
    guest_write32(&f->mmio, bar_addr(f, 1) + 16 + 12, 1);
    assert_false(f->vmm.routes[1].on);
    eventfd_kick(own[1]); /* the peer rings us */
    assert_int_equal(guest_read32(&f->mmio, bar_addr(f, 1) + 0x800), 1u << 1);
    assert_int_equal(eventfd_take(own[1]), 0); /* consumed by the poll */
    assert_int_equal(f->vmm.nfires, 0);
    guest_write32(&f->mmio, bar_addr(f, 1) + 16 + 12, 0);
    assert_int_equal(f->vmm.nfires, 1);
    assert_int_equal(f->vmm.fires[0].data, 0x22);
    assert_true(f->vmm.routes[1].on);

    /* Interrupts while masked are delivered on unmask even if the PBA was never read. */
    guest_write32(&f->mmio, bar_addr(f, 1) + 12, 1);
    eventfd_kick(own[0]);
    guest_write32(&f->mmio, bar_addr(f, 1) + 12, 0);
    assert_int_equal(f->vmm.nfires, 2);
    assert_int_equal(f->vmm.fires[1].data, 0x20);

    /* New own eventfds: routes move to them before the old ones are closed. */
    int own2[2];
    assert_int_equal(set_own(f, 4, 2, own2), 0);
    assert_true(same_file(f->vmm.routes[0].fd, own2[0]));
    assert_true(same_file(f->vmm.routes[1].fd, own2[1]));
    assert_string_equal(f->vmm.broken, "");

    /* MSI-X off: all routes go. */
    msix_enable(f, false);
    for (unsigned v = 0; v < VECTORS; v++)
        assert_false(f->vmm.routes[v].on);
    close_all(own, VECTORS);
    close_all(own2, 2);
}

static void test_peer_table_errors(void **state)
{
    struct fixture *f = *state;
    int fds[3], dups[3];
    int before = test_open_fd_count();

    make_eventfds(fds, NULL, 2);
    assert_int_equal(ivshmem_peer_add(&f->dev, 65536, fds, 2), -EINVAL);
    make_eventfds(fds, NULL, 2);
    assert_int_equal(ivshmem_set_own(&f->dev, 70000, fds, 2), -EINVAL);
    make_eventfds(fds, NULL, 2);
    fds[2] = -1;
    assert_int_equal(ivshmem_peer_add(&f->dev, 1, fds, 3), -EBADF);
    assert_int_equal(ivshmem_peer_add(&f->dev, 1, NULL, 1), -EINVAL);
    int many[IVSHMEM_MAX_VECTORS + 1];
    make_eventfds(many, NULL, IVSHMEM_MAX_VECTORS + 1);
    assert_int_equal(ivshmem_peer_add(&f->dev, 1, many, IVSHMEM_MAX_VECTORS + 1), -EINVAL);
    assert_int_equal(test_open_fd_count(), before); /* all closed by the device */
    assert_int_equal(ivshmem_peers_bitmap(&f->dev), 0);

    assert_int_equal(set_own(f, 3, 1, NULL), 0);
    make_eventfds(fds, dups, 1);
    assert_int_equal(ivshmem_peer_add(&f->dev, 3, fds, 1), -EINVAL);
    assert_false(test_fd_is_open(fds[0]));
    close(dups[0]);
    assert_int_equal(ivshmem_peer_remove(&f->dev, 3), -EINVAL);
    assert_int_equal(ivshmem_peer_remove(&f->dev, 4), -ENOENT);

    /* 64 present at once, own ID included. */
    for (unsigned id = 100; id < 100 + IVSHMEM_MAX_PEERS - 1; id++)
        assert_int_equal(add_peer(f, id, 1, NULL), 0);
    int open_now = test_open_fd_count();
    assert_int_equal(add_peer(f, 5000, 2, NULL), -ENOSPC);
    assert_int_equal(set_own(f, 5000, 1, NULL), 0); /* replaces the own entry: fits */
    assert_int_equal(test_open_fd_count(), open_now);
    assert_int_equal(add_peer(f, 100, 1, NULL), 0); /* replacing fits as well */
    assert_int_equal(ivshmem_peer_remove(&f->dev, 150), 0);
    assert_int_equal(add_peer(f, 5001, 1, NULL), 0);
    check_bindings(f);
}

static void test_full_table_before_own(void **state)
{
    struct fixture *f = *state;

    for (unsigned id = 0; id < IVSHMEM_MAX_PEERS; id++)
        assert_int_equal(add_peer(f, id, 1, NULL), 0);
    assert_int_equal(ivshmem_peers_bitmap(&f->dev), ~0ull);
    int open_now = test_open_fd_count();
    assert_int_equal(set_own(f, 100, 2, NULL), -ENOSPC);
    assert_int_equal(test_open_fd_count(), open_now);
    assert_false(f->dev.has_own);
    /* Taking over a present peer's ID as the own ID fits. */
    assert_int_equal(set_own(f, 10, 2, NULL), 0);
    assert_int_equal(reg_read(f, IVSHMEM_REG_IVPOSITION), 10);
    assert_int_equal(ivshmem_peers_bitmap(&f->dev), ~0ull);
    check_bindings(f);
}

static void test_init_errors(void **state)
{
    (void)state;
    struct bus pio, mmio;
    struct pci_bus pci;
    static struct ivshmem dev;
    struct fake_vmm vmm = {0};
    static char shm[0x2000] __attribute__((aligned(4096)));
    struct ivshmem_ops no_irq = fake_ops;
    no_irq.irq_route = NULL;

    assert_int_equal(bus_init(&pio, "pio"), 0);
    assert_int_equal(bus_init(&mmio, "mmio"), 0);
    assert_int_equal(pci_bus_init(&pci, &pio, &mmio, TEST_PCI_WINDOWS), 0);
    assert_int_equal(ivshmem_init(&dev, &pci, shm, 0x1800, 1, &fake_ops, &vmm), -EINVAL);
    assert_int_equal(ivshmem_init(&dev, &pci, shm, 0x800, 1, &fake_ops, &vmm), -EINVAL);
    assert_int_equal(ivshmem_init(&dev, &pci, NULL, 0x2000, 1, &fake_ops, &vmm), -EINVAL);
    assert_int_equal(ivshmem_init(&dev, &pci, shm + 8, 0x1000, 1, &fake_ops, &vmm), -EINVAL);
    assert_int_equal(ivshmem_init(&dev, &pci, shm, 0x2000, 65, &fake_ops, &vmm), -EINVAL);
    assert_int_equal(ivshmem_init(&dev, &pci, shm, 0x2000, 1, NULL, &vmm), -EINVAL);
    assert_int_equal(ivshmem_init(&dev, &pci, shm, 0x2000, 1, &no_irq, &vmm), -EINVAL);
    /* Without vectors the irq ops are not needed. */
    fake_vmm_init(&vmm);
    assert_int_equal(ivshmem_init(&dev, &pci, shm, 0x2000, 0, &no_irq, &vmm), 0);
    ivshmem_destroy(&dev);
    /* Shared memory bigger than the 64-bit window: -ENOSPC, nothing left behind. */
    assert_int_equal(ivshmem_init(&dev, &pci, shm, 1ull << 40, 2, &fake_ops, &vmm), -ENOSPC);
    assert_int_equal(mmio.count, 0);
    assert_int_equal(pci_guest_read(&pio, 1, 0, 4), 0xFFFFFFFF);
    assert_false(vmm.mem_mapped);
    assert_string_equal(vmm.broken, "");
    fake_vmm_destroy(&vmm);
    pci_bus_destroy(&pci);
    bus_destroy(&pio);
    bus_destroy(&mmio);
}

/* The guest writes garbage everywhere while the broker adds and removes peers. */
static void test_fuzz(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(VECTORS);
    uint64_t seed = 0xC0FFEE;

    for (int i = 0; i < 60000; i++) {
        uint64_t r = test_rand(&seed);
        uint64_t val = test_rand(&seed);
        static const uint32_t sizes[] = {1, 2, 4, 8};
        uint32_t size = sizes[(r >> 4) & 3];
        switch (r % 8) {
        case 0: { /* config space, any width and offset */
            unsigned reg = (unsigned)(r >> 8) & 0xFF;
            unsigned cs = size == 8 ? 4 : size;
            if ((reg & 3) + cs > 4)
                reg &= ~3u;
            if ((r >> 16) % 4 == 0)
                val = 0xFFFFFFFF;
            pci_guest_write(&f->pio, SLOT, reg, cs, (uint32_t)val);
            break;
        }
        case 1:
        case 2: { /* BAR0, wherever it is now */
            uint64_t off = (r >> 8) % (IVSHMEM_REGS_SIZE - 7);
            if (r & 0x100)
                off &= 0x3C;
            bus_access(&f->mmio, bar_addr(f, 0) + off, &val, (r >> 20) & 1 ? size : 4,
                       (r >> 21) & 1);
            break;
        }
        case 3: { /* the MSI-X table and PBA */
            uint64_t off = (r >> 8) % (MSIX_BAR_SIZE - 7);
            if (r & 0x100)
                off &= 0x83C;
            bus_access(&f->mmio, bar_addr(f, 1) + off, &val, (r >> 20) & 1 ? size : 4,
                       (r >> 21) & 1);
            break;
        }
        case 4: /* doorbells for random, mostly nearby, peers */
            ring(f, (uint32_t)(val % 12), (uint32_t)((val >> 8) % 6));
            break;
        case 5:
            add_peer(f, (uint32_t)(val % 12), (unsigned)((val >> 8) % 5), NULL);
            break;
        case 6:
            ivshmem_peer_remove(&f->dev, (uint32_t)(val % 12));
            break;
        default:
            if ((val & 0xFF) < 8)
                set_own(f, (uint32_t)(val >> 8) % 12, (unsigned)(val >> 16) % 6, NULL);
            else if ((val & 0xFF) < 40)
                /* a peer of ours rings us on the fast path */
                for (unsigned s = 0; s < IVSHMEM_MAX_PEERS; s++) {
                    struct ivshmem_peer *p = &f->dev.peers[s];
                    if (p->present && f->dev.has_own && p->id == f->dev.own_id && p->nfds)
                        eventfd_kick(p->fds[val % p->nfds]);
                }
            break;
        }
        if (i % 500 == 0)
            check_bindings(f);
    }
    check_bindings(f);
    assert_int_equal(pci_guest_read(&f->pio, SLOT, 0, 4), 0x11101af4);
    /* Routes only ever point at the current own eventfds. */
    for (unsigned v = 0; v < VECTORS; v++) {
        if (!f->vmm.routes[v].on)
            continue;
        assert_true(f->dev.has_own);
        bool found = false;
        for (unsigned s = 0; s < IVSHMEM_MAX_PEERS; s++) {
            struct ivshmem_peer *p = &f->dev.peers[s];
            if (p->present && p->id == f->dev.own_id && v < p->nfds &&
                p->fds[v] == f->vmm.routes[v].fd)
                found = true;
        }
        assert_true(found);
    }
    fixture_free(f); /* checks that nothing is left bound, routed, mapped or open */
}

struct broker {
    struct fixture *f;
    atomic_bool stop;
    atomic_uint changes; /* peer adds and removes so far */
};

static void *broker_main(void *arg)
{
    struct broker *b = arg;
    uint64_t seed = 99;
    while (!atomic_load(&b->stop)) {
        uint64_t r = test_rand(&seed);
        if (r & 1)
            add_peer(b->f, (uint32_t)(r >> 8) % 8, (unsigned)(r >> 16) % 4, NULL);
        else
            ivshmem_peer_remove(&b->f->dev, (uint32_t)(r >> 8) % 8);
        atomic_fetch_add(&b->changes, 1);
    }
    return NULL;
}

static void test_concurrent_broker(void **state)
{
    struct fixture *f = *state;
    struct broker b = {.f = f};
    pthread_t t;

    assert_int_equal(set_own(f, 0, VECTORS, NULL), 0);
    reg_write(f, IVSHMEM_REG_PEERS_CHANGED_VECTOR, 1);
    msix_enable(f, true);
    msix_program(f, 1, 0xFEE00000, 0x31, false);
    assert_int_equal(pthread_create(&t, NULL, broker_main, &b), 0);
    /* At least 20000 rounds, and on until the broker thread has really run alongside: on a
     * loaded machine it may not be scheduled before the first 20000 are over. */
    for (int i = 0; i < 20000 || (atomic_load(&b.changes) < 2000 && i < 20000000); i++) {
        ring(f, (uint32_t)i % 8, (uint32_t)i % 4);
        if (i % 50 == 0)
            pci_guest_write(&f->pio, SLOT, 0x04, 2, i % 100 ? PCI_COMMAND_MEMORY : 0);
        if (i % 70 == 0)
            guest_write32(&f->mmio, bar_addr(f, 1) + 16 + 12, (uint32_t)(i / 70) & 1);
        guest_read32(&f->mmio, bar_addr(f, 0) + IVSHMEM_REG_PEERS_LO);
    }
    atomic_store(&b.stop, true);
    pthread_join(t, NULL);
    pci_guest_write(&f->pio, SLOT, 0x04, 2, PCI_COMMAND_MEMORY);
    check_bindings(f);
    assert_true(f->vmm.nfires > 0);
    msix_enable(f, false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_identity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bar_layout, setup, teardown),
        cmocka_unit_test(test_no_vectors_no_msix),
        cmocka_unit_test_setup_teardown(test_registers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_doorbell_slow_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_presence_bitmap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_page, setup, teardown),
        cmocka_unit_test(test_status_page_unmapped),
        cmocka_unit_test_setup_teardown(test_doorbell_port, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peers_changed_vector, setup, teardown),
        cmocka_unit_test_setup_teardown(test_doorbell_bindings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rebind_when_bar0_moves, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_memory_follows_bar2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_own_interrupts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_table_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_table_before_own, setup, teardown),
        cmocka_unit_test(test_init_errors),
        cmocka_unit_test(test_fuzz),
        cmocka_unit_test_setup_teardown(test_concurrent_broker, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
