/*
 * portio-xfer: moves byte streams to and from another VM through minivmm's port I/O
 * channel (abi/portio_regs.h), from user space and without a driver, and checks
 * every byte.
 *
 *   portio-xfer [OPTIONS] ACTION=SIZE[+SIZE...] ...   (',' works too, outside minivmm.run)
 *     ACTION  send: SIZE bytes to the peer; recv: SIZE bytes from it, verified;
 *             both: send and receive SIZE bytes at once
 *     --peer N        the other VM's peer ID (required)
 *     --io byte|string|both   single-byte in/out, rep insb/outsb (default), or each size
 *                     once with each
 *     --via auto|ioperm|devport   how to reach the ports (default auto, see below)
 *     --timeout S     give up when a transfer makes no progress for S seconds (default 60)
 *     --progress N    print a line every N bytes moved
 *
 * The stream from peer P is a fixed pseudo-random sequence seeded by P, so the receiver
 * checks each byte as it arrives without any side channel. Each transfer prints one line:
 *   portio-xfer: recv 2097152 bytes from peer 0 io=string via=ioperm: 12.5 MB/s 0.0010
 *   exits/byte 1.9 us/exit 4096.0 bytes/data-exit received-checksum 0x1234abcd ok
 * where exits are the device's EXITS register (every access to the channel's ports is one
 * VM exit) over the transfer, and bytes/data-exit leaves out the exits of our own register
 * accesses: for io=string it is how many bytes KVM hands over per rep insb/outsb exit.
 *
 * Port access: ioperm() + inb/outb/insb/outsb when it works. Where a user-mode in/out
 * faults although ioperm() succeeded (seen in a QEMU -enable-kvm guest inside the project's
 * emulated KVM host, see debug_exit.c; a minivmm guest there was not affected when
 * measured), --via auto goes through /dev/port for every access instead (the kernel does
 * one inb/outb per byte, at consecutive ports: the data window and the register latches in
 * the device make that work), and io=string is not available. The path used is printed
 * ("via=").
 *
 * Exit status: 0 all transfers done and verified; 1 a failure (printed); 2 usage;
 * 3 the peer left mid-transfer ("peer N gone" printed).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <time.h>
#include <unistd.h>

#include "abi/portio_regs.h"
#include "portio_dev.h"

#define CHUNK_MAX   4096u /* one page: what KVM hands over per string exit at most */
#define DEVPORT_MAX PORTIO_DATA_WINDOW

enum via { VIA_AUTO, VIA_IOPERM, VIA_DEVPORT };
enum io_kind { IO_BYTE, IO_STRING };

struct channel {
    unsigned int base;
    enum via via;
    int devport; /* fd of /dev/port with VIA_DEVPORT */
    unsigned int own_id;
    unsigned int peer;
    uint64_t register_exits; /* exits our register accesses caused, to tell data exits apart */
};

struct stream {
    uint32_t state;
    uint32_t checksum;
};

static const char *prog = "portio-xfer";

/* ---- the data: a xorshift32 stream per sender, and an FNV-1a checksum over it ---- */

static void stream_init(struct stream *s, unsigned int sender)
{
    s->state = 0x9E3779B9u * (sender + 1);
    s->checksum = 2166136261u;
}

