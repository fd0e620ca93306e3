/* The port I/O channel: devices A (peer 0) and B (peer 1) of one group, each on the PCI bus
 * of its own VM, over one channel block (support/portio_pair.h). The fuzzer is both guests
 * (accesses of any width at any offset of the BAR; rep ins/outs of any count, handed to the
 * bus as the exit dispatcher does; PEER and CONTROL writes; WAIT reads), the broker (peers
 * 0..3 joining and leaving) and a malicious peer VMM (garbage in the shared ring memory).
 *
 * Invariants, always: a DATA access moves its whole length or nothing (the ring's head or
 * tail moves by exactly that much), a refusal or underrun is counted and sets its STATUS
 * bit, a refused read returns 0xFF bytes; the counters (TX_BYTES, TX_REFUSED, RX_BYTES,
 * RX_UNDERRUN, BAD_ACCESSES, EXITS) and PEER follow the documented rules for every access;
 * RX_AVAIL and TX_SPACE never exceed the ring capacity and agree with STATUS; a WAIT read
 * gives the vCPU back in bounded time. Until the first hostile write into the channel
 * memory, also: a model queue per ring decides which writes are accepted and what every
 * read returns (the bytes B reads are exactly the bytes A's accepted writes sent, in
 * order), and STATUS, RX_AVAIL and TX_SPACE read what the model says, PEER_GONE included. */
#include <stdlib.h>
#include <string.h>

#include "devices/bus.h"
#include "devices/pci.h"
#include "devices/portio.h"
#include "devices/portio_channel.h"
#include "fuzz.h"
#include "support/clock.h"
#include "support/pci_windows.h"
#include "support/portio_pair.h"

/* Peers 0..3 can join, leave and be attacked; 4..63 stay absent with empty rings. */
#define MODEL_PEERS 4
/* Where a string access keeps its data in run_page (a page in, as in a KVM run mapping). */
#define RUN_DATA_OFFSET 4096u
/* A string is at most a page, as KVM hands them over, unless bit 15 of its count asks for
 * a large one (up to twice a ring): long element-by-element strings are slow to fuzz. */
#define PAGE_BYTES       4096u
#define STRING_LARGE     0x8000u
#define STRING_MAX_BYTES (4u * (STRING_LARGE - 1))
/* A WAIT read sleeps PORTIO_WAIT_MAX_MS at most; this allows for a loaded machine. */
#define WAIT_BOUND_MS 1000

enum op { OP_ACCESS, OP_STRING, OP_REGISTER, OP_PRESENCE, OP_HOSTILE, OP_CHECK, OP_WAIT, OP_COUNT };

enum hostile {
    HOSTILE_RING_COUNTER,
    HOSTILE_RING_WAKE,
    HOSTILE_GENERATION,
    HOSTILE_HEADER_BYTE,
    HOSTILE_RING_BYTE,
    HOSTILE_COUNT
};

/* What one call of the device does, by the documented rules. */
enum access_kind { ACCESS_UNCLAIMED, ACCESS_BAD, ACCESS_EMPTY, ACCESS_DATA, ACCESS_REGISTERS };

/* The bytes in flight in one ring, as the writes accepted so far put them there. */
struct queue {
    uint64_t head, tail;
    uint8_t bytes[PORTIO_RING_BYTES];
};

struct vm {
    struct bus pio, mmio;
    struct pci_bus pci;
    uint64_t bar;
};

/* One guest's device as the model sees it. */
struct guest {
    struct portio *dev;
    struct vm *vm;
    unsigned int own;
    uint32_t peer;
    uint32_t bound; /* generation of the partner it talks to; 0: none yet */
    bool gone;
    bool tx_refused_flag, rx_underrun_flag;
    uint32_t tx_bytes, rx_bytes, tx_refused, rx_underrun, bad_accesses, exits;
};

/* The device's data counters before an access. */
struct data_counters {
    uint32_t tx_bytes, tx_refused, rx_bytes, rx_underrun;
};

struct harness {
    struct portio_pair pair;
    struct vm vms[2];
    struct guest guests[2];
    bool trusted; /* no hostile write into the channel memory yet */
    /* WAIT reads that may sleep: each costs PORTIO_WAIT_MAX_MS of fuzzing time, so an input
     * gets one only after an OP_WAIT that asks for it. */
    unsigned int sleeps_left;
    bool sleep_granted;
    uint32_t generation[MODEL_PEERS];
    struct queue rings[MODEL_PEERS][MODEL_PEERS];
};

