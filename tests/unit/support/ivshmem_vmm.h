/* A fake VMM behind the ivshmem device's ops, shared by tests/unit/test_ivshmem.c and
 * tests/fuzz/fuzz_ivshmem.c: it keeps the state KVM would have (memory slot, ioeventfd
 * doorbells, irqfd routes) and records in broken the first breach of the ops contract, so
 * each caller fails in its own way. Header-only (see support/text.h). */
#pragma once

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include "devices/ivshmem.h"
#include "tests/unit/support/fds.h"

struct binding {
    uint64_t gpa;
    uint32_t datamatch;
    int fd;
};

struct route {
    bool on;
    uint64_t addr;
    uint32_t data;
    int fd;
};

struct fire {
    uint64_t addr;
    uint32_t data;
};

/* The VMM side: keeps the state KVM would have and flags any breach of the ops contract. */
struct fake_vmm {
    pthread_mutex_t lock;
    struct binding binds[IVSHMEM_MAX_PEERS * IVSHMEM_MAX_VECTORS]; /* the most there can be */
    size_t nbinds;
    struct binding pio_binds[IVSHMEM_MAX_PEERS * IVSHMEM_MAX_VECTORS]; /* at the BAR5 port */
    size_t npio_binds;
    unsigned bind_calls, unbind_calls;
    struct route routes[IVSHMEM_MAX_VECTORS];
    unsigned route_calls, unroute_calls;
    struct fire fires[256];
    size_t nfires;
    bool mem_mapped;
    uint64_t mem_gpa;
    void *mem_host;
    uint64_t mem_size;
    unsigned map_calls, unmap_calls;
    bool status_mapped; /* the status page (BAR4), which has its own slot */
    uint64_t status_gpa;
    const void *status_host;
    int fail_map;          /* map_memory of BAR2 returns this when nonzero */
    int fail_status_map;   /* map_memory of BAR4 returns this when nonzero */
    int64_t fail_bind_for; /* bind_doorbell fails for this datamatch (-1: none) */
    char broken[200];
};

static inline void breach(struct fake_vmm *vmm, const char *why)
{
    if (!vmm->broken[0])
        snprintf(vmm->broken, sizeof(vmm->broken), "%s", why);
}

static inline int fake_map_status(struct fake_vmm *vmm, uint64_t gpa, void *host, uint64_t size,
                                  bool map)
{
    if (map) {
        if (vmm->status_mapped)
            breach(vmm, "status page mapped twice");
        if (size != IVSHMEM_STATUS_SIZE || gpa % size)
            breach(vmm, "status page with a bad size or gpa");
        if (vmm->fail_status_map)
            return vmm->fail_status_map;
        vmm->status_mapped = true;
        vmm->status_gpa = gpa;
        vmm->status_host = host;
    } else {
        if (!vmm->status_mapped || vmm->status_gpa != gpa)
            breach(vmm, "unmapping a status page that is not mapped");
        vmm->status_mapped = false;
    }
    return 0;
}

static inline int fake_map_memory(void *ctx, unsigned bar, uint64_t gpa, void *host, uint64_t size,
                                  bool map)
{
    struct fake_vmm *vmm = ctx;
    int ret = 0;
    pthread_mutex_lock(&vmm->lock);
    if (bar == IVSHMEM_BAR_STATUS) {
        ret = fake_map_status(vmm, gpa, host, size, map);
    } else if (bar != IVSHMEM_BAR_SHM) {
        breach(vmm, "map_memory of a BAR that is not memory");
    } else if (map) {
        if (vmm->mem_mapped)
            breach(vmm, "map_memory while mapped");
        if (gpa % size)
            breach(vmm, "map_memory at a misaligned gpa");
        if (vmm->fail_map) {
            ret = vmm->fail_map;
        } else {
            vmm->mem_mapped = true;
            vmm->mem_gpa = gpa;
            vmm->mem_host = host;
            vmm->mem_size = size;
            vmm->map_calls++;
        }
    } else {
        if (!vmm->mem_mapped || vmm->mem_gpa != gpa || vmm->mem_size != size)
            breach(vmm, "map_memory(unmap) of something not mapped");
        vmm->mem_mapped = false;
        vmm->unmap_calls++;
    }
    pthread_mutex_unlock(&vmm->lock);
    return ret;
}

