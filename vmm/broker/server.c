#include "vmm/broker/server.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include "common/log.h"
#include "devices/portio_channel.h"
#include "vmm/broker/runtime.h"
#include "vmm/broker/status.h"
#include "vmm/hugepages.h"
#include "vmm/ivshmem_protocol.h"
#include "vmm/reason.h"
#include "vmm/sandbox.h"
#include "vmm/size.h"

/* How long a send to one client may block before that client is dropped: a client that
 * stops reading must not stall the group. */
#define BROKER_SEND_TIMEOUT_MS 2000
/* While tearing down, how often the broker retries NAME.lock when a joiner holds it. */
#define BROKER_TEARDOWN_RETRY_MS 50
/* Stopped by a signal, how long the broker waits for a joiner to release NAME.lock. */
#define BROKER_STOP_LOCK_TIMEOUT_MS 2000

struct broker_client {
    int sock;
    pid_t pid;
    uid_t uid;
    bool dead;          /* a send failed or it hung up: dropped by broker_reap() */
    bool has_portio;    /* marked present in the port I/O channel */
    bool said_hello;    /* a minivmm client (IVPROTO_HELLO), not a QEMU device */
    uint64_t joined_at; /* broker->events when it joined */
    uint8_t request[8]; /* a message the client is sending us, little endian */
    unsigned int request_len;
    int efds[SHM_MAX_VECTORS];
};

struct broker {
    int listen_fd;
    int mem_fd;
    int portio_fd; /* the port I/O channel, created on the first request; -1 before */
    void *portio_mem;
    const char *name;
    uint64_t size;
    unsigned int vectors;
    uint64_t hugepage_size; /* 0: ordinary pages */
    const struct broker_options *opts;
    struct broker_client *clients[SHM_MAX_PEERS]; /* indexed by peer ID */
    uint64_t events;                              /* joins and departures so far */
    uint64_t left_at[SHM_MAX_PEERS]; /* events when the ID's last holder left; 0: never */
    unsigned int client_count;
    unsigned int refused;
    bool ever_connected;
    char sock_path[PATH_MAX];
    char status_path[PATH_MAX];
    char status_tmp[PATH_MAX];
    char lock_path[PATH_MAX];
};