static uint8_t run_page[RUN_DATA_OFFSET + STRING_MAX_BYTES] __attribute__((aligned(4096)));

/* ---- the model ---- */

static struct queue *queue_of(struct harness *h, uint32_t from, uint32_t to)
{
    return from < MODEL_PEERS && to < MODEL_PEERS ? &h->rings[from][to] : NULL;
}

static uint32_t queue_len(const struct queue *q)
{
    return q ? (uint32_t)(q->head - q->tail) : 0;
}

static void queue_push(struct queue *q, const uint8_t *data, uint32_t len)
{
    for (uint32_t i = 0; i < len; i++)
        q->bytes[q->head++ % PORTIO_RING_BYTES] = data[i];
}

static bool peer_selected(const struct guest *g)
{
    return g->peer < PORTIO_MAX_PEERS;
}

static bool peer_present(const struct harness *h, uint32_t id)
{
    return id < MODEL_PEERS && (h->generation[id] & 1);
}

static bool usable(const struct harness *h, const struct guest *g)
{
    return peer_present(h, g->peer) && !g->gone;
}

static uint32_t rx_avail(struct harness *h, const struct guest *g)
{
    return peer_selected(g) ? queue_len(queue_of(h, g->peer, g->own)) : 0;
}

static uint32_t tx_space(struct harness *h, const struct guest *g)
{
    return usable(h, g) ? PORTIO_RING_BYTES - queue_len(queue_of(h, g->own, g->peer)) : 0;
}

static uint32_t expected_status(struct harness *h, const struct guest *g)
{
    uint32_t s = 0;
    if (peer_selected(g))
        s |= PORTIO_STATUS_PEER_SELECTED;
    if (peer_present(h, g->peer))
        s |= PORTIO_STATUS_PEER_PRESENT;
    if (g->gone)
        s |= PORTIO_STATUS_PEER_GONE;
    if (rx_avail(h, g) > 0)
        s |= PORTIO_STATUS_RX_READY;
    if (tx_space(h, g) > 0)
        s |= PORTIO_STATUS_TX_READY;
    if (g->tx_refused_flag)
        s |= PORTIO_STATUS_TX_REFUSED;
    if (g->rx_underrun_flag)
        s |= PORTIO_STATUS_RX_UNDERRUN;
    return s;
}

static void model_select(struct harness *h, struct guest *g, uint32_t value)
{
    g->gone = false;
    if (value >= PORTIO_MAX_PEERS) {
        g->peer = PORTIO_PEER_NONE;
        g->bad_accesses++;
        return;
    }
    g->peer = value;
    g->bound = peer_present(h, value) ? h->generation[value] : 0;
}

static void model_control(struct harness *h, struct guest *g, uint32_t value)
{
    if (value & PORTIO_CONTROL_RESET_COUNTERS) {
        g->tx_refused = g->rx_underrun = g->bad_accesses = g->tx_bytes = g->rx_bytes = 0;
        g->tx_refused_flag = g->rx_underrun_flag = false;
    }
    struct queue *q = queue_of(h, g->peer, g->own);
    if ((value & PORTIO_CONTROL_DRAIN_RX) && q)
        q->tail = q->head;
}

/* The broker's portio_channel_set_present(), and the partner rules of docs/portio.md: the
 * partner present at selection, or the first to appear after it, is the one; once it
 * leaves, PEER_GONE holds until PEER is written. */
static void model_presence(struct harness *h, unsigned int id, bool present)
{
    if ((h->generation[id] & 1) == present)
        return;
    h->generation[id]++;
    for (unsigned int from = 0; present && from < MODEL_PEERS; from++)
        h->rings[from][id].tail = h->rings[from][id].head;
    for (unsigned int i = 0; i < 2; i++) {
        struct guest *g = &h->guests[i];
        if (g->peer != id)
            continue;
        if (g->bound == 0 && present)
            g->bound = h->generation[id];
        else if (g->bound != 0 && g->bound != h->generation[id])
            g->gone = true;
    }
}

