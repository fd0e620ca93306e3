/* The sandbox from the inside: each case forks a child that enters one kind's sandbox and
 * then makes system calls. Calls on the kind's allow-list must work (or fail with their
 * own errno, never SIGSYS); a call off the list must end the child with
 * EXIT_SANDBOX_DENIED and one stderr line naming the call and the thread. The parent also
 * reads a sandboxed child's /proc/PID/status: seccomp filter mode, no_new_privs, and no
 * capability left (the tests run as root in CI, so there are some to lose). */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/unit/support/text.h"
#include "vmm/exit_codes.h"
#include "vmm/sandbox.h"

typedef int (*child_body)(void);

struct child_result {
    int status; /* waitpid status */
    char err[1024];
};

/* Runs body in a child named thread_name that first enters kind's sandbox; the child's
 * stderr is collected. body returns the child's exit status. */
static void run_sandboxed(enum sandbox_kind kind, const char *thread_name, child_body body,
                          struct child_result *result)
{
    int err_pipe[2];
    assert_int_equal(pipe(err_pipe), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(err_pipe[1], STDERR_FILENO);
        close(err_pipe[0]);
        close(err_pipe[1]);
        prctl(PR_SET_NAME, thread_name, 0, 0, 0);
        char why[256];
        if (sandbox_enter(kind, why, sizeof(why)) != 0) {
            dprintf(STDERR_FILENO, "sandbox_enter: %s\n", why);
            _exit(100);
        }
        _exit(body());
    }
    close(err_pipe[1]);
    size_t len = 0;
    ssize_t n;
    while ((n = read(err_pipe[0], result->err + len, sizeof(result->err) - 1 - len)) > 0)
        len += (size_t)n;
    result->err[len] = '\0';
    close(err_pipe[0]);
    assert_int_equal(waitpid(pid, &result->status, 0), pid);
}

static void assert_exit(const struct child_result *r, int code)
{
    if (!WIFEXITED(r->status))
        fail_msg("child did not exit: status 0x%x, stderr: %s", r->status, r->err);
    if (WEXITSTATUS(r->status) != code)
        fail_msg("child exit %d, expected %d; stderr: %s", WEXITSTATUS(r->status), code, r->err);
}

static void assert_denied(const struct child_result *r, const char *thread, const char *call)
{
    assert_exit(r, EXIT_SANDBOX_DENIED);
    char expected[128];
    snprintf(expected, sizeof(expected), "thread '%s' made system call %s (", thread, call);
    assert_contains(r->err, expected);
    assert_contains(r->err, "exiting with status 72");
    /* One line, nothing else. */
    assert_int_equal(strchr(r->err, '\n') - r->err + 1, (long)strlen(r->err));
}

/* What every kind may do: allocate (small and large, with free), time, short sleeps. */
static int common_calls(void)
{
    void *big = malloc(8 << 20); /* mmap */
    if (!big)
        return 10;
    memset(big, 1, 8 << 20);
    free(big); /* munmap */
    struct timespec now, pause = {0, 1000};
    if (clock_gettime(CLOCK_MONOTONIC, &now) || nanosleep(&pause, NULL))
        return 11;
    return 0;
}

static int vcpu_allowed_calls(void)
{
    if (common_calls())
        return 2;
    if (write(STDOUT_FILENO, "", 0) < 0)
        return 3;
    /* An allowed request on something that is not a vCPU: ENOTTY, not SIGSYS. */
    if (ioctl(STDOUT_FILENO, KVM_RUN, 0) != -1 || errno != ENOTTY)
        return 4;
    if (ioctl(STDOUT_FILENO, KVM_IRQ_LINE, NULL) != -1)
        return 5;
    /* The VM's stop kick: a harmless signal 0 to this very thread. */
    if (syscall(SYS_tgkill, getpid(), gettid(), 0))
        return 6;
    return 0;
}

static int io_allowed_calls(void)
{
    if (common_calls())
        return 6;
    /* Bad fds: the call is made and fails on its own terms. */
    struct pollfd p = {.fd = STDOUT_FILENO, .events = POLLOUT};
    if (poll(&p, 1, 0) < 0)
        return 1;
    char byte;
    if (read(-1, &byte, 1) != -1 || errno != EBADF)
        return 2;
    struct msghdr msg = {0};
    if (recvmsg(-1, &msg, 0) != -1 || errno != EBADF)
        return 3;
    if (ioctl(STDOUT_FILENO, KVM_IOEVENTFD, NULL) != -1)
        return 4;
    if (ioctl(-1, TCSETS, NULL) != -1 || errno != EBADF)
        return 5;
    if (pread(-1, &byte, 1, 0) != -1 || errno != EBADF) /* --stats */
        return 7;
    return 0;
}

static int broker_allowed_calls(void)
{
    int sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0); /* syslog */
    if (sock < 0)
        return 1;
    close(sock);
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0)
        return 2;
    close(efd);
    int fd = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* status and lock files */
    if (fd < 0)
        return 3;
    close(fd);
    if (accept4(-1, NULL, NULL, SOCK_CLOEXEC) != -1 || errno != EBADF)
        return 4;
    return common_calls();
}

static void test_allowed_calls_pass(void **state)
{
    (void)state;
    struct child_result r;
    run_sandboxed(SANDBOX_VCPU, "vcpu0", vcpu_allowed_calls, &r);
    assert_exit(&r, 0);
    run_sandboxed(SANDBOX_IO, "minivmm", io_allowed_calls, &r);
    assert_exit(&r, 0);
}