static inline ssize_t find_binding(const struct binding *binds, size_t n, uint64_t addr,
                                   uint32_t datamatch)
{
    for (size_t i = 0; i < n; i++) {
        if (binds[i].gpa == addr && binds[i].datamatch == datamatch)
            return (ssize_t)i;
    }
    return -1;
}

static inline int fake_bind_doorbell(void *ctx, bool pio, uint64_t addr, uint32_t datamatch,
                                     int eventfd, bool bind)
{
    struct fake_vmm *vmm = ctx;
    struct binding *binds = pio ? vmm->pio_binds : vmm->binds;
    size_t *n = pio ? &vmm->npio_binds : &vmm->nbinds;
    pthread_mutex_lock(&vmm->lock);
    if (!test_fd_is_open(eventfd))
        breach(vmm, "bind_doorbell with a closed fd");
    ssize_t i = find_binding(binds, *n, addr, datamatch);
    if (bind && (int64_t)datamatch == vmm->fail_bind_for) {
        pthread_mutex_unlock(&vmm->lock);
        return -ENOSPC;
    }
    if (bind) {
        vmm->bind_calls++;
        if (i >= 0)
            breach(vmm, "doorbell bound twice (KVM says -EEXIST)");
        else if (*n == IVSHMEM_MAX_PEERS * IVSHMEM_MAX_VECTORS)
            breach(vmm, "more doorbells bound than peers times vectors");
        else
            binds[(*n)++] = (struct binding){addr, datamatch, eventfd};
    } else {
        vmm->unbind_calls++;
        if (i < 0 || binds[i].fd != eventfd)
            breach(vmm, "unbinding a doorbell that is not bound");
        else
            binds[i] = binds[--*n];
    }
    pthread_mutex_unlock(&vmm->lock);
    return 0;
}

static inline int fake_irq_route(void *ctx, uint16_t vector, uint64_t addr, uint32_t data,
                                 int eventfd)
{
    struct fake_vmm *vmm = ctx;
    pthread_mutex_lock(&vmm->lock);
    if (vector >= IVSHMEM_MAX_VECTORS)
        breach(vmm, "irq_route vector out of range");
    else {
        if (!test_fd_is_open(eventfd))
            breach(vmm, "irq_route with a closed fd");
        if (vmm->routes[vector].on && vmm->routes[vector].fd != eventfd)
            breach(vmm, "irq_route over a route with another eventfd");
        vmm->routes[vector] = (struct route){true, addr, data, eventfd};
        vmm->route_calls++;
    }
    pthread_mutex_unlock(&vmm->lock);
    return 0;
}

static inline void fake_irq_unroute(void *ctx, uint16_t vector, int eventfd)
{
    struct fake_vmm *vmm = ctx;
    pthread_mutex_lock(&vmm->lock);
    if (vector >= IVSHMEM_MAX_VECTORS || !vmm->routes[vector].on ||
        vmm->routes[vector].fd != eventfd)
        breach(vmm, "irq_unroute of a route that does not exist");
    else if (!test_fd_is_open(eventfd))
        breach(vmm, "irq_unroute after the fd was closed");
    else
        vmm->routes[vector].on = false;
    vmm->unroute_calls++;
    pthread_mutex_unlock(&vmm->lock);
}

static inline void fake_irq_fire(void *ctx, uint64_t addr, uint32_t data)
{
    struct fake_vmm *vmm = ctx;
    pthread_mutex_lock(&vmm->lock);
    if (vmm->nfires < sizeof(vmm->fires) / sizeof(vmm->fires[0]))
        vmm->fires[vmm->nfires] = (struct fire){addr, data};
    vmm->nfires++;
    pthread_mutex_unlock(&vmm->lock);
}

static const struct ivshmem_ops fake_ops = {
    .map_memory = fake_map_memory,
    .bind_doorbell = fake_bind_doorbell,
    .irq_route = fake_irq_route,
    .irq_unroute = fake_irq_unroute,
    .irq_fire = fake_irq_fire,
};

static inline void fake_vmm_init(struct fake_vmm *vmm)
{
    memset(vmm, 0, sizeof(*vmm));
    pthread_mutex_init(&vmm->lock, NULL);
    vmm->fail_bind_for = -1;
}

static inline void fake_vmm_destroy(struct fake_vmm *vmm)
{
    pthread_mutex_destroy(&vmm->lock);
}