/* Whether a WAIT read now may sleep: the device waits unless its condition holds. */
static bool wait_may_sleep(struct harness *h, const struct guest *g, bool rx)
{
    if (!h->trusted)
        return true;
    if (!peer_selected(g) || !usable(h, g))
        return false;
    return rx ? rx_avail(h, g) == 0 : tx_space(h, g) < PORTIO_WAIT_TX_MIN;
}

/* ---- checks ---- */

static void check_counters(const struct guest *g)
{
    const struct portio *d = g->dev;
    FUZZ_REQUIRE(d->peer == g->peer, "peer %u: PEER %#x, expected %#x", g->own, d->peer, g->peer);
    FUZZ_REQUIRE(d->tx_bytes == g->tx_bytes && d->tx_refused == g->tx_refused &&
                     d->rx_bytes == g->rx_bytes && d->rx_underrun == g->rx_underrun,
                 "peer %u: tx %u refused %u rx %u underrun %u, expected %u %u %u %u", g->own,
                 d->tx_bytes, d->tx_refused, d->rx_bytes, d->rx_underrun, g->tx_bytes,
                 g->tx_refused, g->rx_bytes, g->rx_underrun);
    FUZZ_REQUIRE(d->bad_accesses == g->bad_accesses, "peer %u: %u bad accesses, expected %u",
                 g->own, d->bad_accesses, g->bad_accesses);
    FUZZ_REQUIRE(atomic_load(&d->exits) == g->exits, "peer %u: %u exits, expected %u", g->own,
                 atomic_load(&d->exits), g->exits);
    FUZZ_REQUIRE(d->tx_refused_flag == g->tx_refused_flag &&
                     d->rx_underrun_flag == g->rx_underrun_flag,
                 "peer %u: sticky flags %d %d, expected %d %d", g->own, d->tx_refused_flag,
                 d->rx_underrun_flag, g->tx_refused_flag, g->rx_underrun_flag);
}

/* The shared memory holds what the model says: ring fill levels and presence words. */
static void check_channel(struct harness *h)
{
    for (unsigned int from = 0; from < MODEL_PEERS; from++) {
        FUZZ_REQUIRE(portio_channel_generation(h->pair.channel, from) == h->generation[from],
                     "generation of %u", from);
        for (unsigned int to = 0; to < MODEL_PEERS; to++) {
            bool corrupt = false;
            uint32_t readable =
                portio_ring_readable(portio_channel_ring(h->pair.channel, from, to), &corrupt);
            FUZZ_REQUIRE(!corrupt && readable == queue_len(&h->rings[from][to]),
                         "ring %u->%u holds %u bytes, expected %u", from, to, readable,
                         queue_len(&h->rings[from][to]));
        }
    }
    FUZZ_REQUIRE(h->pair.a.corrupt_rings == 0 && h->pair.b.corrupt_rings == 0,
                 "a sound ring read as corrupt");
}

/* ---- guest accesses ---- */

static enum access_kind access_kind(uint64_t offset, uint32_t size, uint32_t count, bool single)
{
    if (offset >= PORTIO_BAR_SIZE || size > PORTIO_BAR_SIZE - offset)
        return ACCESS_UNCLAIMED; /* the bus does not deliver what leaves the BAR */
    if (single && ((size != 1 && size != 2 && size != 4) ||
                   (offset < PORTIO_DATA && offset + size > PORTIO_DATA)))
        return ACCESS_BAD;
    if ((uint64_t)size * count == 0)
        return ACCESS_EMPTY;
    return offset >= PORTIO_DATA ? ACCESS_DATA : ACCESS_REGISTERS;
}

static bool all_ones(const uint8_t *data, uint64_t len)
{
    for (uint64_t i = 0; i < len; i++)
        if (data[i] != 0xff)
            return false;
    return true;
}

static uint64_t ring_counter(struct harness *h, uint32_t from, uint32_t to, bool head)
{
    if (from >= PORTIO_MAX_PEERS || to >= PORTIO_MAX_PEERS)
        return 0;
    struct portio_ring *ring = portio_channel_ring(h->pair.channel, from, to);
    return head ? atomic_load(&ring->head) : atomic_load(&ring->tail);
}

