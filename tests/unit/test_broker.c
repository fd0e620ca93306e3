/* The broker against a client that follows QEMU's ivshmem server protocol to the letter:
 * the broker runs in a forked child on a socket in a temporary folder, and the test
 * process plays one or more VMs. Also the runtime folder checks and stale-broker test. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/unit/support/ivshmem_client.h"
#include "tests/unit/support/text.h"
#include "vmm/broker/connect.h"
#include "vmm/broker/runtime.h"
#include "vmm/broker/server.h"
#include "vmm/broker/status.h"
#include "vmm/ivshmem_protocol.h"
#include "vmm/size.h"

#define NAME  "grp"
#define SIZE  (64u << 10)
#define MAX_C 70

struct fixture {
    char dir[256];
    char sock[300];
    char status[300];
    char lock[300];
    pid_t broker;
    struct ivclient *clients[MAX_C];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    test_tmpdir(f->dir, sizeof(f->dir), "broker-test");
    snprintf(f->sock, sizeof(f->sock), "%s/%s.sock", f->dir, NAME);
    snprintf(f->status, sizeof(f->status), "%s/%s.group", f->dir, NAME);
    snprintf(f->lock, sizeof(f->lock), "%s/%s.lock", f->dir, NAME);
    /* Nothing here may touch the user's real runtime folder. */
    setenv("XDG_RUNTIME_DIR", f->dir, 1);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < MAX_C; i++)
        ivclient_close(f->clients[i]);
    if (f->broker > 0) {
        kill(f->broker, SIGKILL);
        waitpid(f->broker, NULL, 0);
    }
    test_rmtree(f->dir);
    free(f);
    return 0;
}

/* The broker loop in a forked child, as minivmm-broker runs it but without leaving its
 * parent, so the test can wait for its exit status. */
static void broker_start(struct fixture *f, unsigned int vectors, int first_client_timeout_ms)
{
    char why[256];
    int listen_fd = broker_listen(f->sock, why, sizeof(why));
    if (listen_fd < 0)
        fail_msg("broker_listen: %s", why);
    int ready[2];
    assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(30); /* a stuck broker must not outlive a failed test for long */
        close(ready[0]);
        /* As minivmm-broker is named: joiners take it for a live broker. */
        prctl(PR_SET_NAME, BROKER_PROCESS_NAME, 0, 0, 0);
        /* Sandboxed as a spawned broker is: every test here checks its allow-list too. */
        struct broker_options opts = {
            .first_client_timeout_ms = first_client_timeout_ms,
            .ready_fd = ready[1],
            .lock_fd = -1,
            .stop_fd = -1,
            .sandbox = true,
        };
        _exit(broker_run_opts(listen_fd, f->dir, NAME, SIZE, vectors, &opts) == 0 ? 0 : 1);
    }
    f->broker = pid;
    close(listen_fd);
    close(ready[1]);
    char text[64] = "";
    struct pollfd p = {.fd = ready[0], .events = POLLIN};
    assert_int_equal(poll(&p, 1, 3000), 1);
    assert_true(read(ready[0], text, sizeof(text) - 1) > 0);
    close(ready[0]);
    char expected[64];
    snprintf(expected, sizeof(expected), "ok %d\n", (int)pid);
    assert_string_equal(text, expected);
}

/* A client that joins as QEMU does, or (greet) as minivmm's do: greeting the broker first. */
static struct ivclient *join(struct fixture *f, int slot, unsigned int vectors, bool greet)
{
    struct ivclient *c = ivclient_connect(f->sock, vectors);
    if (greet)
        assert_int_equal(ivproto_send(c->sock, IVPROTO_HELLO, -1), 0);
    ivclient_burst(c);
    f->clients[slot] = c;
    return c;
}

static struct ivclient *client_join(struct fixture *f, int slot, unsigned int vectors)
{
    return join(f, slot, vectors, false);
}

static struct ivclient *minivmm_client_join(struct fixture *f, int slot, unsigned int vectors)
{
    return join(f, slot, vectors, true);
}

static void client_drop(struct fixture *f, int slot)
{
    ivclient_close(f->clients[slot]);
    f->clients[slot] = NULL;
}

