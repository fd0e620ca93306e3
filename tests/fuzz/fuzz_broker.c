/* The server side of the ivshmem protocol: what the broker accepts from its clients. The
 * broker runs in a thread on a real listening socket; the fuzzer is a crowd of clients that
 * connect (past the 64-peer limit too), send bytes and fds the protocol never asks for,
 * half-close, and hang up, in any order.
 *
 * Invariants: every accepted client gets a well-formed burst (version 0, an ID below
 * SHM_MAX_PEERS that no connected client holds, -1 with a memfd sealed against resizing of
 * the group's size, each other connected peer announced with `vectors` eventfds, then its
 * own `vectors` eventfds), or, with 64 connected, is refused by a close; the status file
 * parses and lists the new peer with our pid and uid; when the last client leaves, the
 * broker returns 0 having removed its files; no fd is left open and nothing hangs. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "fuzz.h"
#include "support/fds.h"
#include "vmm/broker/connect.h"
#include "vmm/broker/runtime.h"
#include "vmm/broker/server.h"
#include "vmm/broker/status.h"
#include "vmm/ivshmem_protocol.h"

#define NAME        "fuzz"
#define SIZE        SHM_MIN_SIZE
#define MAX_CLIENTS (SHM_MAX_PEERS + 2)
#define TIMEOUT_S   5

enum op { OP_CONNECT, OP_CLOSE, OP_SEND, OP_SHUTDOWN, OP_COUNT };

struct client {
    int sock;  /* -1: none */
    bool left; /* half-closed: the broker sees it leave, the socket stays open */
    unsigned id;
};

/* Whether the broker counts the client as a peer (once it has noticed what we did). */
static bool connected(const struct client *c)
{
    return c->sock >= 0 && !c->left;
}

struct broker_thread {
    int listen_fd;
    char dir[64];
    unsigned vectors;
    int ret;
};

static void *broker_main(void *arg)
{
    struct broker_thread *b = arg;
    b->ret = broker_run(b->listen_fd, b->dir, NAME, SIZE, b->vectors);
    return NULL;
}

static int connect_to(const char *path)
{
    int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    FUZZ_REQUIRE(sock >= 0, "socket: %s", strerror(errno));
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
    FUZZ_REQUIRE(connect(sock, (struct sockaddr *)&addr, sizeof(addr)) == 0, "connect %s: %s", path,
                 strerror(errno));
    struct timeval timeout = {.tv_sec = TIMEOUT_S};
    FUZZ_REQUIRE(setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)) == 0,
                 "SO_RCVTIMEO");
    return sock;
}

static void expect_message(int sock, const char *what, int64_t *value, int *fd)
{
    int ret = ivproto_recv(sock, value, fd);
    FUZZ_REQUIRE(ret == 0, "%s: ivproto_recv %d (%s)", what, ret, strerror(-ret));
}

/* Reads and discards what the broker sent a client since its burst (announcements), closing
 * the fds, so that no socket fills up and gets the client dropped for being slow. */
static void drain(int sock)
{
    for (;;) {
        char bytes[256];
        union {
            struct cmsghdr align;
            char buf[CMSG_SPACE(sizeof(int) * 64)];
        } control;
        struct iovec iov = {.iov_base = bytes, .iov_len = sizeof(bytes)};
        struct msghdr msg = {.msg_iov = &iov,
                             .msg_iovlen = 1,
                             .msg_control = control.buf,
                             .msg_controllen = sizeof(control.buf)};
        if (recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) <= 0)
            return;
        for (struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg); cmsg; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
            size_t n = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t k = 0; k < n; k++) {
                int fd;
                memcpy(&fd, CMSG_DATA(cmsg) + k * sizeof(int), sizeof(int));
                close(fd);
            }
        }
    }
}

static bool held_by_other(const struct client *clients, unsigned self, unsigned id)
{
    for (unsigned i = 0; i < MAX_CLIENTS; i++)
        if (i != self && connected(&clients[i]) && clients[i].id == id)
            return true;
    return false;
}