static void data_write_done(struct harness *h, struct guest *g, const struct data_counters *before,
                            uint64_t head_before, const uint8_t *data, uint32_t len)
{
    const struct portio *d = g->dev;
    uint32_t sent = d->tx_bytes - before->tx_bytes;
    uint32_t refused = d->tx_refused - before->tx_refused;
    bool accepted = sent == len && refused == 0;
    FUZZ_REQUIRE(accepted || (sent == 0 && refused == len && d->tx_refused_flag),
                 "peer %u: a write of %u bytes sent %u and refused %u", g->own, len, sent, refused);
    uint64_t moved = ring_counter(h, g->own, g->peer, true) - head_before;
    FUZZ_REQUIRE(moved == (accepted ? len : 0),
                 "peer %u: a write of %u bytes (accepted %d) moved "
                 "head by %llu",
                 g->own, len, accepted, (unsigned long long)moved);
    if (h->trusted) {
        bool fits = usable(h, g) && len <= tx_space(h, g);
        FUZZ_REQUIRE(accepted == fits,
                     "peer %u -> %u: a write of %u bytes accepted %d, space %u, "
                     "partner usable %d",
                     g->own, g->peer, len, accepted, tx_space(h, g), usable(h, g));
        if (accepted)
            queue_push(queue_of(h, g->own, g->peer), data, len);
    }
    if (accepted) {
        g->tx_bytes += len;
    } else {
        g->tx_refused += len;
        g->tx_refused_flag = true;
    }
}

static void data_read_done(struct harness *h, struct guest *g, const struct data_counters *before,
                           uint64_t tail_before, const uint8_t *data, uint32_t len)
{
    const struct portio *d = g->dev;
    uint32_t got = d->rx_bytes - before->rx_bytes;
    uint32_t underrun = d->rx_underrun - before->rx_underrun;
    bool accepted = got == len && underrun == 0;
    FUZZ_REQUIRE(accepted || (got == 0 && underrun == len && d->rx_underrun_flag),
                 "peer %u: a read of %u bytes got %u and underran %u", g->own, len, got, underrun);
    FUZZ_REQUIRE(accepted || all_ones(data, len), "peer %u: an underrun read returned data",
                 g->own);
    uint64_t moved = ring_counter(h, g->peer, g->own, false) - tail_before;
    FUZZ_REQUIRE(moved == (accepted ? len : 0),
                 "peer %u: a read of %u bytes (accepted %d) moved "
                 "tail by %llu",
                 g->own, len, accepted, (unsigned long long)moved);
    if (h->trusted) {
        struct queue *q = queue_of(h, g->peer, g->own);
        bool there = peer_selected(g) && len <= queue_len(q);
        FUZZ_REQUIRE(accepted == there, "peer %u <- %u: a read of %u bytes accepted %d, %u there",
                     g->own, g->peer, len, accepted, queue_len(q));
        for (uint32_t i = 0; accepted && i < len; i++) {
            uint8_t want = q->bytes[q->tail++ % PORTIO_RING_BYTES];
            FUZZ_REQUIRE(data[i] == want, "peer %u <- %u: byte %u of a read is %#x, sent %#x",
                         g->own, g->peer, i, data[i], want);
        }
    }
    if (accepted) {
        g->rx_bytes += len;
    } else {
        g->rx_underrun += len;
        g->rx_underrun_flag = true;
    }
}

/* One access of g's guest at BAR offset: a single in/out through the bus (data: size bytes),
 * or, with string, a rep ins/outs of count elements through bus_access_string() as the exit
 * dispatcher passes it on (data in run_page). Checks what the device did against the model,
 * which it then updates. Returns false, doing nothing, for a WAIT read that may sleep once
 * this input has slept enough. */