static uint8_t stream_next(struct stream *s)
{
    uint32_t x = s->state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    s->state = x;
    uint8_t byte = (uint8_t)(x >> 24);
    s->checksum = (s->checksum ^ byte) * 16777619u;
    return byte;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static uint32_t reg_read(struct channel *c, unsigned int reg)
{
    c->register_exits += c->via == VIA_IOPERM ? 1 : 4;
    if (c->via == VIA_IOPERM)
        return inl(c->base + reg);
    uint8_t b[4];
    /* Four 1-byte inb: the first samples the register, the others read its latch. */
    if (pread(c->devport, b, 4, c->base + reg) != 4)
        die("/dev/port read at 0x%x: %s", c->base + reg, strerror(errno));
    return b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void reg_write(struct channel *c, unsigned int reg, uint8_t value)
{
    c->register_exits++;
    if (c->via == VIA_IOPERM) {
        outb(value, c->base + reg);
        return;
    }
    if (pwrite(c->devport, &value, 1, c->base + reg) != 1)
        die("/dev/port write at 0x%x: %s", c->base + reg, strerror(errno));
}

/* The kernel walks consecutive ports, one byte each: a window's worth at a time. */
static void devport_data(const struct channel *c, uint8_t *buf, uint32_t len, bool out)
{
    unsigned int port = c->base + PORTIO_DATA;
    for (uint32_t done = 0; done < len;) {
        uint32_t n = len - done < DEVPORT_MAX ? len - done : DEVPORT_MAX;
        ssize_t moved =
            out ? pwrite(c->devport, buf + done, n, port) : pread(c->devport, buf + done, n, port);
        if (moved != (ssize_t)n)
            die("/dev/port %s of %u bytes at 0x%x: %s", out ? "write" : "read", n, port,
                strerror(errno));
        done += n;
    }
}

static void data_out(const struct channel *c, const uint8_t *buf, uint32_t len, enum io_kind io)
{
    unsigned int port = c->base + PORTIO_DATA;
    if (c->via == VIA_IOPERM) {
        if (io == IO_STRING)
            outsb(port, buf, len);
        else
            for (uint32_t i = 0; i < len; i++)
                outb(buf[i], port);
        return;
    }
    devport_data(c, (uint8_t *)buf, len, true);
}

static void data_in(const struct channel *c, uint8_t *buf, uint32_t len, enum io_kind io)
{
    unsigned int port = c->base + PORTIO_DATA;
    if (c->via == VIA_IOPERM) {
        if (io == IO_STRING)
            insb(port, buf, len);
        else
            for (uint32_t i = 0; i < len; i++)
                buf[i] = inb(port);
        return;
    }
    devport_data(c, buf, len, false);
}

/* ---- transfers ---- */

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

struct transfer {
    bool send, recv;
    uint64_t size;
    enum io_kind io;
    unsigned int timeout_s;
    uint64_t progress;
};

/* The peer's VMM has the channel before its guest runs: one byte each way says both
 * guests are there, so that no transfer's time includes a boot. */
static int handshake(struct channel *c, unsigned int timeout_s)
{
    static const uint8_t hello = 0x5a;
    data_out(c, &hello, 1, IO_BYTE);
    double deadline = now_s() + timeout_s;
    while (reg_read(c, PORTIO_REG_WAIT_RX) == 0) {
        if (now_s() > deadline || (reg_read(c, PORTIO_REG_STATUS) & PORTIO_STATUS_PEER_GONE)) {
            fprintf(stderr, "%s: peer %u's guest never said hello within %u s\n", prog, c->peer,
                    timeout_s);
            return 1;
        }
    }
    uint8_t got;
    data_in(c, &got, 1, IO_BYTE);
    if (got != hello) {
        fprintf(stderr, "%s: peer %u said 0x%02x instead of hello\n", prog, c->peer, got);
        return 1;
    }
    return 0;
}

/* Waits until the peer has the channel (it may still be booting). */
static int wait_for_peer(struct channel *c, unsigned int timeout_s)
{
    double deadline = now_s() + timeout_s;
    while (!(reg_read(c, PORTIO_REG_STATUS) & PORTIO_STATUS_PEER_PRESENT)) {
        if (now_s() > deadline) {
            fprintf(stderr, "%s: peer %u never joined the channel within %u s\n", prog, c->peer,
                    timeout_s);
            return 1;
        }
        usleep(10000);
    }
    return 0;
}

static int run_transfer(struct channel *c, const struct transfer *t)
{
    static uint8_t buf[CHUNK_MAX];
    struct stream out, in;
    stream_init(&out, c->own_id);
    stream_init(&in, c->peer);
    uint64_t sent = 0, got = 0, next_progress = t->progress;
    const char *what = t->send && t->recv ? "both" : t->send ? "send" : "recv";
    printf("%s: starting %s of %" PRIu64 " bytes io=%s\n", prog, what, t->size,
           t->io == IO_STRING ? "string" : "byte");
    uint32_t refused_before = reg_read(c, PORTIO_REG_TX_REFUSED);
    uint32_t exits_before = reg_read(c, PORTIO_REG_EXITS);
    uint64_t register_exits_before = c->register_exits;
    double start = now_s(), last_move = start;
    bool tx_todo = t->send, rx_todo = t->recv;

    while ((tx_todo && sent < t->size) || (rx_todo && got < t->size)) {
        bool moved = false;
        if (tx_todo && sent < t->size) {
            /* Alone, wait in the VMM; with a receive going on, only look. */
            uint32_t space =
                reg_read(c, rx_todo && got < t->size ? PORTIO_REG_TX_SPACE : PORTIO_REG_WAIT_TX);
            uint64_t n = t->size - sent;
            if (n > space)
                n = space;
            if (n > CHUNK_MAX)
                n = CHUNK_MAX;
            if (n > 0) {
                for (uint32_t i = 0; i < n; i++)
                    buf[i] = stream_next(&out);
                data_out(c, buf, (uint32_t)n, t->io);
                sent += n;
                moved = true;
            }
        }
        if (rx_todo && got < t->size) {
            uint32_t avail = reg_read(c, moved || (tx_todo && sent < t->size) ? PORTIO_REG_RX_AVAIL
                                                                              : PORTIO_REG_WAIT_RX);
            uint64_t n = t->size - got;
            if (n > avail)
                n = avail;
            if (n > CHUNK_MAX)
                n = CHUNK_MAX;
            if (n > 0) {
                data_in(c, buf, (uint32_t)n, t->io);
                for (uint32_t i = 0; i < n; i++) {
                    uint8_t want = stream_next(&in);
                    if (buf[i] != want) {
                        fprintf(stderr,
                                "%s: byte %" PRIu64 " from peer %u is 0x%02x, expected 0x%02x\n",
                                prog, got + i, c->peer, buf[i], want);
                        return 1;
                    }
                }
                got += n;
                moved = true;
            }
        }
        double now = now_s();
        if (moved) {
            last_move = now;
            if (t->progress && sent + got >= next_progress) {
                printf("%s: progress: %" PRIu64 " bytes sent, %" PRIu64 " received\n", prog, sent,
                       got);
                fflush(stdout);
                next_progress += t->progress;
            }
            continue;
        }
        uint32_t status = reg_read(c, PORTIO_REG_STATUS);
        if ((status & PORTIO_STATUS_PEER_GONE) && !(status & PORTIO_STATUS_RX_READY)) {
            printf("%s: peer %u gone after %" PRIu64 " bytes sent and %" PRIu64
                   " received; %u bytes refused\n",
                   prog, c->peer, sent, got, reg_read(c, PORTIO_REG_TX_REFUSED) - refused_before);
            return 3;
        }
        if (now - last_move > t->timeout_s) {
            fprintf(stderr,
                    "%s: no progress for %u s (%" PRIu64 " bytes sent, %" PRIu64
                    " received, status 0x%x)\n",
                    prog, t->timeout_s, sent, got, status);
            return 1;
        }
    }
    double seconds = now_s() - start;
    uint32_t exits = reg_read(c, PORTIO_REG_EXITS) - exits_before;
    uint64_t data_exits = exits - (c->register_exits - register_exits_before);
    uint32_t refused = reg_read(c, PORTIO_REG_TX_REFUSED) - refused_before;
    if (refused) {
        fprintf(stderr, "%s: the device refused %u bytes\n", prog, refused);
        return 1;
    }
    uint64_t bytes = (t->send ? sent : 0) + (t->recv ? got : 0);
    printf("%s: %s %" PRIu64 " bytes %s peer %u io=%s via=%s: %.3f MB/s %.4f exits/byte "
           "%.2f us/exit %.1f bytes/data-exit",
           prog, what, t->size, t->send && !t->recv ? "to" : "with", c->peer,
           t->io == IO_STRING ? "string" : "byte", c->via == VIA_IOPERM ? "ioperm" : "devport",
           seconds > 0 ? (double)bytes / seconds / 1e6 : 0.0, bytes ? (double)exits / bytes : 0.0,
           exits ? seconds * 1e6 / exits : 0.0, data_exits ? (double)bytes / data_exits : 0.0);
    if (t->send)
        printf(" sent-checksum 0x%08x", out.checksum);
    if (t->recv)
        printf(" received-checksum 0x%08x", in.checksum);
    printf(" ok\n");
    fflush(stdout);
    return 0;
}

/* ---- command line ---- */

static bool parse_size(const char *text, uint64_t *size)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || end == text)
        return false;
    unsigned int shift = 0;
    if (*end == 'K' || *end == 'k')
        shift = 10;
    else if (*end == 'M' || *end == 'm')
        shift = 20;
    else if (*end == 'G' || *end == 'g')
        shift = 30;
    if (shift)
        end++;
    if (*end || v == 0 || v > (UINT64_MAX >> shift))
        return false;
    *size = (uint64_t)v << shift;
    return true;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: %s --peer N [--io byte|string|both] [--via auto|ioperm|devport]\n"
            "       [--timeout S] [--progress BYTES] ACTION=SIZE[+SIZE...] ...\n"
            "ACTION: send, recv or both\n",
            prog);
    exit(2);
}

