/* PCI bus 0 behind an i440FX-like host bridge, reached through configuration mechanism #1
 * (ports 0xCF8/0xCFC). Devices are plain structs that describe their identity, BARs and
 * capabilities; the PCI layer owns config space, BAR sizing and decoding, and puts each
 * mapped BAR on the right bus. Like firmware, pci_bus_add_device() assigns BAR addresses
 * from fixed windows and turns decoding on, so Linux finds the devices ready and keeps them.
 *
 * The config space rules it enforces (read-only and write-1-to-clear bits, BAR sizing, when
 * a BAR is mapped, moved and unmapped, and what happens when a BAR overlaps another) are
 * specified in docs/pci.md.
 *
 * Locking. This is the one statement of the lock order of devices/; a thread that holds a
 * lock takes only locks further down:
 *   1. pci_bus lock        address latch, slot table, window cursors
 *   2. pci_device lock     config space and BAR state of one function
 *   3. msix lock           the MSI-X table and PBA (devices/msix.h)
 *   4. the device's lock   e.g. struct ivshmem's, struct portio's
 *   5. VMM callbacks       ivshmem_ops, msix_ops: they take only VMM locks and never call
 *                          back into devices/
 *   leaf: bus lock         (devices/bus.h) taken for a moment by bus_register/unregister
 *                          and by lookups; never held while a callback runs
 * None of these mutexes is recursive. on_map and config_written run with the pci_device
 * lock held (so they see mappings in order); inside them use only pci_config_read_locked()
 * of the same device, never another pci_* function. A device therefore never calls a pci_*
 * function while holding its own lock. Config accesses from vCPUs take the pci_bus lock
 * only to read the latch and slot, and release it before taking the pci_device lock.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/bus.h"

#define PCI_CONFIG_ADDRESS_PORT 0xCF8 /* 4 ports; only 32-bit accesses reach the latch */
#define PCI_CONFIG_DATA_PORT    0xCFC /* 4 ports; byte, word and dword accesses */
#define PCI_MAX_SLOTS           32
#define PCI_NUM_BARS            6
#define PCI_CONFIG_SIZE         256

/* Standard config space offsets (type 0 header). */
#define PCI_VENDOR_ID           0x00
#define PCI_DEVICE_ID           0x02
#define PCI_COMMAND             0x04
#define PCI_STATUS              0x06
#define PCI_REVISION_ID         0x08
#define PCI_CLASS_PROG          0x09
#define PCI_CACHE_LINE_SIZE     0x0C
#define PCI_LATENCY_TIMER       0x0D
#define PCI_HEADER_TYPE         0x0E
#define PCI_BAR0                0x10
#define PCI_SUBSYSTEM_VENDOR_ID 0x2C
#define PCI_SUBSYSTEM_ID        0x2E
#define PCI_ROM_ADDRESS         0x30
#define PCI_CAPABILITY_LIST     0x34
#define PCI_INTERRUPT_LINE      0x3C
#define PCI_INTERRUPT_PIN       0x3D
#define PCI_CAP_START           0x40 /* capabilities are placed from here on */

#define PCI_COMMAND_IO           0x0001
#define PCI_COMMAND_MEMORY       0x0002
#define PCI_COMMAND_MASTER       0x0004
#define PCI_COMMAND_INTX_DISABLE 0x0400
#define PCI_STATUS_CAP_LIST      0x0010
#define PCI_STATUS_W1C           0xF900
#define PCI_BAR_IO_SPACE         0x01
#define PCI_BAR_MEM_TYPE_64      0x04
#define PCI_BAR_MEM_PREFETCH     0x08

/* The host bridge at 00:00.0. */
#define PCI_HOST_BRIDGE_VENDOR 0x8086
#define PCI_HOST_BRIDGE_DEVICE 0x1237
#define PCI_HOST_BRIDGE_CLASS  0x060000

enum pci_bar_type {
    PCI_BAR_NONE,  /* unimplemented: reads 0, never mapped */
    PCI_BAR_IO,    /* port I/O, 4 bytes .. 64 KiB */
    PCI_BAR_MEM32, /* 32-bit memory, 16 bytes .. 2 GiB */
    PCI_BAR_MEM64, /* 64-bit memory: uses BAR n and n+1, 16 bytes .. 2^62 */
};