static void broker_log(const struct broker *b, int priority, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void broker_log(const struct broker *b, int priority, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (priority <= LOG_ERR)
        log_error("broker %s: %s", b->name, text);
    else if (priority == LOG_WARNING)
        log_warn("broker %s: %s", b->name, text);
    else
        log_debug("broker %s: %s", b->name, text);
    if (b->opts->use_syslog && priority <= LOG_WARNING)
        syslog(priority, "group %s: %s", b->name, text);
}

static int broker_write_status(struct broker *b)
{
    struct broker_status status = {
        .size = b->size,
        .vectors = b->vectors,
        .hugepage_size = b->hugepage_size,
        .broker_pid = getpid(),
        .broker_uid = geteuid(),
        .refused = b->refused,
    };
    snprintf(status.name, sizeof(status.name), "%s", b->name);
    for (unsigned int id = 0; id < SHM_MAX_PEERS; id++) {
        const struct broker_client *c = b->clients[id];
        if (c)
            status.peers[status.peer_count++] =
                (struct broker_peer_info){.id = id, .pid = c->pid, .uid = c->uid};
    }
    char why[400];
    int ret = broker_status_write(b->status_path, b->status_tmp, &status, why, sizeof(why));
    if (ret < 0)
        broker_log(b, LOG_ERR, "%s", why);
    return ret;
}

static void client_free(struct broker_client *c)
{
    if (c->sock >= 0)
        close(c->sock);
    for (unsigned int v = 0; v < SHM_MAX_VECTORS; v++)
        if (c->efds[v] >= 0)
            close(c->efds[v]);
    free(c);
}

/* Sends to a client; a failure marks it dead (dropped later by broker_reap()). */
static void client_send(struct broker *b, unsigned int id, int64_t value, int fd)
{
    struct broker_client *c = b->clients[id];
    if (c->dead)
        return;
    int ret = ivproto_send(c->sock, value, fd);
    if (ret < 0) {
        broker_log(b, LOG_WARNING, "peer %u (pid %d): send %" PRId64 ": %s; dropping it", id,
                   (int)c->pid, value, strerror(-ret));
        c->dead = true;
    }
}

/* Drops every dead client and tells the others, until none is dead (telling one may find
 * another gone). */
static void broker_reap(struct broker *b)
{
    bool again = true;
    while (again) {
        again = false;
        for (unsigned int id = 0; id < SHM_MAX_PEERS; id++) {
            struct broker_client *c = b->clients[id];
            if (!c || !c->dead)
                continue;
            broker_log(b, LOG_DEBUG, "peer %u (pid %d) left", id, (int)c->pid);
            /* Before anyone hears of it: a writer to this peer sees PEER_GONE at once. */
            if (c->has_portio)
                portio_channel_set_present(b->portio_mem, id, 0, false);
            client_free(c);
            b->clients[id] = NULL;
            b->client_count--;
            b->left_at[id] = ++b->events;
            broker_write_status(b); /* current before anyone hears of the change */
            for (unsigned int other = 0; other < SHM_MAX_PEERS; other++)
                if (b->clients[other])
                    client_send(b, other, id, -1);
            again = true;
        }
    }
}

/* Whether a connected QEMU device saw id's last holder leave. QEMU (7.2 at least) frees a
 * peer's eventfd array when the peer leaves and writes to it again when the same ID joins,
 * so that ID must not come back while such a device is connected. */
static bool broker_id_left_before_qemu(const struct broker *b, unsigned int id)
{
    for (unsigned int other = 0; other < SHM_MAX_PEERS; other++) {
        const struct broker_client *c = b->clients[other];
        if (c && !c->said_hello && c->joined_at < b->left_at[id])
            return true;
    }
    return false;
}

/* The lowest free ID that no connected QEMU device saw leave; when every free ID is one,
 * the lowest free. SHM_MAX_PEERS when none is free. */
static unsigned int broker_pick_id(const struct broker *b)
{
    unsigned int fallback = SHM_MAX_PEERS;
    for (unsigned int id = 0; id < SHM_MAX_PEERS; id++) {
        if (b->clients[id])
            continue;
        if (!broker_id_left_before_qemu(b, id))
            return id;
        if (fallback == SHM_MAX_PEERS)
            fallback = id;
    }
    return fallback;
}

static void broker_refuse(struct broker *b, int sock, const char *reason, pid_t pid, uid_t uid)
{
    broker_log(b, LOG_WARNING, "refused a connection from pid %d uid %u: %s", (int)pid,
               (unsigned int)uid, reason);
    b->refused++;
    broker_write_status(b);
    close(sock);
}

static void broker_accept(struct broker *b)
{
    int sock = accept4(b->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (sock < 0) {
        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
            broker_log(b, LOG_WARNING, "accept4 %s: %s", b->sock_path, strerror(errno));
        return;
    }
    struct ucred cred;
    socklen_t cred_len = sizeof(cred);
    if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) < 0) {
        broker_log(b, LOG_WARNING, "getsockopt SO_PEERCRED: %s", strerror(errno));
        close(sock);
        return;
    }
    if (cred.uid != geteuid()) {
        broker_refuse(b, sock, "not the broker's uid", cred.pid, cred.uid);
        return;
    }
    unsigned int id = broker_pick_id(b);
    if (id == SHM_MAX_PEERS) {
        char reason[64];
        snprintf(reason, sizeof(reason), "the group already has %d peers", SHM_MAX_PEERS);
        broker_refuse(b, sock, reason, cred.pid, cred.uid);
        return;
    }
    struct timeval timeout = {.tv_sec = BROKER_SEND_TIMEOUT_MS / 1000,
                              .tv_usec = (BROKER_SEND_TIMEOUT_MS % 1000) * 1000};
    if (setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout)) < 0) {
        broker_log(b, LOG_WARNING, "setsockopt SO_SNDTIMEO: %s", strerror(errno));
        close(sock);
        return;
    }

    struct broker_client *c = malloc(sizeof(*c));
    if (!c) {
        broker_log(b, LOG_WARNING, "out of memory for peer %u", id);
        close(sock);
        return;
    }
    c->sock = sock;
    c->pid = cred.pid;
    c->uid = cred.uid;
    c->dead = false;
    c->has_portio = false;
    c->said_hello = false;
    c->joined_at = ++b->events;
    c->request_len = 0;
    for (unsigned int v = 0; v < SHM_MAX_VECTORS; v++)
        c->efds[v] = -1;
    for (unsigned int v = 0; v < b->vectors; v++) {
        /* O_NONBLOCK lives in the shared file description: every holder gets it, so a
         * reader draining its counter can never hang. */
        c->efds[v] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (c->efds[v] < 0) {
            broker_log(b, LOG_WARNING, "eventfd for peer %u vector %u: %s", id, v, strerror(errno));
            client_free(c);
            return;
        }
    }

    /* The new client's burst: version, its ID, the memory, every other peer's eventfds in
     * ID order, then its own. */
    b->clients[id] = c;
    b->client_count++;
    broker_write_status(b); /* current before anyone, the joiner included, hears of it */
    client_send(b, id, IVPROTO_VERSION, -1);
    client_send(b, id, id, -1);
    client_send(b, id, IVPROTO_SHM_ID, b->mem_fd);
    for (unsigned int other = 0; other < SHM_MAX_PEERS; other++) {
        const struct broker_client *o = b->clients[other];
        if (!o || other == id)
            continue;
        for (unsigned int v = 0; v < b->vectors; v++)
            client_send(b, id, other, o->efds[v]);
    }
    for (unsigned int v = 0; v < b->vectors; v++)
        client_send(b, id, id, c->efds[v]);
    if (c->dead) {
        /* Never announced: forget it quietly. */
        client_free(c);
        b->clients[id] = NULL;
        b->client_count--;
        broker_write_status(b);
        return;
    }
    b->ever_connected = true;
    broker_log(b, LOG_DEBUG, "peer %u (pid %d) joined", id, (int)c->pid);

    /* Tell the others. With vectors=0 there is nothing to send: the protocol can only
     * announce a peer through its eventfds. */
    for (unsigned int other = 0; other < SHM_MAX_PEERS; other++) {
        if (!b->clients[other] || other == id)
            continue;
        for (unsigned int v = 0; v < b->vectors; v++)
            client_send(b, other, id, c->efds[v]);
    }
    broker_reap(b);
}

