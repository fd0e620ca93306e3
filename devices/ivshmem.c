#include "devices/ivshmem.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/log.h"

static void close_fds(const int *fds, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
    }
}

/* Checks a peer-table call's arguments; on failure the fds are closed (we own them). */
static int check_peer_args(uint32_t id, const int *fds, unsigned n)
{
    if (n > 0 && !fds)
        return -EINVAL;
    int err = 0;
    if (id > IVSHMEM_MAX_PEER_ID || n > IVSHMEM_MAX_VECTORS)
        err = -EINVAL;
    for (unsigned i = 0; i < n && !err; i++) {
        if (fds[i] < 0)
            err = -EBADF;
    }
    if (err)
        close_fds(fds, n);
    return err;
}

/* The helpers below expect dev->lock to be held. */

static struct ivshmem_peer *find_peer(struct ivshmem *dev, uint32_t id)
{
    for (unsigned i = 0; i < IVSHMEM_MAX_PEERS; i++) {
        if (dev->peers[i].present && dev->peers[i].id == id)
            return &dev->peers[i];
    }
    return NULL;
}

static struct ivshmem_peer *free_peer_slot(struct ivshmem *dev)
{
    for (unsigned i = 0; i < IVSHMEM_MAX_PEERS; i++) {
        if (!dev->peers[i].present)
            return &dev->peers[i];
    }
    return NULL;
}

static uint64_t peers_bitmap(const struct ivshmem *dev)
{
    uint64_t map = 0;
    for (unsigned i = 0; i < IVSHMEM_MAX_PEERS; i++) {
        if (dev->peers[i].present && dev->peers[i].id < 64)
            map |= 1ull << dev->peers[i].id;
    }
    return map;
}

static uint32_t doorbell_value(uint16_t id, unsigned vector)
{
    return IVSHMEM_DOORBELL(id, vector);
}

/* Binds the doorbells of p's vectors that are not bound yet in one address space: BAR0 + 12
 * (memory) or the BAR5 port. */
static void peer_bind_space(struct ivshmem *dev, struct ivshmem_peer *p, bool pio)
{
    uint64_t addr = pio ? dev->port_base : dev->bar0_base + IVSHMEM_REG_DOORBELL;
    uint64_t *bound = pio ? &p->bound_pio : &p->bound;
    for (unsigned v = 0; v < p->nfds; v++) {
        if (*bound & (1ull << v))
            continue;
        int err =
            dev->ops->bind_doorbell(dev->ctx, pio, addr, doorbell_value(p->id, v), p->fds[v], true);
        if (err)
            log_warn("ivshmem: binding the doorbell of peer %u vector %u at %s %#llx: %s", p->id, v,
                     pio ? "port" : "address", (unsigned long long)addr, strerror(-err));
        else
            *bound |= 1ull << v;
    }
}

static void peer_unbind_space(struct ivshmem *dev, struct ivshmem_peer *p, bool pio)
{
    uint64_t addr = pio ? dev->port_base : dev->bar0_base + IVSHMEM_REG_DOORBELL;
    uint64_t *bound = pio ? &p->bound_pio : &p->bound;
    for (unsigned v = 0; v < p->nfds; v++) {
        if (*bound & (1ull << v))
            dev->ops->bind_doorbell(dev->ctx, pio, addr, doorbell_value(p->id, v), p->fds[v],
                                    false);
    }
    *bound = 0;
}

static void peer_bind(struct ivshmem *dev, struct ivshmem_peer *p)
{
    if (dev->bar0_mapped)
        peer_bind_space(dev, p, false);
    if (dev->port_mapped)
        peer_bind_space(dev, p, true);
}

static void peer_unbind(struct ivshmem *dev, struct ivshmem_peer *p)
{
    peer_unbind_space(dev, p, false);
    peer_unbind_space(dev, p, true);
}

static void peer_release(struct ivshmem *dev, struct ivshmem_peer *p)
{
    peer_unbind(dev, p);
    close_fds(p->fds, p->nfds);
    p->nfds = 0;
    p->present = false;
}

