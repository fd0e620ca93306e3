/* The port I/O channel as a guest sees it: a PCI function whose BAR0 is 256 I/O ports.
 * This header is the contract between minivmm (devices/portio.c) and guest code; the
 * README's "Port I/O channel" section says the same in prose.
 *
 * Discovery: PCI 1af4:10f0 (see PORTIO_PCI_* below); the BAR0 port base is the first
 * field of /sys/bus/pci/devices/<BDF>/resource (no driver needed).
 *
 * Model: the channel is a set of one-way byte rings, one per ordered pair of peers of the
 * --shm group (peer IDs are the ivshmem IDs). PEER selects the partner; DATA writes go to
 * the ring own->partner, DATA reads come from the ring partner->own. Nothing blocks except
 * the WAIT registers, and they for at most PORTIO_WAIT_MAX_MS.
 *
 * Registers are 32-bit, little endian, at BAR0 + offset:
 *   0x00 ro  ID: PORTIO_ID_VALUE ("MVPO")
 *   0x04 ro  STATUS: PORTIO_STATUS_* bits for the selected partner
 *   0x08 ro  RX_AVAIL: bytes readable from the partner now (0..PORTIO_RING_BYTES)
 *   0x0C ro  TX_SPACE: bytes writable to the partner now (0 when it is absent or gone)
 *   0x10 rw  PEER: partner ID 0..63 (own ID allowed: a loopback ring); PORTIO_PEER_NONE
 *            after reset. Writing a value >= 64 selects none and counts a bad access.
 *   0x14 wo  CONTROL: PORTIO_CONTROL_* bits; reads 0
 *   0x18 ro  WAIT_RX: waits until RX_AVAIL > 0, the partner is gone or PORTIO_WAIT_MAX_MS
 *            passed, then reads as RX_AVAIL; a rep ins here waits once, before its first
 *            element (so does one on WAIT_TX)
 *   0x1C ro  WAIT_TX: waits until TX_SPACE >= PORTIO_WAIT_TX_MIN (a page) or the partner
 *            is gone or absent or PORTIO_WAIT_MAX_MS passed, then reads as TX_SPACE
 *   0x20 ro  OWN_ID: this VM's peer ID
 *   0x24 ro  PEERS_LO: bit n = peer n (0..31) has the channel now, own ID included
 *   0x28 ro  PEERS_HI: the same for 32..63
 *   0x2C ro  TX_REFUSED: bytes refused since reset (written while full, absent or gone)
 *   0x30 ro  RX_UNDERRUN: bytes read while fewer were available (they read as 0xFF)
 *   0x34 ro  BAD_ACCESSES: ignored writes (see below)
 *   0x38 ro  RING_BYTES: capacity of each ring (PORTIO_RING_BYTES)
 *   0x3C ro  EXITS: accesses to this BAR so far (each one is a VM exit; this read included)
 *   0x40 ro  TX_BYTES: bytes accepted for sending since reset (mod 2^32)
 *   0x44 ro  RX_BYTES: bytes delivered to the guest since reset (mod 2^32)
 *   0x48..0x7F reserved: read 0, writes ignored and counted in BAD_ACCESSES
 *   0x80..0xFF DATA window: every port here is the data register. An 8-, 16- or 32-bit
 *            access moves 1, 2 or 4 bytes (little endian); rep insb/insw/insl and
 *            outsb/outsw/outsl on one of these ports move the whole string that KVM hands
 *            over in one exit; /dev/port, which walks consecutive ports, works too.
 *
 * All or nothing: a DATA write (one access, or one exit's whole string) that does not fit
 * in TX_SPACE, or finds no partner present, is refused whole: nothing is queued,
 * TX_REFUSED grows by its length and STATUS.TX_REFUSED is set. A DATA read asking for
 * more than RX_AVAIL consumes nothing, returns 0xFF bytes, grows RX_UNDERRUN and sets
 * STATUS.RX_UNDERRUN. So check RX_AVAIL / TX_SPACE (or WAIT_*) before moving data.
 *
 * Access widths: reads of 1, 2 or 4 bytes at any offset below 0x80 return those bytes of
 * the registers. A read that starts at byte 0 of a register samples it (and waits, for
 * WAIT_*); a read starting at bytes 1..3 returns the bytes of the value sampled by the
 * last byte-0 read of that register, so four 1-byte reads (/dev/port) see one consistent
 * value. Writes of 1, 2 or 4 bytes at byte 0 of PEER or CONTROL take the value zero
 * extended; every other register write is ignored and counted in BAD_ACCESSES.
 *
 * Partner gone: the broker marks a peer absent the moment its VMM's connection closes
 * (exit, crash, SIGKILL). If the partner present at selection (or the first one to appear
 * after it) leaves, STATUS.PEER_GONE stays set until PEER is written again: writes are
 * refused, reads still drain what it had delivered. A new VM that takes the same ID is a
 * new partner: select it again. It starts with empty incoming rings (bytes sent to its
 * predecessor are dropped when it joins).
 */
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
