/* Shared by the libFuzzer harnesses in tests/fuzz: each harness reads its input as a stream
 * of operations on one real device or parser instance, and stops the run with
 * FUZZ_REQUIRE() when an invariant of that device breaks, so the fuzzer finds wrong
 * behaviour, not only crashes. Header-only: every fuzz_*.c is its own executable.
 *
 * Decoding never fails: past the end of the input every value reads as 0, and
 * fuzz_more() says when to stop.
 *
 * A harness for one more device on the port I/O bus is this much (fuzz_uart.c in full):
 *
 *     int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
 *     {
 *         struct fuzz_input in = fuzz_input_of(data, size);
 *         struct bus pio;
 *         struct my_device dev;
 *         FUZZ_REQUIRE(bus_init(&pio, "pio") == 0, "bus_init");
 *         FUZZ_REQUIRE(my_device_init(&dev, &pio, &config) == 0, "init");
 *         while (fuzz_more(&in)) {
 *             struct fuzz_access a = fuzz_access_next(&in, MY_DEVICE_PORTS + 4);
 *             uint64_t value = fuzz_access_do(&pio, MY_DEVICE_BASE, &a);
 *             FUZZ_REQUIRE(what must hold after any access, "what broke: %...", ...);
 *         }
 *         my_device_destroy(&dev);
 *         bus_destroy(&pio);
 *         return 0;
 *     }
 *
 * saved as tests/fuzz/fuzz_NAME.c, with minivmm_fuzz_target(NAME) in CMakeLists.txt. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "devices/bus.h"

/* libFuzzer's entry point; declared here because no header of the toolchain does. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_REQUIRE(cond, ...)                                                                    \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant broken: %s: ", __FILE__, __LINE__, #cond);           \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

struct fuzz_input {
    const uint8_t *data;
    size_t size;
    size_t pos;
};

static inline struct fuzz_input fuzz_input_of(const uint8_t *data, size_t size)
{
    return (struct fuzz_input){.data = data, .size = size, .pos = 0};
}

static inline bool fuzz_more(const struct fuzz_input *in)
{
    return in->pos < in->size;
}

/* The next n (<= 8) bytes, little endian; missing bytes read as 0. */
static inline uint64_t fuzz_take(struct fuzz_input *in, unsigned n)
{
    uint64_t value = 0;
    for (unsigned i = 0; i < n && in->pos < in->size; i++)
        value |= (uint64_t)in->data[in->pos++] << (8 * i);
    return value;
}

static inline uint8_t fuzz_u8(struct fuzz_input *in)
{
    return (uint8_t)fuzz_take(in, 1);
}

static inline uint16_t fuzz_u16(struct fuzz_input *in)
{
    return (uint16_t)fuzz_take(in, 2);
}

static inline uint32_t fuzz_u32(struct fuzz_input *in)
{
    return (uint32_t)fuzz_take(in, 4);
}

static inline uint64_t fuzz_u64(struct fuzz_input *in)
{
    return fuzz_take(in, 8);
}

/* Up to max bytes (fewer at the end of the input), length first. */
static inline const uint8_t *fuzz_bytes(struct fuzz_input *in, size_t max, size_t *len)
{
    size_t want = fuzz_u8(in) % (max + 1);
    size_t left = in->size - in->pos;
    *len = want < left ? want : left;
    const uint8_t *bytes = in->data + in->pos;
    in->pos += *len;
    return bytes;
}

/* One guest access as a vCPU exit delivers it: 3 bytes of header (flags, offset) then the
 * value for writes. Flags: bit 0 write, bits 1-2 width 1/2/4/8. offset is taken modulo
 * span, which callers make a little larger than the device's range so that accesses
 * straddling or past its end are tried too. */
struct fuzz_access {
    bool is_write;
    uint32_t size;
    uint64_t offset;
    uint64_t value;
};

static inline struct fuzz_access fuzz_access_next(struct fuzz_input *in, uint64_t span)
{
    uint8_t flags = fuzz_u8(in);
    struct fuzz_access a = {
        .is_write = flags & 1,
        .size = 1u << ((flags >> 1) & 3),
        .offset = fuzz_u16(in) % span,
    };
    if (a.is_write)
        a.value = fuzz_take(in, a.size);
    return a;
}

/* Performs a on bus at base + offset; returns what a read returned (0 for writes). */
static inline uint64_t fuzz_access_do(struct bus *bus, uint64_t base, const struct fuzz_access *a)
{
    uint64_t data = a->is_write ? a->value : 0;
    bus_access(bus, base + a->offset, &data, a->size, a->is_write);
    return a->is_write ? 0 : data;
}

/* One sendmsg() of len bytes with nfds (0..2) fds as SCM_RIGHTS, as a peer that does not
 * follow the protocol would. Returns what sendmsg returned. */
static inline ssize_t fuzz_send_fds(int sock, const void *bytes, size_t len, const int *fds,
                                    unsigned nfds, int flags)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(2 * sizeof(int))];
    } control;
    struct iovec iov = {.iov_base = (void *)bytes, .iov_len = len};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    FUZZ_REQUIRE(nfds <= 2, "%u fds", nfds);
    if (nfds) {
        memset(&control, 0, sizeof(control));
        msg.msg_control = control.buf;
        msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(nfds * sizeof(int));
        memcpy(CMSG_DATA(cmsg), fds, nfds * sizeof(int));
    }
    return sendmsg(sock, &msg, MSG_NOSIGNAL | flags);
}
