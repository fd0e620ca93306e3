/* Shared-memory groups end to end: the --shm spec parser, then real processes. Each
 * "worker" is a forked child standing in for one minivmm: it joins through
 * shm_group_join(), spawning the broker daemon when it is first, and obeys one-line
 * commands on a pipe (join, start, write, read, ring, take, events, leave), so the test can
 * SIGKILL any of them, the group's creator included. The test process is a child subreaper:
 * spawned brokers become its children, so it can see them exit. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices/portio_channel.h"
#include "tests/unit/support/ivshmem_client.h"
#include "tests/unit/support/text.h"
#include "vmm/broker/runtime.h"
#include "vmm/broker/server.h"
#include "vmm/broker/status.h"
#include "vmm/shm_group.h"

#define WORKER_TIMEOUT_MS 10000
#define MAX_WORKERS       6

/* ---- the worker: one minivmm's group membership in a child process -------------------- */

struct worker_state {
    struct shm_group g;
    pthread_mutex_t lock;
    char events[4096];
    unsigned int peer_n[SHM_MAX_PEERS];
    int peer_fds[SHM_MAX_PEERS][SHM_MAX_VECTORS];
};

static void events_add(struct worker_state *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void events_add(struct worker_state *s, const char *fmt, ...)
{
    pthread_mutex_lock(&s->lock);
    size_t len = strlen(s->events);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->events + len, sizeof(s->events) - len, fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&s->lock);
}

static void on_joined(void *ctx, unsigned int id, int *fds, unsigned int nfds)
{
    struct worker_state *s = ctx;
    pthread_mutex_lock(&s->lock);
    for (unsigned int v = 0; v < s->peer_n[id]; v++)
        close(s->peer_fds[id][v]);
    for (unsigned int v = 0; v < nfds; v++)
        s->peer_fds[id][v] = fds[v];
    s->peer_n[id] = nfds;
    pthread_mutex_unlock(&s->lock);
    events_add(s, " J%u:%u", id, nfds);
}

static void on_left(void *ctx, unsigned int id)
{
    struct worker_state *s = ctx;
    pthread_mutex_lock(&s->lock);
    for (unsigned int v = 0; v < s->peer_n[id]; v++)
        close(s->peer_fds[id][v]);
    s->peer_n[id] = 0;
    pthread_mutex_unlock(&s->lock);
    events_add(s, " L%u", id);
}

static void on_lost(void *ctx)
{
    events_add(ctx, " LOST");
}

static void worker_do(struct worker_state *s, char *line, char *reply, size_t len)
{
    char arg[400];
    unsigned int a, b;
    if (sscanf(line, "join %399s", arg) == 1) {
        struct shm_spec spec;
        char why[512];
        if (shm_spec_parse(arg, &spec, why, sizeof(why)) < 0 ||
            shm_group_join(&s->g, &spec, why, sizeof(why)) < 0) {
            snprintf(reply, len, "err %s", why);
            return;
        }
        int n = snprintf(reply, len, "ok id=%u spawned=%d broker=%d peers=[", s->g.id,
                         s->g.spawned_broker, (int)s->g.broker_pid);
        for (unsigned int id = 0; id < SHM_MAX_PEERS; id++)
            if (s->g.peers[id].present)
                n += snprintf(reply + n, len - (size_t)n, " %u", id);
        snprintf(reply + n, len - (size_t)n, " ]");
    } else if (strcmp(line, "start") == 0) {
        static const struct shm_group_events events = {
            .peer_joined = on_joined,
            .peer_left = on_left,
            .broker_lost = on_lost,
        };
        int ret = shm_group_start(&s->g, &events, s);
        snprintf(reply, len, ret ? "err %d" : "ok", ret);
    } else if (sscanf(line, "write %u %399s", &a, arg) == 2) {
        strcpy((char *)s->g.mem + a, arg);
        snprintf(reply, len, "ok");
    } else if (sscanf(line, "read %u", &a) == 1) {
        snprintf(reply, len, "ok %.100s", (char *)s->g.mem + a);
    } else if (strcmp(line, "events") == 0) {
        pthread_mutex_lock(&s->lock);
        snprintf(reply, len, "ok%.3000s", s->events);
        pthread_mutex_unlock(&s->lock);
    } else if (sscanf(line, "ring %u %u", &a, &b) == 2) {
        pthread_mutex_lock(&s->lock);
        int fd = b < s->peer_n[a] ? s->peer_fds[a][b] : -1;
        uint64_t one = 1;
        bool ok = fd >= 0 && write(fd, &one, sizeof(one)) == sizeof(one);
        pthread_mutex_unlock(&s->lock);
        snprintf(reply, len, ok ? "ok" : "err no fd for peer %u vector %u", a, b);
    } else if (sscanf(line, "take %u", &a) == 1) {
        /* Waits up to 2 s for our vector a to be raised. */
        struct pollfd p = {.fd = s->g.own_fds[a], .events = POLLIN};
        uint64_t n = 0;
        if (poll(&p, 1, 2000) == 1 && read(p.fd, &n, sizeof(n)) != sizeof(n))
            n = 0;
        snprintf(reply, len, "ok %llu", (unsigned long long)n);
    } else if (strcmp(line, "leave") == 0) {
        shm_group_leave(&s->g);
        snprintf(reply, len, "ok");
    } else if (strcmp(line, "portio") == 0) {
        /* The peers present in the port I/O channel, as the broker marked them. */
        if (!s->g.portio_mem) {
            snprintf(reply, len, "ok none");
            return;
        }
        int n = snprintf(reply, len, "ok [");
        for (unsigned int id = 0; id < SHM_MAX_PEERS; id++)
            if (portio_channel_generation(s->g.portio_mem, id) & 1)
                n += snprintf(reply + n, len - (size_t)n, " %u", id);
        snprintf(reply + n, len - (size_t)n, " ]");
    } else if (sscanf(line, "psend %u %399s", &a, arg) == 2) {
        struct portio_ring *ring = portio_channel_ring(s->g.portio_mem, s->g.id, a);
        snprintf(reply, len,
                 portio_ring_write(ring, arg, (uint32_t)strlen(arg)) ? "ok" : "err full");
    } else if (sscanf(line, "precv %u %u", &a, &b) == 2 && b < sizeof(arg)) {
        struct portio_ring *ring = portio_channel_ring(s->g.portio_mem, a, s->g.id);
        memset(arg, 0, sizeof(arg));
        snprintf(reply, len, portio_ring_read(ring, arg, b) ? "ok %s" : "err empty", arg);
    } else if (strcmp(line, "pid") == 0) {
        snprintf(reply, len, "ok %d", (int)getpid());
    } else {
        snprintf(reply, len, "err unknown command '%s'", line);
    }
}

