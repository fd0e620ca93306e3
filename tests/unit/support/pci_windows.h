/* The PCI windows the device tests give pci_bus_init(): the same ranges as the VMM's
 * (vmm/layout.h), written out so the device tests need nothing from vmm/. Header-only
 * (see support/text.h). */
#pragma once

#include "devices/pci.h"

#define TEST_PCI_WINDOWS                                                                           \
    (&(const struct pci_windows){                                                                  \
        .io_start = 0xC000,                                                                        \
        .io_end = 0x10000,                                                                         \
        .mmio32_start = 0xC0000000,                                                                \
        .mmio32_end = 0xFEC00000,                                                                  \
        .mmio64_start = 1ull << 38,                                                                \
        .mmio64_end = 1ull << 39,                                                                  \
    })