/* Reads a new client's burst and checks it; returns false when the broker refused it. */
static bool read_burst(struct client *clients, unsigned self, unsigned vectors,
                       const char *status_path)
{
    struct client *c = &clients[self];
    int64_t value;
    int fd;
    int ret = ivproto_recv(c->sock, &value, &fd);
    if (ret == -EPIPE) {
        unsigned peers = 0;
        for (unsigned i = 0; i < MAX_CLIENTS; i++)
            peers += i != self && connected(&clients[i]);
        FUZZ_REQUIRE(peers >= SHM_MAX_PEERS, "refused with %u peers connected", peers);
        return false;
    }
    FUZZ_REQUIRE(ret == 0 && value == IVPROTO_VERSION && fd < 0, "version: %d %lld fd %d", ret,
                 (long long)value, fd);
    expect_message(c->sock, "ID", &value, &fd);
    FUZZ_REQUIRE(value >= 0 && value < SHM_MAX_PEERS && fd < 0, "ID %lld fd %d", (long long)value,
                 fd);
    c->id = (unsigned)value;
    FUZZ_REQUIRE(!held_by_other(clients, self, c->id), "ID %u given twice", c->id);
    expect_message(c->sock, "memory", &value, &fd);
    FUZZ_REQUIRE(value == IVPROTO_SHM_ID && fd >= 0, "memory: %lld fd %d", (long long)value, fd);
    struct stat st;
    int seals = fcntl(fd, F_GET_SEALS);
    FUZZ_REQUIRE(fstat(fd, &st) == 0 && st.st_size == (off_t)SIZE &&
                     (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) == (F_SEAL_SHRINK | F_SEAL_GROW),
                 "memfd of %lld bytes, seals %#x", (long long)st.st_size, seals);
    close(fd);

    unsigned counts[SHM_MAX_PEERS] = {0};
    while (counts[c->id] < vectors) {
        expect_message(c->sock, "eventfds", &value, &fd);
        FUZZ_REQUIRE(value >= 0 && value < SHM_MAX_PEERS && fd >= 0, "eventfd message %lld fd %d",
                     (long long)value, fd);
        close(fd);
        counts[value]++;
        FUZZ_REQUIRE(counts[value] <= vectors, "peer %lld announced %u times", (long long)value,
                     counts[value]);
        if (value != c->id)
            FUZZ_REQUIRE(counts[c->id] == 0, "peer %lld announced after our own eventfds",
                         (long long)value);
    }
    /* Every client still connected (the broker may not have reaped closed ones yet) is
     * announced in full. */
    for (unsigned i = 0; i < MAX_CLIENTS; i++)
        if (i != self && connected(&clients[i]))
            FUZZ_REQUIRE(counts[clients[i].id] == vectors, "connected peer %u announced %u times",
                         clients[i].id, counts[clients[i].id]);

    struct broker_status status;
    FUZZ_REQUIRE(broker_status_read(status_path, &status) == 0, "status file unreadable");
    bool listed = false;
    for (unsigned i = 0; i < status.peer_count; i++)
        listed |= status.peers[i].id == c->id && status.peers[i].pid == getpid() &&
                  status.peers[i].uid == geteuid();
    FUZZ_REQUIRE(listed && status.size == SIZE && status.vectors == vectors,
                 "status file does not list peer %u", c->id);
    return true;
}

static struct broker_thread b;

