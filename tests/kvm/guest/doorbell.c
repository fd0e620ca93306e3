/* Doorbell and MSI-X between two VMs: the initiator (tiny.role=0) rings the responder's
 * doorbell (a KVM ioeventfd bound to the responder's eventfd, which is a KVM irqfd on the
 * MSI route the responder programmed) and waits for the responder's answering doorbell
 * as an interrupt of its own. tiny.reps round trips, each timed with the TSC. */
#include "ivshmem.h"

#define MAX_SAMPLES 20000
#define TIMEOUT_S   60

static uint64_t samples[MAX_SAMPLES];

int tiny_main(void)
{
    uint64_t role = tiny_param("role", 0);
    uint64_t reps = tiny_param("reps", 1000);
    if (reps == 0 || reps > MAX_SAMPLES)
        tiny_fail("tiny.reps=%lu: 1 to %u round trips", reps, MAX_SAMPLES);
    uint64_t tsc_hz = tiny_tsc_hz();
    if (tsc_hz == 0)
        tiny_fail("the PIT (channel 2, port 0x61) did not count: no TSC calibration");
    struct ivshmem dev;
    ivshmem_find(&dev);
    ivshmem_enable_msix(&dev);
    tiny_printf("doorbell: peer %u, %s, MSI-X vector 0 -> x2APIC 0 vector 0x%x\n", dev.own_id,
                role ? "responder" : "initiator", TINY_IRQ_VECTOR);
    uint32_t peer = pair_meet(&dev, (unsigned)role, tsc_hz, TIMEOUT_S);
    uint64_t doorbell = dev.regs + IVSHMEM_REG_DOORBELL;
    uint32_t ring_peer = IVSHMEM_DOORBELL(peer, 0);
    uint64_t deadline = rdtsc() + TIMEOUT_S * tsc_hz;

    for (uint64_t i = 0; i < reps; i++) {
        if (role == 0) {
            uint64_t start = rdtsc();
            mmio_write32(doorbell, ring_peer);
            while (tiny_irq_count <= i)
                if (rdtsc() > deadline)
                    tiny_fail("round trip %lu: no interrupt back from peer %u", i, peer);
            samples[i] = rdtsc() - start;
        } else {
            while (tiny_irq_count <= i)
                if (rdtsc() > deadline)
                    tiny_fail("doorbell %lu from peer %u never arrived as an interrupt", i, peer);
            mmio_write32(doorbell, ring_peer);
        }
    }
    if (tiny_irq_count != reps)
        tiny_fail("%lu interrupts for %lu doorbells", tiny_irq_count, reps);
    if (role == 1) {
        tiny_printf("RESULT doorbell role=1 interrupts=%lu\n", tiny_irq_count);
        return TINY_EXIT_PASS;
    }
    tiny_sort(samples, reps);
    tiny_printf("RESULT doorbell role=0 interrupts=%lu min_ns=%lu p50_ns=%lu p99_ns=%lu "
                "max_ns=%lu\n",
                tiny_irq_count, tiny_ticks_to_ns(samples[0], tsc_hz),
                tiny_ticks_to_ns(samples[reps / 2], tsc_hz),
                tiny_ticks_to_ns(samples[reps * 99 / 100], tsc_hz),
                tiny_ticks_to_ns(samples[reps - 1], tsc_hz));
    return TINY_EXIT_PASS;
}