int main(int argc, char **argv)
{
    struct channel c = {.via = VIA_AUTO, .devport = -1, .peer = PORTIO_PEER_NONE};
    unsigned int timeout_s = 60;
    uint64_t progress = 0;
    int io_modes = 1 << IO_STRING;
    int first_action = argc;

    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--peer") == 0 && v) {
            c.peer = (unsigned int)strtoul(v, NULL, 10);
            i++;
        } else if (strcmp(a, "--io") == 0 && v) {
            if (strcmp(v, "byte") == 0)
                io_modes = 1 << IO_BYTE;
            else if (strcmp(v, "string") == 0)
                io_modes = 1 << IO_STRING;
            else if (strcmp(v, "both") == 0)
                io_modes = 1 << IO_BYTE | 1 << IO_STRING;
            else
                usage();
            i++;
        } else if (strcmp(a, "--via") == 0 && v) {
            if (strcmp(v, "auto") == 0)
                c.via = VIA_AUTO;
            else if (strcmp(v, "ioperm") == 0)
                c.via = VIA_IOPERM;
            else if (strcmp(v, "devport") == 0)
                c.via = VIA_DEVPORT;
            else
                usage();
            i++;
        } else if (strcmp(a, "--timeout") == 0 && v) {
            timeout_s = (unsigned int)strtoul(v, NULL, 10);
            i++;
        } else if (strcmp(a, "--progress") == 0 && v) {
            if (!parse_size(v, &progress))
                usage();
            i++;
        } else if (a[0] != '-') {
            first_action = i;
            break;
        } else {
            usage();
        }
    }
    if (c.peer >= PORTIO_MAX_PEERS || first_action == argc)
        usage();

    char why[200] = "";
    if (portio_dev_find(NULL, &c.base, why, sizeof(why)))
        die("%s", why);
    if (c.via != VIA_DEVPORT) {
        if (portio_dev_ioperm(c.base, why, sizeof(why)) == 0) {
            c.via = VIA_IOPERM;
        } else if (c.via == VIA_IOPERM) {
            die("%s", why);
        } else {
            printf("%s: %s; using /dev/port (one exit per byte, no string I/O)\n", prog, why);
            c.via = VIA_DEVPORT;
        }
    }
    if (c.via == VIA_DEVPORT) {
        c.devport = open("/dev/port", O_RDWR | O_CLOEXEC);
        if (c.devport < 0)
            die("/dev/port: %s", strerror(errno));
        if (reg_read(&c, PORTIO_REG_ID) != PORTIO_ID_VALUE)
            die("port 0x%x does not read the channel's ID through /dev/port", c.base);
    }
    c.own_id = reg_read(&c, PORTIO_REG_OWN_ID);
    reg_write(&c, PORTIO_REG_PEER, (uint8_t)c.peer);
    printf("%s: channel at port 0x%x, peer %u talking to peer %u, via=%s\n", prog, c.base, c.own_id,
           c.peer, c.via == VIA_IOPERM ? "ioperm" : "devport");
    if (wait_for_peer(&c, timeout_s) || handshake(&c, timeout_s))
        return 1;

    for (int i = first_action; i < argc; i++) {
        char action[16];
        const char *eq = strchr(argv[i], '=');
        if (!eq || (size_t)(eq - argv[i]) >= sizeof(action))
            usage();
        memcpy(action, argv[i], (size_t)(eq - argv[i]));
        action[eq - argv[i]] = '\0';
        struct transfer t = {.timeout_s = timeout_s, .progress = progress};
        t.send = strcmp(action, "send") == 0 || strcmp(action, "both") == 0;
        t.recv = strcmp(action, "recv") == 0 || strcmp(action, "both") == 0;
        if (!t.send && !t.recv)
            usage();
        char sizes[256];
        snprintf(sizes, sizeof(sizes), "%s", eq + 1);
        for (char *save, *s = strtok_r(sizes, ",+", &save); s; s = strtok_r(NULL, ",+", &save)) {
            if (!parse_size(s, &t.size))
                usage();
            for (int io = IO_BYTE; io <= IO_STRING; io++) {
                if (!(io_modes & (1 << io)))
                    continue;
                t.io = (enum io_kind)io;
                if (c.via == VIA_DEVPORT) {
                    /* /dev/port only does single bytes: measure them once. */
                    if (io == IO_STRING && (io_modes & (1 << IO_BYTE)))
                        continue;
                    t.io = IO_BYTE;
                }
                int ret = run_transfer(&c, &t);
                if (ret)
                    return ret;
            }
        }
    }
    return 0;
}