/* The broker exits 0 within timeout_ms and leaves no file behind. */
static void expect_broker_gone(struct fixture *f, int timeout_ms)
{
    int status;
    assert_true(test_wait_exit(f->broker, timeout_ms, &status));
    f->broker = 0;
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(access(f->sock, F_OK), -1);
    assert_int_equal(access(f->status, F_OK), -1);
    assert_int_equal(access(f->lock, F_OK), -1);
}

static char *read_text(const char *path)
{
    static char text[8192];
    FILE *file = fopen(path, "r");
    if (!file)
        fail_msg("fopen %s: %s", path, strerror(errno));
    size_t n = fread(text, 1, sizeof(text) - 1, file);
    text[n] = '\0';
    fclose(file);
    return text;
}

static void test_first_client(void **state)
{
    struct fixture *f = *state;
    broker_start(f, 2, 5000);
    struct ivclient *c = client_join(f, 0, 2);
    assert_int_equal(c->id, 0);
    /* Exactly: 0, 0, -1+fd, 0+fd, 0+fd. */
    assert_int_equal(c->seen, 5);
    const int64_t values[] = {0, 0, -1, 0, 0};
    const bool fds[] = {false, false, true, true, true};
    for (unsigned int i = 0; i < 5; i++) {
        assert_int_equal(c->seen_value[i], values[i]);
        assert_int_equal(c->seen_fd[i], fds[i]);
    }
    /* The memory: sealed before it was shared, the right size, mappable shared. */
    int seals = fcntl(c->mem_fd, F_GET_SEALS);
    assert_true(seals >= 0);
    assert_int_equal(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
                     F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
    struct stat st;
    assert_int_equal(fstat(c->mem_fd, &st), 0);
    assert_int_equal(st.st_size, SIZE);
    assert_int_equal(ftruncate(c->mem_fd, SIZE / 2), -1);
    assert_int_equal(errno, EPERM);
    void *mem = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, c->mem_fd, 0);
    assert_true(mem != MAP_FAILED);
    munmap(mem, SIZE);
    /* Own eventfds are eventfds, and distinct. */
    assert_true(c->own[0] >= 0 && c->own[1] >= 0);
    eventfd_ring(c->own[0], 1);
    assert_int_equal(eventfd_take(c->own[1]), 0);
    assert_int_equal(eventfd_take(c->own[0]), 1);
    ivclient_expect_quiet(c, 100);
}

static void test_second_client_sees_first_and_is_announced(void **state)
{
    struct fixture *f = *state;
    broker_start(f, 2, 5000);
    struct ivclient *a = client_join(f, 0, 2);
    struct ivclient *b = client_join(f, 1, 2);
    assert_int_equal(b->id, 1);
    /* 0, 1, -1+fd, then peer 0's two fds, then its own two. */
    const int64_t values[] = {0, 1, -1, 0, 0, 1, 1};
    assert_int_equal(b->seen, 7);
    for (unsigned int i = 0; i < 7; i++) {
        assert_int_equal(b->seen_value[i], values[i]);
        assert_int_equal(b->seen_fd[i], i >= 2);
    }
    assert_int_equal(b->peer_count[0], 2);
    /* The first client hears of ID 1: two messages, each with an fd. */
    ivclient_expect_join(a, 1);
    ivclient_expect_quiet(a, 50);
    ivclient_expect_quiet(b, 50);

    /* One memory. */
    char *ma = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, a->mem_fd, 0);
    char *mb = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, b->mem_fd, 0);
    assert_true(ma != MAP_FAILED && mb != MAP_FAILED);
    strcpy(ma + SIZE - 64, "written by A");
    assert_string_equal(mb + SIZE - 64, "written by A");
    munmap(ma, SIZE);
    munmap(mb, SIZE);
}

static void test_eventfds_connect_peers(void **state)
{
    struct fixture *f = *state;
    broker_start(f, 2, 5000);
    struct ivclient *a = client_join(f, 0, 2);
    struct ivclient *b = client_join(f, 1, 2);
    ivclient_expect_join(a, 1);
    for (unsigned int v = 0; v < 2; v++) {
        /* A rings B on vector v: B's own fd for v counts it, B's other vector does not. */
        eventfd_ring(a->peer[1][v], 5 + v);
        assert_int_equal(eventfd_take(b->own[1 - v]), 0);
        assert_int_equal(eventfd_take(b->own[v]), 5 + v);
        /* And B rings A through the fds of its burst. */
        eventfd_ring(b->peer[0][v], 9);
        assert_int_equal(eventfd_take(a->own[1 - v]), 0);
        assert_int_equal(eventfd_take(a->own[v]), 9);
    }
}