static void worker_main(int cmd_fd, int reply_fd) __attribute__((noreturn));

static void worker_main(int cmd_fd, int reply_fd)
{
    alarm(30); /* never outlive a broken test for long */
    struct worker_state *s = calloc(1, sizeof(*s));
    if (!s)
        _exit(1);
    pthread_mutex_init(&s->lock, NULL);
    FILE *in = fdopen(cmd_fd, "r");
    char line[512], reply[4096];
    while (in && fgets(line, sizeof(line), in)) {
        line[strcspn(line, "\n")] = '\0';
        worker_do(s, line, reply, sizeof(reply) - 1);
        strcat(reply, "\n");
        size_t off = 0, total = strlen(reply);
        while (off < total) {
            ssize_t n = write(reply_fd, reply + off, total - off);
            if (n <= 0)
                _exit(1);
            off += (size_t)n;
        }
    }
    _exit(0);
}

/* ---- the test's side ---------------------------------------------------------------------- */

struct worker {
    pid_t pid;
    int cmd;
    int reply;
    char text[4096];
};

struct fixture {
    char dir[256];
    char runtime[300];
    struct worker workers[MAX_WORKERS];
    pid_t brokers[8];
    unsigned int broker_count;
};

static void worker_start(struct worker *w)
{
    int cmd[2], reply[2];
    assert_int_equal(pipe2(cmd, O_CLOEXEC), 0);
    assert_int_equal(pipe2(reply, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(cmd[1]);
        close(reply[0]);
        worker_main(cmd[0], reply[1]);
    }
    close(cmd[0]);
    close(reply[1]);
    w->pid = pid;
    w->cmd = cmd[1];
    w->reply = reply[0];
}

static void worker_send(struct worker *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void worker_send(struct worker *w, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    line[n++] = '\n';
    assert_int_equal(write(w->cmd, line, (size_t)n), n);
}

/* The worker's reply to its last command (one line, without the newline). */
static const char *worker_reply(struct worker *w)
{
    size_t got = 0;
    int64_t deadline = test_now_ms() + WORKER_TIMEOUT_MS;
    while (!memchr(w->text, '\n', got)) {
        int64_t left = deadline - test_now_ms();
        struct pollfd p = {.fd = w->reply, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, (int)left) != 1)
            fail_msg("worker %d: no reply within %d ms", (int)w->pid, WORKER_TIMEOUT_MS);
        ssize_t n = read(w->reply, w->text + got, sizeof(w->text) - 1 - got);
        if (n <= 0)
            fail_msg("worker %d died", (int)w->pid);
        got += (size_t)n;
    }
    w->text[got] = '\0';
    w->text[strcspn(w->text, "\n")] = '\0';
    return w->text;
}

static const char *worker_cmd(struct worker *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static const char *worker_cmd(struct worker *w, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    worker_send(w, "%s", line);
    return worker_reply(w);
}

/* Waits until the worker's event log contains want. */
static void worker_wait_event(struct worker *w, const char *want)
{
    int64_t deadline = test_now_ms() + 5000;
    for (;;) {
        const char *events = worker_cmd(w, "events");
        if (strstr(events, want))
            return;
        if (test_now_ms() >= deadline)
            fail_msg("worker %d: no event '%s' in '%s'", (int)w->pid, want, events);
        usleep(5000);
    }
}

struct join_result {
    unsigned int id;
    int spawned;
    pid_t broker;
    char peers[128];
};

static void join_parse(struct fixture *f, const char *reply, struct join_result *r)
{
    int broker;
    if (sscanf(reply, "ok id=%u spawned=%d broker=%d peers=%127[^\n]", &r->id, &r->spawned, &broker,
               r->peers) != 4)
        fail_msg("join failed: %s", reply);
    r->broker = broker;
    if (r->spawned && f->broker_count < 8)
        f->brokers[f->broker_count++] = broker;
}

static void worker_join(struct fixture *f, struct worker *w, const char *spec,
                        struct join_result *r)
{
    join_parse(f, worker_cmd(w, "join %s", spec), r);
}

static void worker_kill(struct worker *w)
{
    if (w->pid <= 0)
        return;
    kill(w->pid, SIGKILL);
    waitpid(w->pid, NULL, 0);
    close(w->cmd);
    close(w->reply);
    w->pid = 0;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    test_tmpdir(f->dir, sizeof(f->dir), "shm-test");
    snprintf(f->runtime, sizeof(f->runtime), "%s/minivmm", f->dir);
    setenv("XDG_RUNTIME_DIR", f->dir, 1);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < MAX_WORKERS; i++)
        worker_kill(&f->workers[i]);
    /* With every member gone the brokers leave by themselves; make sure. */
    for (unsigned int i = 0; i < f->broker_count; i++) {
        if (!test_wait_exit(f->brokers[i], 3000, NULL)) {
            kill(f->brokers[i], SIGKILL);
            waitpid(f->brokers[i], NULL, 0);
        }
    }
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    test_rmtree(f->dir);
    free(f);
    return 0;
}

/* The broker exits by itself, leaving nothing in the runtime folder. */
static void expect_group_gone(struct fixture *f, pid_t broker, const char *name)
{
    int status;
    assert_true(test_wait_exit(broker, 3000, &status));
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    const char *suffixes[] = {".sock", ".group", ".lock"};
    for (int i = 0; i < 3; i++) {
        char path[400];
        snprintf(path, sizeof(path), "%s/%s%s", f->runtime, name, suffixes[i]);
        assert_int_equal(access(path, F_OK), -1);
    }
}

/* ---- --shm parsing -------------------------------------------------------------------------- */

static void test_spec_parse_good(void **state)
{
    (void)state;
    struct shm_spec spec;
    char why[256];
    assert_int_equal(shm_spec_parse("demo", &spec, why, sizeof(why)), 0);
    assert_string_equal(spec.name, "demo");
    assert_int_equal(spec.size, SHM_DEFAULT_SIZE);
    assert_int_equal(spec.size, 4 << 20);
    assert_int_equal(spec.vectors, SHM_DEFAULT_VECTORS);
    assert_int_equal(spec.vectors, 2);

    assert_int_equal(shm_spec_parse("a.b_c-D9,size=64K", &spec, why, sizeof(why)), 0);
    assert_string_equal(spec.name, "a.b_c-D9");
    assert_int_equal(spec.size, 64 << 10);
    assert_int_equal(spec.vectors, 2);

    assert_int_equal(shm_spec_parse("x,vectors=0", &spec, why, sizeof(why)), 0);
    assert_int_equal(spec.vectors, 0);
    assert_int_equal(spec.size, SHM_DEFAULT_SIZE);

    assert_int_equal(shm_spec_parse("x,vectors=64,size=16G", &spec, why, sizeof(why)), 0);
    assert_int_equal(spec.vectors, 64);
    assert_int_equal(spec.size, SHM_MAX_SIZE);

    assert_int_equal(shm_spec_parse("x,size=4096", &spec, why, sizeof(why)), 0);
    assert_int_equal(spec.size, SHM_MIN_SIZE);
    assert_int_equal(shm_spec_parse("x,size=1MiB", &spec, why, sizeof(why)), 0);
    assert_int_equal(spec.size, 1 << 20);
    assert_false(spec.portio);
    assert_int_equal(shm_spec_parse("x,portio=on,vectors=0", &spec, why, sizeof(why)), 0);
    assert_true(spec.portio);
    assert_int_equal(spec.vectors, 0);
    assert_int_equal(shm_spec_parse("x,portio=off", &spec, why, sizeof(why)), 0);
    assert_false(spec.portio);
    assert_int_equal(spec.hugepage_size, 0);

    /* hugepages=: the default 4M is two 2M pages; 2048K is the same size spelt otherwise. */
    assert_int_equal(shm_spec_parse("x,hugepages=2M", &spec, why, sizeof(why)), 0);
    assert_int_equal(spec.hugepage_size, 2 << 20);
    assert_int_equal(spec.size, SHM_DEFAULT_SIZE);
    assert_int_equal(shm_spec_parse("x,hugepages=2048K,size=2M", &spec, why, sizeof(why)), 0);
    assert_int_equal(spec.hugepage_size, 2 << 20);
    assert_int_equal(shm_spec_parse("x,hugepages=1G,size=1G,vectors=1", &spec, why, sizeof(why)),
                     0);
    assert_int_equal(spec.hugepage_size, 1 << 30);
    assert_int_equal(spec.size, 1 << 30);
    assert_int_equal(shm_spec_parse("x,size=16G,hugepages=1G", &spec, why, sizeof(why)), 0);
    assert_int_equal(shm_spec_check(&spec, why, sizeof(why)), 0);

    char name[SHM_NAME_MAX + 1];
    memset(name, 'n', SHM_NAME_MAX);
    name[SHM_NAME_MAX] = '\0';
    assert_int_equal(shm_spec_parse(name, &spec, why, sizeof(why)), 0);
    assert_string_equal(spec.name, name);
}

static void test_spec_parse_bad(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *mention;
    } cases[] = {
        {"", "missing group name"},
        {",size=4M", "missing group name"},
        {".hidden", "must not start with '.'"},
        {"a/b", "A-Z a-z 0-9 . _ -"},
        {"a b", "A-Z a-z 0-9 . _ -"},
        {"nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn", "more than 64"},
        {"x,size=3M", "not a power of two"},
        {"x,size=12K", "not a power of two"},
        {"x,size=2K", "out of range (4K to 16G)"},
        {"x,size=32G", "out of range"},
        {"x,size=99999999999999999999", "out of range"},
        {"x,size=abc", "not a size"},
        {"x,size=", "not a size"},
        {"x,size=4Q", "not a size"},
        {"x,vectors=65", "0 to 64"},
        {"x,vectors=-1", "0 to 64"},
        {"x,vectors=", "0 to 64"},
        {"x,vectors=2x", "0 to 64"},
        {"x,foo=1", "unknown key 'foo'"},
        {"x,size", "not KEY=VALUE"},
        {"x,,size=4M", "empty item"},
        {"x,", "empty item"},
        {"x,size=4M,size=8M", "size is given twice"},
        {"x,vectors=1,vectors=1", "vectors is given twice"},
        {"x,portio=yes", "expected on or off"},
        {"x,portio=on,portio=off", "portio is given twice"},
        {"x,hugepages=4K", "hugepages '4K': expected 2M or 1G"},
        {"x,hugepages=3M", "expected 2M or 1G"},
        {"x,hugepages=2G", "expected 2M or 1G"},
        {"x,hugepages=on", "expected 2M or 1G"},
        {"x,hugepages=", "expected 2M or 1G"},
        {"x,hugepages=2M,hugepages=2M", "hugepages is given twice"},
        {"x,size=1M,hugepages=2M", "size 1M is not a multiple of the 2M hugepage size"},
        {"x,hugepages=2M,size=64K", "hugepages=2M needs size=2M or more"},
        {"x,hugepages=1G", "size 4M is not a multiple of the 1G hugepage size"},
        {"x,size=512M,hugepages=1G", "needs size=1G or more"},
        {"x,huge=2M", "known keys: size, vectors, hugepages, portio"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct shm_spec spec;
        char why[256] = "";
        if (shm_spec_parse(cases[i].text, &spec, why, sizeof(why)) != -EINVAL)
            fail_msg("'%s' was accepted", cases[i].text);
        if (!strstr(why, cases[i].mention))
            fail_msg("'%s': \"%s\" does not mention \"%s\"", cases[i].text, why, cases[i].mention);
    }
}

/* ---- groups of processes ------------------------------------------------------------------- */

static void test_two_processes_share_memory_and_see_each_other(void **state)
{
    struct fixture *f = *state;
    struct worker *a = &f->workers[0], *b = &f->workers[1];
    struct join_result ra, rb;
    worker_start(a);
    worker_start(b);

    worker_join(f, a, "grp,size=64K,vectors=2", &ra);
    assert_int_equal(ra.id, 0);
    assert_int_equal(ra.spawned, 1);
    assert_string_equal(ra.peers, "[ ]");
    assert_string_equal(worker_cmd(a, "start"), "ok");
    assert_string_equal(worker_cmd(a, "write 0 hello-from-A"), "ok");

    worker_join(f, b, "grp,size=64K,vectors=2", &rb);
    assert_int_equal(rb.id, 1);
    assert_int_equal(rb.spawned, 0);
    assert_int_equal(rb.broker, ra.broker);
    assert_string_equal(rb.peers, "[ 0 ]");
    assert_string_equal(worker_cmd(b, "start"), "ok");
    /* B learned of A from the initial burst, A of B from the thread. */
    assert_string_equal(worker_cmd(b, "events"), "ok J0:2");
    worker_wait_event(a, "J1:2");

    /* One memory, both ways. */
    assert_string_equal(worker_cmd(b, "read 0"), "ok hello-from-A");
    assert_string_equal(worker_cmd(b, "write 65000 hi-from-B"), "ok");
    assert_string_equal(worker_cmd(a, "read 65000"), "ok hi-from-B");

    /* Doorbells: A rings B on vector 0, B rings A on vector 1. */
    assert_string_equal(worker_cmd(a, "ring 1 0"), "ok");
    assert_string_equal(worker_cmd(b, "take 0"), "ok 1");
    assert_string_equal(worker_cmd(b, "ring 0 1"), "ok");
    assert_string_equal(worker_cmd(a, "take 1"), "ok 1");

    /* B leaves: A is told. Then A leaves, and the broker goes with its files. */
    assert_string_equal(worker_cmd(b, "leave"), "ok");
    worker_wait_event(a, "L1");
    assert_string_equal(worker_cmd(a, "leave"), "ok");
    expect_group_gone(f, ra.broker, "grp");
}

static void test_creator_killed_group_survives(void **state)
{
    struct fixture *f = *state;
    struct worker *a = &f->workers[0], *b = &f->workers[1], *c = &f->workers[2];
    struct join_result ra, rb, rc;
    worker_start(a);
    worker_start(b);
    worker_start(c);

    worker_join(f, a, "grp,size=16K,vectors=1", &ra);
    assert_int_equal(ra.spawned, 1);
    assert_string_equal(worker_cmd(a, "start"), "ok");
    assert_string_equal(worker_cmd(a, "write 0 from-A"), "ok");
    worker_join(f, b, "grp,size=16K,vectors=1", &rb);
    assert_int_equal(rb.id, 1);
    assert_string_equal(worker_cmd(b, "start"), "ok");
    worker_wait_event(a, "J1:1");

    /* The creator dies without a word: B is told it left and keeps its memory. */
    worker_kill(a);
    worker_wait_event(b, "L0");
    assert_true(broker_alive(ra.broker));
    assert_string_equal(worker_cmd(b, "read 0"), "ok from-A");
    assert_string_equal(worker_cmd(b, "write 100 from-B"), "ok");

    /* A newcomer still gets in, with the freed ID 0, into the same memory. */
    worker_join(f, c, "grp,size=16K,vectors=1", &rc);
    assert_int_equal(rc.id, 0);
    assert_int_equal(rc.spawned, 0);
    assert_int_equal(rc.broker, ra.broker);
    assert_string_equal(rc.peers, "[ 1 ]");
    assert_string_equal(worker_cmd(c, "start"), "ok");
    assert_string_equal(worker_cmd(c, "read 0"), "ok from-A");
    assert_string_equal(worker_cmd(c, "read 100"), "ok from-B");
    worker_wait_event(b, "J0:1 L0 J0:1"); /* A from the burst, A gone, C with A's ID */
    assert_string_equal(worker_cmd(b, "ring 0 0"), "ok");
    assert_string_equal(worker_cmd(c, "take 0"), "ok 1");
    assert_string_equal(worker_cmd(c, "ring 1 0"), "ok");
    assert_string_equal(worker_cmd(b, "take 0"), "ok 1");

    worker_kill(b);
    worker_kill(c);
    expect_group_gone(f, ra.broker, "grp");
}

static void test_size_and_vector_mismatch(void **state)
{
    struct fixture *f = *state;
    struct worker *a = &f->workers[0], *b = &f->workers[1];
    struct join_result ra;
    worker_start(a);
    worker_start(b);
    worker_join(f, a, "grp,size=64K,vectors=2", &ra);
    assert_string_equal(worker_cmd(a, "start"), "ok");

    const char *reply = worker_cmd(b, "join grp,size=128K,vectors=2");
    assert_contains(reply, "err ");
    assert_contains(reply, "'grp' already exists with size=64K vectors=2");
    assert_contains(reply, "size=128K vectors=2 was asked for");
    reply = worker_cmd(b, "join grp,size=64K,vectors=3");
    assert_contains(reply, "err ");
    assert_contains(reply, "with size=64K vectors=2");
    assert_contains(reply, "size=64K vectors=3 was asked for");
    reply = worker_cmd(b, "join grp");
    assert_contains(reply, "size=4M vectors=2 was asked for");

    /* Refused before connecting: the broker never saw them, A heard nothing. */
    usleep(100000);
    assert_string_equal(worker_cmd(a, "events"), "ok");
    struct broker_status st;
    char path[400];
    snprintf(path, sizeof(path), "%s/grp.group", f->runtime);
    assert_int_equal(broker_status_read(path, &st), 0);
    assert_int_equal(st.peer_count, 1);

    /* The right values still get in. */
    struct join_result rb;
    worker_join(f, b, "grp,size=64K,vectors=2", &rb);
    assert_int_equal(rb.id, 1);
}

static void test_bad_runtime_folder(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(mkdir(f->runtime, 0755), 0);
    assert_int_equal(chmod(f->runtime, 0755), 0);
    struct shm_spec spec;
    char why[512];
    assert_int_equal(shm_spec_parse("grp", &spec, why, sizeof(why)), 0);
    struct shm_group g;
    assert_int_equal(shm_group_join(&g, &spec, why, sizeof(why)), -EPERM);
    assert_contains(why, f->runtime);
    assert_contains(why, "mode 0755");
    assert_contains(why, "0700");
    /* Leaving after a failed join, twice, and on a zeroed group, is harmless. */
    shm_group_leave(&g);
    shm_group_leave(&g);
    struct shm_group zero;
    memset(&zero, 0, sizeof(zero));
    shm_group_leave(&zero);
    assert_int_equal(shm_group_start(&g, NULL, NULL), -EINVAL);
    /* No broker was started and nothing was created. */
    char sock[400];
    snprintf(sock, sizeof(sock), "%s/grp.sock", f->runtime);
    assert_int_equal(access(sock, F_OK), -1);
    /* And --shm-list refuses the folder too. */
    struct capture out;
    capture_open(&out);
    assert_int_equal(broker_status_list(out.file), -EPERM);
    assert_string_equal(capture_text(&out), "");
    capture_close(&out);
}

static void test_list(void **state)
{
    struct fixture *f = *state;
    struct worker *a = &f->workers[0], *b = &f->workers[1];
    struct join_result ra, rb;
    worker_start(a);
    worker_start(b);
    worker_join(f, a, "one,size=64K,vectors=2", &ra);
    worker_join(f, b, "two,size=4K,vectors=0", &rb);
    worker_send(a, "pid");
    pid_t pid_a = atoi(worker_reply(a) + 3);
    worker_send(b, "pid");
    pid_t pid_b = atoi(worker_reply(b) + 3);

    /* A group whose broker died without cleaning up. */
    pid_t dead = fork();
    assert_true(dead >= 0);
    if (dead == 0)
        _exit(0);
    waitpid(dead, NULL, 0);
    char path[400];
    snprintf(path, sizeof(path), "%s/old.group", f->runtime);
    FILE *file = fopen(path, "w");
    assert_non_null(file);
    fprintf(file, "name=old\nsize=4194304\nvectors=1\nbroker_pid=%d\npeer=3 pid=%d uid=0\n",
            (int)dead, (int)dead);
    fclose(file);

    struct capture out;
    capture_open(&out);
    assert_int_equal(broker_status_list(out.file), 3);
    char expected[600];
    snprintf(expected, sizeof(expected),
             "old size=4M vectors=1 broker_pid=%d STALE (broker not running) peers=1 [3:pid=%d]\n"
             "one size=64K vectors=2 broker_pid=%d peers=1 [0:pid=%d]\n"
             "two size=4K vectors=0 broker_pid=%d peers=1 [0:pid=%d]\n",
             (int)dead, (int)dead, (int)ra.broker, (int)pid_a, (int)rb.broker, (int)pid_b);
    assert_string_equal(capture_text(&out), expected);
    capture_close(&out);
}

static void test_stale_files_are_replaced(void **state)
{
    struct fixture *f = *state;
    /* What a SIGKILLed broker leaves: a socket nobody listens on, and a status file naming
     * a dead pid, with other values: neither may block a new group. */
    assert_int_equal(mkdir(f->runtime, 0700), 0);
    char sock_path[400], status_path[400];
    snprintf(sock_path, sizeof(sock_path), "%s/grp.sock", f->runtime);
    snprintf(status_path, sizeof(status_path), "%s/grp.group", f->runtime);
    char why[256];
    int fd = broker_listen(sock_path, why, sizeof(why));
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(ivclient_dial(sock_path), -ECONNREFUSED);
    FILE *file = fopen(status_path, "w");
    fprintf(file, "name=grp\nsize=1048576\nvectors=7\nbroker_pid=%d\n", 999999);
    fclose(file);

    struct worker *a = &f->workers[0];
    struct join_result ra;
    worker_start(a);
    worker_join(f, a, "grp,size=8K,vectors=1", &ra);
    assert_int_equal(ra.spawned, 1);
    assert_int_equal(ra.id, 0);
    struct broker_status st;
    assert_int_equal(broker_status_read(status_path, &st), 0);
    assert_int_equal(st.size, 8192);
    assert_int_equal(st.broker_pid, ra.broker);
}

static void test_simultaneous_starts_make_one_broker(void **state)
{
    struct fixture *f = *state;
    const int n = 5;
    for (int i = 0; i < n; i++)
        worker_start(&f->workers[i]);
    /* Every join is under way before any reply is read. */
    for (int i = 0; i < n; i++)
        worker_send(&f->workers[i], "join race,size=4K,vectors=1");
    unsigned int ids = 0;
    int spawned = 0;
    pid_t broker = 0;
    for (int i = 0; i < n; i++) {
        struct join_result r;
        join_parse(f, worker_reply(&f->workers[i]), &r);
        assert_true(r.id < (unsigned int)n);
        assert_false(ids & (1u << r.id));
        ids |= 1u << r.id;
        spawned += r.spawned;
        if (r.broker) {
            if (broker)
                assert_int_equal(r.broker, broker);
            broker = r.broker;
        }
    }
    assert_int_equal(ids, (1u << n) - 1);
    assert_int_equal(spawned, 1);
    assert_true(broker > 0);
}

static void test_memory_only_group(void **state)
{
    struct fixture *f = *state;
    struct worker *a = &f->workers[0], *b = &f->workers[1];
    struct join_result ra, rb;
    worker_start(a);
    worker_start(b);
    worker_join(f, a, "mem,size=4K,vectors=0", &ra);
    assert_string_equal(worker_cmd(a, "start"), "ok");
    worker_join(f, b, "mem,size=4K,vectors=0", &rb);
    assert_int_equal(rb.id, 1);
    assert_string_equal(rb.peers, "[ ]"); /* the protocol cannot announce fd-less peers */
    assert_string_equal(worker_cmd(b, "start"), "ok");
    assert_string_equal(worker_cmd(a, "write 4000 tail"), "ok");
    assert_string_equal(worker_cmd(b, "read 4000"), "ok tail");
    assert_string_equal(worker_cmd(b, "leave"), "ok");
    /* The broker's "1 left" names a peer A never saw: no event, no complaint. */
    usleep(100000);
    assert_string_equal(worker_cmd(a, "events"), "ok");
    assert_string_equal(worker_cmd(a, "leave"), "ok");
    expect_group_gone(f, ra.broker, "mem");
}

static void test_broker_lost(void **state)
{
    struct fixture *f = *state;
    struct worker *a = &f->workers[0], *c = &f->workers[1];
    struct join_result ra, rc;
    worker_start(a);
    worker_start(c);
    worker_join(f, a, "grp,size=4K,vectors=1", &ra);
    assert_string_equal(worker_cmd(a, "start"), "ok");
    assert_string_equal(worker_cmd(a, "write 0 kept"), "ok");
    kill(ra.broker, SIGKILL);
    worker_wait_event(a, "LOST");
    assert_string_equal(worker_cmd(a, "read 0"), "ok kept");
    /* The dead broker's files are stale: the next joiner starts a new group. */
    worker_join(f, c, "grp,size=4K,vectors=1", &rc);
    assert_int_equal(rc.spawned, 1);
    assert_true(rc.broker != ra.broker);
    assert_int_equal(rc.id, 0);
    assert_string_equal(worker_cmd(c, "read 0"), "ok ");
    assert_string_equal(worker_cmd(a, "leave"), "ok");
}

/* Waits up to 5 s for a worker's "portio" reply to be expected. */
static void worker_wait_portio(struct worker *w, const char *expected)
{
    for (int i = 0; i < 500; i++) {
        if (strcmp(worker_cmd(w, "portio"), expected) == 0)
            return;
        usleep(10000);
    }
    fail_msg("portio presence never became '%s' (last '%s')", expected, worker_cmd(w, "portio"));
}

static void test_portio_channel_presence_and_rings(void **state)
{
    struct fixture *f = *state;
    struct worker *a = &f->workers[0], *b = &f->workers[1], *c = &f->workers[2];
    struct worker *d = &f->workers[3];
    struct join_result ra, rb, rc, rd;
    worker_start(a);
    worker_start(b);
    worker_start(c);
    worker_start(d);

    worker_join(f, a, "pio,size=4K,vectors=1,portio=on", &ra);
    assert_string_equal(worker_cmd(a, "start"), "ok");
    assert_string_equal(worker_cmd(a, "portio"), "ok [ 0 ]");
    worker_join(f, b, "pio,size=4K,vectors=1,portio=on", &rb);
    assert_int_equal(rb.id, 1);
    assert_string_equal(worker_cmd(b, "start"), "ok");
    assert_string_equal(worker_cmd(a, "portio"), "ok [ 0 1 ]");
    /* A client that does not ask (QEMU never does) gets the plain protocol and no channel,
     * and is no channel peer. */
    worker_join(f, c, "pio,size=4K,vectors=1", &rc);
    assert_int_equal(rc.id, 2);
    assert_string_equal(rc.peers, "[ 0 1 ]");
    assert_string_equal(worker_cmd(c, "portio"), "ok none");
    assert_string_equal(worker_cmd(b, "portio"), "ok [ 0 1 ]");

    /* One memory: what A puts in the ring to 1, B takes out of the ring from 0. */
    assert_string_equal(worker_cmd(a, "psend 1 hello-B"), "ok");
    assert_string_equal(worker_cmd(b, "precv 0 7"), "ok hello-B");
    assert_string_equal(worker_cmd(b, "precv 0 1"), "err empty");

    /* B dies without a word: the broker marks it absent for A at once. */
    worker_kill(b);
    worker_wait_portio(a, "ok [ 0 ]");
    worker_wait_event(a, "L1");
    /* A newcomer with the channel takes the free ID 1 and is present again. */
    worker_join(f, d, "pio,size=4K,vectors=1,portio=on", &rd);
    assert_int_equal(rd.id, 1);
    assert_string_equal(worker_cmd(a, "portio"), "ok [ 0 1 ]");
    assert_string_equal(worker_cmd(d, "portio"), "ok [ 0 1 ]");

    worker_kill(a);
    worker_kill(c);
    worker_kill(d);
    expect_group_gone(f, ra.broker, "pio");
}

/* minivmm-broker holds only what it made itself and its stdio on /dev/null: nothing of
 * its spawner (the lock, the ready pipe's other end, a VM's files) crossed the exec. */
static void expect_broker_fds_own(pid_t pid)
{
    char dir_path[64];
    snprintf(dir_path, sizeof(dir_path), "/proc/%d/fd", (int)pid);
    DIR *dir = opendir(dir_path);
    assert_non_null(dir);
    struct dirent *e;
    while ((e = readdir(dir))) {
        if (e->d_name[0] == '.')
            continue;
        char path[384], target[256];
        snprintf(path, sizeof(path), "%s/%s", dir_path, e->d_name);
        ssize_t n = readlink(path, target, sizeof(target) - 1);
        assert_true(n > 0);
        target[n] = '\0';
        bool own = strcmp(target, "/dev/null") == 0 || strncmp(target, "socket:", 7) == 0 ||
                   strncmp(target, "/memfd:", 7) == 0 || strncmp(target, "anon_inode:", 11) == 0;
        if (!own)
            fail_msg("the broker holds fd %s -> %s", e->d_name, target);
    }
    closedir(dir);
}

static void test_in_process_join_leaves_no_fd(void **state)
{
    struct fixture *f = *state;
    int before = test_open_fd_count();
    struct shm_spec spec;
    char why[512];
    assert_int_equal(shm_spec_parse("self,size=8K,vectors=3", &spec, why, sizeof(why)), 0);
    struct shm_group g;
    if (shm_group_join(&g, &spec, why, sizeof(why)) < 0)
        fail_msg("join: %s", why);
    f->brokers[f->broker_count++] = g.broker_pid;
    assert_true(g.spawned_broker);
    expect_broker_fds_own(g.broker_pid);
    assert_int_equal(g.id, 0);
    assert_int_equal(g.vectors, 3);
    assert_int_equal(g.mem_size, 8192);
    assert_non_null(g.mem);
    for (unsigned int v = 0; v < 3; v++)
        assert_true(g.own_fds[v] >= 0);
    assert_int_equal(g.own_fds[3], -1);
    ((char *)g.mem)[8191] = 1;
    /* Own eventfds handed to a new owner are no longer g's to close. */
    int own[SHM_MAX_VECTORS];
    assert_int_equal(shm_group_take_own_fds(&g, own), 3);
    assert_int_equal(g.own_fds[0], -1);
    assert_int_equal(shm_group_take_own_fds(&g, own + 3), 0);
    for (unsigned int v = 0; v < 3; v++)
        assert_int_equal(close(own[v]), 0);
    assert_int_equal(shm_group_start(&g, NULL, NULL), 0);
    assert_int_equal(shm_group_start(&g, NULL, NULL), -EALREADY);
    shm_group_leave(&g);
    shm_group_leave(&g);
    assert_int_equal(test_open_fd_count(), before);
    expect_group_gone(f, f->brokers[0], "self");
}

/* In a child, with the hard RLIMIT_NOFILE at hard_limit: shm_reserve_fds() for count
 * groups of vectors each. Returns its result; why gets its sentence. */
static int reserve_with_hard_limit(rlim_t hard_limit, unsigned int count, unsigned int vectors,
                                   char *why, size_t why_len)
{
    int pipe_fds[2];
    assert_int_equal(pipe(pipe_fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pipe_fds[0]);
        struct rlimit rl = {.rlim_cur = 64, .rlim_max = hard_limit};
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            _exit(100);
        struct shm_spec specs[4];
        char text[32];
        for (unsigned int i = 0; i < count; i++) {
            snprintf(text, sizeof(text), "g%u,vectors=%u", i, vectors);
            if (shm_spec_parse(text, &specs[i], why, why_len))
                _exit(101);
        }
        int ret = shm_reserve_fds(specs, count, why, why_len);
        struct rlimit now;
        getrlimit(RLIMIT_NOFILE, &now);
        dprintf(pipe_fds[1], "%d %llu %s", ret, (unsigned long long)now.rlim_cur, why);
        _exit(0);
    }
    close(pipe_fds[1]);
    char text[512] = "";
    ssize_t n = read(pipe_fds[0], text, sizeof(text) - 1);
    close(pipe_fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0 && n > 0);
    int ret, end = 0;
    unsigned long long soft;
    assert_int_equal(sscanf(text, "%d %llu %n", &ret, &soft, &end), 2);
    snprintf(why, why_len, "%s", text + end);
    if (ret == 0) /* raised far enough for the worst case */
        assert_true(soft >= SHM_FD_MARGIN + (SHM_MAX_PEERS + 1ull) * vectors * count);
    return ret;
}

static void test_fd_limit_checked_at_start(void **state)
{
    (void)state;
    char why[512] = "";
    /* Two groups of 2 vectors: 256 + 2 * 65 * 2 = 516 descriptors at most. */
    assert_int_equal(reserve_with_hard_limit(1024, 2, 2, why, sizeof(why)), 0);
    /* 64 vectors: 256 + 65 * 64 = 4416, more than a hard limit of 4096 allows. */
    assert_int_equal(reserve_with_hard_limit(4096, 1, 64, why, sizeof(why)), -EMFILE);
    assert_contains(why, "needs up to 4416 open files");
    assert_contains(why, "hard limit RLIMIT_NOFILE is 4096");
    assert_int_equal(reserve_with_hard_limit(8192, 1, 64, why, sizeof(why)), 0);
    /* Four groups of 64 vectors. */
    assert_int_equal(reserve_with_hard_limit(8192, 4, 64, why, sizeof(why)), -EMFILE);
    assert_contains(why, "needs up to 16896 open files");
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    /* Spawned brokers are orphaned on purpose; as subreaper we get to wait for them. */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) {
        perror("prctl PR_SET_CHILD_SUBREAPER");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_parse_good),
        cmocka_unit_test(test_spec_parse_bad),
        cmocka_unit_test(test_fd_limit_checked_at_start),
        cmocka_unit_test_setup_teardown(test_two_processes_share_memory_and_see_each_other, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_creator_killed_group_survives, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size_and_vector_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_runtime_folder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_files_are_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_simultaneous_starts_make_one_broker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory_only_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broker_lost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_in_process_join_leaves_no_fd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_portio_channel_presence_and_rings, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
