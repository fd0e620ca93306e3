/* The port I/O channel as a guest sees it: a PCI function (1af4:10f0) whose BAR0 is 256 I/O
 * ports, byte streams to the other VMs of the --shm group. The one definition used by the
 * device (devices/portio.c) and the guest programs and libivc (guest-apps/); what each
 * register does is specified in docs/portio.md. Plain macros, no includes: usable anywhere. */
#pragma once

/* QEMU's docs/specs/pci-ids.rst leaves 1af4:10f0-10ff for experimental devices without
 * registration; Linux's virtio-pci driver, which matches vendor 1af4, refuses device IDs
 * above 0x107f, so no guest driver claims it. ivshmem is 1af4:1110. */
#define PORTIO_PCI_VENDOR_ID 0x1af4
#define PORTIO_PCI_DEVICE_ID 0x10f0
#define PORTIO_PCI_REVISION  1
#define PORTIO_PCI_CLASS     0x058000 /* memory controller, other */
#define PORTIO_BAR           0
#define PORTIO_BAR_SIZE      256

#define PORTIO_REG_ID           0x00
#define PORTIO_REG_STATUS       0x04
#define PORTIO_REG_RX_AVAIL     0x08
#define PORTIO_REG_TX_SPACE     0x0C
#define PORTIO_REG_PEER         0x10
#define PORTIO_REG_CONTROL      0x14
#define PORTIO_REG_WAIT_RX      0x18
#define PORTIO_REG_WAIT_TX      0x1C
#define PORTIO_REG_OWN_ID       0x20
#define PORTIO_REG_PEERS_LO     0x24
#define PORTIO_REG_PEERS_HI     0x28
#define PORTIO_REG_TX_REFUSED   0x2C
#define PORTIO_REG_RX_UNDERRUN  0x30
#define PORTIO_REG_BAD_ACCESSES 0x34
#define PORTIO_REG_RING_BYTES   0x38
#define PORTIO_REG_EXITS        0x3C
#define PORTIO_REG_TX_BYTES     0x40
#define PORTIO_REG_RX_BYTES     0x44
#define PORTIO_REGS_END         0x48
#define PORTIO_DATA             0x80 /* the data window is 0x80..0xFF */
#define PORTIO_DATA_WINDOW      0x80

#define PORTIO_ID_VALUE 0x4D56504Fu /* "MVPO" from the most significant byte down */

#define PORTIO_STATUS_PEER_SELECTED 0x01u /* PEER holds a valid ID */
#define PORTIO_STATUS_PEER_PRESENT  0x02u /* the selected partner has the channel now */
#define PORTIO_STATUS_PEER_GONE     0x04u /* the partner we talked to left (sticky) */
#define PORTIO_STATUS_RX_READY      0x08u /* RX_AVAIL > 0 */
#define PORTIO_STATUS_TX_READY      0x10u /* TX_SPACE > 0 */
#define PORTIO_STATUS_TX_REFUSED    0x20u /* a write was refused since reset (sticky) */
#define PORTIO_STATUS_RX_UNDERRUN   0x40u /* a read underran since reset (sticky) */

#define PORTIO_CONTROL_RESET_COUNTERS 0x01u /* zero the counters and sticky STATUS bits */
#define PORTIO_CONTROL_DRAIN_RX       0x02u /* drop everything readable from the partner */

#define PORTIO_PEER_NONE   0xFFFFFFFFu
#define PORTIO_MAX_PEERS   64
#define PORTIO_RING_BYTES  (64u << 10)
#define PORTIO_WAIT_MAX_MS 20
#define PORTIO_WAIT_TX_MIN 4096u
