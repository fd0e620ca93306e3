#include "vmm/shm_group.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "devices/portio_channel.h"
#include "vmm/broker/connect.h"
#include "vmm/broker/runtime.h"
#include "vmm/hugepages.h"
#include "vmm/ivshmem_protocol.h"
#include "vmm/reason.h"
#include "vmm/size.h"

/* ---- joining -------------------------------------------------------------------------- */

static void peer_close(struct shm_group_peer *p)
{
    for (unsigned int v = 0; v < p->nfds; v++)
        if (p->fds[v] >= 0)
            close(p->fds[v]);
    p->nfds = 0;
    p->present = false;
    for (unsigned int v = 0; v < SHM_MAX_VECTORS; v++)
        p->fds[v] = -1;
}

/* Sets g to "holds nothing": every fd -1, no mapping. */
static void group_reset(struct shm_group *g)
{
    memset(g, 0, sizeof(*g));
    g->mem_fd = -1;
    g->portio_fd = -1;
    g->sock = -1;
    g->stop_fd = -1;
    for (unsigned int v = 0; v < SHM_MAX_VECTORS; v++)
        g->own_fds[v] = -1;
    for (unsigned int id = 0; id < SHM_MAX_PEERS; id++)
        peer_close(&g->peers[id]);
}

/* Releases everything g holds (the thread already stopped). */
static void group_release(struct shm_group *g)
{
    if (g->sock >= 0)
        close(g->sock);
    if (g->mem && g->mem != MAP_FAILED)
        munmap(g->mem, g->mem_size);
    if (g->mem_fd >= 0)
        close(g->mem_fd);
    if (g->portio_mem)
        munmap(g->portio_mem, PORTIO_CHANNEL_SIZE);
    if (g->portio_fd >= 0)
        close(g->portio_fd);
    for (unsigned int v = 0; v < SHM_MAX_VECTORS; v++)
        if (g->own_fds[v] >= 0)
            close(g->own_fds[v]);
    for (unsigned int id = 0; id < SHM_MAX_PEERS; id++)
        peer_close(&g->peers[id]);
    if (g->stop_fd >= 0)
        close(g->stop_fd);
    group_reset(g);
}

/* One message of the initial burst, with a sentence in why when it fails. */
static int burst_recv(struct shm_group *g, const char *expected, int64_t *value, int *fd, char *why,
                      size_t why_len)
{
    int ret = ivproto_recv(g->sock, value, fd);
    if (ret == 0)
        return 0;
    char broker[48] = "the broker";
    if (g->broker_pid > 0)
        snprintf(broker, sizeof(broker), "the broker (pid %d)", (int)g->broker_pid);
    if (ret == -EPIPE)
        reason_set(why, why_len, "%s of group '%s' closed the connection before sending %s", broker,
                   g->spec.name, expected);
    else if (ret == -EAGAIN || ret == -EWOULDBLOCK)
        reason_set(why, why_len, "%s of group '%s' sent no %s within %d ms", broker, g->spec.name,
                   expected, SHM_JOIN_TIMEOUT_MS);
    else if (ret == -EPROTO)
        reason_set(why, why_len, "%s of group '%s' sent a malformed message instead of %s", broker,
                   g->spec.name, expected);
    else
        reason_set(why, why_len, "recvmsg from the broker of group '%s' (%s): %s", g->spec.name,
                   expected, strerror(-ret));
    return ret;
}

/* Another peer's eventfd (fd >= 0) or departure (fd < 0), during the initial burst. */
static int burst_peer_message(struct shm_group *g, unsigned int id, int fd, char *why,
                              size_t why_len)
{
    struct shm_group_peer *p = &g->peers[id];
    if (fd < 0) {
        peer_close(p); /* left while we were being told about it */
        return 0;
    }
    if (p->nfds == g->vectors) {
        close(fd);
        reason_set(why, why_len,
                   "the broker of group '%s' sent more than %u eventfds for peer "
                   "%u: is the group's vectors setting %u?",
                   g->spec.name, g->vectors, id, g->vectors);
        return -EPROTO;
    }
    p->fds[p->nfds++] = fd;
    p->present = true;
    return 0;
}

static int burst_peers_complete(struct shm_group *g, char *why, size_t why_len)
{
    for (unsigned int id = 0; id < SHM_MAX_PEERS; id++) {
        if (g->peers[id].present && g->peers[id].nfds != g->vectors) {
            reason_set(why, why_len, "the broker of group '%s' sent %u of peer %u's %u eventfds",
                       g->spec.name, g->peers[id].nfds, id, g->vectors);
            return -EPROTO;
        }
    }
    return 0;
}

