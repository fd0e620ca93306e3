/* The ivshmem server protocol's framing over a real socketpair: values with and without
 * an fd, the wire's byte order, and every malformed message refused without leaking fds. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "support/fds.h"
#include "vmm/ivshmem_protocol.h"

struct pair {
    int tx; /* the server's end */
    int rx; /* the client's end */
};

static int setup(void **state)
{
    static struct pair p;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    p.tx = sv[0];
    p.rx = sv[1];
    /* No test may hang: a missing message is a 2 s timeout, not a stuck ctest. */
    struct timeval tv = {.tv_sec = 2};
    if (setsockopt(p.rx, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
        return -1;
    *state = &p;
    return 0;
}

static int teardown(void **state)
{
    struct pair *p = *state;
    if (p->tx >= 0)
        close(p->tx);
    if (p->rx >= 0)
        close(p->rx);
    return 0;
}

/* Sends raw bytes with any number of fds, as a broken server would. */
static void send_raw(int sock, const void *data, size_t len, const int *fds, unsigned int nfds)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * 4)];
    } control;
    memset(&control, 0, sizeof(control));
    struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds) {
        msg.msg_control = control.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
    }
    assert_int_equal(sendmsg(sock, &msg, MSG_NOSIGNAL), (ssize_t)len);
}

static void test_value_without_fd(void **state)
{
    struct pair *p = *state;
    int64_t value = 0;
    int fd = 123;
    assert_int_equal(ivproto_send(p->tx, 0, -1), 0);
    assert_int_equal(ivproto_send(p->tx, 42, -1), 0);
    assert_int_equal(ivproto_recv(p->rx, &value, &fd), 0);
    assert_int_equal(value, 0);
    assert_int_equal(fd, -1);
    assert_int_equal(ivproto_recv(p->rx, &value, &fd), 0);
    assert_int_equal(value, 42);
    assert_int_equal(fd, -1);
}

static void test_value_with_fd(void **state)
{
    struct pair *p = *state;
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    assert_int_equal(ivproto_send(p->tx, 7, pipefd[1]), 0);
    close(pipefd[1]);

    int64_t value;
    int fd;
    assert_int_equal(ivproto_recv(p->rx, &value, &fd), 0);
    assert_int_equal(value, 7);
    assert_true(fd >= 0);
    /* Received with MSG_CMSG_CLOEXEC, and the very pipe that was sent. */
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    assert_int_equal(write(fd, "x", 1), 1);
    char c = 0;
    assert_int_equal(read(pipefd[0], &c, 1), 1);
    assert_int_equal(c, 'x');
    close(fd);
    close(pipefd[0]);
}

static void test_negative_and_extreme_values(void **state)
{
    struct pair *p = *state;
    const int64_t values[] = {-1, -2, INT64_MIN, INT64_MAX, 65535, 1ll << 40};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++)
        assert_int_equal(ivproto_send(p->tx, values[i], -1), 0);
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        int64_t value;
        int fd;
        assert_int_equal(ivproto_recv(p->rx, &value, &fd), 0);
        assert_true(value == values[i]);
        assert_int_equal(fd, -1);
    }
}

static void test_wire_is_little_endian(void **state)
{
    struct pair *p = *state;
    assert_int_equal(ivproto_send(p->tx, -1, -1), 0);
    assert_int_equal(ivproto_send(p->tx, 0x0102030405060708ll, -1), 0);
    unsigned char raw[16];
    assert_int_equal(recv(p->rx, raw, sizeof(raw), MSG_WAITALL), 16);
    static const unsigned char expected[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                               8,    7,    6,    5,    4,    3,    2,    1};
    assert_memory_equal(raw, expected, sizeof(expected));

    /* And the other way: bytes written by hand decode the same. */
    uint64_t le = htole64((uint64_t)-5);
    send_raw(p->tx, &le, sizeof(le), NULL, 0);
    int64_t value;
    int fd;
    assert_int_equal(ivproto_recv(p->rx, &value, &fd), 0);
    assert_int_equal(value, -5);
}

static void test_value_split_over_two_writes(void **state)
{
    struct pair *p = *state;
    uint64_t le = htole64(0x1122334455667788ull);
    send_raw(p->tx, &le, 3, NULL, 0);
    send_raw(p->tx, (char *)&le + 3, 5, NULL, 0);
    int64_t value;
    int fd;
    assert_int_equal(ivproto_recv(p->rx, &value, &fd), 0);
    assert_true(value == 0x1122334455667788ll);
}

