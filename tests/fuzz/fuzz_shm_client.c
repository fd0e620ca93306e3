/* The client side of the ivshmem server protocol: what a VM parses from its broker. The
 * fuzzer is the broker: it writes a sequence of messages (any value, none, one or two fds
 * of several kinds: eventfds, the memfd, unsealed or wrongly sized memfds; messages split
 * over two writes; stray bytes) into a socketpair, closes it, and the VM side runs
 * shm_group_join_socket() on the initial burst and then its group thread on the rest.
 *
 * Invariants: a join succeeds only with a peer ID below SHM_MAX_PEERS and a memfd that is
 * sealed against resizing and of the asked size, with exactly `vectors` own eventfds;
 * peer_joined comes only for an absent, valid ID other than ours with `vectors` open fds,
 * peer_left only for a joined peer, broker_lost exactly once; no fd is left open after
 * shm_group_leave(), and nothing hangs. */

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fuzz.h"
#include "support/fds.h"
#include "vmm/ivshmem_protocol.h"
#include "vmm/shm_group.h"

#define MAX_MESSAGES 256

enum fd_kind { FD_NONE, FD_EVENTFD = 3, FD_MEMFD, FD_MEMFD_UNSEALED, FD_MEMFD_WRONG_SIZE, FD_TWO };

struct events {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned own_id;
    unsigned vectors;
    bool joined[SHM_MAX_PEERS];
    unsigned lost;
};

static int make_memfd(uint64_t size, bool seal)
{
    int fd = memfd_create("fuzz-shm", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    FUZZ_REQUIRE(fd >= 0 && ftruncate(fd, (off_t)size) == 0, "memfd: %s", strerror(errno));
    if (seal)
        FUZZ_REQUIRE(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) == 0, "seal");
    return fd;
}

/* Sends bytes with fds attached to the first byte, without waiting: the VM side reads
 * only after everything is sent, so a full socket buffer ends the broker's stream there
 * (a stream cut anywhere is input like any other). False when the buffer was full. */
static bool send_raw(int sock, const void *bytes, size_t len, const int *fds, unsigned nfds)
{
    ssize_t sent = fuzz_send_fds(sock, bytes, len, fds, nfds, MSG_DONTWAIT);
    if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return false;
    FUZZ_REQUIRE(sent >= 0, "sendmsg: %s", strerror(errno));
    return (size_t)sent == len;
}

/* Decodes and sends one message. False when the socket buffer is full. */
static bool send_message(struct fuzz_input *in, int sock, uint64_t size)
{
    uint8_t kind = fuzz_u8(in);
    if (kind & 0x80) { /* stray bytes: a message cut short, or garbage between messages */
        size_t len;
        const uint8_t *bytes = fuzz_bytes(in, 15, &len);
        return len == 0 || send_raw(sock, bytes, len, NULL, 0);
    }
    int64_t value;
    switch (kind & 7) {
    case 0:
        value = IVPROTO_VERSION;
        break;
    case 1:
        value = IVPROTO_SHM_ID;
        break;
    case 6:
        value = (int64_t)fuzz_u64(in);
        break;
    default:
        value = fuzz_u8(in) % (SHM_MAX_PEERS + 2);
        break;
    }
    int fds[2];
    unsigned nfds = 0;
    switch ((kind >> 3) & 7) {
    case FD_EVENTFD:
        fds[nfds++] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        break;
    case FD_MEMFD:
        fds[nfds++] = make_memfd(size, true);
        break;
    case FD_MEMFD_UNSEALED:
        fds[nfds++] = make_memfd(size, false);
        break;
    case FD_MEMFD_WRONG_SIZE:
        fds[nfds++] = make_memfd(size * 2, true);
        break;
    case FD_TWO:
        fds[nfds++] = eventfd(0, EFD_CLOEXEC);
        fds[nfds++] = eventfd(0, EFD_CLOEXEC);
        break;
    }
    for (unsigned i = 0; i < nfds; i++)
        FUZZ_REQUIRE(fds[i] >= 0, "fd: %s", strerror(errno));
    uint64_t wire = htole64((uint64_t)value);
    size_t split = kind & 0x40 ? 1 + fuzz_u8(in) % 7 : sizeof(wire);
    bool sent = send_raw(sock, &wire, split, fds, nfds);
    if (sent && split < sizeof(wire))
        sent = send_raw(sock, (const uint8_t *)&wire + split, sizeof(wire) - split, NULL, 0);
    for (unsigned i = 0; i < nfds; i++)
        close(fds[i]); /* in flight now, or never sent */
    return sent;
}