/* Called with the device lock held whenever a BAR becomes mapped at base (mapped true) or
 * stops being mapped at base (mapped false); a move is an unmap at the old base followed
 * by a map at the new one. Calls are strictly paired: mapped false only follows mapped true
 * for the same base. For a BAR with an io callback the range is already on the bus when
 * mapped is true and already off it when mapped is false. Runs on whatever thread caused
 * the change: a vCPU thread (guest config write) or the thread calling
 * pci_bus_add_device()/pci_bus_remove_device(). */
typedef void (*pci_on_map_fn)(void *owner, unsigned bar, uint64_t base, bool mapped);

/* Called with the device lock held after every guest write to config space (any offset,
 * after masks, BAR and COMMAND processing), on the vCPU thread that wrote. The device may
 * read its config with pci_config_read_locked() to react, e.g. to its capability registers. */
typedef void (*pci_config_written_fn)(void *owner, uint32_t offset, uint32_t size);

struct pci_device_info {
    uint16_t vendor_id;
    uint16_t device_id;
    uint8_t revision;
    uint32_t class_code; /* base class << 16 | subclass << 8 | programming interface */
    uint16_t subsystem_vendor_id;
    uint16_t subsystem_id;
};

struct pci_bar {
    enum pci_bar_type type; /* PCI_BAR_NONE also for the upper half of a 64-bit BAR */
    bool prefetchable;
    uint64_t size;
    bus_io_fn io; /* NULL: the VMM maps it (on_map); the bus gets a placeholder */
    void *io_owner;
    bus_string_fn string_io; /* optional, with io: rep ins/outs in one call */
    /* State, under the device lock. */
    bool mapped;      /* registered on the bus and announced through on_map */
    uint64_t base;    /* where, while mapped */
    bool low_pending; /* 64-bit: low dword written, high dword not yet */
};

struct pci_bus;

struct pci_device {
    pthread_mutex_t lock; /* see the lock order at the top of this file */
    const char *name;
    void *owner;
    pci_on_map_fn on_map;                 /* optional */
    pci_config_written_fn config_written; /* optional */
    struct pci_bus *bus;                  /* set while the device is on a bus */
    unsigned slot;                        /* its device number there */
    uint8_t config[PCI_CONFIG_SIZE];
    uint8_t wmask[PCI_CONFIG_SIZE]; /* bits the guest may write */
    uint8_t w1c[PCI_CONFIG_SIZE];   /* bits a guest write of 1 clears */
    struct pci_bar bars[PCI_NUM_BARS];
    uint8_t last_cap;  /* offset of the last capability, 0 if none */
    uint16_t cap_free; /* first free config offset for the next capability */
};

/* Where pci_bus_add_device() assigns BARs from, as [start, end) ranges. */
struct pci_windows {
    uint64_t io_start, io_end;
    uint64_t mmio32_start, mmio32_end;
    uint64_t mmio64_start, mmio64_end;
};

struct pci_bus {
    pthread_mutex_t lock; /* address latch, slot table, allocation cursors */
    struct bus *pio;
    struct bus *mmio;
    uint32_t address; /* the 0xCF8 latch */
    struct pci_device *slots[PCI_MAX_SLOTS];
    struct pci_device host_bridge;
    struct pci_windows windows;
    uint64_t io_next, mmio32_next, mmio64_next;
};

/* Sets up bus 0 with the host bridge in slot 0 and registers 0xCF8-0xCFF on pio. windows
 * is the caller's memory map (the VMM passes LAYOUT_PCI_WINDOWS of vmm/layout.h); it is
 * copied. pio and mmio must outlive the PCI bus. Returns 0, -EINVAL (windows NULL, a window
 * with start > end, I/O past 64 KiB or the 32-bit window past 4 GiB), -EEXIST (ports taken)
 * or -errno. */
int pci_bus_init(struct pci_bus *bus, struct bus *pio, struct bus *mmio,
                 const struct pci_windows *windows);

/* Unregisters the config ports. Remove (destroy) every other device first; any device still
 * on the bus has its BARs unmapped here, with on_map called. */
void pci_bus_destroy(struct pci_bus *bus);

/* Prepares a device with the given identity, no BARs and no capabilities; owner is passed to
 * on_map and config_written (either may be NULL). name labels its bus ranges and log
 * messages and must outlive the device. Returns 0 or -errno (pthread). */
int pci_device_init(struct pci_device *dev, const struct pci_device_info *info, const char *name,
                    void *owner, pci_on_map_fn on_map, pci_config_written_fn config_written);

