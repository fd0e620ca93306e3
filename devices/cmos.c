#include "devices/cmos.h"

#include <stdbool.h>
#include <string.h>

#define REG_SECONDS      0x00
#define REG_MINUTES      0x02
#define REG_HOURS        0x04
#define REG_DAY_OF_WEEK  0x06
#define REG_DAY_OF_MONTH 0x07
#define REG_MONTH        0x08
#define REG_YEAR         0x09
#define REG_STATUS_A     0x0a
#define REG_STATUS_B     0x0b
#define REG_STATUS_C     0x0c
#define REG_STATUS_D     0x0d
/* Not an MC146818 register: PC firmware keeps the century here, and an ACPI FADT may
 * point Linux at it. It follows the clock like the registers above. */
#define REG_CENTURY 0x32

#define STATUS_A_UIP     0x80
#define STATUS_A_DEFAULT 0x26 /* 32.768 kHz time base, 1024 Hz periodic rate */
#define STATUS_B_24H     0x02
#define STATUS_B_BINARY  0x04
#define STATUS_D_VRT     0x80 /* RAM and time valid: the battery is fine */

static uint8_t cmos_bcd(int value)
{
    return (uint8_t)(((value / 10) % 10) << 4 | (value % 10));
}

static time_t cmos_default_clock(void *ctx)
{
    (void)ctx;
    return time(NULL);
}

static bool cmos_is_clock_reg(uint8_t reg)
{
    switch (reg) {
    case REG_SECONDS:
    case REG_MINUTES:
    case REG_HOURS:
    case REG_DAY_OF_WEEK:
    case REG_DAY_OF_MONTH:
    case REG_MONTH:
    case REG_YEAR:
    case REG_CENTURY:
        return true;
    default:
        return false;
    }
}

/* The clock is read afresh for each register: a guest reading seconds, minutes, ... may
 * see a second tick between them, which Linux (and any careful reader) catches by
 * re-reading the seconds, as on hardware. */
static uint8_t cmos_read_clock(const struct cmos *dev, uint8_t reg)
{
    time_t now = dev->clock(dev->clock_ctx);
    struct tm tm;

    if (!gmtime_r(&now, &tm))
        return 0;
    switch (reg) {
    case REG_SECONDS:
        /* A leap second reads as :59 rather than an invalid :60. */
        return cmos_bcd(tm.tm_sec > 59 ? 59 : tm.tm_sec);
    case REG_MINUTES:
        return cmos_bcd(tm.tm_min);
    case REG_HOURS:
        return cmos_bcd(tm.tm_hour);
    case REG_DAY_OF_WEEK:
        return cmos_bcd(tm.tm_wday + 1); /* 1 = Sunday */
    case REG_DAY_OF_MONTH:
        return cmos_bcd(tm.tm_mday);
    case REG_MONTH:
        return cmos_bcd(tm.tm_mon + 1);
    case REG_YEAR:
        return cmos_bcd((tm.tm_year + 1900) % 100);
    default:
        return cmos_bcd((tm.tm_year + 1900) / 100);
    }
}

static uint8_t cmos_read(struct cmos *dev, uint8_t reg)
{
    if (cmos_is_clock_reg(reg))
        return cmos_read_clock(dev, reg);
    switch (reg) {
    case REG_STATUS_A:
        return dev->ram[reg] & ~STATUS_A_UIP;
    case REG_STATUS_C:
        return 0;
    case REG_STATUS_D:
        return STATUS_D_VRT;
    default:
        return dev->ram[reg];
    }
}

static void cmos_write(struct cmos *dev, uint8_t reg, uint8_t val)
{
    if (cmos_is_clock_reg(reg))
        return;
    switch (reg) {
    case REG_STATUS_A:
        dev->ram[reg] = val & ~STATUS_A_UIP; /* UIP is read-only */
        break;
    case REG_STATUS_B:
        dev->ram[reg] = (val & ~STATUS_B_BINARY) | STATUS_B_24H;
        break;
    case REG_STATUS_C:
    case REG_STATUS_D:
        break; /* read-only */
    default:
        dev->ram[reg] = val;
        break;
    }
}

static void cmos_io(void *owner, uint64_t offset, void *data, uint32_t size, bool is_write)
{
    struct cmos *dev = owner;
    uint8_t *bytes = data;

    /* Byte registers: a wider access reaches the following port, as on an ISA bus. */
    pthread_mutex_lock(&dev->lock);
    for (uint32_t i = 0; i < size; i++) {
        bool index_port = offset + i == 0;
        if (is_write && index_port)
            dev->index = bytes[i] & 0x7f;
        else if (is_write)
            cmos_write(dev, dev->index, bytes[i]);
        else if (index_port)
            bytes[i] = 0xff; /* the index register is write-only */
        else
            bytes[i] = cmos_read(dev, dev->index);
    }
    pthread_mutex_unlock(&dev->lock);
}

int cmos_init(struct cmos *dev, struct bus *pio, cmos_clock_fn clock, void *clock_ctx)
{
    memset(dev, 0, sizeof(*dev));
    dev->pio = pio;
    dev->clock = clock ? clock : cmos_default_clock;
    dev->clock_ctx = clock_ctx;
    dev->ram[REG_STATUS_A] = STATUS_A_DEFAULT;
    dev->ram[REG_STATUS_B] = STATUS_B_24H;

    int err = pthread_mutex_init(&dev->lock, NULL);
    if (err)
        return -err;
    err = bus_register(pio, CMOS_PORT, CMOS_NUM_PORTS, cmos_io, dev, "cmos");
    if (err)
        pthread_mutex_destroy(&dev->lock);
    return err;
}

void cmos_destroy(struct cmos *dev)
{
    bus_unregister(dev->pio, CMOS_PORT, dev);
    pthread_mutex_destroy(&dev->lock);
}
