/* A PCI function with an MSI-X capability (table and PBA in one BAR) on a PCI bus of its
 * own, reached through the port I/O and MMIO buses as a guest would: the set-up of
 * tests/unit/test_msix.c and tests/fuzz/fuzz_msix.c. Header-only (see support/text.h). */
#pragma once

#include <errno.h>
#include <stdint.h>

#include "devices/bus.h"
#include "devices/msix.h"
#include "devices/pci.h"
#include "tests/unit/support/pci_windows.h"

struct msix_function {
    struct bus pio, mmio;
    struct pci_bus pci;
    struct pci_device dev;
    struct msix msix;
    uint64_t bar; /* guest address of the MSI-X BAR */
};

/* What a device does with its config-space callback: MSI-X sees the writes. */
static inline void msix_function_config_written(void *owner, uint32_t offset, uint32_t size)
{
    struct msix_function *fn = owner;
    msix_config_written(&fn->msix, offset, size);
}

/* Sets fn up with nvectors vectors in BAR bar (ops and ctx as msix_init() takes them),
 * plugs it into its bus (slot 1, the first free one) and finds where the BAR is mapped. Returns 0
 * or -errno
 * (-ENXIO: the BAR was not mapped), with nothing left set up on failure. */
static inline int msix_function_init(struct msix_function *fn, unsigned int bar,
                                     unsigned int nvectors, const struct msix_ops *ops, void *ctx)
{
    static const struct pci_device_info info = {.vendor_id = 0x1234, .device_id = 0x11};
    int err = bus_init(&fn->pio, "pio");
    if (err)
        return err;
    if ((err = bus_init(&fn->mmio, "mmio")))
        goto err_pio;
    if ((err = pci_bus_init(&fn->pci, &fn->pio, &fn->mmio, TEST_PCI_WINDOWS)))
        goto err_mmio;
    if ((err = pci_device_init(&fn->dev, &info, "msix", fn, NULL, msix_function_config_written)))
        goto err_pci;
    if ((err = msix_init(&fn->msix, &fn->dev, bar, nvectors, ops, ctx)))
        goto err_dev;
    if ((err = pci_bus_add_device(&fn->pci, &fn->dev)))
        goto err_msix;
    if (!pci_device_bar_mapped(&fn->dev, bar, &fn->bar)) {
        err = -ENXIO;
        goto err_plugged;
    }
    return 0;

err_plugged:
    pci_bus_remove_device(&fn->pci, &fn->dev);
err_msix:
    msix_destroy(&fn->msix);
err_dev:
    pci_device_destroy(&fn->dev);
err_pci:
    pci_bus_destroy(&fn->pci);
err_mmio:
    bus_destroy(&fn->mmio);
err_pio:
    bus_destroy(&fn->pio);
    return err;
}

/* Unplugs the function and tears MSI-X down, after which the VMM must have every vector
 * masked again: callers check that before msix_function_destroy(). */
static inline void msix_function_unplug(struct msix_function *fn)
{
    pci_bus_remove_device(&fn->pci, &fn->dev);
    msix_destroy(&fn->msix);
}

static inline void msix_function_destroy(struct msix_function *fn)
{
    pci_device_destroy(&fn->dev);
    pci_bus_destroy(&fn->pci);
    bus_destroy(&fn->mmio);
    bus_destroy(&fn->pio);
}