static int burst_read(struct shm_group *g, char *why, size_t why_len)
{
    int64_t value;
    int fd, ret;

    ret = burst_recv(g, "the protocol version", &value, &fd, why, why_len);
    if (ret < 0)
        return ret;
    if (value != IVPROTO_VERSION || fd >= 0) {
        if (fd >= 0)
            close(fd);
        reason_set(why, why_len,
                   "the broker of group '%s' speaks protocol version %" PRId64 ", not %d",
                   g->spec.name, value, IVPROTO_VERSION);
        return -EPROTO;
    }
    ret = burst_recv(g, "our peer ID", &value, &fd, why, why_len);
    if (ret < 0)
        return ret;
    if (value < 0 || value >= SHM_MAX_PEERS || fd >= 0) {
        if (fd >= 0)
            close(fd);
        reason_set(why, why_len,
                   "the broker of group '%s' gave peer ID %" PRId64
                   ", expected 0 to %d without an fd",
                   g->spec.name, value, SHM_MAX_PEERS - 1);
        return -EPROTO;
    }
    g->id = (unsigned int)value;
    ret = burst_recv(g, "the shared memory", &value, &fd, why, why_len);
    if (ret < 0)
        return ret;
    if (value != IVPROTO_SHM_ID || fd < 0) {
        if (fd >= 0)
            close(fd);
        reason_set(why, why_len,
                   "the broker of group '%s' sent %" PRId64 " %s instead of -1 with "
                   "the memory fd",
                   g->spec.name, value, fd >= 0 ? "with an fd" : "");
        return -EPROTO;
    }
    g->mem_fd = fd;

    /* Every other peer's eventfds, then ours, which end the burst. */
    unsigned int own = 0;
    while (own < g->vectors) {
        ret = burst_recv(g, "the eventfds", &value, &fd, why, why_len);
        if (ret < 0)
            return ret;
        if (value < 0 || value >= SHM_MAX_PEERS) {
            if (fd >= 0)
                close(fd);
            reason_set(why, why_len,
                       "the broker of group '%s' sent peer ID %" PRId64 " (expected 0 to %d)",
                       g->spec.name, value, SHM_MAX_PEERS - 1);
            return -EPROTO;
        }
        unsigned int id = (unsigned int)value;
        if (id == g->id && fd >= 0) {
            g->own_fds[own++] = fd;
            continue;
        }
        ret = burst_peer_message(g, id, fd, why, why_len);
        if (ret < 0)
            return ret;
    }
    return burst_peers_complete(g, why, why_len);
}

/* The channel memfd, after the burst; other peers' joins and departures may come first. */
static int portio_reply_read(struct shm_group *g, char *why, size_t why_len)
{
    for (;;) {
        int64_t value;
        int fd;
        int ret = burst_recv(g, "the port I/O channel", &value, &fd, why, why_len);
        if (ret < 0)
            return ret;
        if (value == IVPROTO_PORTIO_ID) {
            if (fd < 0) {
                reason_set(why, why_len, "the broker of group '%s' has no port I/O channel",
                           g->spec.name);
                return -ENODEV;
            }
            g->portio_fd = fd;
            return burst_peers_complete(g, why, why_len);
        }
        if (value < 0 || value >= SHM_MAX_PEERS || (unsigned int)value == g->id) {
            if (fd >= 0)
                close(fd);
            reason_set(why, why_len,
                       "the broker of group '%s' sent %" PRId64 " instead of the port I/O channel",
                       g->spec.name, value);
            return -EPROTO;
        }
        ret = burst_peer_message(g, (unsigned int)value, fd, why, why_len);
        if (ret < 0)
            return ret;
    }
}

static int portio_map(struct shm_group *g, char *why, size_t why_len)
{
    struct stat st;
    int seals = fcntl(g->portio_fd, F_GET_SEALS);
    if (seals < 0 || fstat(g->portio_fd, &st) < 0) {
        int err = errno;
        reason_set(why, why_len, "fcntl F_GET_SEALS / fstat of the port I/O memfd: %s",
                   strerror(err));
        return -err;
    }
    if ((seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW) ||
        (uint64_t)st.st_size != PORTIO_CHANNEL_SIZE) {
        reason_set(why, why_len,
                   "the port I/O channel of group '%s' is %llu bytes with seals 0x%x, "
                   "expected %llu bytes sealed against resizing",
                   g->spec.name, (unsigned long long)st.st_size, (unsigned int)seals,
                   (unsigned long long)PORTIO_CHANNEL_SIZE);
        return -EPROTO;
    }
    void *mem =
        mmap(NULL, PORTIO_CHANNEL_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, g->portio_fd, 0);
    if (mem == MAP_FAILED) {
        int err = errno;
        reason_set(why, why_len, "mmap %llu bytes MAP_SHARED port I/O memfd: %s",
                   (unsigned long long)PORTIO_CHANNEL_SIZE, strerror(err));
        return -err;
    }
    g->portio_mem = mem;
    if (!portio_channel_valid(mem)) {
        reason_set(why, why_len, "the port I/O channel of group '%s' has an unknown layout",
                   g->spec.name);
        return -EPROTO;
    }
    return 0;
}

