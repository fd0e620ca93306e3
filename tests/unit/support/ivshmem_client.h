/* Helpers for the broker and shm_group tests: header-only (every tests/unit/test_*.c is
 * its own executable). A client written from the protocol description, not from
 * shm_group.c, so the broker is checked against the spec rather than against our own
 * client; temporary runtime folders; waiting for processes with a deadline. Every wait is
 * bounded: a broken broker fails a test, it never hangs ctest. */
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/unit/support/clock.h"
#include "tests/unit/support/fds.h"
#include "vmm/broker/connect.h"
#include "vmm/broker/runtime.h"
#include "vmm/broker/server.h"
#include "vmm/broker/status.h"
#include "vmm/ivshmem_protocol.h"

#define IVCLIENT_TIMEOUT_MS 3000

/* A fresh 0700 folder under $TMPDIR or /tmp. */
static inline void test_tmpdir(char *dir, size_t len, const char *tag)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, len, "%s/minivmm-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", tag);
    if (!mkdtemp(dir))
        fail_msg("mkdtemp %s: %s", dir, strerror(errno));
}

static inline int test_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static inline void test_rmtree(const char *dir)
{
    if (dir && *dir)
        nftw(dir, test_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Waits up to timeout_ms for a child (or an orphan we reap as subreaper) to exit.
 * Returns true and its status when it did. */
static inline bool test_wait_exit(pid_t pid, int timeout_ms, int *status)
{
    int64_t deadline = test_now_ms() + timeout_ms;
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return true;
        if (r < 0 && errno != EINTR)
            return false;
        if (test_now_ms() >= deadline)
            return false;
        usleep(5000);
    }
}

/* Waits until path exists (want) or is gone (!want). */
static inline bool test_wait_path(const char *path, bool want, int timeout_ms)
{
    int64_t deadline = test_now_ms() + timeout_ms;
    while ((access(path, F_OK) == 0) != want) {
        if (test_now_ms() >= deadline)
            return false;
        usleep(5000);
    }
    return true;
}

/* A protocol client. */
struct ivclient {
    int sock;
    int64_t id;
    int mem_fd;
    unsigned int vectors;
    int own[SHM_MAX_VECTORS];
    unsigned int peer_count[SHM_MAX_PEERS];
    int peer[SHM_MAX_PEERS][SHM_MAX_VECTORS];
    /* The burst as it came: values, and whether each had an fd. */
    unsigned int seen;
    int64_t seen_value[2 * SHM_MAX_PEERS * 4 + 8];
    bool seen_fd[2 * SHM_MAX_PEERS * 4 + 8];
};

static inline int ivclient_dial(const char *path)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(addr.sun_path))
        return -ENAMETOOLONG;
    strcpy(addr.sun_path, path);
    int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sock < 0)
        return -errno;
    if (connect(sock, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        int err = errno;
        close(sock);
        return -err;
    }
    struct timeval tv = {.tv_sec = IVCLIENT_TIMEOUT_MS / 1000};
    setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return sock;
}

static inline struct ivclient *ivclient_connect(const char *path, unsigned int vectors)
{
    struct ivclient *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    c->sock = ivclient_dial(path);
    if (c->sock < 0)
        fail_msg("connect %s: %s", path, strerror(-c->sock));
    c->vectors = vectors;
    c->mem_fd = -1;
    for (unsigned int v = 0; v < SHM_MAX_VECTORS; v++)
        c->own[v] = -1;
    for (unsigned int p = 0; p < SHM_MAX_PEERS; p++)
        for (unsigned int v = 0; v < SHM_MAX_VECTORS; v++)
            c->peer[p][v] = -1;
    return c;
}

/* Next message; fails the test on a timeout, EOF or a malformed message. */
static inline int64_t ivclient_next(struct ivclient *c, int *fd)
{
    int64_t value;
    int ret = ivproto_recv(c->sock, &value, fd);
    if (ret < 0)
        fail_msg("client %lld: ivproto_recv: %s", (long long)c->id, strerror(-ret));
    if (c->seen < sizeof(c->seen_value) / sizeof(c->seen_value[0])) {
        c->seen_value[c->seen] = value;
        c->seen_fd[c->seen++] = *fd >= 0;
    }
    return value;
}

