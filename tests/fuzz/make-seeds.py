#!/usr/bin/env python3
"""Writes the seed corpus of tests/fuzz (corpus/<target>/<name>): short inputs in each
harness's encoding that do what a real guest, broker or loader does, so the fuzzer starts
from meaningful states instead of having to find them. Rerun after changing an encoding:
  tests/fuzz/make-seeds.py [--bzimage /path/to/vmlinuz]
With --bzimage, the kernel seeds start with that kernel's real setup header (first sectors
only, its declared size cut down to what the seed holds)."""
import argparse
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    folder = os.path.join(HERE, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def access(is_write, size, offset, value=0):
    """fuzz_access_next(): flags (bit 0 write, bits 1-2 log2 width), 16-bit offset, value."""
    flags = (1 if is_write else 0) | ({1: 0, 2: 1, 4: 2, 8: 3}[size] << 1)
    data = struct.pack("<BH", flags, offset)
    if is_write:
        data += (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
    return data


# ---- PCI: ops OP_LATCH 0, OP_CONFIG 1 (slot in bits 2+), OP_DATA_PORT 2, OP_BAR 3 ----
def pci_config(slot, reg, is_write, size, value=0):
    return bytes([1 | slot << 2, reg & 0xFC]) + access(is_write, size, reg & 3, value)


def pci_bar(dev, bar, is_write, size, offset, value=0):
    return bytes([3 | dev << 2 | bar << 3]) + access(is_write, size, offset, value)


def pci_seeds():
    ident = b"".join(pci_config(s, r, False, 4) for s in (0, 1, 2) for r in (0, 8, 0x2C, 0x34))
    write("pci", "identify", ident)
    sizing = b""
    for bar in range(6):
        reg = 0x10 + 4 * bar
        sizing += pci_config(1, reg, True, 4, 0xFFFFFFFF) + pci_config(1, reg, False, 4)
        sizing += pci_config(1, reg, True, 4, 0)
    write("pci", "size-bars", sizing)
    move = (pci_config(1, 4, True, 2, 0) + pci_config(1, 0x14, True, 4, 0xC0100000)
            + pci_config(1, 0x18, True, 4, 0xD0000000) + pci_config(1, 0x1C, True, 4, 0x1)
            + pci_config(1, 4, True, 2, 3) + pci_bar(0, 1, False, 4, 0)
            + pci_bar(0, 0, True, 1, 3, 0x55))
    write("pci", "move-bars", move)
    # Both devices' I/O BARs at the same ports, then the config ports themselves.
    clash = (pci_config(1, 0x10, True, 4, 0xC001) + pci_config(2, 0x10, True, 4, 0xC001)
             + pci_config(2, 0x10, True, 4, 0xCE1) + pci_config(1, 6, True, 2, 0xFFFF)
             + bytes([0]) + struct.pack("<I", 0x80000810) + bytes([2]) + access(False, 4, 4))
    write("pci", "bar-clash", clash)
    caps = b"".join(pci_config(1, r, w, sz, 0xFFFFFFFF) for r in range(0x40, 0x50, 1)
                    for w, sz in ((True, 1), (False, 2)))
    write("pci", "capability", caps)


# ---- MSI-X: first byte vectors - 1; op, vector byte, then op data ----
MSIX_BAR, MSIX_CONTROL, MSIX_NOTIFY, MSIX_INTERRUPT, MSIX_FAIL, MSIX_REFRESH = range(6)


def msix_table(vector, reg, is_write, value=0):
    # bit 7 of the op aims the offset at the table
    return bytes([0x80 | MSIX_BAR, 0]) + access(is_write, 4, vector * 16 + reg, value)


def msix_control(value):
    return bytes([MSIX_CONTROL, 0]) + struct.pack("<H", value)


def msix_seeds():
    program = b"".join(msix_table(v, 0, True, 0xFEE00000) + msix_table(v, 8, True, 0x4020 + v)
                       + msix_table(v, 12, True, 0) for v in range(4))
    write("msix", "linux-enable", bytes([3]) + msix_control(0xC000) + program + msix_control(0x8000))
    masked = (bytes([7]) + msix_control(0x8000) + bytes([MSIX_INTERRUPT, 2, MSIX_NOTIFY, 3])
              + bytes([0x40 | MSIX_BAR, 0]) + access(False, 8, 0) + msix_table(2, 12, True, 0)
              + msix_table(3, 12, True, 0) + bytes([MSIX_FAIL, 1]) + msix_table(1, 12, True, 0)
              + bytes([MSIX_REFRESH, 0]) + msix_control(0xC000) + msix_control(0x8000))
    write("msix", "masked-pending", masked)
    write("msix", "128-vectors", bytes([127]) + msix_control(0x8000)
          + b"".join(msix_table(v, 12, True, 0) for v in (0, 63, 64, 127)))


# ---- ivshmem: first byte vectors; op (bit 7: 16-bit id, bit 6: up to 64 fds), id, n ----
IV_BAR0, IV_MSIX, IV_CONFIG, IV_SET_OWN, IV_ADD, IV_REMOVE = range(6)


def iv(op, peer, n=0, rest=b""):
    return bytes([op, peer, n]) + rest


def ivshmem_seeds():
    join = (iv(IV_SET_OWN, 1, 2) + iv(IV_ADD, 0, 2) + iv(IV_ADD, 3, 2)
            + iv(IV_BAR0, 0, 0, access(False, 4, 8)) + iv(IV_BAR0, 0, 0, access(False, 8, 16))
            + iv(IV_BAR0 | 0x20, 3, 1) + iv(IV_BAR0 | 0x20, 9, 0) + iv(IV_REMOVE, 3)
            + iv(IV_BAR0, 0, 0, access(True, 4, 28, 0)) + iv(IV_ADD, 4, 2) + iv(IV_REMOVE, 4))
    write("ivshmem", "peers", bytes([2]) + join)
    msix = b"".join(iv(IV_MSIX, 0, 0, access(True, 4, v * 16 + r, val))
                    for v in range(2) for r, val in ((0, 0xFEE00000), (8, 0x41 + v), (12, 0)))
    cfg = iv(IV_CONFIG, 0, 0, access(True, 2, 0x42, 0x8000))
    write("ivshmem", "msix", bytes([2]) + iv(IV_SET_OWN, 0, 2) + cfg + msix
          + iv(IV_BAR0 | 0x20, 0, 1) + iv(IV_SET_OWN, 5, 2) + iv(IV_ADD, 0, 2))
    write("ivshmem", "remap-bar0", bytes([1]) + iv(IV_ADD, 2, 1)
          + iv(IV_CONFIG, 0, 0, access(True, 4, 0x10, 0xC0200000))
          + iv(IV_CONFIG, 0, 0, access(True, 2, 4, 0)) + iv(IV_CONFIG, 0, 0, access(True, 2, 4, 2)))
    write("ivshmem", "memory-only", bytes([0]) + iv(IV_SET_OWN, 0, 0) + iv(IV_ADD, 1, 0)
          + iv(IV_BAR0 | 0x20, 1, 0))


# ---- UART: op 0 access (offset from 0x3f8), op 1 receive (length byte, bytes) ----
def uart_seeds():
    def out(reg, val):
        return bytes([0]) + access(True, 1, reg, val)

    def inp(reg):
        return bytes([0]) + access(False, 1, reg)

    linux = (out(3, 0x80) + out(0, 1) + out(1, 0) + out(3, 0x03) + out(2, 0xC7) + out(4, 0x0B)
             + out(1, 0x05) + inp(2) + inp(5) + b"".join(out(0, c) for c in b"login: "))
    write("uart", "linux-setup", linux)
    rx = bytes([1, 12]) + b"hello world\n" + b"".join(inp(5) + inp(0) for _ in range(13))
    write("uart", "receive", linux + rx)
    loop = out(4, 0x10) + b"".join(out(0, c) for c in b"loop") + inp(5) + inp(0) + inp(0)
    loop += bytes([0]) + access(False, 4, 0) + bytes([1, 3]) + b"abc" + out(2, 0x07)
    write("uart", "loopback", loop)


# ---- kernel images: first byte memory size, then the file ----
def elf64(entry, segments):
    """A minimal x86-64 ET_EXEC; segments: (vaddr, paddr, data, memsz)."""
    ehsize, phsize = 64, 56
    offset = ehsize + phsize * len(segments)
    phdrs, body = b"", b""
    for vaddr, paddr, data, memsz in segments:
        phdrs += struct.pack("<IIQQQQQQ", 1, 7, offset + len(body), vaddr, paddr, len(data), memsz,
                             0x1000)
        body += data
    ident = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    ehdr = ident + struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, entry, ehsize, 0, 0, ehsize, phsize,
                               len(segments), 64, 0, 0)
    return ehdr + phdrs + body


def synthetic_bzimage(setup_sects=4, payload=2048, init_size=0x400000, pref=0x1000000):
    image = bytearray(512 * (setup_sects + 1) + payload)
    struct.pack_into("<B", image, 0x1F1, setup_sects)
    struct.pack_into("<H", image, 0x1FE, 0xAA55)
    struct.pack_into("<I", image, 0x202, 0x53726448)
    struct.pack_into("<H", image, 0x206, 0x020F)
    struct.pack_into("<B", image, 0x211, 0x01)           # loadflags: LOADED_HIGH
    struct.pack_into("<I", image, 0x1F4, payload // 16)  # syssize
    struct.pack_into("<B", image, 0x234, 1)              # relocatable_kernel
    struct.pack_into("<H", image, 0x236, 0x1)            # xloadflags: XLF_KERNEL_64
    struct.pack_into("<I", image, 0x238, 0x7FF)          # cmdline_size
    struct.pack_into("<Q", image, 0x258, pref)           # pref_address
    struct.pack_into("<I", image, 0x260, init_size)
    return bytes(image)


def kernel_seeds(bzimage):
    code = b"\xf4" * 64
    write("kernel_image", "elf-physical", b"\x40" + elf64(0x100000, [(0x100000, 0x100000, code, 0x2000)]))
    write("kernel_image", "elf-vmlinux", b"\xff" + elf64(
        0xFFFFFFFF81000000,
        [(0xFFFFFFFF81000000, 0x1000000 - 0xF00000, code, 0x200000),
         (0xFFFFFFFF82000000, 0x1200000 - 0xF00000, code[:8], 0x1000)]))
    write("kernel_image", "bzimage-synthetic", b"\x80" + synthetic_bzimage())
    write("kernel_image", "bzimage-low-pref", b"\x20" + synthetic_bzimage(init_size=0x10000, pref=0))
    if bzimage:
        with open(bzimage, "rb") as f:
            head = bytearray(f.read(8192))
        setup = 512 * ((head[0x1F1] or 4) + 1)
        cut = bytearray(head[:setup + 2048])
        struct.pack_into("<I", cut, 0x1F4, 2048 // 16)
        write("kernel_image", "bzimage-debian-header", b"\xff" + bytes(cut))


# ---- shm_client: first byte vectors (bit 7: 64); messages: kind (bits 0-2 value: 0 version,
# 1 -1, 6 any 64-bit, else an ID byte follows; bits 3-5 fd: 3 eventfd, 4 memfd, 5 unsealed
# memfd, 6 memfd of the wrong size, 7 two fds; bit 6 split in two writes; bit 7 stray bytes)
def msg(value=None, fd=0, split=None):
    if value == "version":
        kind, rest = 0, b""
    elif value == "shm":
        kind, rest = 1, b""
    elif isinstance(value, int) and value >= 0 and value < 66:
        kind, rest = 2, bytes([value])
    else:
        kind, rest = 6, struct.pack("<q", value)
    kind |= fd << 3
    if split is not None:
        kind |= 0x40
        rest += bytes([split - 1])
    return bytes([kind]) + rest


def shm_client_seeds():
    EVENTFD, MEMFD, UNSEALED, WRONG_SIZE, TWO = 3, 4, 5, 6, 7
    burst = msg("version") + msg(1) + msg("shm", MEMFD)
    burst += msg(0, EVENTFD) * 2 + msg(1, EVENTFD) * 2
    later = msg(3, EVENTFD) * 2 + msg(0) + msg(3, EVENTFD, split=3) + msg(3) + msg(1)
    write("shm_client", "join-two-vectors", bytes([2]) + burst + later)
    write("shm_client", "memory-only", bytes([0]) + msg("version") + msg(0) + msg("shm", MEMFD)
          + msg(4) + msg(5, EVENTFD))
    write("shm_client", "unsealed", bytes([1]) + msg("version") + msg(0) + msg("shm", UNSEALED)
          + msg(0, EVENTFD))
    write("shm_client", "wrong-size", bytes([1]) + msg("version") + msg(0)
          + msg("shm", WRONG_SIZE) + msg(0, EVENTFD))
    write("shm_client", "two-fds", bytes([1]) + msg("version") + msg(2) + msg("shm", MEMFD)
          + msg(1, TWO) + msg(2, EVENTFD))
    write("shm_client", "bad-ids", bytes([1]) + msg("version") + msg(63) + msg("shm", MEMFD)
          + msg(65, EVENTFD) + msg(-2, EVENTFD) + msg(63, EVENTFD))
    write("shm_client", "cut-short", bytes([1]) + msg("version", split=5) + msg(0)
          + msg("shm", MEMFD) + bytes([0x80, 3]) + b"abc")


# ---- broker: first byte vectors; op (0 connect, 1 close, 2 send, 3 shutdown; bit 7: any
# client slot, bit 6: with an fd / also client 0 / full shutdown), slot, send: length, bytes
def broker_seeds():
    def op(code, slot, flags=0):
        return bytes([code | flags | (0x80 if slot >= 4 else 0), slot])

    def send(slot, data, with_fd=False):
        return op(2, slot, 0x40 if with_fd else 0) + bytes([len(data)]) + data

    write("broker", "join-leave", bytes([2]) + op(0, 1) + op(0, 2) + op(1, 1) + op(0, 1)
          + send(2, b"hello", True) + op(3, 2) + op(0, 3) + op(1, 3))
    write("broker", "full-group", bytes([0]) + b"".join(op(0, k) for k in range(1, 66))
          + op(1, 7) + op(0, 65))
    write("broker", "creator-leaves", bytes([1]) + op(0, 1) + op(1, 0, 0x40) + op(0, 2)
          + op(3, 1, 0x60) + op(0, 0))
    write("broker", "stray-fds", bytes([3]) + send(0, struct.pack("<q", -1), True)
          + send(0, bytes(64), True) + op(0, 1) + send(1, b"\x00", True))


# ---- broker_status: NAME.group as the broker writes it ----
def broker_status_seeds():
    write("broker_status", "two-peers", b"# minivmm shared-memory group, rewritten by its broker "
          b"on every change\nname=demo\nsize=4194304\nvectors=2\nbroker_pid=4242\n"
          b"broker_uid=1000\nrefused=0\npeer=0 pid=4243 uid=1000\npeer=1 pid=4250 uid=1000\n")
    write("broker_status", "minimal", b"name=a\nsize=4096\nvectors=64\nbroker_pid=1\n")


# ---- portio: op byte: bits 0-2 operation, bit 3 guest B, bit 4 data window (access, string)
# or CONTROL (register) or WAIT_TX (wait), bits 5-7 its flags ----
PIO_ACCESS, PIO_STRING, PIO_REGISTER, PIO_PRESENCE, PIO_HOSTILE, PIO_CHECK, PIO_WAIT = range(7)
PIO_B, PIO_AT_DATA = 0x08, 0x10
PIO_DATA, PIO_RING = 0x80, 64 << 10


def pio_access(b, is_write, size, offset, value=0, at_data=False):
    return bytes([PIO_ACCESS | (PIO_B if b else 0) | (PIO_AT_DATA if at_data else 0)]) + access(
        is_write, size, offset, value)


def pio_string(b, is_write, size, count, offset=0, seed=0, at_data=True):
    op = (PIO_STRING | (PIO_B if b else 0) | (PIO_AT_DATA if at_data else 0)
          | (0x20 if is_write else 0) | ({1: 0, 2: 1, 4: 2}[size] << 6))
    if count * size > 4096:
        count |= 0x8000  # a large string
    data = bytes([op]) + struct.pack("<HH", offset, count)
    return data + (bytes([seed]) if is_write else b"")


def pio_peer(b, peer):
    if 0 <= peer < 4:
        return bytes([PIO_REGISTER | (PIO_B if b else 0), peer])
    return bytes([PIO_REGISTER | (PIO_B if b else 0) | 0x20]) + struct.pack("<I", peer)


def pio_control(b, value):
    return bytes([PIO_REGISTER | (PIO_B if b else 0) | PIO_AT_DATA, value])


def pio_presence(peer, present):
    return bytes([PIO_PRESENCE | peer << 4 | (0x40 if present else 0)])


def pio_check():
    return bytes([PIO_CHECK])


def pio_wait(b, tx, may_sleep=False):
    return bytes([PIO_WAIT | (PIO_B if b else 0) | (PIO_AT_DATA if tx else 0)
                  | (0x20 if may_sleep else 0)])


def pio_hostile(kind, target, payload):
    return bytes([PIO_HOSTILE | kind << 3, target]) + payload


def portio_seeds():
    connect = pio_peer(False, 1) + pio_peer(True, 0)
    widths = (pio_access(False, True, 1, PIO_DATA, 0x11) + pio_access(False, True, 2, 0x90, 0x3322)
              + pio_access(False, True, 4, 0xFC, 0x77665544) + pio_check()
              + pio_access(True, False, 1, PIO_DATA) + pio_access(True, False, 4, 0xC0)
              + pio_access(True, False, 2, 0xFE) + pio_check())
    page = (pio_string(False, True, 1, 4096, seed=1) + pio_string(True, False, 4, 1024)
            + pio_string(True, True, 2, 100, seed=2) + pio_string(False, False, 1, 200) + pio_check())
    write("portio", "send-both-ways", connect + widths + page)
    full = (connect + pio_string(False, True, 2, PIO_RING // 2 - 1, seed=3)
            + pio_access(False, True, 4, PIO_DATA, 0xdeadbeef) + pio_check()
            + pio_string(False, True, 1, 2, seed=4) + pio_access(False, True, 1, PIO_DATA, 1)
            + pio_string(True, False, 4, PIO_RING // 4) + pio_string(True, False, 1, 1) + pio_check()
            + pio_string(False, True, 4, 3001, seed=5) + pio_string(True, False, 1, 3001 * 4)
            + pio_control(False, 1) + pio_check())
    write("portio", "fill-the-ring", full)
    loss = (connect + pio_access(True, True, 4, PIO_DATA, 0x04030201)
            + pio_access(False, True, 4, PIO_DATA, 0xaabbccdd) + pio_presence(1, False) + pio_check()
            + pio_access(False, True, 1, PIO_DATA, 9) + pio_access(False, False, 4, PIO_DATA)
            + pio_presence(1, True) + pio_check() + pio_peer(False, 1)
            + pio_access(False, True, 1, PIO_DATA, 9) + pio_check())
    write("portio", "partner-leaves", loss)
    bad = (connect + pio_access(False, True, 4, 0x7E, 1) + pio_access(False, True, 8, PIO_DATA, 1)
           + pio_access(False, True, 4, 0xFE, 1) + pio_access(False, True, 4, 0, 0)
           + pio_access(False, True, 1, 0x11, 0) + pio_access(False, True, 4, 0x60, 1)
           + pio_peer(False, 64) + pio_peer(False, 0xffffffff)
           + pio_string(False, True, 1, 3, offset=0x10, seed=7, at_data=False)
           + b"".join(pio_access(True, False, 1, r + 1) + pio_access(True, False, 2, r)
                      + pio_access(True, False, 4, r) for r in range(0, 0x50, 4))
           + pio_string(True, False, 4, 8, offset=0x3C, at_data=False) + pio_control(True, 3)
           + pio_check())
    write("portio", "registers-and-bad-accesses", bad)
    loop = (pio_peer(False, 0) + pio_access(False, True, 4, PIO_DATA, 0x12345678)
            + pio_access(False, False, 4, PIO_DATA) + pio_peer(True, 3) + pio_presence(3, True)
            + pio_access(True, True, 2, PIO_DATA, 0xbeef) + pio_check() + pio_control(True, 2)
            + pio_check())
    write("portio", "loopback-and-third-peer", loop)
    hostile = (connect + pio_string(False, True, 1, 500, seed=9) + pio_check()
               + pio_hostile(0, 0x24, struct.pack("<Q", 5 << 40)) + pio_check()
               + pio_string(True, False, 1, 10) + pio_hostile(0, 0x04, struct.pack("<h", -100))
               + pio_string(True, False, 1, 600) + pio_hostile(2, 1, struct.pack("<I", 7))
               + pio_hostile(1, 0x14, struct.pack("<I", 0xffffffff))
               + pio_string(False, True, 4, 100, seed=8) + pio_check())
    write("portio", "hostile-peer", hostile)
    wait = (connect + pio_string(True, True, 1, 5, seed=1) + pio_wait(False, False)
            + pio_wait(False, True) + pio_wait(True, True) + pio_check())
    write("portio", "wait-ready", wait)
    # Found by the fuzzer: a rep insb on WAIT_RX with nothing to read slept once per element.
    write("portio", "crash-wait-string-sleeps-per-element", connect + pio_wait(False, False, True)
          + pio_string(False, False, 1, 128, offset=0x18, at_data=False) + pio_check())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bzimage", help="a real kernel whose setup header seeds kernel_image")
    args = parser.parse_args()
    pci_seeds()
    msix_seeds()
    ivshmem_seeds()
    uart_seeds()
    kernel_seeds(args.bzimage)
    shm_client_seeds()
    broker_seeds()
    broker_status_seeds()
    portio_seeds()


if __name__ == "__main__":
    main()
