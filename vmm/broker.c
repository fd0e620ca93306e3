#include "vmm/broker.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "devices/portio_channel.h"
#include "vmm/ivshmem_protocol.h"
#include "vmm/reason.h"
#include "vmm/sandbox.h"

/* How long a send to one client may block before that client is dropped: a client that
 * stops reading must not stall the group. */
#define BROKER_SEND_TIMEOUT_MS 2000
/* How long a spawner waits for its broker to be ready, and a joiner for NAME.lock. */
#define BROKER_READY_TIMEOUT_MS 5000
#define BROKER_LOCK_TIMEOUT_MS  10000
/* While tearing down, how often the broker retries NAME.lock when a joiner holds it. */
#define BROKER_TEARDOWN_RETRY_MS 50
/* A status file is a few KiB at most: 64 peer lines and a header. */
#define BROKER_STATUS_MAX 16384

#define SOCK_PATH_MAX sizeof(((struct sockaddr_un *)0)->sun_path)

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool shm_name_valid(const char *name)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len > SHM_NAME_MAX || name[0] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

int broker_path(char *path, size_t path_len, const char *dir, const char *name, const char *suffix)
{
    int n = snprintf(path, path_len, "%s/%s%s", dir, name, suffix);
    if (n < 0 || (size_t)n >= path_len)
        return -ENAMETOOLONG;
    return 0;
}

int broker_runtime_dir(char *dir, size_t dir_len, char *why, size_t why_len)
{
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    int n;
    /* The XDG spec says to ignore a relative value (and the broker runs in "/"). */
    if (xdg && xdg[0] == '/')
        n = snprintf(dir, dir_len, "%s/minivmm", xdg);
    else
        n = snprintf(dir, dir_len, "/tmp/minivmm-%u", (unsigned int)geteuid());
    if (n < 0 || (size_t)n >= dir_len) {
        reason_set(why, why_len,
                   "runtime folder path is longer than %zu bytes (XDG_RUNTIME_DIR=%s)", dir_len - 1,
                   xdg ? xdg : "");
        return -ENAMETOOLONG;
    }

    bool created = mkdir(dir, 0700) == 0;
    if (!created && errno != EEXIST) {
        int err = errno;
        reason_set(why, why_len, "mkdir %s 0700: %s", dir, strerror(err));
        return -err;
    }
    struct stat st;
    if (lstat(dir, &st) < 0) {
        int err = errno;
        reason_set(why, why_len, "lstat %s: %s", dir, strerror(err));
        return -err;
    }
    if (!S_ISDIR(st.st_mode)) {
        bool link = S_ISLNK(st.st_mode);
        reason_set(why, why_len,
                   "runtime folder %s is %s: it must be a folder owned by you with mode 0700 "
                   "(remove it and try again)",
                   dir, link ? "a symlink" : "not a folder");
        return link ? -ELOOP : -ENOTDIR;
    }
    /* O_NOFOLLOW: the checks below are about this very folder, not a link swapped in. */
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        reason_set(why, why_len, "open %s O_DIRECTORY|O_NOFOLLOW: %s", dir, strerror(err));
        return -err;
    }
    int ret = 0;
    /* The umask may have taken bits off a folder created just now. */
    if (created && fchmod(fd, 0700) < 0) {
        ret = -errno;
        reason_set(why, why_len, "fchmod %s 0700: %s", dir, strerror(-ret));
        goto out;
    }
    if (fstat(fd, &st) < 0) {
        ret = -errno;
        reason_set(why, why_len, "fstat %s: %s", dir, strerror(-ret));
        goto out;
    }
    if (st.st_uid != geteuid()) {
        ret = -EPERM;
        reason_set(
            why, why_len,
            "runtime folder %s is owned by uid %u, not by you (uid %u): it must be yours with "
            "mode 0700",
            dir, (unsigned int)st.st_uid, (unsigned int)geteuid());
        goto out;
    }
    if ((st.st_mode & 07777) != 0700) {
        ret = -EPERM;
        reason_set(why, why_len,
                   "runtime folder %s has mode %04o: it must be 0700 so other users cannot reach "
                   "your shared memory (chmod 700 %s)",
                   dir, (unsigned int)(st.st_mode & 07777), dir);
        goto out;
    }