static int memory_map(struct shm_group *g, char *why, size_t why_len)
{
    int seals = fcntl(g->mem_fd, F_GET_SEALS);
    if (seals < 0) {
        int err = errno;
        reason_set(why, why_len, "fcntl memfd F_GET_SEALS: %s (is it a memfd?)", strerror(err));
        return -err;
    }
    if ((seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW)) {
        reason_set(why, why_len,
                   "the memory of group '%s' is not sealed against resizing "
                   "(seals 0x%x)",
                   g->spec.name, (unsigned int)seals);
        return -EPROTO;
    }
    struct stat st;
    if (fstat(g->mem_fd, &st) < 0) {
        int err = errno;
        reason_set(why, why_len, "fstat memfd: %s", strerror(err));
        return -err;
    }
    if ((uint64_t)st.st_size != g->spec.size) {
        char have[32], want[32];
        format_size((uint64_t)st.st_size, have, sizeof(have));
        format_size(g->spec.size, want, sizeof(want));
        reason_set(why, why_len, "the memory of group '%s' is %s, but size=%s was asked for",
                   g->spec.name, have, want);
        return -EEXIST;
    }
    /* NAME.group already told; the fd itself is the last word (a broker too old to say). */
    uint64_t page_size;
    int ret = memfd_page_size(g->mem_fd, &page_size, why, why_len);
    if (ret < 0)
        return ret;
    if (page_size != g->spec.hugepage_size) {
        char have[48], want[48];
        hugepage_describe(page_size, have, sizeof(have));
        hugepage_describe(g->spec.hugepage_size, want, sizeof(want));
        reason_set(why, why_len,
                   "the memory of group '%s' is backed by %s, but %s were asked for (the "
                   "group's hugepages= setting)",
                   g->spec.name, have, want);
        return -EEXIST;
    }
    /* The broker allocated every hugetlb page already (fallocate): mapping them cannot
     * fail later for want of pages, so no MAP_POPULATE here. */
    void *mem = mmap(NULL, g->spec.size, PROT_READ | PROT_WRITE, MAP_SHARED, g->mem_fd, 0);
    if (mem == MAP_FAILED) {
        int err = errno;
        reason_set(why, why_len, "mmap %" PRIu64 " bytes MAP_SHARED memfd of group '%s': %s",
                   g->spec.size, g->spec.name, strerror(err));
        return -err;
    }
    g->mem = mem;
    g->mem_size = g->spec.size;
    return 0;
}

/* What joining does once g->sock is connected to the broker. */
static int join_on_socket(struct shm_group *g, char *why, size_t why_len)
{
    int ret = ivproto_send(g->sock, IVPROTO_HELLO, -1);
    if (ret < 0) {
        reason_set(why, why_len, "greeting the broker of group '%s': %s", g->spec.name,
                   strerror(-ret));
        return ret;
    }
    if (g->spec.portio) {
        /* Sent before the burst is read; the broker answers after it (ivshmem_protocol.h). */
        ret = ivproto_send(g->sock, IVPROTO_PORTIO_REQUEST, -1);
        if (ret < 0) {
            reason_set(why, why_len, "asking the broker of group '%s' for the port I/O channel: %s",
                       g->spec.name, strerror(-ret));
            return ret;
        }
    }
    ret = burst_read(g, why, why_len);
    if (ret < 0)
        return ret;
    if (g->spec.portio &&
        ((ret = portio_reply_read(g, why, why_len)) < 0 || (ret = portio_map(g, why, why_len)) < 0))
        return ret;
    ret = memory_map(g, why, why_len);
    if (ret < 0)
        return ret;
    g->joined = true;
    return 0;
}