/* Releases the device's lock. Call after pci_bus_remove_device(), or if never added. */
void pci_device_destroy(struct pci_device *dev);

/* Describes BAR bar (0..5) before the device is added to a bus. size is a power of two in
 * the range of its type (see enum pci_bar_type); prefetchable only for memory BARs. A 64-bit
 * BAR takes bar and bar+1 (bar <= 4). io handles accesses while mapped, with io_owner as its
 * owner and offsets relative to the BAR; NULL leaves the range to the VMM (on_map).
 * Returns 0, -EINVAL (bad index, type or size, or slot already used) or -EBUSY (on a bus). */
int pci_device_add_bar(struct pci_device *dev, unsigned bar, enum pci_bar_type type, uint64_t size,
                       bool prefetchable, bus_io_fn io, void *io_owner);

/* Gives BAR bar, added with an io callback, a string callback for rep ins/outs (see
 * bus_access_string()). Returns 0, -EINVAL (no such BAR, or no io callback) or -EBUSY. */
int pci_device_set_bar_string_io(struct pci_device *dev, unsigned bar, bus_string_fn string_io);

/* Appends a capability of len bytes (2..192, the ID and next pointer included, rounded up to
 * a dword) to the capability list: writes cap_id, links it from the previous one (or from
 * the capability pointer 0x34) and sets STATUS bit 4. The body starts zeroed and read-only;
 * fill it with pci_config_set() and open bits with pci_config_set_wmask(). Returns the
 * capability's config offset (>= 0x40), -ENOSPC when it does not fit in the 256 bytes,
 * -EINVAL or -EBUSY (on a bus). */
int pci_device_add_capability(struct pci_device *dev, uint8_t cap_id, unsigned len);

/* Device-side config accessors. offset + size must lie within the 256 bytes and size be
 * 1, 2 or 4 (otherwise reads return all ones and writes do nothing). Values are in host
 * order; config space is little endian. All take the device lock, so they must not be called
 * from on_map/config_written: there, use pci_config_read_locked(). */

/* Stores value regardless of masks, with no side effects (set-up time). */
void pci_config_set(struct pci_device *dev, uint32_t offset, uint32_t size, uint32_t value);
/* Marks which bits of the register the guest may write. */
void pci_config_set_wmask(struct pci_device *dev, uint32_t offset, uint32_t size, uint32_t mask);
/* Marks which bits are write-1-to-clear. */
void pci_config_set_w1c(struct pci_device *dev, uint32_t offset, uint32_t size, uint32_t mask);
/* Reads as the guest does. */
uint32_t pci_config_read(struct pci_device *dev, uint32_t offset, uint32_t size);
/* The same, for on_map and config_written, which run with the device lock held. */
uint32_t pci_config_read_locked(struct pci_device *dev, uint32_t offset, uint32_t size);
/* Writes as the guest does: masks, write-1-to-clear, BAR (re)mapping, config_written. This is
 * what a config mechanism #1 data-port write ends up in. */
void pci_config_write(struct pci_device *dev, uint32_t offset, uint32_t size, uint32_t value);

/* Whether BAR bar is mapped now, and where (*base, if base is not NULL). */
bool pci_device_bar_mapped(struct pci_device *dev, unsigned bar, uint64_t *base);

/* Plugs dev into the first free slot (1..31) like firmware would: assigns each BAR a
 * naturally aligned address from the windows (larger BARs first; 64-bit memory BARs from
 * the 64-bit window, 32-bit ones from the 32-bit window, I/O from the I/O window), writes
 * them to config space, sets COMMAND memory/I/O decode for the BAR types present and maps
 * the BARs (on_map is called, on this thread). Returns 0, -ENOSPC (no free slot, a window
 * is exhausted or an assigned range overlaps a range already on the bus: config space, slot
 * and windows are left as they were, and on_map saw only balanced map/unmap pairs), or
 * -EBUSY (already on a bus). */
int pci_bus_add_device(struct pci_bus *bus, struct pci_device *dev);

/* Unmaps dev's BARs (on_map is called) and frees its slot. Call only when no vCPU runs, as
 * a vCPU may be inside one of the BAR's io callbacks otherwise. Assigned addresses are not
 * given back to the windows. */
void pci_bus_remove_device(struct pci_bus *bus, struct pci_device *dev);