static bool guest_access(struct harness *h, struct guest *g, uint64_t offset, uint32_t size,
                         uint32_t count, bool is_write, uint8_t *data, bool string)
{
    enum access_kind kind = access_kind(offset, size, count, !string || count == 1);
    uint64_t len = (uint64_t)size * count;
    bool waits = !is_write && kind == ACCESS_REGISTERS &&
                 (offset == PORTIO_REG_WAIT_RX || offset == PORTIO_REG_WAIT_TX);
    if (waits && wait_may_sleep(h, g, offset == PORTIO_REG_WAIT_RX)) {
        if (h->sleeps_left == 0)
            return false;
        h->sleeps_left--;
    }
    struct data_counters before = {g->dev->tx_bytes, g->dev->tx_refused, g->dev->rx_bytes,
                                   g->dev->rx_underrun};
    uint64_t head_before = ring_counter(h, g->own, g->peer, true);
    uint64_t tail_before = ring_counter(h, g->peer, g->own, false);
    int64_t start = test_now_ms();
    if (string && count != 1)
        /* A rep ins/outs exit, as the exit dispatcher hands it to the bus. */
        bus_access_string(&g->vm->pio, g->vm->bar + offset, data, size, count, is_write);
    else
        bus_access(&g->vm->pio, g->vm->bar + offset, data, size, is_write);
    int64_t took = test_now_ms() - start;
    FUZZ_REQUIRE(took < WAIT_BOUND_MS, "peer %u: an access at %#llx (%u x %u bytes) took %lld ms",
                 g->own, (unsigned long long)offset, count, size, (long long)took);

    if (kind != ACCESS_UNCLAIMED)
        g->exits++;
    switch (kind) {
    case ACCESS_UNCLAIMED:
    case ACCESS_BAD:
        if (kind == ACCESS_BAD && is_write)
            g->bad_accesses++;
        FUZZ_REQUIRE(is_write || all_ones(data, len), "a bad read at %#llx returned data",
                     (unsigned long long)offset);
        break;
    case ACCESS_EMPTY:
        break;
    case ACCESS_DATA:
        if (is_write)
            data_write_done(h, g, &before, head_before, data, (uint32_t)len);
        else
            data_read_done(h, g, &before, tail_before, data, (uint32_t)len);
        break;
    case ACCESS_REGISTERS:
        /* Element by element; only PEER and CONTROL take writes. */
        for (uint32_t i = 0; is_write && i < count; i++) {
            uint32_t value = 0;
            memcpy(&value, data + (size_t)i * size, size);
            if (offset == PORTIO_REG_PEER)
                model_select(h, g, value);
            else if (offset == PORTIO_REG_CONTROL)
                model_control(h, g, value);
            else
                g->bad_accesses++;
        }
        break;
    }
    check_counters(g);
    return true;
}

static uint32_t guest_read32(struct harness *h, struct guest *g, unsigned int reg)
{
    uint32_t value = 0;
    FUZZ_REQUIRE(guest_access(h, g, reg, 4, 1, false, (uint8_t *)&value, false), "read of %#x",
                 reg);
    return value;
}

/* What the guest sees in STATUS, RX_AVAIL and TX_SPACE. */
static void check_registers(struct harness *h, struct guest *g)
{
    uint32_t status = guest_read32(h, g, PORTIO_REG_STATUS);
    uint32_t avail = guest_read32(h, g, PORTIO_REG_RX_AVAIL);
    uint32_t space = guest_read32(h, g, PORTIO_REG_TX_SPACE);
    FUZZ_REQUIRE(avail <= PORTIO_RING_BYTES && space <= PORTIO_RING_BYTES,
                 "peer %u: RX_AVAIL %u, TX_SPACE %u", g->own, avail, space);
    FUZZ_REQUIRE(!(status & ~0x7Fu), "peer %u: STATUS %#x", g->own, status);
    FUZZ_REQUIRE(!(status & PORTIO_STATUS_RX_READY) == (avail == 0) &&
                     !(status & PORTIO_STATUS_TX_READY) == (space == 0),
                 "peer %u: STATUS %#x with RX_AVAIL %u, TX_SPACE %u", g->own, status, avail, space);
    if (!h->trusted)
        return;
    FUZZ_REQUIRE(
        status == expected_status(h, g) && avail == rx_avail(h, g) && space == tx_space(h, g),
        "peer %u (partner %#x): STATUS %#x RX_AVAIL %u TX_SPACE %u, expected %#x %u %u", g->own,
        g->peer, status, avail, space, expected_status(h, g), rx_avail(h, g), tx_space(h, g));
}

/* ---- operations ---- */

/* A byte pattern for string writes: any seed gives distinct, non-repeating-looking bytes. */
static void fill(uint8_t *data, uint64_t len, uint32_t seed)
{
    for (uint64_t i = 0; i < len; i++) {
        seed = seed * 1103515245u + 12345u;
        data[i] = (uint8_t)(seed >> 16);
    }
}

