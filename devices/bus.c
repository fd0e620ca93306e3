#include "devices/bus.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int bus_init(struct bus *bus, const char *name)
{
    pthread_rwlockattr_t attr;
    int err;

    memset(bus, 0, sizeof(*bus));
    bus->name = name;
    if ((err = pthread_rwlockattr_init(&attr)))
        return -err;
    /* Lookups come from every vCPU all the time; a reader preference would let them keep
     * a BAR move waiting. Readers never take the lock twice, so writer preference is safe. */
    err = pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    if (!err)
        err = pthread_rwlock_init(&bus->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    return err ? -err : 0;
}

void bus_destroy(struct bus *bus)
{
    free(bus->ranges);
    bus->ranges = NULL;
    bus->count = bus->capacity = 0;
    pthread_rwlock_destroy(&bus->lock);
}

/* Index of the first range whose base is greater than addr. Caller holds the lock (read or
 * write). */
static size_t bus_upper_bound(const struct bus *bus, uint64_t addr)
{
    size_t lo = 0, hi = bus->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (bus->ranges[mid].base <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int bus_register(struct bus *bus, uint64_t base, uint64_t len, bus_io_fn io, void *owner,
                 const char *name)
{
    if (len == 0 || io == NULL || base + len - 1 < base)
        return -EINVAL;
    uint64_t last = base + len - 1;

    pthread_rwlock_wrlock(&bus->lock);
    size_t pos = bus_upper_bound(bus, base);
    /* Only the neighbours can overlap: ranges are sorted and disjoint. */
    bool overlaps_prev =
        pos > 0 && bus->ranges[pos - 1].base + bus->ranges[pos - 1].len - 1 >= base;
    bool overlaps_next = pos < bus->count && bus->ranges[pos].base <= last;
    if (overlaps_prev || overlaps_next) {
        pthread_rwlock_unlock(&bus->lock);
        return -EEXIST;
    }
    if (bus->count == bus->capacity) {
        size_t capacity = bus->capacity ? bus->capacity * 2 : 16;
        struct bus_range *grown = realloc(bus->ranges, capacity * sizeof(*grown));
        if (!grown) {
            pthread_rwlock_unlock(&bus->lock);
            return -ENOMEM;
        }
        bus->ranges = grown;
        bus->capacity = capacity;
    }
    memmove(&bus->ranges[pos + 1], &bus->ranges[pos], (bus->count - pos) * sizeof(*bus->ranges));
    bus->ranges[pos] = (struct bus_range){base, len, io, owner, name, NULL};
    bus->count++;
    pthread_rwlock_unlock(&bus->lock);
    return 0;
}

int bus_unregister(struct bus *bus, uint64_t base, void *owner)
{
    int ret = -ENOENT;
    pthread_rwlock_wrlock(&bus->lock);
    size_t pos = bus_upper_bound(bus, base);
    if (pos > 0 && bus->ranges[pos - 1].base == base && bus->ranges[pos - 1].owner == owner) {
        memmove(&bus->ranges[pos - 1], &bus->ranges[pos],
                (bus->count - pos) * sizeof(*bus->ranges));
        bus->count--;
        ret = 0;
    }
    pthread_rwlock_unlock(&bus->lock);
    return ret;
}

int bus_set_string_io(struct bus *bus, uint64_t base, void *owner, bus_string_fn string_io)
{
    int ret = -ENOENT;
    pthread_rwlock_wrlock(&bus->lock);
    size_t pos = bus_upper_bound(bus, base);
    if (pos > 0 && bus->ranges[pos - 1].base == base && bus->ranges[pos - 1].owner == owner) {
        bus->ranges[pos - 1].string_io = string_io;
        ret = 0;
    }
    pthread_rwlock_unlock(&bus->lock);
    return ret;
}

/* Copies the range that holds [addr, addr+size) into *hit. A read lock: vCPUs look up in
 * parallel and wait only while a range is being added or removed. */
static bool bus_lookup(struct bus *bus, uint64_t addr, uint32_t size, struct bus_range *hit)
{
    bool found = false;
    pthread_rwlock_rdlock(&bus->lock);
    size_t pos = bus_upper_bound(bus, addr);
    if (pos > 0) {
        const struct bus_range *r = &bus->ranges[pos - 1];
        uint64_t offset = addr - r->base;
        if (offset < r->len && size <= r->len - offset) {
            *hit = *r;
            found = true;
        }
    }
    pthread_rwlock_unlock(&bus->lock);
    return found;
}

bool bus_access(struct bus *bus, uint64_t addr, void *data, uint32_t size, bool is_write)
{
    struct bus_range hit = {0};
    if (!bus_lookup(bus, addr, size, &hit)) {
        if (is_write) {
            atomic_fetch_add(&bus->unclaimed_writes, 1);
        } else {
            atomic_fetch_add(&bus->unclaimed_reads, 1);
            memset(data, 0xff, size);
        }
        return false;
    }
    /* Outside the lock, on the copy: the callback may register or unregister ranges of this
     * bus (a PCI COMMAND write maps BARs), and devices outlive every range they register
     * (BARs move, devices are never freed while vCPUs run), so a range removed meanwhile
     * still has a live owner. */
    hit.io(hit.owner, addr - hit.base, data, size, is_write);
    return true;
}

bool bus_access_string(struct bus *bus, uint64_t addr, void *data, uint32_t size, uint32_t count,
                       bool is_write)
{
    struct bus_range hit = {0};
    if (bus_lookup(bus, addr, size, &hit) && hit.string_io) {
        hit.string_io(hit.owner, addr - hit.base, data, size, count, is_write);
        return true;
    }
    bool claimed = true;
    for (uint32_t i = 0; i < count; i++)
        claimed &= bus_access(bus, addr, (uint8_t *)data + (size_t)i * size, size, is_write);
    return claimed;
}
