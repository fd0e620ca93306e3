#include "devices/portio_channel.h"

#include <errno.h>
#include <linux/futex.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

_Static_assert(sizeof(struct portio_channel_header) <= PORTIO_HEADER_SIZE,
               "the header must fit its page");
_Static_assert(sizeof(struct portio_ring) <= PORTIO_RING_CONTROL, "ring control page");
_Static_assert((PORTIO_RING_BYTES & (PORTIO_RING_BYTES - 1)) == 0, "ring size a power of two");

static struct portio_channel_header *header(void *mem)
{
    return mem;
}

void portio_channel_format(void *mem)
{
    struct portio_channel_header *h = header(mem);
    h->version = PORTIO_CHANNEL_VERSION;
    h->max_peers = PORTIO_MAX_PEERS;
    h->ring_bytes = PORTIO_RING_BYTES;
    h->ring_stride = PORTIO_RING_STRIDE;
    atomic_store(&h->peers[0].generation, 0); /* orders the fields above before the magic */
    h->magic = PORTIO_CHANNEL_MAGIC;
}

bool portio_channel_valid(const void *mem)
{
    const struct portio_channel_header *h = mem;
    return h->magic == PORTIO_CHANNEL_MAGIC && h->version == PORTIO_CHANNEL_VERSION &&
           h->max_peers == PORTIO_MAX_PEERS && h->ring_bytes == PORTIO_RING_BYTES &&
           h->ring_stride == PORTIO_RING_STRIDE;
}

struct portio_ring *portio_channel_ring(void *mem, unsigned int from, unsigned int to)
{
    uint64_t index = (uint64_t)from * PORTIO_MAX_PEERS + to;
    return (struct portio_ring *)((uint8_t *)mem + PORTIO_HEADER_SIZE + index * PORTIO_RING_STRIDE);
}

static uint8_t *ring_data(struct portio_ring *ring)
{
    return (uint8_t *)ring + PORTIO_RING_CONTROL;
}

static void futex_wake_all(_Atomic uint32_t *word)
{
    /* Shared (not FUTEX_PRIVATE): the waiter is usually another process. A failure leaves
     * the waiter to its timeout, so there is nothing better to do with it. */
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
}

/* After any change a waiter on this ring may care about. */
static void ring_notify(struct portio_ring *ring)
{
    atomic_fetch_add(&ring->seq, 1);
    if (atomic_load(&ring->waiters) > 0)
        futex_wake_all(&ring->seq);
}

void portio_channel_set_present(void *mem, unsigned int id, uint32_t pid, bool present)
{
    if (id >= PORTIO_MAX_PEERS)
        return;
    struct portio_peer_slot *slot = &header(mem)->peers[id];
    uint32_t generation = atomic_load(&slot->generation);
    if ((generation & 1) == present)
        return;
    /* A new incarnation must not read what was sent to its predecessor. Only the reader
     * moves tail, and the reader (this ID) is not running yet. */
    for (unsigned int other = 0; present && other < PORTIO_MAX_PEERS; other++) {
        struct portio_ring *ring = portio_channel_ring(mem, other, id);
        atomic_store(&ring->tail, atomic_load(&ring->head));
    }
    atomic_store(&slot->pid, present ? pid : 0);
    atomic_store(&slot->generation, generation + 1);
    for (unsigned int other = 0; other < PORTIO_MAX_PEERS; other++) {
        ring_notify(portio_channel_ring(mem, id, other));
        if (other != id)
            ring_notify(portio_channel_ring(mem, other, id));
    }
}

uint32_t portio_channel_generation(const void *mem, unsigned int id)
{
    if (id >= PORTIO_MAX_PEERS)
        return 0;
    const struct portio_channel_header *h = mem;
    return atomic_load(&((struct portio_peer_slot *)&h->peers[id])->generation);
}

uint32_t portio_ring_readable(struct portio_ring *ring, bool *corrupt)
{
    uint64_t head = atomic_load_explicit(&ring->head, memory_order_acquire);
    uint64_t tail = atomic_load_explicit(&ring->tail, memory_order_relaxed);
    if (head - tail > PORTIO_RING_BYTES) {
        if (corrupt)
            *corrupt = true;
        return 0;
    }
    return (uint32_t)(head - tail);
}

uint32_t portio_ring_writable(struct portio_ring *ring, bool *corrupt)
{
    uint64_t head = atomic_load_explicit(&ring->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&ring->tail, memory_order_acquire);
    if (head - tail > PORTIO_RING_BYTES) {
        if (corrupt)
            *corrupt = true;
        return 0;
    }
    return PORTIO_RING_BYTES - (uint32_t)(head - tail);
}

bool portio_ring_write(struct portio_ring *ring, const void *data, uint32_t len)
{
    if (len == 0)
        return true;
    if (len > portio_ring_writable(ring, NULL))
        return false;
    uint64_t head = atomic_load_explicit(&ring->head, memory_order_relaxed);
    uint32_t at = (uint32_t)(head % PORTIO_RING_BYTES);
    uint32_t first = PORTIO_RING_BYTES - at < len ? PORTIO_RING_BYTES - at : len;
    memcpy(ring_data(ring) + at, data, first);
    memcpy(ring_data(ring), (const uint8_t *)data + first, len - first);
    atomic_store_explicit(&ring->head, head + len, memory_order_release);
    ring_notify(ring);
    return true;
}

bool portio_ring_read(struct portio_ring *ring, void *data, uint32_t len)
{
    if (len == 0)
        return true;
    if (len > portio_ring_readable(ring, NULL))
        return false;
    uint64_t tail = atomic_load_explicit(&ring->tail, memory_order_relaxed);
    uint32_t at = (uint32_t)(tail % PORTIO_RING_BYTES);
    uint32_t first = PORTIO_RING_BYTES - at < len ? PORTIO_RING_BYTES - at : len;
    memcpy(data, ring_data(ring) + at, first);
    memcpy((uint8_t *)data + first, ring_data(ring), len - first);
    atomic_store_explicit(&ring->tail, tail + len, memory_order_release);
    ring_notify(ring);
    return true;
}

void portio_ring_drain(struct portio_ring *ring)
{
    uint64_t head = atomic_load_explicit(&ring->head, memory_order_acquire);
    atomic_store_explicit(&ring->tail, head, memory_order_release);
    ring_notify(ring);
}

uint32_t portio_ring_seq(struct portio_ring *ring)
{
    return atomic_load(&ring->seq);
}

int portio_ring_wait(struct portio_ring *ring, uint32_t seen, unsigned int timeout_ms)
{
    struct timespec timeout = {.tv_sec = timeout_ms / 1000,
                               .tv_nsec = (long)(timeout_ms % 1000) * 1000000L};
    atomic_fetch_add(&ring->waiters, 1);
    long ret = syscall(SYS_futex, (uint32_t *)&ring->seq, FUTEX_WAIT, seen, &timeout, NULL, 0);
    int err = ret < 0 ? errno : 0;
    atomic_fetch_sub(&ring->waiters, 1);
    if (err == EAGAIN)
        return 0; /* seq had already moved on */
    return -err;
}