int shm_group_join(struct shm_group *g, const struct shm_spec *spec, char *why, size_t why_len)
{
    group_reset(g);
    int ret = shm_spec_check(spec, why, why_len);
    if (ret < 0)
        return ret;
    g->spec = *spec;
    g->vectors = spec->vectors;

    ret = broker_runtime_dir(g->runtime_dir, sizeof(g->runtime_dir), why, why_len);
    if (ret < 0)
        goto fail;
    /* Every peer's eventfds end up in this process. */
    ret = shm_raise_fd_limit((SHM_MAX_PEERS + 1ul) * spec->vectors + 256);
    if (ret < 0)
        log_warn("shm group %s: setrlimit RLIMIT_NOFILE: %s", spec->name, strerror(-ret));

    ret = broker_connect(g->runtime_dir, spec, &g->spawned_broker, &g->broker_pid, why, why_len);
    if (ret < 0)
        goto fail;
    g->sock = ret;
    struct timeval timeout = {.tv_sec = SHM_JOIN_TIMEOUT_MS / 1000,
                              .tv_usec = (SHM_JOIN_TIMEOUT_MS % 1000) * 1000};
    if (setsockopt(g->sock, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)) < 0) {
        ret = -errno;
        reason_set(why, why_len, "setsockopt SO_RCVTIMEO: %s", strerror(errno));
        goto fail;
    }
    ret = join_on_socket(g, why, why_len);
    if (ret == -EPIPE && broker_check_room(g->runtime_dir, spec->name, why, why_len) < 0)
        ret = -EUSERS;
    if (ret < 0)
        goto fail;
    unsigned int others = 0;
    for (unsigned int id = 0; id < SHM_MAX_PEERS; id++)
        others += g->peers[id].present;
    log_debug("shm group %s: joined as peer %u (broker pid %d%s), %u other peers", spec->name,
              g->id, (int)g->broker_pid, g->spawned_broker ? ", started by us" : "", others);
    return 0;

fail:
    group_release(g);
    return ret;
}

int shm_reserve_fds(const struct shm_spec *specs, unsigned int count, char *why, size_t why_len)
{
    unsigned long need = SHM_FD_MARGIN;
    for (unsigned int i = 0; i < count; i++)
        need += (SHM_MAX_PEERS + 1ul) * specs[i].vectors;
    int ret = shm_raise_fd_limit(need);
    struct rlimit rl;
    if (ret == 0 && getrlimit(RLIMIT_NOFILE, &rl) < 0)
        ret = -errno;
    if (ret < 0) {
        reason_set(why, why_len, "setrlimit RLIMIT_NOFILE %lu: %s", need, strerror(-ret));
        return ret;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        reason_set(why, why_len,
                   "--shm needs up to %lu open files (%d peers' eventfds per vector and group), "
                   "but the hard limit RLIMIT_NOFILE is %llu: use fewer vectors, or raise the "
                   "limit (ulimit -Hn)",
                   need, SHM_MAX_PEERS + 1, (unsigned long long)rl.rlim_max);
        return -EMFILE;
    }
    return 0;
}

int shm_group_join_socket(struct shm_group *g, const struct shm_spec *spec, int sock, char *why,
                          size_t why_len)
{
    group_reset(g);
    g->sock = sock;
    int ret = shm_spec_check(spec, why, why_len);
    if (ret < 0)
        goto fail;
    g->spec = *spec;
    g->vectors = spec->vectors;
    ret = join_on_socket(g, why, why_len);
    if (ret < 0)
        goto fail;
    return 0;

fail:
    group_release(g);
    return ret;
}

/* ---- after joining: the group's thread ------------------------------------------------- */

/* A peer's eventfds, all its vectors announced, go to peer_joined, which owns them from
 * then on (closed here when nobody listens). */
static void peer_hand_over(struct shm_group *g, unsigned int id)
{
    struct shm_group_peer *p = &g->peers[id];
    int fds[SHM_MAX_VECTORS];
    unsigned int nfds = p->nfds;
    memcpy(fds, p->fds, sizeof(int) * nfds);
    p->nfds = 0;
    for (unsigned int v = 0; v < SHM_MAX_VECTORS; v++)
        p->fds[v] = -1;
    if (g->events.peer_joined) {
        g->events.peer_joined(g->ctx, id, fds, nfds);
    } else {
        for (unsigned int v = 0; v < nfds; v++)
            close(fds[v]);
    }
}