static void peer_install(struct ivshmem *dev, struct ivshmem_peer *p, uint16_t id, const int *fds,
                         unsigned n)
{
    p->present = true;
    p->id = id;
    p->nfds = (uint16_t)n;
    p->bound = 0;
    p->bound_pio = 0;
    for (unsigned v = 0; v < n; v++)
        p->fds[v] = fds[v];
    peer_bind(dev, p);
}

static int own_fd(struct ivshmem *dev, uint16_t vector)
{
    if (!dev->has_own)
        return -1;
    struct ivshmem_peer *own = find_peer(dev, dev->own_id);
    return own && vector < own->nfds ? own->fds[vector] : -1;
}

static void unroute(struct ivshmem *dev, uint16_t vector)
{
    if (dev->routed_fd[vector] >= 0) {
        dev->ops->irq_unroute(dev->ctx, vector, dev->routed_fd[vector]);
        dev->routed_fd[vector] = -1;
    }
}

static void unroute_all(struct ivshmem *dev)
{
    for (uint16_t v = 0; v < dev->vectors; v++)
        unroute(dev, v);
}

/* Shows the peer set in the status page. The guest reads it with no lock, so PEERS is one
 * atomic 64-bit store and the generation moves after it. */
static void publish_peers(struct ivshmem *dev)
{
    _Atomic uint64_t *page = (_Atomic uint64_t *)dev->status;
    atomic_store_explicit(&page[IVSHMEM_STATUS_PEERS / 8], peers_bitmap(dev), memory_order_release);
    atomic_fetch_add_explicit(&page[IVSHMEM_STATUS_PEERS_GENERATION / 8], 1, memory_order_release);
}

/* Vector to raise for a change of the peer set, or IVSHMEM_VECTOR_OFF. */
static uint32_t peers_changed_vector(const struct ivshmem *dev)
{
    return dev->peers_changed_vector < dev->vectors ? dev->peers_changed_vector
                                                    : IVSHMEM_VECTOR_OFF;
}

/* Called without dev->lock: msix calls back into our ops, which take it. */
static void notify_peers_changed(struct ivshmem *dev, uint32_t vector)
{
    if (vector != IVSHMEM_VECTOR_OFF)
        msix_notify(&dev->msix, (uint16_t)vector);
}

/* ---- MSI-X ops: the own eventfds are the vectors' interrupt sources ---- */

static int ivshmem_msix_unmask(void *ctx, uint16_t vector, uint64_t addr, uint32_t data)
{
    struct ivshmem *dev = ctx;
    int err = 0;

    pthread_mutex_lock(&dev->lock);
    int fd = own_fd(dev, vector);
    if (dev->routed_fd[vector] != fd)
        unroute(dev, vector);
    /* Without an own eventfd there is nothing to route yet; ivshmem_set_own refreshes. */
    if (fd >= 0) {
        err = dev->ops->irq_route(dev->ctx, vector, addr, data, fd);
        dev->routed_fd[vector] = err ? -1 : fd;
    }
    pthread_mutex_unlock(&dev->lock);
    return err;
}

static void ivshmem_msix_mask(void *ctx, uint16_t vector)
{
    struct ivshmem *dev = ctx;

    pthread_mutex_lock(&dev->lock);
    unroute(dev, vector);
    pthread_mutex_unlock(&dev->lock);
}

static bool ivshmem_msix_poll(void *ctx, uint16_t vector)
{
    struct ivshmem *dev = ctx;
    bool pending = false;

    pthread_mutex_lock(&dev->lock);
    int fd = own_fd(dev, vector);
    if (fd >= 0) {
        /* poll first: the eventfd may be in blocking mode, and we must not wait. */
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        uint64_t count;
        if (poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN))
            pending = read(fd, &count, sizeof(count)) == (ssize_t)sizeof(count);
    }
    pthread_mutex_unlock(&dev->lock);
    return pending;
}

static void ivshmem_msix_fire(void *ctx, uint64_t addr, uint32_t data)
{
    struct ivshmem *dev = ctx;
    /* ops and ctx never change after init: no lock needed. */
    dev->ops->irq_fire(dev->ctx, addr, data);
}