out:
    close(fd);
    return ret;
}

int shm_raise_fd_limit(unsigned long need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -errno;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            return -errno;
    }
    return 0;
}

/* ---- NAME.lock ---------------------------------------------------------------------- */

/* Opens and flock()s path, retrying until timeout_ms (0: one try, -EWOULDBLOCK if busy).
 * The broker unlinks the lock file while holding it, so after locking, the fd must still
 * be the file at path; a waiter that locked a removed file starts over. Returns the fd. */
static int lock_take(const char *path, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
            return -errno;
        while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
            int err = errno;
            if (err == EINTR)
                continue;
            if (err != EWOULDBLOCK || now_ms() >= deadline) {
                close(fd);
                return timeout_ms > 0 && err == EWOULDBLOCK ? -ETIMEDOUT : -err;
            }
            usleep(5000);
        }
        struct stat held, named;
        if (fstat(fd, &held) < 0) {
            int err = errno;
            close(fd);
            return -err;
        }
        if (stat(path, &named) == 0 && named.st_dev == held.st_dev && named.st_ino == held.st_ino)
            return fd;
        close(fd); /* removed or replaced while we waited: lock the current file */
    }
}

/* ---- NAME.group --------------------------------------------------------------------- */

int broker_status_read(const char *path, struct broker_status *status)
{
    memset(status, 0, sizeof(*status));
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    char *text = malloc(BROKER_STATUS_MAX + 1);
    if (!text) {
        close(fd);
        return -ENOMEM;
    }
    size_t len = 0;
    while (len < BROKER_STATUS_MAX) {
        ssize_t n = read(fd, text + len, BROKER_STATUS_MAX - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int err = errno;
            free(text);
            close(fd);
            return -err;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    text[len] = '\0';

    bool have_name = false, have_size = false, have_vectors = false, have_pid = false;
    int ret = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        unsigned long long v;
        unsigned int id, uid;
        int pid, end = 0;
        if (line[0] == '#')
            continue;
        if (sscanf(line, "peer=%u pid=%d uid=%u%n", &id, &pid, &uid, &end) == 3 && !line[end]) {
            if (id >= SHM_MAX_PEERS || status->peer_count >= SHM_MAX_PEERS) {
                ret = -EBADMSG;
                break;
            }
            struct broker_peer_info *p = &status->peers[status->peer_count++];
            p->id = id;
            p->pid = pid;
            p->uid = uid;
        } else if (strncmp(line, "name=", 5) == 0) {
            if (!shm_name_valid(line + 5)) {
                ret = -EBADMSG;
                break;
            }
            strcpy(status->name, line + 5);
            have_name = true;
        } else if (sscanf(line, "size=%llu%n", &v, &end) == 1 && !line[end]) {
            status->size = v;
            have_size = true;
        } else if (sscanf(line, "vectors=%llu%n", &v, &end) == 1 && !line[end] &&
                   v <= SHM_MAX_VECTORS) {
            status->vectors = (unsigned int)v;
            have_vectors = true;
        } else if (sscanf(line, "broker_pid=%d%n", &pid, &end) == 1 && !line[end]) {
            status->broker_pid = pid;
            have_pid = true;
        } else if (sscanf(line, "broker_uid=%u%n", &uid, &end) == 1 && !line[end]) {
            status->broker_uid = uid;
        } else if (sscanf(line, "refused=%u%n", &id, &end) == 1 && !line[end]) {
            status->refused = id;
        }
        /* Unknown lines are skipped: a newer broker may say more. */
    }
    free(text);
    if (ret == 0 && !(have_name && have_size && have_vectors && have_pid))
        ret = -EBADMSG;
    return ret;
}

bool broker_alive(pid_t pid)
{
    if (pid <= 0)
        return false;
    char path[64], text[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return false;
        /* No /proc: existence is the best we can tell. */
        return kill(pid, 0) == 0 || errno == EPERM;
    }
    ssize_t n = read(fd, text, sizeof(text) - 1);
    close(fd);
    if (n <= 0)
        return false;
    text[n] = '\0';
    /* "PID (COMM) STATE ...": COMM may hold spaces and parentheses, so take the last ')'. */
    char *open_paren = strchr(text, '(');
    char *close_paren = strrchr(text, ')');
    if (!open_paren || !close_paren || close_paren < open_paren || close_paren[1] != ' ')
        return false;
    *close_paren = '\0';
    char state = close_paren[2];
    return state != 'Z' && state != 'X' && strcmp(open_paren + 1, BROKER_PROCESS_NAME) == 0;
}

/* ---- the broker loop ---------------------------------------------------------------- */

struct broker_client {
    int sock;
    pid_t pid;
    uid_t uid;
    bool dead;          /* a send failed or it hung up: dropped by broker_reap() */
    bool has_portio;    /* marked present in the port I/O channel */
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
    const struct broker_options *opts;
    struct broker_client *clients[SHM_MAX_PEERS]; /* indexed by peer ID */
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

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static int broker_write_status(struct broker *b)
{
    char text[BROKER_STATUS_MAX];
    size_t len = 0;
    /* Bounded by 64 short peer lines, but never trusted to be: a cut file is malformed,
     * an overflow would be worse. */
#define STATUS_ADD(...)                                                                            \
    do {                                                                                           \
        if (len < sizeof(text))                                                                    \
            len += (size_t)snprintf(text + len, sizeof(text) - len, __VA_ARGS__);                  \
        if (len >= sizeof(text))                                                                   \
            len = sizeof(text) - 1;                                                                \
    } while (0)
    STATUS_ADD("# minivmm shared-memory group, rewritten by its broker on every change\n");
    STATUS_ADD("name=%s\nsize=%" PRIu64 "\nvectors=%u\nbroker_pid=%d\nbroker_uid=%u\nrefused=%u\n",
               b->name, b->size, b->vectors, (int)getpid(), (unsigned int)geteuid(), b->refused);
    for (unsigned int id = 0; id < SHM_MAX_PEERS; id++) {
        const struct broker_client *c = b->clients[id];
        if (c)
            STATUS_ADD("peer=%u pid=%d uid=%u\n", id, (int)c->pid, (unsigned int)c->uid);
    }
#undef STATUS_ADD

    int fd = open(b->status_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        int err = errno;
        broker_log(b, LOG_ERR, "open %s: %s", b->status_tmp, strerror(err));
        return -err;
    }
    int ret = write_all(fd, text, len);
    if (ret < 0)
        broker_log(b, LOG_ERR, "write %s: %s", b->status_tmp, strerror(-ret));
    if (close(fd) < 0 && ret == 0) {
        ret = -errno;
        broker_log(b, LOG_ERR, "close %s: %s", b->status_tmp, strerror(-ret));
    }
    if (ret == 0 && rename(b->status_tmp, b->status_path) < 0) {
        ret = -errno;
        broker_log(b, LOG_ERR, "rename %s %s: %s", b->status_tmp, b->status_path, strerror(-ret));
    }
    if (ret < 0)
        unlink(b->status_tmp);
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
            broker_write_status(b); /* current before anyone hears of the change */
            for (unsigned int other = 0; other < SHM_MAX_PEERS; other++)
                if (b->clients[other])
                    client_send(b, other, id, -1);
            again = true;
        }
    }
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
    unsigned int id = 0;
    while (id < SHM_MAX_PEERS && b->clients[id])
        id++;
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

/* With no client left: under NAME.lock, and only if no joiner is waiting in the listen
 * backlog, remove the files. Returns 1 when done, 0 to keep serving. */
static int broker_try_teardown(struct broker *b)
{
    int lock = lock_take(b->lock_path, 0);
    if (lock == -EWOULDBLOCK)
        return 0; /* a joiner is between reading NAME.group and connecting */
    if (lock < 0)
        broker_log(b, LOG_WARNING, "lock %s: %s; removing the files anyway", b->lock_path,
                   strerror(-lock));
    struct pollfd pending = {.fd = b->listen_fd, .events = POLLIN};
    if (poll(&pending, 1, 0) > 0) {
        if (lock >= 0)
            close(lock);
        return 0;
    }
    if (unlink(b->sock_path) < 0 && errno != ENOENT)
        broker_log(b, LOG_WARNING, "unlink %s: %s", b->sock_path, strerror(errno));
    if (unlink(b->status_path) < 0 && errno != ENOENT)
        broker_log(b, LOG_WARNING, "unlink %s: %s", b->status_path, strerror(errno));
    if (lock >= 0) {
        /* Waiters on this lock notice it is gone (lock_take) and start over. */
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
    if (n > 0)
        write_all(ready_fd, text, (size_t)n < sizeof(text) ? (size_t)n : sizeof(text) - 1);
    close(ready_fd);
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

    char mem_name[SHM_NAME_MAX + 16];
    snprintf(mem_name, sizeof(mem_name), "minivmm-shm:%s", b->name);
    b->mem_fd = memfd_create(mem_name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (b->mem_fd < 0) {
        int err = errno;
        reason_set(why, why_len, "memfd_create %s MFD_CLOEXEC|MFD_ALLOW_SEALING: %s", mem_name,
                   strerror(err));
        return -err;
    }
    if (ftruncate(b->mem_fd, (off_t)b->size) < 0) {
        int err = errno;
        reason_set(why, why_len, "ftruncate memfd %s %" PRIu64 ": %s", mem_name, b->size,
                   strerror(err));
        return -err;
    }
    /* Sealed before anyone sees it: no peer can shrink it under another's mapping. */
    if (fcntl(b->mem_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
        int err = errno;
        reason_set(why, why_len, "fcntl memfd %s F_ADD_SEALS SHRINK|GROW|SEAL: %s", mem_name,
                   strerror(err));
        return -err;
    }
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
    };
    struct broker *b = calloc(1, sizeof(*b));
    if (!b) {
        close(listen_fd);
        if (opts)
            ready_report(opts->ready_fd, "error %d out of memory\n", ENOMEM);
        return -ENOMEM;
    }
    b->listen_fd = listen_fd;
    b->mem_fd = -1;
    b->portio_fd = -1;
    b->name = name;
    b->size = size;
    b->vectors = vectors;
    b->opts = opts ? opts : &defaults;
    if (b->opts->use_syslog)
        openlog(BROKER_PROCESS_NAME, LOG_PID, LOG_USER);

    char why[400] = "";
    int ret = broker_setup(b, state_dir, why, sizeof(why));
    if (ret == 0 && b->opts->sandbox)
        ret = sandbox_enter(SANDBOX_BROKER, why, sizeof(why));
    if (ret < 0) {
        broker_log(b, LOG_ERR, "%s", why);
        ready_report(b->opts->ready_fd, "error %d %s\n", -ret, why);
        goto out;
    }
    ready_report(b->opts->ready_fd, "ok %d\n", (int)getpid());

    int64_t deadline = now_ms() + b->opts->first_client_timeout_ms;
    for (;;) {
        struct pollfd pfds[1 + SHM_MAX_PEERS];
        unsigned int ids[1 + SHM_MAX_PEERS];
        nfds_t count = 1;
        pfds[0] = (struct pollfd){.fd = listen_fd, .events = POLLIN};
        for (unsigned int id = 0; id < SHM_MAX_PEERS; id++) {
            if (!b->clients[id])
                continue;
            pfds[count] = (struct pollfd){.fd = b->clients[id]->sock, .events = POLLIN};
            ids[count++] = id;
        }

        int timeout = -1;
        if (b->client_count == 0) {
            bool idle_expired = b->opts->first_client_timeout_ms >= 0 && now_ms() >= deadline;
            if (b->ever_connected || idle_expired) {
                if (broker_try_teardown(b))
                    break;
                timeout = BROKER_TEARDOWN_RETRY_MS;
            } else if (b->opts->first_client_timeout_ms >= 0) {
                int64_t left = deadline - now_ms();
                timeout = left > 0 ? (int)left : 0; /* never -1: that would wait forever */
            }
        }
        int n = poll(pfds, count, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            ret = -errno;
            broker_log(b, LOG_ERR, "poll %u fds: %s", (unsigned int)count, strerror(errno));
            break;
        }
        /* Departures first, so that a freed ID is free for a joiner in this same round. */
        for (nfds_t i = 1; i < count; i++)
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

/* ---- starting a broker, and finding one ---------------------------------------------- */

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

/* In the grandchild: closes every fd but keep[0..1] (sorted, >= 3). */
static void close_fds_except(const int keep[2])
{
    unsigned int low = 0;
    for (int i = 0; i < 2; i++) {
        if ((unsigned int)keep[i] > low && close_range(low, (unsigned int)keep[i] - 1, 0) < 0)
            goto fallback;
        low = (unsigned int)keep[i] + 1;
    }
    if (close_range(low, ~0u, 0) == 0)
        return;
fallback:;
    struct rlimit rl;
    long max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                   ? (long)rl.rlim_cur
                   : 65536;
    for (long fd = 0; fd < max; fd++)
        if (fd != keep[0] && fd != keep[1])
            close((int)fd);
}

struct spawn_args {
    const char *dir;
    const char *name;
    uint64_t size;
    unsigned int vectors;
    bool sandbox;
};

static void broker_daemon(int listen_fd, int ready_fd, const struct spawn_args *args)
    __attribute__((noreturn));

static void broker_daemon(int listen_fd, int ready_fd, const struct spawn_args *args)
{
    /* Out of stdio's way first, then nothing inherited stays open but these two (the
     * lock, /dev/kvm, the terminal...). */
    if (listen_fd < 3)
        listen_fd = fcntl(listen_fd, F_DUPFD_CLOEXEC, 3);
    if (ready_fd < 3)
        ready_fd = fcntl(ready_fd, F_DUPFD_CLOEXEC, 3);
    if (listen_fd < 0 || ready_fd < 0)
        _exit(1);
    int keep[2] = {listen_fd < ready_fd ? listen_fd : ready_fd,
                   listen_fd < ready_fd ? ready_fd : listen_fd};
    close_fds_except(keep);
    int null_fd = open("/dev/null", O_RDWR); /* fd 0: all lower ones are closed */
    if (null_fd < 0 || dup2(null_fd, 1) < 0 || dup2(null_fd, 2) < 0) {
        ready_report(ready_fd, "error %d open /dev/null O_RDWR: %s\n", errno, strerror(errno));
        _exit(1);
    }
    if (null_fd > 2)
        close(null_fd);
    /* Joiners and --shm-list recognise a live broker by this name (broker_alive()). */
    if (prctl(PR_SET_NAME, BROKER_PROCESS_NAME, 0, 0, 0) < 0) {
        ready_report(ready_fd, "error %d prctl PR_SET_NAME %s: %s\n", errno, BROKER_PROCESS_NAME,
                     strerror(errno));
        _exit(1);
    }

    /* Handlers and masks set by minivmm mean nothing here. */
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            signal(sig, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    if (chdir("/") < 0) {
        /* Harmless: only keeps a mount busy. */
    }

    struct broker_options opts = {
        .first_client_timeout_ms = BROKER_FIRST_CLIENT_TIMEOUT_MS,
        .ready_fd = ready_fd,
        .use_syslog = true,
        .sandbox = args->sandbox,
    };
    int ret = broker_run_opts(listen_fd, args->dir, args->name, args->size, args->vectors, &opts);
    _exit(ret == 0 ? 0 : 1);
}

/* Reads the broker's one-line report, waiting at most timeout_ms. */
static int ready_read(int fd, char *text, size_t len, int timeout_ms)
{
    size_t got = 0;
    int64_t deadline = now_ms() + timeout_ms;
    while (got + 1 < len) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -ETIMEDOUT;
        ssize_t r = read(fd, text + got, len - 1 - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            break;
        got += (size_t)r;
        if (memchr(text, '\n', got))
            break;
    }
    text[got] = '\0';
    return 0;
}

int broker_spawn(const char *dir, const char *name, uint64_t size, unsigned int vectors,
                 bool sandbox, pid_t *broker_pid, char *why, size_t why_len)
{
    char sock_path[PATH_MAX];
    if (broker_path(sock_path, sizeof(sock_path), dir, name, ".sock")) {
        reason_set(why, why_len, "socket path for group '%s' in %s is too long", name, dir);
        return -ENAMETOOLONG;
    }
    int listen_fd = broker_listen(sock_path, why, why_len);
    if (listen_fd < 0)
        return listen_fd;
    int ready[2];
    if (pipe2(ready, O_CLOEXEC) < 0) {
        int err = errno;
        reason_set(why, why_len, "pipe2 O_CLOEXEC: %s", strerror(err));
        unlink(sock_path);
        close(listen_fd);
        return -err;
    }
    struct spawn_args args = {
        .dir = dir, .name = name, .size = size, .vectors = vectors, .sandbox = sandbox};
    pid_t child = fork();
    if (child < 0) {
        int err = errno;
        reason_set(why, why_len, "fork (broker for group '%s'): %s", name, strerror(err));
        unlink(sock_path);
        close(listen_fd);
        close(ready[0]);
        close(ready[1]);
        return -err;
    }
    if (child == 0) {
        close(ready[0]);
        /* A session of its own: no terminal, no signals meant for minivmm's group. */
        if (setsid() < 0) {
            ready_report(ready[1], "error %d setsid: %s\n", errno, strerror(errno));
            _exit(1);
        }
        pid_t grandchild = fork();
        if (grandchild < 0) {
            ready_report(ready[1], "error %d fork: %s\n", errno, strerror(errno));
            _exit(1);
        }
        if (grandchild > 0)
            _exit(0); /* orphan the broker: it is nobody's child to wait for */
        broker_daemon(listen_fd, ready[1], &args);
    }

    close(listen_fd);
    close(ready[1]);
    int status;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR)
        ;
    char text[512];
    int ret = ready_read(ready[0], text, sizeof(text), BROKER_READY_TIMEOUT_MS);
    close(ready[0]);
    int pid = 0, err = 0, end = 0;
    if (ret == -ETIMEDOUT) {
        reason_set(why, why_len, "the broker for group '%s' was not ready within %d ms", name,
                   BROKER_READY_TIMEOUT_MS);
        return ret;
    }
    if (ret < 0) {
        reason_set(why, why_len, "reading the broker's ready pipe: %s", strerror(-ret));
        return ret;
    }
    if (sscanf(text, "ok %d", &pid) == 1 && pid > 0) {
        *broker_pid = pid;
        return 0;
    }
    text[strcspn(text, "\n")] = '\0';
    if (sscanf(text, "error %d %n", &err, &end) == 1 && err > 0 && end > 0) {
        reason_set(why, why_len, "the broker for group '%s' could not start: %s", name, text + end);
        return -err;
    }
    reason_set(why, why_len, "the broker for group '%s' exited before it was ready", name);
    return -EIO;
}

static int connect_unix(const char *path)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(addr.sun_path))
        return -ENAMETOOLONG;
    strcpy(addr.sun_path, path);
    for (;;) {
        int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (sock < 0)
            return -errno;
        if (connect(sock, (struct sockaddr *)&addr, sizeof(addr)) == 0)
            return sock;
        int err = errno;
        close(sock);
        if (err != EINTR)
            return -err;
    }
}

void shm_format_size(uint64_t size, char *text, size_t len)
{
    static const char units[] = "KMGT";
    int unit = -1;
    while (unit < 3 && size && !(size & 1023)) {
        size >>= 10;
        unit++;
    }
    if (unit < 0)
        snprintf(text, len, "%" PRIu64, size);
    else
        snprintf(text, len, "%" PRIu64 "%c", size, units[unit]);
}

static void full_reason(char *why, size_t why_len, const struct broker_status *status)
{
    reason_set(why, why_len,
               "shared-memory group '%s' is full: it has %u peers, the most a group can have "
               "(broker pid %d); wait for one to leave or use another name",
               status->name, status->peer_count, (int)status->broker_pid);
}

int broker_check_room(const char *dir, const char *name, char *why, size_t why_len)
{
    char status_path[PATH_MAX];
    if (broker_path(status_path, sizeof(status_path), dir, name, ".group"))
        return 0;
    struct broker_status *status = malloc(sizeof(*status));
    if (!status)
        return 0;
    int ret = 0;
    if (broker_status_read(status_path, status) == 0 && status->peer_count >= SHM_MAX_PEERS &&
        broker_alive(status->broker_pid)) {
        full_reason(why, why_len, status);
        ret = -EUSERS;
    }
    free(status);
    return ret;
}

int broker_connect(const char *dir, const char *name, uint64_t size, unsigned int vectors,
                   bool sandbox, bool *spawned, pid_t *broker_pid, char *why, size_t why_len)
{
    char sock_path[PATH_MAX], lock_path[PATH_MAX], status_path[PATH_MAX];
    *spawned = false;
    *broker_pid = 0;
    if (!shm_name_valid(name)) {
        reason_set(why, why_len, "invalid shared-memory group name '%s'", name ? name : "");
        return -EINVAL;
    }
    if (broker_path(sock_path, SOCK_PATH_MAX, dir, name, ".sock")) {
        reason_set(why, why_len,
                   "socket path %s/%s.sock is longer than the %zu bytes that fit in "
                   "sockaddr_un.sun_path: set XDG_RUNTIME_DIR to a shorter folder",
                   dir, name, SOCK_PATH_MAX - 1);
        return -ENAMETOOLONG;
    }
    if (broker_path(lock_path, sizeof(lock_path), dir, name, ".lock") ||
        broker_path(status_path, sizeof(status_path), dir, name, ".group")) {
        reason_set(why, why_len, "runtime folder path too long: %s", dir);
        return -ENAMETOOLONG;
    }

    int lock = lock_take(lock_path, BROKER_LOCK_TIMEOUT_MS);
    if (lock < 0) {
        if (lock == -ETIMEDOUT)
            reason_set(why, why_len, "flock %s: still held by another process after %d ms",
                       lock_path, BROKER_LOCK_TIMEOUT_MS);
        else
            reason_set(why, why_len, "open+flock %s: %s", lock_path, strerror(-lock));
        return lock;
    }

    int ret;
    struct broker_status *status = malloc(sizeof(*status));
    if (!status) {
        reason_set(why, why_len, "out of memory");
        ret = -ENOMEM;
        goto out;
    }
    bool live = broker_status_read(status_path, status) == 0 && broker_alive(status->broker_pid);
    if (live && (status->size != size || status->vectors != vectors)) {
        char have[32], want[32];
        shm_format_size(status->size, have, sizeof(have));
        shm_format_size(size, want, sizeof(want));
        reason_set(why, why_len,
                   "shared-memory group '%s' already exists with size=%s vectors=%u (broker pid "
                   "%d, %u peers), but size=%s vectors=%u was asked for: use the same values or "
                   "another name",
                   name, have, status->vectors, (int)status->broker_pid, status->peer_count, want,
                   vectors);
        ret = -EEXIST;
        goto out;
    }
    if (live && status->peer_count >= SHM_MAX_PEERS) {
        full_reason(why, why_len, status);
        ret = -EUSERS;
        goto out;
    }
    ret = connect_unix(sock_path);
    if (ret >= 0) {
        *broker_pid = live ? status->broker_pid : 0;
        goto out;
    }
    if (ret != -ECONNREFUSED && ret != -ENOENT) {
        reason_set(why, why_len, "connect %s: %s", sock_path, strerror(-ret));
        goto out;
    }

    /* Nobody listens: whatever is left belongs to a dead broker. */
    if (unlink(sock_path) < 0 && errno != ENOENT) {
        ret = -errno;
        reason_set(why, why_len, "unlink stale socket %s: %s", sock_path, strerror(errno));
        goto out;
    }
    if (unlink(status_path) < 0 && errno != ENOENT) {
        ret = -errno;
        reason_set(why, why_len, "unlink stale status %s: %s", status_path, strerror(errno));
        goto out;
    }
    pid_t pid;
    ret = broker_spawn(dir, name, size, vectors, sandbox, &pid, why, why_len);
    if (ret < 0)
        goto out;
    ret = connect_unix(sock_path);
    if (ret < 0) {
        reason_set(why, why_len, "connect %s (broker pid %d just started): %s", sock_path, (int)pid,
                   strerror(-ret));
        goto out;
    }
    *spawned = true;
    *broker_pid = pid;
out:
    free(status);
    close(lock);
    return ret;
}