static void test_leave_is_announced_and_id_reused(void **state)
{
    struct fixture *f = *state;
    broker_start(f, 1, 5000);
    struct ivclient *a = minivmm_client_join(f, 0, 1);
    minivmm_client_join(f, 1, 1);
    ivclient_expect_join(a, 1);
    struct ivclient *c = minivmm_client_join(f, 2, 1);
    assert_int_equal(c->id, 2);
    ivclient_expect_join(a, 2);
    ivclient_expect_join(f->clients[1], 2);

    /* 1 leaves: the others get "1" without an fd. */
    client_drop(f, 1);
    assert_int_equal(ivclient_expect(a, 1, false), -1);
    assert_int_equal(ivclient_expect(c, 1, false), -1);

    /* With only minivmm clients, the next joiner gets the lowest free ID, 1, and hears of
     * 0 and 2 in ID order. */
    struct ivclient *d = minivmm_client_join(f, 3, 1);
    assert_int_equal(d->id, 1);
    const int64_t values[] = {0, 1, -1, 0, 2, 1};
    assert_int_equal(d->seen, 6);
    for (unsigned int i = 0; i < 6; i++)
        assert_int_equal(d->seen_value[i], values[i]);
    ivclient_expect_join(a, 1);
    ivclient_expect_join(c, 1);
    /* The new 1 is really reachable through the fds the old peers got for it. */
    eventfd_ring(a->peer[1][0], 1);
    assert_int_equal(eventfd_take(d->own[0]), 1);
    ivclient_expect_quiet(a, 50);
}

/* QEMU's device cannot take back an ID it saw leave: while one that saw it is connected,
 * joiners get other IDs; once none is, the ID is given again. */
static void test_id_left_before_qemu_is_not_reused(void **state)
{
    struct fixture *f = *state;
    broker_start(f, 1, 5000);
    struct ivclient *qemu_a = client_join(f, 0, 1);
    minivmm_client_join(f, 1, 1);
    ivclient_expect_join(qemu_a, 1);
    struct ivclient *qemu_c = client_join(f, 2, 1);
    ivclient_expect_join(qemu_a, 2);

    client_drop(f, 1);
    assert_int_equal(ivclient_expect(qemu_a, 1, false), -1);
    assert_int_equal(ivclient_expect(qemu_c, 1, false), -1);
    struct ivclient *d = client_join(f, 3, 1);
    assert_int_equal(d->id, 3); /* not 1: both QEMU devices saw 1 leave */
    ivclient_expect_join(qemu_a, 3);
    ivclient_expect_join(qemu_c, 3);

    /* d (a QEMU device too) saw 0 and 2 leave, but joined after 1 left. */
    client_drop(f, 0);
    client_drop(f, 2);
    assert_int_equal(ivclient_expect(d, 0, false), -1);
    assert_int_equal(ivclient_expect(d, 2, false), -1);
    struct ivclient *e = minivmm_client_join(f, 4, 1);
    assert_int_equal(e->id, 1);
}

static void test_sixty_four_vectors(void **state)
{
    struct fixture *f = *state;
    /* Thousands of fds in flight: the broker raises its own RLIMIT_NOFILE for this. */
    broker_start(f, SHM_MAX_VECTORS, 5000);
    const int n = 6;
    for (int i = 0; i < n; i++) {
        struct ivclient *c = client_join(f, i, SHM_MAX_VECTORS);
        assert_int_equal(c->id, i);
        for (int p = 0; p < i; p++) {
            assert_int_equal(c->peer_count[p], SHM_MAX_VECTORS);
            ivclient_expect_join(f->clients[p], i);
        }
    }
    /* The last vector of the last pair is wired like the first. */
    eventfd_ring(f->clients[0]->peer[n - 1][SHM_MAX_VECTORS - 1], 2);
    assert_int_equal(eventfd_take(f->clients[n - 1]->own[SHM_MAX_VECTORS - 1]), 2);
    eventfd_ring(f->clients[n - 1]->peer[0][SHM_MAX_VECTORS - 1], 3);
    assert_int_equal(eventfd_take(f->clients[0]->own[SHM_MAX_VECTORS - 1]), 3);
}