static const struct msix_ops ivshmem_msix_ops = {
    .unmask = ivshmem_msix_unmask,
    .mask = ivshmem_msix_mask,
    .poll = ivshmem_msix_poll,
    .fire = ivshmem_msix_fire,
};

/* ---- BAR0 ---- */

static uint32_t reg_read(struct ivshmem *dev, uint32_t reg)
{
    switch (reg) {
    case IVSHMEM_REG_INTRMASK:
        return dev->intrmask;
    case IVSHMEM_REG_INTRSTATUS:
        return dev->intrstatus;
    case IVSHMEM_REG_IVPOSITION:
        return dev->has_own ? dev->own_id : 0;
    case IVSHMEM_REG_EXT_ID:
        return IVSHMEM_EXT_SIGNATURE;
    case IVSHMEM_REG_PEERS_LO:
        return (uint32_t)peers_bitmap(dev);
    case IVSHMEM_REG_PEERS_HI:
        return (uint32_t)(peers_bitmap(dev) >> 32);
    case IVSHMEM_REG_PEERS_CHANGED_VECTOR:
        return dev->peers_changed_vector;
    case IVSHMEM_REG_MAX_PEERS:
        return IVSHMEM_MAX_PEERS;
    case IVSHMEM_REG_FEATURES:
        /* Without the page mapped (no read-only slots), BAR4 would read as zeroes. */
        return (dev->status_mapped ? IVSHMEM_FEATURE_STATUS_PAGE : 0) |
               IVSHMEM_FEATURE_DOORBELL_PORT;
    default: /* DOORBELL is write-only; the rest is reserved */
        return 0;
    }
}

static void eventfd_kick(int fd)
{
    const uint64_t one = 1;
    /* A full counter (or a non-eventfd from a broken broker) must not stall the vCPU. */
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    if (poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLOUT)) {
        if (write(fd, &one, sizeof(one)) != (ssize_t)sizeof(one))
            log_debug("ivshmem: doorbell write to eventfd %d failed", fd);
    }
}

static void doorbell(struct ivshmem *dev, uint32_t value)
{
    uint16_t peer = (uint16_t)(value >> 16), vector = (uint16_t)value;
    struct ivshmem_peer *p = find_peer(dev, peer);

    if (!p || vector >= p->nfds) {
        atomic_fetch_add(&dev->doorbells_ignored, 1);
        return;
    }
    atomic_fetch_add(&dev->doorbells_slow, 1);
    eventfd_kick(p->fds[vector]);
}

static void ivshmem_bar0_io(void *owner, uint64_t offset, void *data, uint32_t size, bool is_write)
{
    struct ivshmem *dev = owner;
    uint8_t *bytes = data;

    pthread_mutex_lock(&dev->lock);
    if (!is_write) {
        for (uint32_t i = 0; i < size; i++) {
            uint64_t o = offset + i;
            uint32_t reg = o < IVSHMEM_REGS_SIZE ? reg_read(dev, (uint32_t)o & ~3u) : 0;
            bytes[i] = (uint8_t)(reg >> (8 * (o & 3)));
        }
    } else if (size != 4 || (offset & 3)) {
        atomic_fetch_add(&dev->bad_accesses, 1);
    } else {
        uint32_t value = (uint32_t)bytes[0] | (uint32_t)bytes[1] << 8 | (uint32_t)bytes[2] << 16 |
                         (uint32_t)bytes[3] << 24;
        switch (offset) {
        case IVSHMEM_REG_INTRMASK:
            dev->intrmask = value;
            break;
        case IVSHMEM_REG_INTRSTATUS:
            dev->intrstatus = value;
            break;
        case IVSHMEM_REG_DOORBELL:
            doorbell(dev, value);
            break;
        case IVSHMEM_REG_PEERS_CHANGED_VECTOR:
            dev->peers_changed_vector = value;
            break;
        default: /* read-only or reserved */
            break;
        }
    }
    pthread_mutex_unlock(&dev->lock);
}

/* ---- BAR5: the doorbell port ---- */