/* The port I/O channel's memory, made on first use: groups that never ask pay nothing. */
static int broker_portio_create(struct broker *b)
{
    if (b->portio_fd >= 0)
        return 0;
    char mem_name[SHM_NAME_MAX + 16];
    snprintf(mem_name, sizeof(mem_name), "minivmm-portio:%s", b->name);
    int fd = memfd_create(mem_name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) {
        broker_log(b, LOG_WARNING, "memfd_create %s: %s", mem_name, strerror(errno));
        return -1;
    }
    if (ftruncate(fd, (off_t)PORTIO_CHANNEL_SIZE) < 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
        broker_log(b, LOG_WARNING, "ftruncate/F_ADD_SEALS memfd %s %llu: %s", mem_name,
                   (unsigned long long)PORTIO_CHANNEL_SIZE, strerror(errno));
        close(fd);
        return -1;
    }
    void *mem = mmap(NULL, PORTIO_CHANNEL_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (mem == MAP_FAILED) {
        broker_log(b, LOG_WARNING, "mmap memfd %s %llu: %s", mem_name,
                   (unsigned long long)PORTIO_CHANNEL_SIZE, strerror(errno));
        close(fd);
        return -1;
    }
    portio_channel_format(mem);
    b->portio_fd = fd;
    b->portio_mem = mem;
    return 0;
}

static void broker_client_request(struct broker *b, unsigned int id, int64_t value)
{
    struct broker_client *c = b->clients[id];
    if (value == IVPROTO_HELLO) {
        c->said_hello = true;
        return;
    }
    if (value != IVPROTO_PORTIO_REQUEST || c->has_portio) {
        broker_log(b, LOG_DEBUG, "peer %u sent %" PRId64 "; ignored", id, value);
        return;
    }
    if (broker_portio_create(b) < 0) {
        client_send(b, id, IVPROTO_PORTIO_ID, -1); /* no fd: "no channel here" */
        return;
    }
    /* Present before it holds the fd: its first access already finds itself in place. */
    portio_channel_set_present(b->portio_mem, id, (uint32_t)c->pid, true);
    c->has_portio = true;
    client_send(b, id, IVPROTO_PORTIO_ID, b->portio_fd);
}

/* A QEMU client never sends anything: data that is not a whole request is kept until it
 * is, EOF or an error means it left. */
static void broker_client_input(struct broker *b, unsigned int id, short revents)
{
    struct broker_client *c = b->clients[id];
    if (revents & POLLIN) {
        ssize_t n = recv(c->sock, c->request + c->request_len, sizeof(c->request) - c->request_len,
                         MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            c->dead = true;
            return;
        }
        c->request_len += (unsigned int)n;
        if (c->request_len == sizeof(c->request)) {
            uint64_t value = 0;
            for (unsigned int i = 0; i < sizeof(c->request); i++)
                value |= (uint64_t)c->request[i] << (8 * i);
            c->request_len = 0;
            broker_client_request(b, id, (int64_t)value);
        }
        return;
    }
    if (revents & (POLLHUP | POLLERR | POLLNVAL))
        c->dead = true;
}

/* Removes one of the group's files; one already gone is fine. */
static void broker_unlink(const struct broker *b, const char *path)
{
    if (path[0] && unlink(path) < 0 && errno != ENOENT)
        broker_log(b, LOG_WARNING, "unlink %s: %s", path, strerror(errno));
}

/* With no client left: under NAME.lock, and only if no joiner is waiting in the listen
 * backlog, remove the files. Returns 1 when done, 0 to keep serving. Stopped by a signal
 * (forced), the broker waits a little for the lock and removes the files whatever waits. */
static int broker_try_teardown(struct broker *b, bool forced)
{
    int lock = broker_lock_take(b->lock_path, forced ? BROKER_STOP_LOCK_TIMEOUT_MS : 0);
    if (lock == -EWOULDBLOCK)
        return 0; /* a joiner is between reading NAME.group and connecting */
    if (lock < 0)
        broker_log(b, LOG_WARNING, "lock %s: %s; removing the files anyway", b->lock_path,
                   strerror(-lock));
    struct pollfd pending = {.fd = b->listen_fd, .events = POLLIN};
    if (!forced && poll(&pending, 1, 0) > 0) {
        if (lock >= 0)
            close(lock);
        return 0;
    }
    broker_unlink(b, b->sock_path);
    broker_unlink(b, b->status_path);
    if (lock >= 0) {
        /* Waiters on this lock notice it is gone (broker_lock_take) and start over. */
        if (unlink(b->lock_path) < 0 && errno != ENOENT)
            broker_log(b, LOG_WARNING, "unlink %s: %s", b->lock_path, strerror(errno));
        close(lock);
    }
    return 1;
}

static void ready_report(int ready_fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void ready_report(int ready_fd, const char *fmt, ...)
{
    if (ready_fd < 0)
        return;
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    /* One short write into an empty pipe: it is written whole or the reader is gone. */
    if (n > 0 && write(ready_fd, text, (size_t)n < sizeof(text) ? (size_t)n : sizeof(text) - 1) < 0)
        log_debug("write to the ready pipe: %s", strerror(errno));
    close(ready_fd);
}

/* Allocates every hugetlb page of the memfd now. A hugetlb mapping that faults on a page
 * the pool cannot supply gets SIGBUS, in whichever VM touches it first; fallocate takes
 * the pages into the file instead, and fails cleanly when they are not there. */
static int memory_allocate(struct broker *b, const char *mem_name, char *why, size_t why_len)
{
    if (fallocate(b->mem_fd, 0, 0, (off_t)b->size) == 0)
        return 0;
    int err = errno;
    if (err == ENOSPC || err == ENOMEM) {
        /* Numbers for the refusal; if the pool looks big enough, another process won the
         * race for it, or a cgroup limit said no. */
        const char *root = b->opts->hugepages_sysfs ? b->opts->hugepages_sysfs : HUGEPAGES_SYSFS;
        if (hugepages_check(root, b->hugepage_size, b->size, why, why_len) == -ENOMEM)
            return -ENOMEM;
    }
    char page[32];
    format_size(b->hugepage_size, page, sizeof(page));
    return reason_fail(-err, why, why_len,
                       "fallocate memfd %s %" PRIu64 " bytes of %s hugepages: %s%s", mem_name,
                       b->size, page, strerror(err),
                       err == ENOSPC || err == ENOMEM
                           ? " (the pool looked big enough: another process took the pages, or "
                             "a hugetlb cgroup limit refused them)"
                           : "");
}

/* The group's memory: a memfd of size bytes, hugetlb-backed on request, sealed. */
static int memory_create(struct broker *b, char *why, size_t why_len)
{
    char mem_name[SHM_NAME_MAX + 16];
    snprintf(mem_name, sizeof(mem_name), "minivmm-shm:%s", b->name);
    if (b->hugepage_size) {
        /* Refuse with the numbers before creating anything. */
        const char *root = b->opts->hugepages_sysfs ? b->opts->hugepages_sysfs : HUGEPAGES_SYSFS;
        int ret = hugepages_check(root, b->hugepage_size, b->size, why, why_len);
        if (ret < 0)
            return ret;
    }
    unsigned int flags = MFD_CLOEXEC | MFD_ALLOW_SEALING | hugepage_memfd_flags(b->hugepage_size);
    b->mem_fd = memfd_create(mem_name, flags);
    if (b->mem_fd < 0) {
        int err = errno;
        const char *huge = b->hugepage_size == HUGEPAGE_1G   ? "|MFD_HUGETLB|MFD_HUGE_1GB"
                           : b->hugepage_size == HUGEPAGE_2M ? "|MFD_HUGETLB|MFD_HUGE_2MB"
                                                             : "";
        return reason_fail(-err, why, why_len,
                           "memfd_create %s MFD_CLOEXEC|MFD_ALLOW_SEALING%s: %s", mem_name, huge,
                           strerror(err));
    }
    if (ftruncate(b->mem_fd, (off_t)b->size) < 0) {
        int err = errno;
        return reason_fail(-err, why, why_len, "ftruncate memfd %s %" PRIu64 ": %s", mem_name,
                           b->size, strerror(err));
    }
    if (b->hugepage_size) {
        int ret = memory_allocate(b, mem_name, why, why_len);
        if (ret < 0)
            return ret;
    }
    /* Sealed before anyone sees it: no peer can shrink it under another's mapping.
     * hugetlbfs takes the same seals as shmem (since Linux 4.16). */
    if (fcntl(b->mem_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
        int err = errno;
        return reason_fail(-err, why, why_len, "fcntl memfd %s F_ADD_SEALS SHRINK|GROW|SEAL: %s",
                           mem_name, strerror(err));
    }
    return 0;
}

static int broker_setup(struct broker *b, const char *state_dir, char *why, size_t why_len)
{
    if (!shm_name_valid(b->name)) {
        reason_set(why, why_len, "invalid group name '%s'", b->name);
        return -EINVAL;
    }
    if (b->size < SHM_MIN_SIZE || b->size > SHM_MAX_SIZE || (b->size & (b->size - 1)) ||
        b->vectors > SHM_MAX_VECTORS) {
        reason_set(why, why_len, "invalid size %" PRIu64 " or vectors %u", b->size, b->vectors);
        return -EINVAL;
    }
    if (b->hugepage_size &&
        (!hugepage_size_valid(b->hugepage_size) || b->size < b->hugepage_size)) {
        reason_set(why, why_len, "invalid hugepage size %" PRIu64 " for %" PRIu64 " bytes",
                   b->hugepage_size, b->size);
        return -EINVAL;
    }
    if (broker_path(b->sock_path, sizeof(b->sock_path), state_dir, b->name, ".sock") ||
        broker_path(b->status_path, sizeof(b->status_path), state_dir, b->name, ".group") ||
        broker_path(b->status_tmp, sizeof(b->status_tmp), state_dir, b->name, ".group.tmp") ||
        broker_path(b->lock_path, sizeof(b->lock_path), state_dir, b->name, ".lock")) {
        reason_set(why, why_len, "state folder path too long: %s", state_dir);
        return -ENAMETOOLONG;
    }
    int flags = fcntl(b->listen_fd, F_GETFL);
    if (flags < 0 || fcntl(b->listen_fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        int err = errno;
        reason_set(why, why_len, "fcntl listen fd %d O_NONBLOCK: %s", b->listen_fd, strerror(err));
        return -err;
    }
    int ret = shm_raise_fd_limit(SHM_MAX_PEERS * (b->vectors + 1ul) + 64);
    if (ret < 0)
        broker_log(b, LOG_WARNING, "setrlimit RLIMIT_NOFILE: %s", strerror(-ret));

    ret = memory_create(b, why, why_len);
    if (ret < 0)
        return ret;
    ret = broker_write_status(b);
    if (ret < 0) {
        reason_set(why, why_len, "cannot write %s: %s", b->status_path, strerror(-ret));
        return ret;
    }
    return 0;
}

int broker_run_opts(int listen_fd, const char *state_dir, const char *name, uint64_t size,
                    unsigned int vectors, const struct broker_options *opts)
{
    static const struct broker_options defaults = {
        .first_client_timeout_ms = BROKER_FIRST_CLIENT_TIMEOUT_MS,
        .ready_fd = -1,
        .lock_fd = -1,
        .stop_fd = -1,
    };
    struct broker *b = calloc(1, sizeof(*b));
    if (!b) {
        close(listen_fd);
        if (opts) {
            ready_report(opts->ready_fd, "error %d out of memory\n", ENOMEM);
            if (opts->lock_fd >= 0)
                close(opts->lock_fd);
        }
        return -ENOMEM;
    }
    b->listen_fd = listen_fd;
    b->mem_fd = -1;
    b->portio_fd = -1;
    b->name = name;
    b->size = size;
    b->vectors = vectors;
    b->opts = opts ? opts : &defaults;
    b->hugepage_size = b->opts->hugepage_size;
    if (b->opts->use_syslog)
        openlog(BROKER_PROCESS_NAME, LOG_PID, LOG_USER);

    char why[400] = "";
    int ret = broker_setup(b, state_dir, why, sizeof(why));
    if (ret == 0 && b->opts->sandbox)
        ret = sandbox_enter(SANDBOX_BROKER, why, sizeof(why));
    if (ret < 0) {
        broker_log(b, LOG_ERR, "%s", why);
        ready_report(b->opts->ready_fd, "error %d %s\n", -ret, why);
        /* Nobody joined, and the group's lock is still held: take back the socket and a
         * status file already written, so that no stale group is left listed. */
        broker_unlink(b, b->sock_path);
        broker_unlink(b, b->status_path);
        if (b->opts->lock_fd >= 0)
            close(b->opts->lock_fd);
        goto out;
    }
    ready_report(b->opts->ready_fd, "ok %d\n", (int)getpid());
    /* The socket listens and NAME.group is written: joiners may come. */
    if (b->opts->lock_fd >= 0)
        close(b->opts->lock_fd);

    int64_t deadline = broker_now_ms() + b->opts->first_client_timeout_ms;
    for (;;) {
        struct pollfd pfds[2 + SHM_MAX_PEERS];
        unsigned int ids[2 + SHM_MAX_PEERS];
        nfds_t count = 1;
        pfds[0] = (struct pollfd){.fd = listen_fd, .events = POLLIN};
        for (unsigned int id = 0; id < SHM_MAX_PEERS; id++) {
            if (!b->clients[id])
                continue;
            pfds[count] = (struct pollfd){.fd = b->clients[id]->sock, .events = POLLIN};
            ids[count++] = id;
        }
        nfds_t clients_end = count;
        if (b->opts->stop_fd >= 0)
            pfds[count++] = (struct pollfd){.fd = b->opts->stop_fd, .events = POLLIN};

        int timeout = -1;
        if (b->client_count == 0 && !b->opts->persist) {
            bool idle_expired =
                b->opts->first_client_timeout_ms >= 0 && broker_now_ms() >= deadline;
            if (b->ever_connected || idle_expired) {
                if (broker_try_teardown(b, false))
                    break;
                timeout = BROKER_TEARDOWN_RETRY_MS;
            } else if (b->opts->first_client_timeout_ms >= 0) {
                int64_t left = deadline - broker_now_ms();
                timeout = left > 0 ? (int)left : 0; /* never -1: that would wait forever */
            }
        }
        int n = poll(pfds, count, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            ret = -errno;
            broker_log(b, LOG_ERR, "poll %u fds: %s", (unsigned int)count, strerror(-ret));
            broker_try_teardown(b, true);
            break;
        }
        if (clients_end < count && pfds[clients_end].revents) {
            broker_log(b, LOG_DEBUG, "asked to stop with %u peers", b->client_count);
            broker_try_teardown(b, true);
            break;
        }
        /* Departures first, so that a freed ID is free for a joiner in this same round. */
        for (nfds_t i = 1; i < clients_end; i++)
            if (pfds[i].revents)
                broker_client_input(b, ids[i], pfds[i].revents);
        broker_reap(b);
        if (pfds[0].revents & POLLIN)
            broker_accept(b);
    }

out:
    for (unsigned int id = 0; id < SHM_MAX_PEERS; id++)
        if (b->clients[id])
            client_free(b->clients[id]);
    if (b->mem_fd >= 0)
        close(b->mem_fd);
    if (b->portio_fd >= 0) {
        munmap(b->portio_mem, PORTIO_CHANNEL_SIZE);
        close(b->portio_fd);
    }
    close(listen_fd);
    if (b->opts->use_syslog)
        closelog();
    free(b);
    return ret;
}

int broker_run(int listen_fd, const char *state_dir, const char *name, uint64_t size,
               unsigned int vectors)
{
    return broker_run_opts(listen_fd, state_dir, name, size, vectors, NULL);
}

int broker_listen(const char *path, char *why, size_t why_len)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    if (len >= sizeof(addr.sun_path)) {
        reason_set(
            why, why_len,
            "socket path %s is %zu bytes, more than the %zu that fit in sockaddr_un.sun_path: "
            "set XDG_RUNTIME_DIR to a shorter folder",
            path, len, sizeof(addr.sun_path) - 1);
        return -ENAMETOOLONG;
    }
    memcpy(addr.sun_path, path, len + 1);
    int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sock < 0) {
        int err = errno;
        reason_set(why, why_len, "socket AF_UNIX SOCK_STREAM: %s", strerror(err));
        return -err;
    }
    mode_t old_umask = umask(0177); /* the socket is born 0600: no window for others */
    int ret = bind(sock, (struct sockaddr *)&addr, sizeof(addr));
    int err = errno;
    umask(old_umask);
    if (ret < 0) {
        reason_set(why, why_len, "bind %s: %s", path, strerror(err));
        close(sock);
        return -err;
    }
    if (listen(sock, SOMAXCONN) < 0) {
        err = errno;
        reason_set(why, why_len, "listen %s: %s", path, strerror(err));
        unlink(path);
        close(sock);
        return -err;
    }
    return sock;
}
