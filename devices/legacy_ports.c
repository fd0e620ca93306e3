#include "devices/legacy_ports.h"

#include <stdint.h>
#include <string.h>

/* Claimed here, with what a read returns (writes are always dropped):
 *
 * 0x80  POST code port. Linux writes it as its I/O delay after outb_p() (PIC and CMOS
 *       setup, many times during boot) unless the KVM CPUID leaf offers
 *       KVM_FEATURE_NOP_IO_DELAY. Reads 0xff, like a POST card that does not read back.
 * 0xed  The alternative I/O delay port (io_delay=0xed, and DMI quirks choose it). 0xff.
 *
 * Deliberately not claimed, because the default all-ones answer of the bus is right or
 * something else owns them:
 * - 0x20-0x21, 0xa0-0xa1, 0x4d0-0x4d1 (PICs, ELCR), 0x40-0x43 (PIT) and 0x61 (speaker,
 *   PIT gate and NMI status): KVM's in-kernel irqchip and PIT answer them, and a constant
 *   0x61 would hang Linux's PIT calibration waiting for bit 5 to change.
 * - 0x2f8, 0x3e8, 0x2e8 (COM2-COM4): Linux's 8250 probe sees all ones as "no UART".
 * - 0x81-0x8f (ISA DMA page registers): Linux's i8237 code treats 0xff on 0x87 as "no
 *   DMA controller", which is what we want.
 * - 0x3b0-0x3df (VGA): with a zeroed screen_info Linux never probes VGA.
 * - 0xcf8-0xcff (PCI configuration, including the 0xcf9 reset register): the PCI host.
 * - 0x92 (fast A20 and reset): only the real-mode setup code uses it, and only when A20
 *   is off, which it never is under KVM. */
struct legacy_port {
    uint16_t base;
    uint16_t len;
    uint8_t read_value;
    const char *name;
};

static const struct legacy_port legacy_port_list[] = {
    {0x80, 1, 0xff, "post code"},
    {0xed, 1, 0xff, "io delay"},
};

#define LEGACY_PORT_COUNT (sizeof(legacy_port_list) / sizeof(legacy_port_list[0]))

static void legacy_ports_io(void *owner, uint64_t offset, void *data, uint32_t size, bool is_write)
{
    const struct legacy_port *port = owner;

    (void)offset;
    if (!is_write)
        memset(data, port->read_value, size);
}

/* The bus matches a range by (base, owner), and the owner each callback gets is the
 * table entry, so the device instance is not needed per port. Two VMs in one process
 * register the same const entries on their own buses, which is fine. */
int legacy_ports_init(struct legacy_ports *dev, struct bus *pio)
{
    size_t i;
    int err = 0;

    dev->pio = pio;
    for (i = 0; i < LEGACY_PORT_COUNT; i++) {
        const struct legacy_port *port = &legacy_port_list[i];
        err = bus_register(pio, port->base, port->len, legacy_ports_io, (void *)port, port->name);
        if (err)
            goto err_unwind;
    }
    return 0;

err_unwind:
    while (i-- > 0)
        bus_unregister(pio, legacy_port_list[i].base, (void *)&legacy_port_list[i]);
    return err;
}

void legacy_ports_destroy(struct legacy_ports *dev)
{
    for (size_t i = 0; i < LEGACY_PORT_COUNT; i++)
        bus_unregister(dev->pio, legacy_port_list[i].base, (void *)&legacy_port_list[i]);
}
