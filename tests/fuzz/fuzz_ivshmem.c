/* The ivshmem device: the fuzzer is the guest (BAR0 registers, the MSI-X table in BAR1,
 * config space), the broker client (set_own, peer_add, peer_remove with real eventfds) and
 * the VMM (a fake that keeps the state KVM would have).
 *
 * Invariants, after every operation: the peer-table calls return what the documented
 * rules say; the read-only registers read their values (EXT_ID, MAX_PEERS, IVPOSITION,
 * the presence bitmap of the peers the calls left present); exactly the doorbells of the
 * present peers' vectors are bound while BAR0 is mapped, and none otherwise; binds,
 * routes and memory maps come in pairs and never use a closed fd; a doorbell the device
 * sees is delivered or counted as ignored, as the peer table says. At the end every
 * eventfd handed to the device is closed. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "devices/bus.h"
#include "devices/ivshmem.h"
#include "devices/pci.h"
#include "fuzz.h"
#include "support/fds.h"
#include "support/ivshmem_vmm.h"
#include "support/pci_guest.h"
#include "support/pci_windows.h"

#define SLOT     1
#define SHM_SIZE 0x1000ull

enum op { OP_BAR0, OP_MSIX, OP_CONFIG, OP_SET_OWN, OP_PEER_ADD, OP_PEER_REMOVE, OP_COUNT };

/* What the peer table should hold. */
struct model {
    bool has_own;
    uint16_t own_id;
    unsigned count;
    uint16_t ids[IVSHMEM_MAX_PEERS];
    uint16_t nfds[IVSHMEM_MAX_PEERS];
};

static int model_find(const struct model *m, uint16_t id)
{
    for (unsigned i = 0; i < m->count; i++)
        if (m->ids[i] == id)
            return (int)i;
    return -1;
}

static void model_remove(struct model *m, uint16_t id)
{
    int i = model_find(m, id);
    if (i >= 0) {
        m->count--;
        m->ids[i] = m->ids[m->count];
        m->nfds[i] = m->nfds[m->count];
    }
}

static void model_put(struct model *m, uint16_t id, uint16_t nfds)
{
    int i = model_find(m, id);
    if (i < 0)
        i = (int)m->count++;
    m->ids[i] = id;
    m->nfds[i] = nfds;
}

#define TRACKED_FDS 8192

/* Every fd number handed to the device, once: all must be closed at the end. */
struct given_fds {
    bool seen[TRACKED_FDS];
    int list[TRACKED_FDS];
    unsigned count;
};

static void make_eventfds(int *fds, unsigned n, struct given_fds *given)
{
    for (unsigned v = 0; v < n; v++) {
        fds[v] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        FUZZ_REQUIRE(fds[v] >= 0 && fds[v] < TRACKED_FDS, "eventfd: %d %s", fds[v],
                     strerror(errno));
        if (!given->seen[fds[v]]) {
            given->seen[fds[v]] = true;
            given->list[given->count++] = fds[v];
        }
    }
}

static void check(struct ivshmem *dev, struct fake_vmm *vmm, const struct model *m,
                  struct bus *mmio)
{
    uint64_t expected_map = 0;
    size_t expected_binds = 0;
    for (unsigned i = 0; i < m->count; i++) {
        if (m->ids[i] < 64)
            expected_map |= 1ull << m->ids[i];
        expected_binds += m->nfds[i];
    }
    FUZZ_REQUIRE(ivshmem_peers_bitmap(dev) == expected_map, "bitmap %#llx, expected %#llx",
                 (unsigned long long)ivshmem_peers_bitmap(dev), (unsigned long long)expected_map);

