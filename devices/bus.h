/* An address space that devices claim ranges of: one instance for port I/O, one for MMIO.
 * The vCPU exit dispatcher routes each access here; devices never see the vCPU loop.
 *
 * Concurrency: accesses from any number of threads look ranges up in parallel (a read
 * lock, taken only for the lookup); register/unregister take it for writing. A callback
 * runs with no bus lock held, on a copy of its range: bus_unregister() does not wait for
 * callbacks in flight, so an owner must stay valid after its range is gone and cope with
 * an access that was looked up just before a move (devices serialise on their own locks). */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Called for an access inside a claimed range. offset is relative to the range's base,
 * data holds size bytes in guest (little-endian) order: the device fills it on a read. */
typedef void (*bus_io_fn)(void *owner, uint64_t offset, void *data, uint32_t size, bool is_write);

/* String I/O (rep ins/outs): count elements of size bytes each, back to back in data, all
 * at the same offset. A device that moves a whole string in one go (a FIFO) supplies one. */
typedef void (*bus_string_fn)(void *owner, uint64_t offset, void *data, uint32_t size,
                              uint32_t count, bool is_write);

struct bus_range {
    uint64_t base;
    uint64_t len;
    bus_io_fn io;
    void *owner;
    const char *name;
    bus_string_fn string_io; /* optional */
};

struct bus {
    const char *name;
    pthread_rwlock_t lock;    /* ranges, count, capacity */
    struct bus_range *ranges; /* sorted by base, never overlapping */
    size_t count;
    size_t capacity;
    atomic_uint_fast64_t unclaimed_reads;
    atomic_uint_fast64_t unclaimed_writes;
};

int bus_init(struct bus *bus, const char *name);
void bus_destroy(struct bus *bus);

/* Claims [base, base+len). Returns 0, -EINVAL for an empty or wrapping range or a NULL
 * callback, -EEXIST if it overlaps a claimed range, -ENOMEM. */
int bus_register(struct bus *bus, uint64_t base, uint64_t len, bus_io_fn io, void *owner,
                 const char *name);

/* Releases the range that starts at base and belongs to owner. Returns 0 or -ENOENT. */
int bus_unregister(struct bus *bus, uint64_t base, void *owner);

/* Gives the range that starts at base and belongs to owner a string callback (NULL: none).
 * Returns 0 or -ENOENT. */
int bus_set_string_io(struct bus *bus, uint64_t base, void *owner, bus_string_fn string_io);

/* Performs one access. The callback runs without the bus lock held, so it may itself
 * register or unregister ranges (a PCI COMMAND write mapping a BAR). Any thread. An access no range
 * claims reads as all ones, is dropped on write, is counted, and returns false. An access
 * that straddles the end of a range is unclaimed too. */
bool bus_access(struct bus *bus, uint64_t addr, void *data, uint32_t size, bool is_write);

/* Performs a string access of count elements of size bytes at one address: one call of the
 * range's string callback when it has one, otherwise count single accesses. Unclaimed
 * accesses behave as for bus_access() and are counted once per element. */
bool bus_access_string(struct bus *bus, uint64_t addr, void *data, uint32_t size, uint32_t count,
                       bool is_write);