static void ivshmem_port_io(void *owner, uint64_t offset, void *data, uint32_t size, bool is_write)
{
    struct ivshmem *dev = owner;
    uint8_t *bytes = data;

    if (!is_write) {
        memset(bytes, 0, size);
        return;
    }
    if (size != 4 || offset != 0) {
        atomic_fetch_add(&dev->bad_accesses, 1);
        return;
    }
    uint32_t value = (uint32_t)bytes[0] | (uint32_t)bytes[1] << 8 | (uint32_t)bytes[2] << 16 |
                     (uint32_t)bytes[3] << 24;
    pthread_mutex_lock(&dev->lock);
    doorbell(dev, value);
    pthread_mutex_unlock(&dev->lock);
}

/* ---- PCI callbacks (pci_device lock held) ---- */

/* Maps or unmaps a BAR that the VMM backs with memory (BAR2, BAR4). */
static void map_bar_memory(struct ivshmem *dev, unsigned bar, void *host, uint64_t size,
                           bool *mapped, uint64_t *where, uint64_t base, bool map)
{
    if (map) {
        int err = dev->ops->map_memory(dev->ctx, bar, base, host, size, true);
        if (err)
            log_warn("ivshmem: mapping BAR%u at %#llx (size %#llx): %s", bar,
                     (unsigned long long)base, (unsigned long long)size, strerror(-err));
        *mapped = err == 0;
        *where = base;
    } else if (*mapped) {
        dev->ops->map_memory(dev->ctx, bar, *where, host, size, false);
        *mapped = false;
    }
}

/* A doorbell BAR (BAR0 for memory writes, BAR5 for the port) was mapped or unmapped: every
 * present peer's doorbells follow it. An unmap keeps the old base, which the unbinds need. */
static void doorbell_space_mapped(struct ivshmem *dev, bool pio, bool *is_mapped, uint64_t *where,
                                  uint64_t base, bool mapped)
{
    if (mapped)
        *where = base;
    *is_mapped = mapped;
    for (unsigned i = 0; i < IVSHMEM_MAX_PEERS; i++) {
        if (!dev->peers[i].present)
            continue;
        if (mapped)
            peer_bind_space(dev, &dev->peers[i], pio);
        else
            peer_unbind_space(dev, &dev->peers[i], pio);
    }
}

static void ivshmem_on_map(void *owner, unsigned bar, uint64_t base, bool mapped)
{
    struct ivshmem *dev = owner;

    pthread_mutex_lock(&dev->lock);
    switch (bar) {
    case IVSHMEM_BAR_REGS:
        doorbell_space_mapped(dev, false, &dev->bar0_mapped, &dev->bar0_base, base, mapped);
        break;
    case IVSHMEM_BAR_PORT:
        doorbell_space_mapped(dev, true, &dev->port_mapped, &dev->port_base, base, mapped);
        break;
    case IVSHMEM_BAR_SHM:
        map_bar_memory(dev, bar, dev->shm, dev->shm_size, &dev->shm_mapped, &dev->shm_base, base,
                       mapped);
        break;
    case IVSHMEM_BAR_STATUS:
        map_bar_memory(dev, bar, dev->status, IVSHMEM_STATUS_SIZE, &dev->status_mapped,
                       &dev->status_base, base, mapped);
        break;
    default:
        break;
    }
    pthread_mutex_unlock(&dev->lock);
}

static void ivshmem_config_written(void *owner, uint32_t offset, uint32_t size)
{
    struct ivshmem *dev = owner;
    if (dev->vectors)
        msix_config_written(&dev->msix, offset, size);
}

/* ---- peer table ---- */