static void group_message(struct shm_group *g, int64_t value, int fd)
{
    if (value < 0 || value >= SHM_MAX_PEERS || (unsigned int)value == g->id ||
        (fd >= 0 && g->vectors == 0)) {
        log_warn("shm group %s: unexpected message %" PRId64 "%s from the broker; ignored",
                 g->spec.name, value, fd >= 0 ? " with an fd" : "");
        if (fd >= 0)
            close(fd);
        return;
    }
    unsigned int id = (unsigned int)value;
    struct shm_group_peer *p = &g->peers[id];
    if (fd < 0) {
        bool was_present = p->present;
        peer_close(p); /* also drops a half-announced peer */
        if (was_present && g->events.peer_left)
            g->events.peer_left(g->ctx, id);
        return;
    }
    if (p->present) {
        log_warn("shm group %s: peer %u announced twice; extra eventfd ignored", g->spec.name, id);
        close(fd);
        return;
    }
    p->fds[p->nfds++] = fd;
    if (p->nfds < g->vectors)
        return;
    p->present = true;
    peer_hand_over(g, id);
}

static void *group_thread(void *arg)
{
    struct shm_group *g = arg;
    if (g->events.thread_started)
        g->events.thread_started(g->ctx);
    for (;;) {
        struct pollfd pfds[2] = {
            {.fd = g->stop_fd, .events = POLLIN},
            {.fd = g->sock, .events = POLLIN},
        };
        if (poll(pfds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            log_error("shm group %s: poll: %s", g->spec.name, strerror(errno));
            break;
        }
        if (pfds[0].revents)
            return NULL; /* shm_group_leave() */
        if (!pfds[1].revents)
            continue;
        int64_t value;
        int fd;
        int ret = ivproto_recv(g->sock, &value, &fd);
        if (ret < 0) {
            if (ret == -EPIPE)
                log_warn("shm group %s: the broker closed the connection; peer %u keeps its "
                         "memory but sees no more joins or departures",
                         g->spec.name, g->id);
            else
                log_warn("shm group %s: recvmsg from the broker: %s; peer %u keeps its memory "
                         "but sees no more joins or departures",
                         g->spec.name, strerror(-ret), g->id);
            break;
        }
        group_message(g, value, fd);
        if (!g->joined)
            return NULL; /* shm_group_leave() from a callback, which is not allowed */
    }
    if (g->events.broker_lost)
        g->events.broker_lost(g->ctx);
    return NULL;
}

unsigned int shm_group_take_own_fds(struct shm_group *g, int *fds)
{
    if (!g->joined || g->own_fds[0] < 0)
        return 0;
    for (unsigned int v = 0; v < g->vectors; v++) {
        fds[v] = g->own_fds[v];
        g->own_fds[v] = -1;
    }
    return g->vectors;
}

int shm_group_start_polled(struct shm_group *g, const struct shm_group_events *events, void *ctx)
{
    if (!g->joined)
        return -EINVAL;
    if (g->thread_started)
        return -EALREADY;
    if (events)
        g->events = *events;
    g->ctx = ctx;

    for (unsigned int id = 0; id < SHM_MAX_PEERS; id++) {
        if (g->peers[id].present)
            peer_hand_over(g, id);
    }
    return 0;
}

int shm_group_dispatch(struct shm_group *g)
{
    int64_t value;
    int fd;

    if (!g->joined || g->thread_started)
        return -EINVAL;
    int ret = ivproto_recv(g->sock, &value, &fd);
    if (ret < 0)
        return ret;
    group_message(g, value, fd);
    return 0;
}

int shm_group_socket(const struct shm_group *g)
{
    return g->sock;
}

int shm_group_start(struct shm_group *g, const struct shm_group_events *events, void *ctx)
{
    int ret = shm_group_start_polled(g, events, ctx);
    if (ret < 0)
        return ret;

    g->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (g->stop_fd < 0) {
        int err = errno;
        log_error("shm group %s: eventfd: %s", g->spec.name, strerror(err));
        return -err;
    }
    /* Signals meant for the VMM (vCPU kicks, SIGINT) must not land on this thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    ret = pthread_create(&g->thread, NULL, group_thread, g);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (ret != 0) {
        log_error("shm group %s: pthread_create: %s", g->spec.name, strerror(ret));
        close(g->stop_fd);
        g->stop_fd = -1;
        return -ret;
    }
    pthread_setname_np(g->thread, "minivmm-shm");
    g->thread_started = true;
    return 0;
}

void shm_group_leave(struct shm_group *g)
{
    if (!g->joined)
        return;
    if (g->thread_started) {
        uint64_t one = 1;
        while (write(g->stop_fd, &one, sizeof(one)) < 0 && errno == EINTR)
            ;
        if (pthread_equal(pthread_self(), g->thread))
            pthread_detach(g->thread); /* misuse from a callback: do not deadlock */
        else
            pthread_join(g->thread, NULL);
        g->thread_started = false;
    }
    group_release(g);
}
