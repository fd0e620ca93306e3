/* MMIO exits: user-mode reads and writes of ivshmem's BAR0 registers, each one an exit to
 * the VMM, and doorbell writes to the own peer ID, which KVM's ioeventfd takes without
 * leaving the kernel. tiny.reps iterations of each; the host checks the exit counts. */
#include "ivshmem.h"

int tiny_main(void)
{
    uint64_t reps = tiny_param("reps", 1000);
    uint64_t tsc_hz = tiny_tsc_hz();
    if (tsc_hz == 0)
        tiny_fail("the PIT (channel 2, port 0x61) did not count: no TSC calibration");
    struct ivshmem dev;
    ivshmem_find(&dev);

    uint64_t t0 = rdtsc();
    for (uint64_t i = 0; i < reps; i++)
        if (mmio_read32(dev.regs + IVSHMEM_REG_EXT_ID) != IVSHMEM_EXT_SIGNATURE)
            tiny_fail("BAR0 read %lu: extension ID is not \"MVP1\"", i);
    uint64_t t1 = rdtsc();
    for (uint64_t i = 0; i < reps; i++)
        mmio_write32(dev.regs + IVSHMEM_REG_INTRMASK, (uint32_t)i);
    uint64_t t2 = rdtsc();
    /* The doorbell reaches the own eventfd; vector 0 stays masked, so nothing is raised. */
    uint32_t self_doorbell = IVSHMEM_DOORBELL(dev.own_id, 0);
    for (uint64_t i = 0; i < reps; i++)
        mmio_write32(dev.regs + IVSHMEM_REG_DOORBELL, self_doorbell);
    uint64_t t3 = rdtsc();
    /* Outside the timed loops, so the exit count stays 2 * reps plus a constant. */
    uint32_t last = mmio_read32(dev.regs + IVSHMEM_REG_INTRMASK);
    if (reps && last != (uint32_t)(reps - 1))
        tiny_fail("interrupt mask register reads 0x%x after writing 0x%lx", last, reps - 1);

    tiny_printf("RESULT mmio reps=%010lu read_ns=%015lu write_ns=%015lu doorbell_ns=%015lu "
                "bar0=0x%08lx bar2=0x%016lx shm=%010lu\n",
                reps, tiny_ticks_to_ns(t1 - t0, tsc_hz), tiny_ticks_to_ns(t2 - t1, tsc_hz),
                tiny_ticks_to_ns(t3 - t2, tsc_hz), dev.regs, dev.shm, dev.shm_size);
    return TINY_EXIT_PASS;
}
