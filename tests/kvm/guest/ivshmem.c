#include "ivshmem.h"

#define PCI_STATUS_CAPS    (1u << 20) /* in the COMMAND/STATUS dword */
#define PCI_CAP_POINTER    0x34
#define PCI_CAP_MSIX       0x11
#define MSIX_ENABLE        (1u << 31) /* message control bit 15, in the capability's dword */
#define MSIX_FUNCTION_MASK (1u << 30)
#define MSI_ADDRESS        0xFEE00000u
#define PCI64_WINDOW_END   (257ull << 30) /* start.S maps 256-257 GiB */

void ivshmem_find(struct ivshmem *dev)
{
    dev->slot = pci_find(IVSHMEM_VENDOR_ID, IVSHMEM_DEVICE_ID);
    if (dev->slot < 0)
        tiny_fail("no ivshmem device (1af4:1110) on PCI bus 0: was minivmm given --shm?");
    dev->regs = pci_bar_address((unsigned)dev->slot, 0);
    dev->msix = pci_bar_address((unsigned)dev->slot, 1);
    dev->shm = pci_bar_address((unsigned)dev->slot, 2);
    /* The host passes the size it gave --shm: sizing BAR2 by writing all ones would move
     * the VMM's memory slot twice for nothing. */
    dev->shm_size = tiny_param("shm", 0);
    if (dev->shm_size == 0)
        tiny_fail("tiny.shm=SIZE (the --shm size) missing on the command line");
    if (dev->shm < (256ull << 30) || dev->shm + dev->shm_size > PCI64_WINDOW_END)
        tiny_fail("BAR2 at 0x%lx (%lu bytes) is outside the mapped 256-257 GiB window", dev->shm,
                  dev->shm_size);
    if (dev->regs >= 0xFEC00000u || dev->regs < 0xC0000000u)
        tiny_fail("BAR0 at 0x%lx is outside the 32-bit PCI window", dev->regs);
    dev->own_id = mmio_read32(dev->regs + IVSHMEM_REG_IVPOSITION);
}

void ivshmem_enable_msix(const struct ivshmem *dev)
{
    if (!tiny_x2apic_enabled)
        tiny_fail("no x2APIC (CPUID.1:ECX bit 21): MSI-X cannot reach this guest");
    unsigned slot = (unsigned)dev->slot;
    if (!(pci_read32(slot, 0x4) & PCI_STATUS_CAPS))
        tiny_fail("ivshmem has no capability list");
    unsigned cap = pci_read32(slot, PCI_CAP_POINTER) & 0xFC;
    for (int hops = 0; cap && hops < 48; hops++) {
        uint32_t header = pci_read32(slot, cap);
        if ((header & 0xFF) == PCI_CAP_MSIX) {
            /* Entry 0: destination x2APIC ID 0 (the only CPU), fixed delivery, then unmask. */
            mmio_write32(dev->msix + 0, MSI_ADDRESS);
            mmio_write32(dev->msix + 4, 0);
            mmio_write32(dev->msix + 8, TINY_IRQ_VECTOR);
            mmio_write32(dev->msix + 12, 0);
            pci_write32(slot, cap, (header | MSIX_ENABLE) & ~MSIX_FUNCTION_MASK);
            return;
        }
        cap = (header >> 8) & 0xFC;
    }
    tiny_fail("ivshmem has no MSI-X capability (started with vectors=0?)");
}

uint32_t pair_meet(const struct ivshmem *dev, unsigned role, uint64_t tsc_hz, uint64_t timeout_s)
{
    struct pair_control *control = (struct pair_control *)dev->shm;
    control->ready[role][0] = PAIR_READY_MAGIC | dev->own_id;
    uint64_t deadline = rdtsc() + timeout_s * tsc_hz;
    uint64_t other;
    while (((other = control->ready[!role][0]) >> 32) != PAIR_READY_MAGIC >> 32) {
        if (rdtsc() > deadline)
            tiny_fail("the other guest did not show up in shared memory within %lu s", timeout_s);
        cpu_relax();
    }
    return (uint32_t)other;
}