/* The broker removes its files when its last client leaves; the folder is ours. */
static void remove_dir(void)
{
    rmdir(b.dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct client clients[MAX_CLIENTS];
    struct fuzz_input in = fuzz_input_of(data, size);
    char sock_path[128], status_path[128], lock_path[128], why[200];

    if (!b.dir[0]) {
        snprintf(b.dir, sizeof(b.dir), "/tmp/minivmm-fuzz-broker-XXXXXX");
        FUZZ_REQUIRE(mkdtemp(b.dir), "mkdtemp: %s", strerror(errno));
        atexit(remove_dir);
    }
    FUZZ_REQUIRE(broker_path(sock_path, sizeof(sock_path), b.dir, NAME, ".sock") == 0 &&
                     broker_path(status_path, sizeof(status_path), b.dir, NAME, ".group") == 0 &&
                     broker_path(lock_path, sizeof(lock_path), b.dir, NAME, ".lock") == 0,
                 "paths");
    int fds_before = test_open_fd_count();
    b.vectors = fuzz_u8(&in) % 4;
    b.listen_fd = broker_listen(sock_path, why, sizeof(why));
    FUZZ_REQUIRE(b.listen_fd >= 0, "broker_listen: %s", why);
    for (unsigned i = 0; i < MAX_CLIENTS; i++)
        clients[i].sock = -1;
    /* One client in the backlog before the broker starts, so it never idles out. */
    clients[0].sock = connect_to(sock_path);
    clients[0].left = false;
    pthread_t thread;
    FUZZ_REQUIRE(pthread_create(&thread, NULL, broker_main, &b) == 0, "pthread_create");
    if (!read_burst(clients, 0, b.vectors, status_path))
        FUZZ_REQUIRE(false, "first client refused");

    while (fuzz_more(&in)) {
        uint8_t op = fuzz_u8(&in);
        /* Client slots: mostly the first few, so actions meet the same clients. */
        unsigned i = (op & 0x80 ? fuzz_u8(&in) : fuzz_u8(&in) % 4) % MAX_CLIENTS;
        struct client *c = &clients[i];
        switch (op % OP_COUNT) {
        case OP_CONNECT: {
            /* With every client gone the broker exits and removes its socket, as it should:
             * nobody can connect any more. */
            bool any = false;
            for (unsigned k = 0; k < MAX_CLIENTS; k++)
                any |= connected(&clients[k]);
            if (c->sock >= 0 || !any)
                break;
            for (unsigned k = 0; k < MAX_CLIENTS; k++)
                if (clients[k].sock >= 0)
                    drain(clients[k].sock);
            c->sock = connect_to(sock_path);
            c->left = false;
            if (!read_burst(clients, i, b.vectors, status_path)) {
                close(c->sock);
                c->sock = -1;
            }
            break;
        }
        case OP_CLOSE:
            if (c->sock >= 0 && (op & 0x40 || i != 0)) { /* keep the group alive mostly */
                close(c->sock);
                c->sock = -1;
            }
            break;
        case OP_SEND: {
            size_t len;
            const uint8_t *bytes = fuzz_bytes(&in, 64, &len);
            if (c->sock < 0 || !len)
                break;
            /* Optionally with an fd attached, which the protocol never sends this way. The
             * broker may have dropped this client already: EPIPE is fine. */
            int efd = -1;
            if (op & 0x40) {
                efd = eventfd(0, EFD_CLOEXEC);
                FUZZ_REQUIRE(efd >= 0, "eventfd");
            }
            fuzz_send_fds(c->sock, bytes, len, &efd, efd >= 0, MSG_DONTWAIT);
            if (efd >= 0)
                close(efd);
            break;
        }
        case OP_SHUTDOWN:
            if (c->sock >= 0 && (op & 0x40 || i != 0)) {
                shutdown(c->sock, op & 0x20 ? SHUT_RDWR : SHUT_WR);
                c->left = true;
            }
            break;
        }
    }

    for (unsigned i = 0; i < MAX_CLIENTS; i++) {
        if (clients[i].sock >= 0)
            close(clients[i].sock);
        clients[i].sock = -1;
    }
    FUZZ_REQUIRE(pthread_join(thread, NULL) == 0, "pthread_join");
    FUZZ_REQUIRE(b.ret == 0, "broker_run returned %d", b.ret);
    struct stat st;
    FUZZ_REQUIRE(stat(sock_path, &st) < 0 && stat(status_path, &st) < 0 && stat(lock_path, &st) < 0,
                 "the broker left its files behind");
    int fds_after = test_open_fd_count();
    FUZZ_REQUIRE(fds_after == fds_before, "%d fds open before, %d after", fds_before, fds_after);
    return 0;
}
