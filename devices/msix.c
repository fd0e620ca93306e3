#include "devices/msix.h"

#include <errno.h>
#include <string.h>

#include "common/log.h"

static uint32_t load32(const void *p)
{
    const uint8_t *b = p;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void store32(void *p, uint32_t v)
{
    uint8_t *b = p;
    for (int i = 0; i < 4; i++)
        b[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t pba_size(const struct msix *msix)
{
    return 8 * (((uint32_t)msix->nvectors + 63) / 64);
}

static bool deliverable(const struct msix *msix, uint16_t v)
{
    return msix->enabled && !msix->function_masked && !(msix->vectors[v].ctrl & MSIX_ENTRY_MASKED);
}

static void msix_fire(struct msix *msix, uint16_t v)
{
    msix->ops->fire(msix->ctx, msix->vectors[v].addr, msix->vectors[v].data);
}

static void msix_try_unmask(struct msix *msix, uint16_t v)
{
    struct msix_vector *vec = &msix->vectors[v];
    int err = msix->ops->unmask(msix->ctx, v, vec->addr, vec->data);

    vec->active = err == 0;
    if (err && atomic_fetch_add(&msix->unmask_failures, 1) == 0)
        log_warn("msix %s: unmasking vector %u (address %#llx data %#x): %s", msix->pci->name, v,
                 (unsigned long long)vec->addr, vec->data, strerror(-err));
}

/* Makes the VMM's view of vector v match the guest's. message_changed: the message of a
 * deliverable vector may differ from what unmask() last installed. Caller holds the lock. */
static void msix_update_vector(struct msix *msix, uint16_t v, bool message_changed)
{
    struct msix_vector *vec = &msix->vectors[v];

    if (deliverable(msix, v)) {
        if (!vec->active) {
            /* Deliver what came in while it was masked, once, before the fast path starts. */
            if (msix->ops->poll && msix->ops->poll(msix->ctx, v))
                vec->pending = true;
            if (vec->pending) {
                vec->pending = false;
                msix_fire(msix, v);
            }
            msix_try_unmask(msix, v);
        } else if (message_changed) {
            msix_try_unmask(msix, v);
        }
    } else if (vec->active) {
        msix->ops->mask(msix->ctx, v);
        vec->active = false;
    }
}

/* One aligned dword of the table. Caller holds the lock. */
static void msix_table_access(struct msix *msix, uint32_t offset, uint8_t *data, bool is_write,
                              bool *changed)
{
    struct msix_vector *vec = &msix->vectors[offset / MSIX_ENTRY_SIZE];
    uint32_t reg = offset % MSIX_ENTRY_SIZE;

    if (!is_write) {
        uint32_t v = 0;
        switch (reg) {
        case MSIX_ENTRY_ADDR_LO:
            v = (uint32_t)vec->addr;
            break;
        case MSIX_ENTRY_ADDR_HI:
            v = (uint32_t)(vec->addr >> 32);
            break;
        case MSIX_ENTRY_DATA:
            v = vec->data;
            break;
        default:
            v = vec->ctrl;
            break;
        }
        store32(data, v);
        return;
    }

    uint32_t val = load32(data);
    uint64_t old_addr = vec->addr;
    uint32_t old_data = vec->data;
    switch (reg) {
    case MSIX_ENTRY_ADDR_LO:
        /* The two low bits must be written as 0 for dword alignment; keep them 0. */
        vec->addr = (vec->addr & 0xFFFFFFFF00000000ull) | (val & ~3u);
        break;
    case MSIX_ENTRY_ADDR_HI:
        vec->addr = (vec->addr & 0xFFFFFFFFull) | (uint64_t)val << 32;
        break;
    case MSIX_ENTRY_DATA:
        vec->data = val;
        break;
    default:
        vec->ctrl = val & MSIX_ENTRY_MASKED;
        break;
    }
    if (vec->addr != old_addr || vec->data != old_data)
        *changed = true;
}

/* An aligned 32- or 64-bit PBA read. Caller holds the lock. */
static void msix_pba_read(struct msix *msix, uint32_t offset, uint8_t *data, uint32_t size)
{
    for (uint32_t byte = 0; byte < size; byte++) {
        uint8_t bits = 0;
        for (uint32_t bit = 0; bit < 8; bit++) {
            uint32_t v = (offset + byte) * 8 + bit;
            if (v >= msix->nvectors)
                break;
            struct msix_vector *vec = &msix->vectors[v];
            /* Interrupts that arrived while masked sit in the VMM (the eventfd) until asked. */
            if (!vec->active && msix->ops->poll && msix->ops->poll(msix->ctx, (uint16_t)v)) {
                if (deliverable(msix, (uint16_t)v))
                    msix_fire(msix, (uint16_t)v);
                else
                    vec->pending = true;
            }
            if (vec->pending)
                bits |= (uint8_t)(1u << bit);
        }
        data[byte] = bits;
    }
}

static void msix_bar_io(void *owner, uint64_t offset, void *data, uint32_t size, bool is_write)
{
    struct msix *msix = owner;
    uint8_t *bytes = data;
    bool ok = false;

    pthread_mutex_lock(&msix->lock);
    uint32_t table_size = (uint32_t)msix->nvectors * MSIX_ENTRY_SIZE;
    if (offset < table_size) {
        if ((size == 4 || size == 8) && offset % size == 0 && size <= table_size - offset) {
            bool changed = false;
            for (uint32_t i = 0; i < size; i += 4)
                msix_table_access(msix, (uint32_t)offset + i, bytes + i, is_write, &changed);
            if (is_write)
                msix_update_vector(msix, (uint16_t)(offset / MSIX_ENTRY_SIZE), changed);
            ok = true;
        }
    } else if (offset >= MSIX_PBA_OFFSET && offset - MSIX_PBA_OFFSET < pba_size(msix)) {
        uint32_t pba_off = (uint32_t)(offset - MSIX_PBA_OFFSET);
        if (!is_write && (size == 4 || size == 8) && pba_off % size == 0 &&
            size <= pba_size(msix) - pba_off) {
            msix_pba_read(msix, pba_off, bytes, size);
            ok = true;
        }
    }
    if (!ok) {
        atomic_fetch_add(&msix->bad_accesses, 1);
        if (!is_write)
            memset(data, 0, size);
    }
    pthread_mutex_unlock(&msix->lock);
}

int msix_init(struct msix *msix, struct pci_device *pci, unsigned bar, unsigned nvectors,
              const struct msix_ops *ops, void *ctx)
{
    int err;

    if (nvectors < 1 || nvectors > MSIX_MAX_VECTORS || bar >= PCI_NUM_BARS || !ops ||
        !ops->unmask || !ops->mask || !ops->fire)
        return -EINVAL;
    memset(msix, 0, sizeof(*msix));
    msix->pci = pci;
    msix->ops = ops;
    msix->ctx = ctx;
    msix->nvectors = (uint16_t)nvectors;
    msix->bar = (uint8_t)bar;
    for (unsigned v = 0; v < nvectors; v++)
        msix->vectors[v].ctrl = MSIX_ENTRY_MASKED;
    if ((err = pthread_mutex_init(&msix->lock, NULL)))
        return -err;

    if ((err =
             pci_device_add_bar(pci, bar, PCI_BAR_MEM32, MSIX_BAR_SIZE, false, msix_bar_io, msix)))
        goto err_lock;
    int cap = pci_device_add_capability(pci, MSIX_CAP_ID, MSIX_CAP_LEN);
    if (cap < 0) {
        err = cap;
        goto err_lock;
    }
    msix->cap = (uint8_t)cap;
    pci_config_set(pci, (uint32_t)cap + MSIX_CAP_CONTROL, 2, nvectors - 1);
    pci_config_set_wmask(pci, (uint32_t)cap + MSIX_CAP_CONTROL, 2,
                         MSIX_CONTROL_FMASK | MSIX_CONTROL_ENABLE);
    pci_config_set(pci, (uint32_t)cap + MSIX_CAP_TABLE, 4, MSIX_TABLE_OFFSET | bar);
    pci_config_set(pci, (uint32_t)cap + MSIX_CAP_PBA, 4, MSIX_PBA_OFFSET | bar);
    return 0;

err_lock:
    pthread_mutex_destroy(&msix->lock);
    return err;
}

void msix_destroy(struct msix *msix)
{
    pthread_mutex_lock(&msix->lock);
    for (uint16_t v = 0; v < msix->nvectors; v++) {
        if (msix->vectors[v].active) {
            msix->ops->mask(msix->ctx, v);
            msix->vectors[v].active = false;
        }
    }
    pthread_mutex_unlock(&msix->lock);
    if (msix->bad_accesses)
        log_debug("msix %s: %llu bad table/PBA accesses ignored", msix->pci->name,
                  (unsigned long long)msix->bad_accesses);
    pthread_mutex_destroy(&msix->lock);
}

void msix_config_written(struct msix *msix, uint32_t offset, uint32_t size)
{
    uint32_t control = msix->cap + MSIX_CAP_CONTROL;

    if (offset >= control + 2 || offset + size <= control)
        return;
    /* Our caller is the config_written callback: the pci_device lock is held. */
    uint32_t ctrl = pci_config_read_locked(msix->pci, control, 2);

    pthread_mutex_lock(&msix->lock);
    msix->enabled = ctrl & MSIX_CONTROL_ENABLE;
    msix->function_masked = ctrl & MSIX_CONTROL_FMASK;
    for (uint16_t v = 0; v < msix->nvectors; v++)
        msix_update_vector(msix, v, false);
    pthread_mutex_unlock(&msix->lock);
}

void msix_notify(struct msix *msix, uint16_t vector)
{
    pthread_mutex_lock(&msix->lock);
    if (vector < msix->nvectors) {
        if (deliverable(msix, vector))
            msix_fire(msix, vector);
        else
            msix->vectors[vector].pending = true;
    }
    pthread_mutex_unlock(&msix->lock);
}

void msix_refresh(struct msix *msix)
{
    pthread_mutex_lock(&msix->lock);
    for (uint16_t v = 0; v < msix->nvectors; v++)
        msix_update_vector(msix, v, true);
    pthread_mutex_unlock(&msix->lock);
}

bool msix_is_deliverable(struct msix *msix, uint16_t vector)
{
    pthread_mutex_lock(&msix->lock);
    bool ret = vector < msix->nvectors && deliverable(msix, vector);
    pthread_mutex_unlock(&msix->lock);
    return ret;
}

bool msix_is_pending(struct msix *msix, uint16_t vector)
{
    pthread_mutex_lock(&msix->lock);
    bool ret = vector < msix->nvectors && msix->vectors[vector].pending;
    pthread_mutex_unlock(&msix->lock);
    return ret;
}

uint64_t msix_bad_accesses(struct msix *msix)
{
    return atomic_load(&msix->bad_accesses);
}
