/* One VM of the load-and-churn test (tests/guest/churn.sh): speaks guest-apps/shm_churn.h
 * with every other VM of its --shm group. It publishes a message into its own region every
 * tiny.period_ms and rings the doorbell of every other present peer; on each interrupt
 * (and each wake-up) it reads the regions of the present peers and verifies every byte of
 * each new message. It runs until the group's stop word is set (or tiny.seconds pass, when
 * given), then prints its last RESULT line and passes; a wrong byte fails it at once.
 *
 * Parameters: tiny.shm=SIZE (the --shm size), tiny.period_ms (500), tiny.report_ms (5000:
 * a "RESULT churn-progress" line so a killed VM's work is still known), tiny.seconds (0:
 * until stopped). tiny.stop=1 makes a stopper instead: it sets the stop word, rings every
 * other peer so they see it now, and ends. */
#include "ivshmem.h"
#include "shm_churn.h"

struct churn {
    struct ivshmem dev;
    struct churn_reader reader;
    uint64_t published, doorbells;
};

static uint64_t present_peers(const struct ivshmem *dev)
{
    return mmio_read32(dev->regs + IVSHMEM_REG_PEERS_LO) |
           (uint64_t)mmio_read32(dev->regs + IVSHMEM_REG_PEERS_HI) << 32;
}

/* Rings vector 0 of every present peer but this one; returns how many. */
static uint64_t ring_others(const struct ivshmem *dev, uint64_t present)
{
    uint64_t rung = 0;
    for (unsigned id = 0; id < CHURN_MAX_PEERS; id++) {
        if (id == dev->own_id || !(present & (1ull << id)))
            continue;
        mmio_write32(dev->regs + IVSHMEM_REG_DOORBELL, IVSHMEM_DOORBELL(id, 0));
        rung++;
    }
    return rung;
}

static void scan(struct churn *c, uint64_t present)
{
    struct churn_bad bad;
    unsigned id;
    if (churn_scan((void *)c->dev.shm, c->dev.own_id, present, &c->reader, &id, &bad))
        tiny_fail("churn: peer %u read a wrong message in peer %u's region: incarnation %lx "
                  "seq %lu owner %lu, word %lu is %lx, expected %lx (after %lu good messages)",
                  c->dev.own_id, id, bad.nonce, bad.seq, bad.owner, bad.word, bad.found,
                  bad.expected, c->reader.messages);
}

static void report(const struct churn *c, const char *kind)
{
    tiny_printf("RESULT churn-%s peer=%u published=%lu messages=%lu verified_bytes=%lu "
                "incarnations=%lu doorbells=%lu interrupts=%lu torn=%lu mismatches=0\n",
                kind, c->dev.own_id, c->published, c->reader.messages,
                c->reader.messages * CHURN_PAYLOAD_BYTES, c->reader.boots, c->doorbells,
                tiny_irq_count, c->reader.torn);
}

static int stop_group(const struct ivshmem *dev)
{
    churn_control((void *)dev->shm)->stop = CHURN_STOP_MAGIC;
    churn_barrier();
    uint64_t rung = ring_others(dev, present_peers(dev));
    tiny_printf("RESULT churn-stop peer=%u doorbells=%lu\n", dev->own_id, rung);
    return TINY_EXIT_PASS;
}

static struct churn state;

int tiny_main(void)
{
    struct churn *c = &state;
    uint64_t tsc_hz = tiny_tsc_hz();
    if (tsc_hz == 0)
        tiny_fail("the PIT (channel 2, port 0x61) did not count: no TSC calibration");
    ivshmem_find(&c->dev);
    if (c->dev.shm_size < CHURN_MIN_SHM)
        tiny_fail("BAR2 of %lu bytes is under the %u the churn layout needs", c->dev.shm_size,
                  CHURN_MIN_SHM);
    if (mmio_read32(c->dev.regs + IVSHMEM_REG_EXT_ID) != IVSHMEM_EXT_SIGNATURE)
        tiny_fail("no presence extension (\"MVP1\") in BAR0: not minivmm's ivshmem");
    if (c->dev.own_id >= CHURN_MAX_PEERS)
        tiny_fail("peer ID %u has no region", c->dev.own_id);
    if (tiny_param("stop", 0))
        return stop_group(&c->dev);
    ivshmem_enable_msix(&c->dev);

    unsigned own = c->dev.own_id;
    struct churn_region *mine = churn_region((void *)c->dev.shm, own);
    struct churn_control *control = churn_control((void *)c->dev.shm);
    uint64_t nonce = churn_nonce(rdtsc(), own);
    uint64_t period = tiny_param("period_ms", 500) * tsc_hz / 1000;
    uint64_t report_every = tiny_param("report_ms", 5000) * tsc_hz / 1000;
    uint64_t seconds = tiny_param("seconds", 0);
    uint64_t now = rdtsc();
    uint64_t end = seconds ? now + seconds * tsc_hz : 0;
    uint64_t next_publish = now, next_report = now + report_every;
    tiny_printf("churn: peer %u, incarnation %lx, present %lx\n", own, nonce,
                present_peers(&c->dev));

    for (;;) {
        /* Taken before the scan: an interrupt during it means look again, not sleep. */
        uint64_t irqs = tiny_irq_count;
        bool stopping = control->stop == CHURN_STOP_MAGIC;
        uint64_t present = present_peers(&c->dev);
        scan(c, present);
        now = rdtsc();
        if (stopping || (end && now >= end)) {
            report(c, "final");
            return TINY_EXIT_PASS;
        }
        if (now >= next_publish) {
            churn_publish(mine, own, nonce, ++c->published);
            c->doorbells += ring_others(&c->dev, present);
            /* After a stall (a busy host) go on at the period, not in a burst. */
            next_publish = next_publish + period > now ? next_publish + period : now + period;
        }
        if (now >= next_report) {
            report(c, "progress");
            next_report = now + report_every;
        }
        uint64_t wake = next_publish < next_report ? next_publish : next_report;
        if (tiny_irq_count == irqs && wake > now)
            tiny_idle(tiny_ticks_to_ns(wake - now, tsc_hz));
    }
}