/* Reads the initial burst exactly as the spec orders it: 0, ID, -1+memfd, other peers'
 * IDs with fds, then our ID with fds vectors times (nothing more with vectors=0). */
static inline void ivclient_burst(struct ivclient *c)
{
    int fd;
    assert_int_equal(ivclient_next(c, &fd), 0);
    assert_int_equal(fd, -1);
    c->id = ivclient_next(c, &fd);
    assert_int_equal(fd, -1);
    assert_true(c->id >= 0 && c->id < SHM_MAX_PEERS);
    assert_int_equal(ivclient_next(c, &fd), -1);
    assert_true(fd >= 0);
    c->mem_fd = fd;
    unsigned int own = 0;
    while (own < c->vectors) {
        int64_t value = ivclient_next(c, &fd);
        assert_true(fd >= 0);
        assert_true(value >= 0 && value < SHM_MAX_PEERS);
        if (value == c->id) {
            c->own[own++] = fd;
        } else {
            assert_int_equal(own, 0); /* own fds come last */
            assert_true(c->peer_count[value] < c->vectors);
            c->peer[value][c->peer_count[value]++] = fd;
        }
    }
}

/* The next message must be value, with an fd or without; returns the fd. */
static inline int ivclient_expect(struct ivclient *c, int64_t value, bool with_fd)
{
    int fd;
    int64_t got = ivclient_next(c, &fd);
    if (got != value || (fd >= 0) != with_fd)
        fail_msg("client %lld: expected %lld %s, got %lld %s", (long long)c->id, (long long)value,
                 with_fd ? "with an fd" : "without fd", (long long)got,
                 fd >= 0 ? "with an fd" : "without fd");
    return fd;
}

/* Reads a peer's join notice (vectors messages with fds) into c->peer[id]. */
static inline void ivclient_expect_join(struct ivclient *c, int64_t id)
{
    for (unsigned int v = 0; v < c->vectors; v++) {
        int fd = ivclient_expect(c, id, true);
        if (c->peer[id][v] >= 0)
            close(c->peer[id][v]);
        c->peer[id][v] = fd;
    }
    c->peer_count[id] = c->vectors;
}

/* Nothing arrives (and no EOF) within ms. */
static inline void ivclient_expect_quiet(struct ivclient *c, int ms)
{
    struct pollfd p = {.fd = c->sock, .events = POLLIN};
    int n = poll(&p, 1, ms);
    if (n != 0)
        fail_msg("client %lld: unexpected message or EOF (revents 0x%x)", (long long)c->id,
                 (unsigned int)p.revents);
}

static inline void ivclient_close(struct ivclient *c)
{
    if (!c)
        return;
    if (c->sock >= 0)
        close(c->sock);
    if (c->mem_fd >= 0)
        close(c->mem_fd);
    for (unsigned int v = 0; v < SHM_MAX_VECTORS; v++)
        if (c->own[v] >= 0)
            close(c->own[v]);
    for (unsigned int p = 0; p < SHM_MAX_PEERS; p++)
        for (unsigned int v = 0; v < SHM_MAX_VECTORS; v++)
            if (c->peer[p][v] >= 0)
                close(c->peer[p][v]);
    free(c);
}

/* Raises fd's eventfd counter by n. */
static inline void eventfd_ring(int fd, uint64_t n)
{
    assert_int_equal(write(fd, &n, sizeof(n)), (ssize_t)sizeof(n));
}

/* Reads (and so clears) an eventfd's counter; 0 when it was not raised (they are
 * non-blocking: the broker creates them with EFD_NONBLOCK). */
static inline uint64_t eventfd_take(int fd)
{
    uint64_t n = 0;
    ssize_t r = read(fd, &n, sizeof(n));
    if (r < 0 && errno == EAGAIN)
        return 0;
    assert_int_equal(r, (ssize_t)sizeof(n));
    return n;
}