int ivshmem_set_own(struct ivshmem *dev, uint32_t id, const int *fds, unsigned n)
{
    int err = check_peer_args(id, fds, n);
    if (err)
        return err;

    bool changed = false;
    pthread_mutex_lock(&dev->lock);
    bool had_own = dev->has_own;
    uint16_t old_id = dev->own_id;
    struct ivshmem_peer *same = find_peer(dev, id);
    if (!had_own && !same && !free_peer_slot(dev)) {
        pthread_mutex_unlock(&dev->lock);
        close_fds(fds, n);
        return -ENOSPC;
    }
    if (had_own) {
        /* Routes use the old own eventfds: remove them before those are closed. */
        unroute_all(dev);
        struct ivshmem_peer *old = find_peer(dev, old_id);
        if (old)
            peer_release(dev, old);
        dev->has_own = false;
        if (old_id != id)
            changed = true; /* the old ID leaves */
    }
    same = find_peer(dev, id);
    if (same)
        peer_release(dev, same); /* a peer entry becomes the own entry: no change */
    else if (!had_own || old_id != id)
        changed = true; /* the new ID appears */
    peer_install(dev, free_peer_slot(dev), (uint16_t)id, fds, n);
    dev->has_own = true;
    dev->own_id = (uint16_t)id;
    if (changed)
        publish_peers(dev);
    uint32_t vector = changed ? peers_changed_vector(dev) : IVSHMEM_VECTOR_OFF;
    pthread_mutex_unlock(&dev->lock);

    if (dev->vectors)
        msix_refresh(&dev->msix); /* route the vectors to the new eventfds */
    notify_peers_changed(dev, vector);
    return 0;
}

int ivshmem_peer_add(struct ivshmem *dev, uint32_t id, const int *fds, unsigned n)
{
    int err = check_peer_args(id, fds, n);
    if (err)
        return err;

    pthread_mutex_lock(&dev->lock);
    if (dev->has_own && dev->own_id == id) {
        err = -EINVAL;
        goto err_unlock;
    }
    struct ivshmem_peer *p = find_peer(dev, id);
    bool changed = p == NULL;
    if (p) {
        peer_release(dev, p);
    } else if (!(p = free_peer_slot(dev))) {
        err = -ENOSPC;
        goto err_unlock;
    }
    peer_install(dev, p, (uint16_t)id, fds, n);
    if (changed)
        publish_peers(dev);
    uint32_t vector = changed ? peers_changed_vector(dev) : IVSHMEM_VECTOR_OFF;
    pthread_mutex_unlock(&dev->lock);
    notify_peers_changed(dev, vector);
    return 0;

err_unlock:
    pthread_mutex_unlock(&dev->lock);
    close_fds(fds, n);
    return err;
}

int ivshmem_peer_remove(struct ivshmem *dev, uint32_t id)
{
    pthread_mutex_lock(&dev->lock);
    if (dev->has_own && dev->own_id == id) {
        pthread_mutex_unlock(&dev->lock);
        return -EINVAL;
    }
    struct ivshmem_peer *p = find_peer(dev, id);
    if (!p) {
        pthread_mutex_unlock(&dev->lock);
        return -ENOENT;
    }
    peer_release(dev, p);
    publish_peers(dev);
    uint32_t vector = peers_changed_vector(dev);
    pthread_mutex_unlock(&dev->lock);
    notify_peers_changed(dev, vector);
    return 0;
}

uint64_t ivshmem_peers_bitmap(struct ivshmem *dev)
{
    pthread_mutex_lock(&dev->lock);
    uint64_t map = peers_bitmap(dev);
    pthread_mutex_unlock(&dev->lock);
    return map;
}

/* ---- life cycle ---- */