static void hostile_write(struct harness *h, struct fuzz_input *in, uint8_t op)
{
    uint8_t target = fuzz_u8(in);
    struct portio_ring *ring =
        portio_channel_ring(h->pair.channel, target % MODEL_PEERS, target / 4 % MODEL_PEERS);
    uint8_t *channel = h->pair.channel;
    switch ((op >> 3) % HOSTILE_COUNT) {
    case HOSTILE_RING_COUNTER: {
        /* A raw value, or a nearby one: the plausible lies are the subtle ones. */
        _Atomic uint64_t *counter = target & 0x10 ? &ring->tail : &ring->head;
        if (target & 0x20)
            atomic_store(counter, fuzz_u64(in));
        else
            atomic_fetch_add(counter, (uint64_t)(int64_t)(int16_t)fuzz_u16(in));
        break;
    }
    case HOSTILE_RING_WAKE:
        atomic_store(target & 0x10 ? &ring->seq : &ring->waiters, fuzz_u32(in));
        break;
    case HOSTILE_GENERATION: {
        struct portio_channel_header *header = h->pair.channel;
        atomic_store(&header->peers[target % MODEL_PEERS].generation, fuzz_u32(in));
        break;
    }
    case HOSTILE_HEADER_BYTE:
        channel[fuzz_u16(in) % PORTIO_HEADER_SIZE] = fuzz_u8(in);
        break;
    case HOSTILE_RING_BYTE:
        ((uint8_t *)ring)[PORTIO_RING_CONTROL + fuzz_u16(in) % PORTIO_RING_BYTES] = fuzz_u8(in);
        break;
    }
    h->trusted = false;
}

static void harness_init(struct harness *h)
{
    /* One mapping for the whole run: a new one per input costs more than the input. */
    static void *channel;
    if (!channel)
        FUZZ_REQUIRE((channel = portio_pair_channel_map()), "mmap: %s", strerror(errno));
    for (unsigned int i = 0; i < 2; i++) {
        struct vm *vm = &h->vms[i];
        FUZZ_REQUIRE(bus_init(&vm->pio, "pio") == 0 && bus_init(&vm->mmio, "mmio") == 0,
                     "bus_init");
        FUZZ_REQUIRE(pci_bus_init(&vm->pci, &vm->pio, &vm->mmio, TEST_PCI_WINDOWS) == 0,
                     "pci_bus_init");
    }
    FUZZ_REQUIRE(portio_pair_init(&h->pair, channel, &h->vms[0].pci, &h->vms[1].pci) == 0,
                 "portio_pair_init");
    struct portio *devs[2] = {&h->pair.a, &h->pair.b};
    for (unsigned int i = 0; i < 2; i++) {
        struct vm *vm = &h->vms[i];
        FUZZ_REQUIRE(pci_device_bar_mapped(&devs[i]->pci, PORTIO_BAR, &vm->bar) &&
                         vm->bar + PORTIO_BAR_SIZE + 8 <= 0x10000,
                     "BAR0 of peer %u not mapped in port space", i);
        h->guests[i] = (struct guest){.dev = devs[i], .vm = vm, .own = i, .peer = PORTIO_PEER_NONE};
    }
    for (unsigned int from = 0; from < MODEL_PEERS; from++) {
        h->generation[from] = from < 2; /* portio_pair_init made 0 and 1 present */
        for (unsigned int to = 0; to < MODEL_PEERS; to++)
            h->rings[from][to].head = h->rings[from][to].tail = 0;
    }
    h->trusted = true;
    h->sleeps_left = 0;
    h->sleep_granted = false;
}

static void harness_destroy(struct harness *h)
{
    portio_pair_destroy(&h->pair);
    portio_pair_channel_reset(h->pair.channel);
    for (unsigned int i = 0; i < 2; i++) {
        pci_bus_destroy(&h->vms[i].pci);
        bus_destroy(&h->vms[i].mmio);
        bus_destroy(&h->vms[i].pio);
    }
}

