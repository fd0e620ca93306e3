/* minivmm-broker from the outside, as a person runs it for a QEMU-only group: started by
 * hand in a private XDG_RUNTIME_DIR, it prints its socket, refuses a second start of the
 * same group, greets a client as QEMU's ivshmem spec says, and on SIGTERM ends with
 * status 0 having removed its socket, status and lock files. No KVM needed. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/unit/support/ivshmem_client.h"
#include "tests/unit/support/text.h"

struct fixture {
    char dir[256];
    char runtime[300];
    char sock[400];
    const char *exe;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    f->exe = getenv("MINIVMM_BROKER");
    if (!f->exe || !*f->exe) {
        fprintf(stderr, "MINIVMM_BROKER is not set: run this test through ctest\n");
        free(f);
        return -1;
    }
    test_tmpdir(f->dir, sizeof(f->dir), "broker-program");
    snprintf(f->runtime, sizeof(f->runtime), "%s/minivmm", f->dir);
    snprintf(f->sock, sizeof(f->sock), "%s/grp.sock", f->runtime);
    setenv("XDG_RUNTIME_DIR", f->dir, 1);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    test_rmtree(f->dir);
    free(f);
    return 0;
}

/* Starts minivmm-broker with arg; its stdout and stderr come back through *out. */
static pid_t broker_exec(struct fixture *f, const char *arg, int *out)
{
    int pipe_fds[2];
    assert_int_equal(pipe2(pipe_fds, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(pipe_fds[1], 1);
        dup2(pipe_fds[1], 2);
        alarm(30); /* a stuck broker must not outlive a failed test for long */
        execl(f->exe, "minivmm-broker", arg, (char *)NULL);
        _exit(127);
    }
    close(pipe_fds[1]);
    *out = pipe_fds[0];
    return pid;
}

/* Reads from fd until text holds want (or EOF, or 5 s). */
static void read_until(int fd, char *text, size_t len, const char *want)
{
    size_t got = strlen(text);
    int64_t deadline = test_now_ms() + 5000;
    while (!strstr(text, want) && got + 1 < len && test_now_ms() < deadline) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t n = read(fd, text + got, len - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        text[got] = '\0';
    }
}

static void test_by_hand(void **state)
{
    struct fixture *f = *state;
    char text[4096] = "", want[512];
    int out;
    pid_t pid = broker_exec(f, "grp,size=64K,vectors=2", &out);
    snprintf(want, sizeof(want), "socket %s\n", f->sock);
    read_until(out, text, sizeof(text), want);
    assert_contains(text, want);
    assert_contains(text, "-device ivshmem-doorbell,chardev=grp,vectors=2");

    /* The same group again: refused, the running one untouched. */
    char second_text[1024] = "";
    int second_out, status;
    pid_t second = broker_exec(f, "grp", &second_out);
    assert_true(test_wait_exit(second, 15000, &status));
    read_until(second_out, second_text, sizeof(second_text), "\n");
    close(second_out);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 73);
    assert_contains(second_text, "group 'grp' already exists");
    assert_contains(second_text, f->sock);

    /* A client gets the greeting of QEMU's server: version 0, ID 0, the memory, its own
     * eventfds. */
    struct ivclient *c = ivclient_connect(f->sock, 2);
    ivclient_burst(c);
    assert_int_equal(c->id, 0);
    struct stat st;
    assert_int_equal(fstat(c->mem_fd, &st), 0);
    assert_int_equal(st.st_size, 64 << 10);
    assert_true(c->own[0] >= 0 && c->own[1] >= 0);

    /* By hand the broker outlives its last client... */
    ivclient_close(c);
    usleep(200 * 1000);
    assert_int_equal(waitpid(pid, &status, WNOHANG), 0);
    char path[512];
    snprintf(path, sizeof(path), "%s/grp.group", f->runtime);
    assert_int_equal(access(path, F_OK), 0);

    /* ... and SIGTERM ends it cleanly, taking its files along. */
    assert_int_equal(kill(pid, SIGTERM), 0);
    assert_true(test_wait_exit(pid, 5000, &status));
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    read_until(out, text, sizeof(text), "stopped");
    close(out);
    assert_contains(text, "group grp stopped");
    const char *suffixes[] = {".sock", ".group", ".lock"};
    for (unsigned int i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/grp%s", f->runtime, suffixes[i]);
        if (access(path, F_OK) == 0)
            fail_msg("%s is left behind", path);
    }
}

static void test_bad_command_lines(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *arg;
        int status;
        const char *text;
    } cases[] = {
        {"--help", 0, "Usage: minivmm-broker"},
        {"grp,size=3K", 64, "size '3K'"},
        {"grp,portio=on", 64, "portio is each VM's choice"},
        {"--frobnicate", 64, "unknown option"},
        {"--runtime-dir=/tmp", 64, "missing NAME"},
    };
    for (unsigned int i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[4096] = "";
        int out, status;
        pid_t pid = broker_exec(f, cases[i].arg, &out);
        assert_true(test_wait_exit(pid, 5000, &status));
        read_until(out, text, sizeof(text), cases[i].text);
        close(out);
        assert_true(WIFEXITED(status));
        if (WEXITSTATUS(status) != cases[i].status)
            fail_msg("minivmm-broker %s: status %d, expected %d: %s", cases[i].arg,
                     WEXITSTATUS(status), cases[i].status, text);
        assert_contains(text, cases[i].text);
    }
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_by_hand, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_command_lines, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