static void test_broker_allowed_calls_pass(void **state)
{
    (void)state;
    struct child_result r;
    run_sandboxed(SANDBOX_BROKER, "minivmm-broker", broker_allowed_calls, &r);
    assert_exit(&r, 0);
}

static int open_a_file(void)
{
    open("/etc/hostname", O_RDONLY);
    return 0;
}

static int exec_a_shell(void)
{
    execl("/bin/sh", "sh", "-c", "true", (char *)NULL);
    return 0;
}

static int kvm_create_vm(void)
{
    ioctl(STDOUT_FILENO, KVM_CREATE_VM, 0);
    return 0;
}

static int map_code(void)
{
    mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return 0;
}

static int inet_socket(void)
{
    socket(AF_INET, SOCK_STREAM, 0);
    return 0;
}

static int set_name(void)
{
    prctl(PR_SET_NAME, "renamed", 0, 0, 0);
    return 0;
}

static void test_denied_call_ends_with_its_code(void **state)
{
    (void)state;
    struct child_result r;
    run_sandboxed(SANDBOX_VCPU, "vcpu3", open_a_file, &r);
    assert_denied(&r, "vcpu3", "openat");
    run_sandboxed(SANDBOX_IO, "minivmm-shm", exec_a_shell, &r);
    assert_denied(&r, "minivmm-shm", "execve");
    run_sandboxed(SANDBOX_BROKER, "minivmm-broker", exec_a_shell, &r);
    assert_denied(&r, "minivmm-broker", "execve");
    run_sandboxed(SANDBOX_IO, "minivmm", open_a_file, &r);
    assert_denied(&r, "minivmm", "openat");
}

static void test_arguments_are_checked(void **state)
{
    (void)state;
    struct child_result r;
    /* ioctl is allowed by request: KVM_CREATE_VM is on no list. */
    run_sandboxed(SANDBOX_VCPU, "vcpu0", kvm_create_vm, &r);
    assert_denied(&r, "vcpu0", "ioctl");
    assert_contains(r.err, "request 0xae01");
    /* KVM_RUN belongs to vCPU threads only. */
    run_sandboxed(SANDBOX_IO, "minivmm", vcpu_allowed_calls, &r);
    assert_denied(&r, "minivmm", "ioctl");
    assert_contains(r.err, "request 0xae80");
    run_sandboxed(SANDBOX_VCPU, "vcpu0", map_code, &r);
    assert_denied(&r, "vcpu0", "mmap");
    run_sandboxed(SANDBOX_BROKER, "minivmm-broker", inet_socket, &r);
    assert_denied(&r, "minivmm-broker", "socket");
    run_sandboxed(SANDBOX_IO, "minivmm", set_name, &r);
    assert_denied(&r, "minivmm", "prctl");
}

/* Reads "Key:\tvalue" from /proc/PID/status. */
static void proc_status_field(pid_t pid, const char *key, char *value, size_t len)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    value[0] = '\0';
    size_t key_len = strlen(key);
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, key, key_len) == 0 && line[key_len] == ':') {
            const char *v = line + key_len + 1;
            v += strspn(v, " \t");
            snprintf(value, len, "%.*s", (int)strcspn(v, "\n"), v);
        }
    }
    fclose(f);
    assert_true(value[0] != '\0');
}

static void test_thread_is_confined(void **state)
{
    (void)state;
    int ready[2], release[2];
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(release), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(ready[0]);
        close(release[1]);
        char why[256];
        if (sandbox_enter(SANDBOX_IO, why, sizeof(why)) != 0)
            _exit(100);
        char byte = 1;
        if (write(ready[1], &byte, 1) != 1 || read(release[0], &byte, 1) != 1)
            _exit(101);
        _exit(0);
    }
    close(ready[1]);
    close(release[0]);
    char byte;
    assert_int_equal(read(ready[0], &byte, 1), 1);

    char value[64];
    proc_status_field(pid, "Seccomp", value, sizeof(value));
    assert_string_equal(value, "2"); /* SECCOMP_MODE_FILTER */
    proc_status_field(pid, "NoNewPrivs", value, sizeof(value));
    assert_string_equal(value, "1");
    static const char *const cap_sets[] = {"CapInh", "CapPrm", "CapEff", "CapAmb"};
    for (size_t i = 0; i < sizeof(cap_sets) / sizeof(cap_sets[0]); i++) {
        proc_status_field(pid, cap_sets[i], value, sizeof(value));
        if (strcmp(value, "0000000000000000") != 0)
            fail_msg("%s of the sandboxed child is %s", cap_sets[i], value);
    }

    assert_int_equal(write(release[1], &byte, 1), 1);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    close(ready[0]);
    close(release[1]);
}

static void test_denial_line(void **state)
{
    (void)state;
    char line[256];
    sandbox_format_denial(line, sizeof(line), "vcpu7", 257);
    assert_string_equal(line, "minivmm: error: sandbox: thread 'vcpu7' made system call openat "
                              "(257), which its allow-list denies; exiting with status 72\n");
    sandbox_format_denial(line, sizeof(line), "x", 100000);
    assert_contains(line, "system call unknown (100000)");
    /* Truncated, still terminated. */
    sandbox_format_denial(line, 20, "vcpu7", 257);
    assert_int_equal(strlen(line), 19);
    assert_string_equal(sandbox_kind_name(SANDBOX_BROKER), "broker");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allowed_calls_pass),
        cmocka_unit_test(test_broker_allowed_calls_pass),
        cmocka_unit_test(test_denied_call_ends_with_its_code),
        cmocka_unit_test(test_arguments_are_checked),
        cmocka_unit_test(test_thread_is_confined),
        cmocka_unit_test(test_denial_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