/* Input: operations, each an op byte (bits 0-2 which, bit 3 guest B, bits 4-7 its flags)
 * and its operands:
 *   OP_ACCESS    fuzz_access_next(); bit 4 aims it into the data window
 *   OP_STRING    u16 offset, u16 count, u8 pattern seed for writes; bit 4 data window,
 *                bit 5 write (rep outs), bits 6-7 element size 1/2/4
 *   OP_REGISTER  PEER, or CONTROL with bit 4, is written u8 % MODEL_PEERS, or u32 with bit 5
 *   OP_PRESENCE  peer (bits 4-5) joins (bit 6) or leaves
 *   OP_HOSTILE   bits 3-7 which enum hostile, a target byte, then the garbage
 *   OP_CHECK     STATUS, RX_AVAIL and TX_SPACE of both guests
 *   OP_WAIT      reads WAIT_RX, or WAIT_TX with bit 4; with bit 5 instead lets the next WAIT
 *                read that may sleep do so (once per input) */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct harness h;
    struct fuzz_input in = fuzz_input_of(data, size);
    harness_init(&h);

    while (fuzz_more(&in)) {
        uint8_t op = fuzz_u8(&in);
        struct guest *g = &h.guests[(op >> 3) & 1];
        bool at_data = op & 0x10; /* aim the offset into the data window */
        switch ((op & 7) % OP_COUNT) {
        case OP_ACCESS: {
            struct fuzz_access a = fuzz_access_next(&in, PORTIO_BAR_SIZE + 8);
            if (at_data)
                a.offset = PORTIO_DATA + a.offset % PORTIO_DATA_WINDOW;
            uint64_t value = a.value;
            guest_access(&h, g, a.offset, a.size, 1, a.is_write, (uint8_t *)&value, false);
            break;
        }
        case OP_STRING: {
            bool is_write = op & 0x20;
            uint32_t element = 1u << ((op >> 6) % 3);
            uint64_t offset = fuzz_u16(&in);
            offset = at_data ? PORTIO_DATA + offset % PORTIO_DATA_WINDOW
                             : offset % (PORTIO_BAR_SIZE + 8);
            uint32_t count = fuzz_u16(&in);
            count =
                count & STRING_LARGE ? count & ~STRING_LARGE : count % (PAGE_BYTES / element + 1);
            uint8_t *buf = run_page + RUN_DATA_OFFSET;
            if (is_write)
                fill(buf, (uint64_t)element * count, fuzz_u8(&in));
            else
                memset(buf, 0xa5, (size_t)element * count);
            guest_access(&h, g, offset, element, count, is_write, buf, true);
            break;
        }
        case OP_REGISTER: {
            /* PEER: mostly a modelled peer (own ID included), else any value. */
            uint32_t value = op & 0x20 ? fuzz_u32(&in) : fuzz_u8(&in) % MODEL_PEERS;
            unsigned int reg = at_data ? PORTIO_REG_CONTROL : PORTIO_REG_PEER;
            guest_access(&h, g, reg, 4, 1, true, (uint8_t *)&value, false);
            break;
        }
        case OP_PRESENCE: {
            unsigned int id = (op >> 4) % MODEL_PEERS;
            bool present = op & 0x40;
            portio_channel_set_present(h.pair.channel, id, 200 + id, present);
            if (h.trusted)
                model_presence(&h, id, present);
            break;
        }
        case OP_HOSTILE:
            hostile_write(&h, &in, op);
            break;
        case OP_CHECK:
            check_registers(&h, &h.guests[0]);
            check_registers(&h, &h.guests[1]);
            break;
        case OP_WAIT: {
            uint32_t value = 0;
            bool rx = !at_data;
            unsigned int reg = rx ? PORTIO_REG_WAIT_RX : PORTIO_REG_WAIT_TX;
            if (op & 0x20) { /* instead of a read: the next one that may sleep can */
                h.sleeps_left = !h.sleep_granted;
                h.sleep_granted = true;
                break;
            }
            if (guest_access(&h, g, reg, 4, 1, false, (uint8_t *)&value, false) && h.trusted)
                FUZZ_REQUIRE(value == (rx ? rx_avail(&h, g) : tx_space(&h, g)),
                             "peer %u: WAIT_%s read %u", g->own, rx ? "RX" : "TX", value);
            break;
        }
        }
        if (h.trusted)
            check_channel(&h);
    }
    check_registers(&h, &h.guests[0]);
    check_registers(&h, &h.guests[1]);

    harness_destroy(&h);
    return 0;
}