int ivshmem_init(struct ivshmem *dev, struct pci_bus *bus, void *shm, uint64_t shm_size,
                 unsigned vectors, const struct ivshmem_ops *ops, void *ctx)
{
    static const struct pci_device_info info = {
        .vendor_id = IVSHMEM_VENDOR_ID,
        .device_id = IVSHMEM_DEVICE_ID,
        .revision = IVSHMEM_REVISION,
        .class_code = IVSHMEM_CLASS,
        .subsystem_vendor_id = IVSHMEM_SUBSYSTEM_VENDOR_ID,
        .subsystem_id = IVSHMEM_SUBSYSTEM_ID,
    };
    int err;

    if (!shm || (uintptr_t)shm % IVSHMEM_MIN_SHM || shm_size < IVSHMEM_MIN_SHM ||
        (shm_size & (shm_size - 1)) || vectors > IVSHMEM_MAX_VECTORS || !ops || !ops->map_memory ||
        !ops->bind_doorbell)
        return -EINVAL;
    if (vectors && (!ops->irq_route || !ops->irq_unroute || !ops->irq_fire))
        return -EINVAL;

    memset(dev, 0, sizeof(*dev));
    dev->bus = bus;
    dev->ops = ops;
    dev->ctx = ctx;
    dev->shm = shm;
    dev->shm_size = shm_size;
    dev->vectors = (uint16_t)vectors;
    dev->peers_changed_vector = IVSHMEM_VECTOR_OFF;
    for (unsigned v = 0; v < IVSHMEM_MAX_VECTORS; v++)
        dev->routed_fd[v] = -1;

    /* A page of its own: KVM maps whole pages, and the guest must see nothing else. */
    dev->status =
        mmap(NULL, IVSHMEM_STATUS_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (dev->status == MAP_FAILED) {
        err = errno;
        log_error("ivshmem: mmap of the status page: %s", strerror(err));
        return -err;
    }
    if ((err = -pthread_mutex_init(&dev->lock, NULL)))
        goto err_status;
    if ((err = pci_device_init(&dev->pci, &info, "ivshmem", dev, ivshmem_on_map,
                               ivshmem_config_written)))
        goto err_lock;
    if ((err = pci_device_add_bar(&dev->pci, IVSHMEM_BAR_REGS, PCI_BAR_MEM32, IVSHMEM_REGS_SIZE,
                                  false, ivshmem_bar0_io, dev)))
        goto err_pci;
    if (vectors &&
        (err = msix_init(&dev->msix, &dev->pci, IVSHMEM_BAR_MSIX, vectors, &ivshmem_msix_ops, dev)))
        goto err_pci;
    if ((err = pci_device_add_bar(&dev->pci, IVSHMEM_BAR_SHM, PCI_BAR_MEM64, shm_size, true, NULL,
                                  NULL)) ||
        (err = pci_device_add_bar(&dev->pci, IVSHMEM_BAR_STATUS, PCI_BAR_MEM32, IVSHMEM_STATUS_SIZE,
                                  false, NULL, NULL)) ||
        (err = pci_device_add_bar(&dev->pci, IVSHMEM_BAR_PORT, PCI_BAR_IO, IVSHMEM_PORT_SIZE, false,
                                  ivshmem_port_io, dev)))
        goto err_msix;
    if ((err = pci_bus_add_device(bus, &dev->pci))) {
        log_error("ivshmem: pci_bus_add_device (shared memory %#llx bytes): %s",
                  (unsigned long long)shm_size, strerror(-err));
        goto err_msix;
    }
    return 0;

err_msix:
    if (vectors)
        msix_destroy(&dev->msix);
err_pci:
    pci_device_destroy(&dev->pci);
err_lock:
    pthread_mutex_destroy(&dev->lock);
err_status:
    munmap(dev->status, IVSHMEM_STATUS_SIZE);
    return err;
}

void ivshmem_destroy(struct ivshmem *dev)
{
    /* Unmapping BAR0 and BAR2 unbinds the doorbells and removes the memory slot. */
    pci_bus_remove_device(dev->bus, &dev->pci);
    if (dev->vectors)
        msix_destroy(&dev->msix);

    pthread_mutex_lock(&dev->lock);
    unroute_all(dev);
    for (unsigned i = 0; i < IVSHMEM_MAX_PEERS; i++) {
        if (dev->peers[i].present)
            peer_release(dev, &dev->peers[i]);
    }
    dev->has_own = false;
    pthread_mutex_unlock(&dev->lock);
    if (dev->doorbells_ignored || dev->bad_accesses)
        log_debug("ivshmem: %llu doorbells for absent peers/vectors, %llu bad BAR0 writes ignored",
                  (unsigned long long)dev->doorbells_ignored,
                  (unsigned long long)dev->bad_accesses);
    pci_device_destroy(&dev->pci);
    pthread_mutex_destroy(&dev->lock);
    munmap(dev->status, IVSHMEM_STATUS_SIZE);
}