static void on_joined(void *ctx, unsigned int id, int *fds, unsigned int nfds)
{
    struct events *ev = ctx;
    pthread_mutex_lock(&ev->lock);
    FUZZ_REQUIRE(id < SHM_MAX_PEERS && id != ev->own_id && !ev->joined[id],
                 "peer_joined(%u): own %u, already joined %d", id, ev->own_id,
                 id < SHM_MAX_PEERS && ev->joined[id]);
    FUZZ_REQUIRE(nfds == ev->vectors, "peer %u joined with %u fds, vectors %u", id, nfds,
                 ev->vectors);
    ev->joined[id] = true;
    pthread_mutex_unlock(&ev->lock);
    for (unsigned v = 0; v < nfds; v++) {
        FUZZ_REQUIRE(fcntl(fds[v], F_GETFD) != -1, "peer %u fd %u not open", id, v);
        close(fds[v]);
    }
}

static void on_left(void *ctx, unsigned int id)
{
    struct events *ev = ctx;
    pthread_mutex_lock(&ev->lock);
    FUZZ_REQUIRE(id < SHM_MAX_PEERS && ev->joined[id], "peer_left(%u) of a peer not joined", id);
    ev->joined[id] = false;
    pthread_mutex_unlock(&ev->lock);
}

static void on_lost(void *ctx)
{
    struct events *ev = ctx;
    pthread_mutex_lock(&ev->lock);
    ev->lost++;
    pthread_cond_signal(&ev->cond);
    pthread_mutex_unlock(&ev->lock);
}

static void wait_lost(struct events *ev)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 5;
    pthread_mutex_lock(&ev->lock);
    while (!ev->lost)
        FUZZ_REQUIRE(pthread_cond_timedwait(&ev->cond, &ev->lock, &deadline) != ETIMEDOUT,
                     "the group thread did not see the broker go within 5 s");
    pthread_mutex_unlock(&ev->lock);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct shm_group_events callbacks = {
        .peer_joined = on_joined, .peer_left = on_left, .broker_lost = on_lost};
    static struct shm_group g;
    static struct events ev;
    struct fuzz_input in = fuzz_input_of(data, size);
    struct shm_spec spec = {.name = "fuzz", .size = SHM_MIN_SIZE};
    uint8_t first = fuzz_u8(&in);
    spec.vectors = first & 0x80 ? SHM_MAX_VECTORS : first % 4;

    int fds_before = test_open_fd_count();
    int pair[2];
    FUZZ_REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0, "socketpair");
    /* Everything is written up front, as far as the socket buffer holds it, then EOF. */
    for (unsigned i = 0; i < MAX_MESSAGES && fuzz_more(&in); i++) {
        if (!send_message(&in, pair[0], spec.size))
            break;
    }
    close(pair[0]);

    char why[300];
    int ret = shm_group_join_socket(&g, &spec, pair[1], why, sizeof(why));
    if (ret == 0) {
        FUZZ_REQUIRE(g.id < SHM_MAX_PEERS && g.vectors == spec.vectors, "joined as %u", g.id);
        FUZZ_REQUIRE(g.mem && g.mem_size == spec.size, "memory %p size %llu", g.mem,
                     (unsigned long long)g.mem_size);
        struct stat st;
        int seals = fcntl(g.mem_fd, F_GET_SEALS);
        FUZZ_REQUIRE(fstat(g.mem_fd, &st) == 0 && (uint64_t)st.st_size == spec.size && seals >= 0 &&
                         (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) == (F_SEAL_SHRINK | F_SEAL_GROW),
                     "joined with a memfd of %lld bytes, seals %#x", (long long)st.st_size, seals);
        for (unsigned v = 0; v < spec.vectors; v++)
            FUZZ_REQUIRE(fcntl(g.own_fds[v], F_GETFD) != -1, "own fd %u not open", v);

        memset(&ev, 0, sizeof(ev));
        pthread_mutex_init(&ev.lock, NULL);
        pthread_cond_init(&ev.cond, NULL);
        ev.own_id = g.id;
        ev.vectors = spec.vectors;
        FUZZ_REQUIRE(shm_group_start(&g, &callbacks, &ev) == 0, "shm_group_start");
        wait_lost(&ev);
        shm_group_leave(&g);
        FUZZ_REQUIRE(ev.lost == 1, "broker_lost %u times", ev.lost);
        pthread_cond_destroy(&ev.cond);
        pthread_mutex_destroy(&ev.lock);
    } else {
        FUZZ_REQUIRE(why[0], "join failed (%d) without a reason", ret);
    }
    int fds_after = test_open_fd_count();
    FUZZ_REQUIRE(fds_after == fds_before, "%d fds open before, %d after", fds_before, fds_after);
    return 0;
}