    FUZZ_REQUIRE(!vmm->broken[0], "ops contract: %s", vmm->broken);
    FUZZ_REQUIRE(!vmm->mem_mapped || vmm->mem_size == SHM_SIZE, "memory mapped with size %#llx",
                 (unsigned long long)vmm->mem_size);
    if (vmm->status_mapped) {
        const volatile uint64_t *page = vmm->status_host;
        FUZZ_REQUIRE(page[IVSHMEM_STATUS_PEERS / 8] == expected_map, "status page PEERS %#llx",
                     (unsigned long long)page[IVSHMEM_STATUS_PEERS / 8]);
    }
    uint64_t port;
    bool port_mapped = pci_device_bar_mapped(&dev->pci, IVSHMEM_BAR_PORT, &port);
    FUZZ_REQUIRE(vmm->npio_binds == (port_mapped ? expected_binds : 0),
                 "%zu port doorbells bound, expected %zu", vmm->npio_binds,
                 port_mapped ? expected_binds : 0);
    for (size_t b = 0; b < vmm->npio_binds; b++)
        FUZZ_REQUIRE(vmm->pio_binds[b].gpa == port, "port doorbell bound at %#llx",
                     (unsigned long long)vmm->pio_binds[b].gpa);
    uint64_t bar0;
    if (!pci_device_bar_mapped(&dev->pci, IVSHMEM_BAR_REGS, &bar0)) {
        FUZZ_REQUIRE(vmm->nbinds == 0, "%zu doorbells bound while BAR0 is unmapped", vmm->nbinds);
        return;
    }
    FUZZ_REQUIRE(guest_read32(mmio, bar0 + IVSHMEM_REG_EXT_ID) == IVSHMEM_EXT_SIGNATURE, "EXT_ID");
    FUZZ_REQUIRE(guest_read32(mmio, bar0 + IVSHMEM_REG_MAX_PEERS) == IVSHMEM_MAX_PEERS,
                 "MAX_PEERS");
    FUZZ_REQUIRE(guest_read32(mmio, bar0 + IVSHMEM_REG_IVPOSITION) == (m->has_own ? m->own_id : 0u),
                 "IVPOSITION");
    FUZZ_REQUIRE(guest_read32(mmio, bar0 + IVSHMEM_REG_PEERS_LO) == (uint32_t)expected_map &&
                     guest_read32(mmio, bar0 + IVSHMEM_REG_PEERS_HI) ==
                         (uint32_t)(expected_map >> 32),
                 "PEERS registers");
    FUZZ_REQUIRE(vmm->nbinds == expected_binds, "%zu doorbells bound, expected %zu", vmm->nbinds,
                 expected_binds);
    for (size_t b = 0; b < vmm->nbinds; b++) {
        uint16_t id = (uint16_t)(vmm->binds[b].datamatch >> 16);
        int i = model_find(m, id);
        FUZZ_REQUIRE(vmm->binds[b].gpa == bar0 + IVSHMEM_REG_DOORBELL && i >= 0 &&
                         (vmm->binds[b].datamatch & 0xFFFF) < m->nfds[i],
                     "doorbell %#x bound at %#llx", vmm->binds[b].datamatch,
                     (unsigned long long)vmm->binds[b].gpa);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct ivshmem dev;
    static struct fake_vmm vmm;
    static struct model model;
    static uint8_t shm[SHM_SIZE] __attribute__((aligned(4096)));
    struct fuzz_input in = fuzz_input_of(data, size);
    struct bus pio, mmio;
    struct pci_bus pci;
    unsigned vectors = fuzz_u8(&in) % (IVSHMEM_MAX_VECTORS + 1);

    fake_vmm_init(&vmm);
    memset(&model, 0, sizeof(model));
    static struct given_fds given;
    memset(given.seen, 0, sizeof(given.seen));
    given.count = 0;

    FUZZ_REQUIRE(bus_init(&pio, "pio") == 0 && bus_init(&mmio, "mmio") == 0, "bus_init");
    FUZZ_REQUIRE(pci_bus_init(&pci, &pio, &mmio, TEST_PCI_WINDOWS) == 0, "pci_bus_init");
    FUZZ_REQUIRE(ivshmem_init(&dev, &pci, shm, SHM_SIZE, vectors, &fake_ops, &vmm) == 0,
                 "ivshmem_init");

    while (fuzz_more(&in)) {
        uint8_t op = fuzz_u8(&in);
        /* IDs: mostly a few small ones, so peers collide; sometimes any 16-bit ID. */
        uint16_t id = op & 0x80 ? fuzz_u16(&in) : fuzz_u8(&in) % 70;
        /* Eventfd counts: mostly up to the vector count, sometimes up to the maximum. */
        unsigned n = fuzz_u8(&in) % ((op & 0x40 ? IVSHMEM_MAX_VECTORS : vectors) + 1);
        int fds[IVSHMEM_MAX_VECTORS];
        uint64_t bar;
        switch (op % OP_COUNT) {
        case OP_BAR0:
            if (pci_device_bar_mapped(&dev.pci, IVSHMEM_BAR_REGS, &bar)) {
                struct fuzz_access a = fuzz_access_next(&in, IVSHMEM_REGS_SIZE + 8);
                if (op & 0x20) { /* a well-formed doorbell to the chosen peer and vector */
                    a = (struct fuzz_access){true, 4, IVSHMEM_REG_DOORBELL, (uint32_t)id << 16 | n};
                }
                uint64_t ignored = dev.doorbells_ignored, slow = dev.doorbells_slow;
                fuzz_access_do(&mmio, bar, &a);
                if (a.is_write && a.size == 4 && a.offset == IVSHMEM_REG_DOORBELL) {
                    int i = model_find(&model, (uint16_t)(a.value >> 16));
                    bool deliver = i >= 0 && (a.value & 0xFFFF) < model.nfds[i];
                    FUZZ_REQUIRE(dev.doorbells_slow == slow + deliver &&
                                     dev.doorbells_ignored == ignored + !deliver,
                                 "doorbell %#llx: delivered %d", (unsigned long long)a.value,
                                 deliver);
                }
            }
            break;
        case OP_MSIX:
            if (vectors && pci_device_bar_mapped(&dev.pci, IVSHMEM_BAR_MSIX, &bar)) {
                struct fuzz_access a = fuzz_access_next(&in, vectors * MSIX_ENTRY_SIZE + 8);
                fuzz_access_do(&mmio, bar, &a);
            }
            break;
        case OP_CONFIG: {
            struct fuzz_access a = fuzz_access_next(&in, PCI_CONFIG_SIZE);
            if (a.is_write)
                pci_guest_write(&pio, SLOT, (unsigned)a.offset, a.size > 4 ? 4 : a.size,
                                (uint32_t)a.value);
            break;
        }
        case OP_SET_OWN: {
            make_eventfds(fds, n, &given);
            int expect = 0;
            if (!model.has_own && model_find(&model, id) < 0 && model.count == IVSHMEM_MAX_PEERS)
                expect = -ENOSPC;
            int ret = ivshmem_set_own(&dev, id, fds, n);
            FUZZ_REQUIRE(ret == expect, "set_own(%u, %u fds) = %d, expected %d", id, n, ret,
                         expect);
            if (ret == 0) {
                if (model.has_own)
                    model_remove(&model, model.own_id);
                model_put(&model, id, (uint16_t)n);
                model.has_own = true;
                model.own_id = id;
            }
            break;
        }
        case OP_PEER_ADD: {
            make_eventfds(fds, n, &given);
            int expect = 0;
            if (model.has_own && model.own_id == id)
                expect = -EINVAL;
            else if (model_find(&model, id) < 0 && model.count == IVSHMEM_MAX_PEERS)
                expect = -ENOSPC;
            int ret = ivshmem_peer_add(&dev, id, fds, n);
            FUZZ_REQUIRE(ret == expect, "peer_add(%u, %u fds) = %d, expected %d", id, n, ret,
                         expect);
            if (ret == 0)
                model_put(&model, id, (uint16_t)n);
            break;
        }
        case OP_PEER_REMOVE: {
            int expect = 0;
            if (model.has_own && model.own_id == id)
                expect = -EINVAL;
            else if (model_find(&model, id) < 0)
                expect = -ENOENT;
            int ret = ivshmem_peer_remove(&dev, id);
            FUZZ_REQUIRE(ret == expect, "peer_remove(%u) = %d, expected %d", id, ret, expect);
            if (ret == 0)
                model_remove(&model, id);
            break;
        }
        }
        check(&dev, &vmm, &model, &mmio);
    }

    ivshmem_destroy(&dev);
    FUZZ_REQUIRE(!vmm.broken[0], "ops contract: %s", vmm.broken);
    FUZZ_REQUIRE(vmm.nbinds == 0 && vmm.npio_binds == 0 && !vmm.mem_mapped && !vmm.status_mapped,
                 "left bound or mapped after destroy");
    for (unsigned v = 0; v < IVSHMEM_MAX_VECTORS; v++)
        FUZZ_REQUIRE(!vmm.routes[v].on, "vector %u still routed after destroy", v);
    fake_vmm_destroy(&vmm);
    for (unsigned i = 0; i < given.count; i++)
        FUZZ_REQUIRE(!test_fd_is_open(given.list[i]), "fd %d still open after destroy",
                     given.list[i]);
    pci_bus_destroy(&pci);
    bus_destroy(&mmio);
    bus_destroy(&pio);
    return 0;
}