static void test_memory_only_group(void **state)
{
    struct fixture *f = *state;
    broker_start(f, 0, 5000);
    struct ivclient *a = client_join(f, 0, 0);
    assert_int_equal(a->seen, 3); /* 0, 0, -1+fd: nothing more exists to send */
    struct ivclient *b = client_join(f, 1, 0);
    assert_int_equal(b->id, 1);
    assert_int_equal(b->seen, 3);
    ivclient_expect_quiet(b, 50);
    /* A join cannot be announced without eventfds... */
    ivclient_expect_quiet(a, 50);
    /* ...but a departure is, as QEMU's server does: the ID without an fd. */
    client_drop(f, 1);
    assert_int_equal(ivclient_expect(a, 1, false), -1);
}

static void test_status_file(void **state)
{
    struct fixture *f = *state;
    broker_start(f, 2, 5000);
    struct broker_status st;
    assert_int_equal(broker_status_read(f->status, &st), 0);
    assert_int_equal(st.peer_count, 0);

    client_join(f, 0, 2);
    client_join(f, 1, 2);
    ivclient_expect_join(f->clients[0], 1); /* the broker has written the file by now */
    struct stat sb;
    assert_int_equal(stat(f->status, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    char line[128];
    const char *text = read_text(f->status);
    assert_contains(text, "name=" NAME "\n");
    assert_contains(text, "size=65536\n");
    assert_contains(text, "vectors=2\n");
    snprintf(line, sizeof(line), "broker_pid=%d\n", (int)f->broker);
    assert_contains(text, line);
    snprintf(line, sizeof(line), "peer=0 pid=%d uid=%u\n", (int)getpid(), (unsigned)geteuid());
    assert_contains(text, line);
    snprintf(line, sizeof(line), "peer=1 pid=%d uid=%u\n", (int)getpid(), (unsigned)geteuid());
    assert_contains(text, line);

    assert_int_equal(broker_status_read(f->status, &st), 0);
    assert_string_equal(st.name, NAME);
    assert_int_equal(st.size, SIZE);
    assert_int_equal(st.vectors, 2);
    assert_int_equal(st.broker_pid, f->broker);
    assert_int_equal(st.broker_uid, geteuid());
    assert_int_equal(st.peer_count, 2);
    assert_int_equal(st.peers[1].id, 1);
    assert_int_equal(st.peers[1].pid, getpid());

    client_drop(f, 0);
    assert_int_equal(ivclient_expect(f->clients[1], 0, false), -1);
    assert_int_equal(broker_status_read(f->status, &st), 0);
    assert_int_equal(st.peer_count, 1);
    assert_int_equal(st.peers[0].id, 1);
    assert_not_contains(read_text(f->status), "peer=0 ");
    /* No temporary file is left beside it. */
    char tmp[320];
    snprintf(tmp, sizeof(tmp), "%s.tmp", f->status);
    assert_int_equal(access(tmp, F_OK), -1);
}

static void test_status_file_parser_refuses_garbage(void **state)
{
    struct fixture *f = *state;
    struct broker_status st;
    FILE *file = fopen(f->status, "w");
    assert_non_null(file);
    fputs("name=x\nsize=4096\n", file); /* no vectors, no broker_pid */
    fclose(file);
    assert_int_equal(broker_status_read(f->status, &st), -EBADMSG);
    file = fopen(f->status, "w");
    fputs("name=../evil\nsize=4096\nvectors=1\nbroker_pid=1\n", file);
    fclose(file);
    assert_int_equal(broker_status_read(f->status, &st), -EBADMSG);
    file = fopen(f->status, "w");
    fputs("name=ok\nsize=4096\nvectors=1\nbroker_pid=1\npeer=99 pid=1 uid=0\n", file);
    fclose(file);
    assert_int_equal(broker_status_read(f->status, &st), -EBADMSG);
    file = fopen(f->status, "w");
    fputs("name=ok\nsize=4096\nvectors=1\nbroker_pid=1\nfuture=1\n", file);
    fclose(file);
    assert_int_equal(broker_status_read(f->status, &st), 0);
    unlink(f->status);
    assert_int_equal(broker_status_read(f->status, &st), -ENOENT);
}

static void test_other_uid_is_refused(void **state)
{
    struct fixture *f = *state;
    if (geteuid() != 0) {
        print_message("skipped: setuid to another user needs root\n");
        skip();
    }
    broker_start(f, 1, 5000);
    struct ivclient *a = client_join(f, 0, 1);
    /* Let nobody reach the socket, so that only SO_PEERCRED stands in the way. */
    assert_int_equal(chmod(f->dir, 0711), 0);
    assert_int_equal(chmod(f->sock, 0777), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        alarm(10);
        if (setgid(65534) < 0 || setuid(65534) < 0)
            _exit(2);
        int sock = ivclient_dial(f->sock);
        if (sock < 0)
            _exit(3);
        int64_t value;
        int fd;
        /* Closed without a single message: not even the version. */
        _exit(ivproto_recv(sock, &value, &fd) == -EPIPE ? 0 : 4);
    }
    int status;
    assert_true(test_wait_exit(child, 5000, &status));
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(chmod(f->dir, 0700), 0);

    /* The others heard nothing, no ID was used, and the refusal is on record. */
    ivclient_expect_quiet(a, 50);
    struct ivclient *b = client_join(f, 1, 1);
    assert_int_equal(b->id, 1);
    ivclient_expect_join(a, 1);
    struct broker_status st;
    assert_int_equal(broker_status_read(f->status, &st), 0);
    assert_int_equal(st.refused, 1);
    assert_int_equal(st.peer_count, 2);
}

static void test_group_full(void **state)
{
    struct fixture *f = *state;
    broker_start(f, 0, 5000);
    for (int i = 0; i < SHM_MAX_PEERS; i++)
        assert_int_equal(client_join(f, i, 0)->id, i);
    /* The 65th is refused: EOF before any message. */
    int sock = ivclient_dial(f->sock);
    assert_true(sock >= 0);
    int64_t value;
    int fd;
    assert_int_equal(ivproto_recv(sock, &value, &fd), -EPIPE);
    close(sock);
    /* A VMM about to join is told so before it connects, and after, if it raced. */
    char why[256];
    bool spawned;
    pid_t pid;
    struct shm_spec spec = {.name = NAME, .size = SIZE, .vectors = 0, .sandbox = true};
    assert_int_equal(broker_connect(f->dir, &spec, &spawned, &pid, why, sizeof(why)), -EUSERS);
    assert_contains(why, "is full: it has 64 peers");
    assert_false(spawned);
    why[0] = '\0';
    assert_int_equal(broker_check_room(f->dir, NAME, why, sizeof(why)), -EUSERS);
    assert_contains(why, "is full");
    /* A departure frees an ID for the next one. */
    client_drop(f, 17);
    for (int i = 0; i < SHM_MAX_PEERS; i++)
        if (f->clients[i])
            assert_int_equal(ivclient_expect(f->clients[i], 17, false), -1);
    assert_int_equal(client_join(f, 17, 0)->id, 17);
    assert_int_equal(broker_check_room(f->dir, NAME, why, sizeof(why)), -EUSERS);
    client_drop(f, 17);
    assert_int_equal(ivclient_expect(f->clients[0], 17, false), -1);
    assert_int_equal(broker_check_room(f->dir, NAME, why, sizeof(why)), 0);
    assert_int_equal(client_join(f, 17, 0)->id, 17);
    struct broker_status st;
    assert_int_equal(broker_status_read(f->status, &st), 0);
    assert_int_equal(st.refused, 1);
    assert_int_equal(st.peer_count, SHM_MAX_PEERS);
}

static void test_exits_after_last_client(void **state)
{
    struct fixture *f = *state;
    broker_start(f, 2, 5000);
    client_join(f, 0, 2);
    client_join(f, 1, 2);
    client_drop(f, 0);
    /* One client left: still serving. */
    usleep(100000);
    assert_int_equal(waitpid(f->broker, NULL, WNOHANG), 0);
    assert_int_equal(access(f->sock, F_OK), 0);
    client_drop(f, 1);
    expect_broker_gone(f, 3000);
}

static void test_exits_when_nobody_comes(void **state)
{
    struct fixture *f = *state;
    int64_t start = test_now_ms();
    broker_start(f, 2, 200);
    expect_broker_gone(f, 3000);
    assert_true(test_now_ms() - start >= 150);
}

static void test_waits_for_joiner_holding_the_lock(void **state)
{
    struct fixture *f = *state;
    broker_start(f, 1, 5000);
    client_join(f, 0, 1);
    /* A joiner holds NAME.lock (it is reading NAME.group, about to connect) while the last
     * client leaves: the broker must not remove the socket under it. */
    int lock = open(f->lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    assert_true(lock >= 0);
    assert_int_equal(flock(lock, LOCK_EX), 0);
    client_drop(f, 0);
    usleep(200000);
    assert_int_equal(access(f->sock, F_OK), 0);
    struct ivclient *b = client_join(f, 1, 1);
    assert_int_equal(b->id, 0);
    close(lock);
    usleep(100000);
    assert_int_equal(waitpid(f->broker, NULL, WNOHANG), 0);
    client_drop(f, 1);
    expect_broker_gone(f, 3000);
}

static void test_bad_parameters_reported_on_ready_pipe(void **state)
{
    struct fixture *f = *state;
    const struct {
        const char *name;
        uint64_t size;
        unsigned int vectors;
    } cases[] = {
        {NAME, 12288, 1},                  /* not a power of two */
        {NAME, 2048, 1},                   /* too small */
        {NAME, SHM_MAX_SIZE * 2, 1},       /* too large */
        {NAME, SIZE, SHM_MAX_VECTORS + 1}, /* too many vectors */
        {"../x", SIZE, 1},                 /* a name that is a path */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int sv[2], ready[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
        close(sv[1]);
        struct broker_options opts = {
            .first_client_timeout_ms = 0, .ready_fd = ready[1], .lock_fd = -1, .stop_fd = -1};
        assert_int_equal(
            broker_run_opts(sv[0], f->dir, cases[i].name, cases[i].size, cases[i].vectors, &opts),
            -EINVAL);
        char text[256] = "";
        assert_true(read(ready[0], text, sizeof(text) - 1) > 0);
        assert_contains(text, "error 22 ");
        close(ready[0]);
    }
    assert_int_equal(access(f->status, F_OK), -1);
}

static void test_runtime_dir_checks(void **state)
{
    struct fixture *f = *state;
    char dir[300], expected[300], why[512];
    snprintf(expected, sizeof(expected), "%s/minivmm", f->dir);
    assert_int_equal(broker_runtime_dir(dir, sizeof(dir), why, sizeof(why)), 0);
    assert_string_equal(dir, expected);
    struct stat st;
    assert_int_equal(lstat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0700);
    /* Created 0700 even under a permissive umask and a restrictive one. */
    rmdir(dir);
    mode_t old = umask(0277);
    assert_int_equal(broker_runtime_dir(dir, sizeof(dir), why, sizeof(why)), 0);
    umask(old);
    assert_int_equal(lstat(dir, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);

    assert_int_equal(chmod(dir, 0755), 0);
    assert_int_equal(broker_runtime_dir(dir, sizeof(dir), why, sizeof(why)), -EPERM);
    assert_contains(why, expected);
    assert_contains(why, "0755");
    assert_contains(why, "0700");

    /* A symlink to a perfectly good folder is still refused. */
    char real[320];
    snprintf(real, sizeof(real), "%s/real", f->dir);
    assert_int_equal(mkdir(real, 0700), 0);
    rmdir(dir);
    assert_int_equal(symlink(real, dir), 0);
    assert_int_equal(broker_runtime_dir(dir, sizeof(dir), why, sizeof(why)), -ELOOP);
    assert_contains(why, "symlink");
    unlink(dir);

    if (geteuid() == 0) {
        assert_int_equal(mkdir(dir, 0700), 0);
        assert_int_equal(chown(dir, 65534, 65534), 0);
        assert_int_equal(broker_runtime_dir(dir, sizeof(dir), why, sizeof(why)), -EPERM);
        assert_contains(why, "owned by uid 65534");
        rmdir(dir);
    }

    /* A relative XDG_RUNTIME_DIR is ignored, as the XDG spec says. */
    setenv("XDG_RUNTIME_DIR", "relative/dir", 1);
    char fallback[64];
    snprintf(fallback, sizeof(fallback), "/tmp/minivmm-%u", (unsigned int)geteuid());
    bool existed = access(fallback, F_OK) == 0;
    if (broker_runtime_dir(dir, sizeof(dir), why, sizeof(why)) == 0 && !existed)
        rmdir(fallback);
    assert_string_equal(dir, fallback);

    /* Missing XDG_RUNTIME_DIR folder: the mkdir error names the path. */
    char missing[320];
    snprintf(missing, sizeof(missing), "%s/no/such", f->dir);
    setenv("XDG_RUNTIME_DIR", missing, 1);
    assert_int_equal(broker_runtime_dir(dir, sizeof(dir), why, sizeof(why)), -ENOENT);
    assert_contains(why, "mkdir");
    assert_contains(why, missing);
}

static void test_socket_path_too_long(void **state)
{
    (void)state;
    char path[200], why[512];
    memset(path, 'a', sizeof(path) - 1);
    path[0] = '/';
    path[sizeof(path) - 1] = '\0';
    assert_int_equal(broker_listen(path, why, sizeof(why)), -ENAMETOOLONG);
    assert_contains(why, "sun_path");
    assert_contains(why, "XDG_RUNTIME_DIR");

    bool spawned;
    pid_t pid;
    struct shm_spec spec = {.name = NAME, .size = SIZE, .vectors = 1, .sandbox = true};
    assert_int_equal(broker_connect(path, &spec, &spawned, &pid, why, sizeof(why)), -ENAMETOOLONG);
    assert_contains(why, "sun_path");
}

static void test_socket_mode_is_0600(void **state)
{
    struct fixture *f = *state;
    mode_t old = umask(0);
    char why[256];
    int fd = broker_listen(f->sock, why, sizeof(why));
    umask(old);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(stat(f->sock, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);
    /* And the umask is back as it was. */
    assert_int_equal(umask(old), old);
    close(fd);
}

static void test_broker_alive(void **state)
{
    (void)state;
    assert_false(broker_alive(0));
    assert_false(broker_alive(getpid())); /* alive, but not a broker */
    int go[2];
    assert_int_equal(pipe(go), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        prctl(PR_SET_NAME, BROKER_PROCESS_NAME, 0, 0, 0);
        char c;
        close(go[1]);
        alarm(10);
        _exit(read(go[0], &c, 1) < 0);
    }
    close(go[0]);
    int64_t deadline = test_now_ms() + 3000;
    while (!broker_alive(child) && test_now_ms() < deadline)
        usleep(1000);
    assert_true(broker_alive(child));
    close(go[1]);
    /* A zombie is dead. */
    siginfo_t info;
    assert_int_equal(waitid(P_PID, (id_t)child, &info, WEXITED | WNOWAIT), 0);
    assert_false(broker_alive(child));
    waitpid(child, NULL, 0);
    assert_false(broker_alive(child));
}

static void test_name_rules(void **state)
{
    (void)state;
    assert_true(shm_name_valid("a"));
    assert_true(shm_name_valid("vm-group_1.x"));
    assert_false(shm_name_valid(""));
    assert_false(shm_name_valid(NULL));
    assert_false(shm_name_valid(".hidden"));
    assert_false(shm_name_valid("a/b"));
    assert_false(shm_name_valid("a b"));
    char long_name[SHM_NAME_MAX + 2];
    memset(long_name, 'x', sizeof(long_name));
    long_name[SHM_NAME_MAX] = '\0';
    assert_true(shm_name_valid(long_name));
    long_name[SHM_NAME_MAX] = 'x';
    long_name[SHM_NAME_MAX + 1] = '\0';
    assert_false(shm_name_valid(long_name));
}

static void test_format_size(void **state)
{
    (void)state;
    char text[32];
    format_size(4096, text, sizeof(text));
    assert_string_equal(text, "4K");
    format_size(4ull << 20, text, sizeof(text));
    assert_string_equal(text, "4M");
    format_size(16ull << 30, text, sizeof(text));
    assert_string_equal(text, "16G");
    format_size(12345, text, sizeof(text));
    assert_string_equal(text, "12345");
}

int main(void)
{
    /* A client the broker drops must not kill the test with SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    shm_raise_fd_limit(8192);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_first_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_client_sees_first_and_is_announced, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_eventfds_connect_peers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leave_is_announced_and_id_reused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_id_left_before_qemu_is_not_reused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sixty_four_vectors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory_only_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_file_parser_refuses_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_uid_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exits_after_last_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exits_when_nobody_comes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_waits_for_joiner_holding_the_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_parameters_reported_on_ready_pipe, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_runtime_dir_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_socket_path_too_long, setup, teardown),
        cmocka_unit_test_setup_teardown(test_socket_mode_is_0600, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broker_alive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_name_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_format_size, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