static void test_eof_is_epipe(void **state)
{
    struct pair *p = *state;
    assert_int_equal(ivproto_send(p->tx, 1, -1), 0);
    close(p->tx);
    p->tx = -1;
    int64_t value;
    int fd;
    assert_int_equal(ivproto_recv(p->rx, &value, &fd), 0);
    assert_int_equal(value, 1);
    assert_int_equal(ivproto_recv(p->rx, &value, &fd), -EPIPE);
    assert_int_equal(fd, -1);
    /* And sending to a closed peer is -EPIPE, not SIGPIPE. */
    assert_int_equal(ivproto_send(p->rx, 1, -1), -EPIPE);
}

static void test_two_fds_is_eproto_without_leak(void **state)
{
    struct pair *p = *state;
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    uint64_t le = htole64(3);
    send_raw(p->tx, &le, sizeof(le), pipefd, 2);
    close(pipefd[0]);
    close(pipefd[1]);

    int before = test_open_fd_count();
    int64_t value;
    int fd = 99;
    assert_int_equal(ivproto_recv(p->rx, &value, &fd), -EPROTO);
    assert_int_equal(fd, -1);
    assert_int_equal(test_open_fd_count(), before);

    /* The stream stays framed: the next message reads fine. */
    assert_int_equal(ivproto_send(p->tx, 4, -1), 0);
    assert_int_equal(ivproto_recv(p->rx, &value, &fd), 0);
    assert_int_equal(value, 4);
}

static void test_short_message_is_eproto(void **state)
{
    struct pair *p = *state;
    uint32_t half = 5;
    send_raw(p->tx, &half, sizeof(half), NULL, 0);
    close(p->tx);
    p->tx = -1;
    int64_t value;
    int fd;
    assert_int_equal(ivproto_recv(p->rx, &value, &fd), -EPROTO);
    assert_int_equal(fd, -1);
}

static void test_short_message_with_fd_closes_it(void **state)
{
    struct pair *p = *state;
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    uint32_t half = 5;
    send_raw(p->tx, &half, sizeof(half), &pipefd[1], 1);
    close(pipefd[1]);
    close(p->tx);
    p->tx = -1;

    int before = test_open_fd_count();
    int64_t value;
    int fd;
    assert_int_equal(ivproto_recv(p->rx, &value, &fd), -EPROTO);
    assert_int_equal(fd, -1);
    assert_int_equal(test_open_fd_count(), before);
    /* The write end was really closed: the pipe reads EOF. */
    char c;
    assert_int_equal(read(pipefd[0], &c, 1), 0);
    close(pipefd[0]);
}

static void test_credentials_are_unexpected_control_data(void **state)
{
    struct pair *p = *state;
    int on = 1;
    assert_int_equal(setsockopt(p->rx, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)), 0);
    assert_int_equal(ivproto_send(p->tx, 9, -1), 0);
    int64_t value;
    int fd;
    assert_int_equal(ivproto_recv(p->rx, &value, &fd), -EPROTO);
    assert_int_equal(fd, -1);
}

static void test_timeout_is_eagain(void **state)
{
    struct pair *p = *state;
    struct timeval tv = {.tv_usec = 50000};
    assert_int_equal(setsockopt(p->rx, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    int64_t value;
    int fd;
    int ret = ivproto_recv(p->rx, &value, &fd);
    assert_true(ret == -EAGAIN || ret == -EWOULDBLOCK);
}

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
    (void)sig;
    alarms++;
}

static void test_eintr_is_retried(void **state)
{
    struct pair *p = *state;
    /* A handler without SA_RESTART interrupts recvmsg; the message comes later. */
    struct sigaction sa = {.sa_handler = on_alarm}, old;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        usleep(300000);
        _exit(ivproto_send(p->tx, 77, -1) == 0 ? 0 : 1);
    }
    alarms = 0;
    struct itimerval it = {.it_value = {.tv_usec = 50000}};
    assert_int_equal(setitimer(ITIMER_REAL, &it, NULL), 0);
    int64_t value;
    int fd;
    assert_int_equal(ivproto_recv(p->rx, &value, &fd), 0);
    assert_int_equal(value, 77);
    assert_int_equal(alarms, 1); /* the signal did interrupt the wait */
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    sigaction(SIGALRM, &old, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_value_without_fd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_value_with_fd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_negative_and_extreme_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wire_is_little_endian, setup, teardown),
        cmocka_unit_test_setup_teardown(test_value_split_over_two_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eof_is_epipe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_fds_is_eproto_without_leak, setup, teardown),
        cmocka_unit_test_setup_teardown(test_short_message_is_eproto, setup, teardown),
        cmocka_unit_test_setup_teardown(test_short_message_with_fd_closes_it, setup, teardown),
        cmocka_unit_test_setup_teardown(test_credentials_are_unexpected_control_data, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_timeout_is_eagain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eintr_is_retried, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
