#include "vmm/ivshmem_protocol.h"

#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Room for more fds than a valid message carries, so that a message with two or more is
 * seen as such (and its fds closed) rather than silently truncated by the kernel. */
#define IVPROTO_RECV_FDS 16

int ivproto_send(int sock, int64_t value, int fd)
{
    uint64_t wire = htole64((uint64_t)value);
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } control;
    struct iovec iov = {.iov_base = &wire, .iov_len = sizeof(wire)};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};

    if (fd >= 0) {
        memset(&control, 0, sizeof(control));
        msg.msg_control = control.buf;
        msg.msg_controllen = sizeof(control.buf);
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
    }
    while (iov.iov_len > 0) {
        ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        /* The fd went with the first byte; the rest, if split, goes bare. */
        iov.iov_base = (char *)iov.iov_base + n;
        iov.iov_len -= (size_t)n;
        msg.msg_control = NULL;
        msg.msg_controllen = 0;
    }
    return 0;
}

static void close_all(const int *fds, unsigned int count)
{
    for (unsigned int i = 0; i < count; i++)
        close(fds[i]);
}

/* Moves the fds of one recvmsg() into fds[]. Returns false when the control data is
 * anything but SCM_RIGHTS or was truncated; fds that did arrive are still collected so the
 * caller can close them. */
static bool collect_fds(struct msghdr *msg, int *fds, unsigned int *count, unsigned int max)
{
    bool ok = !(msg->msg_flags & MSG_CTRUNC);
    for (struct cmsghdr *cmsg = CMSG_FIRSTHDR(msg); cmsg; cmsg = CMSG_NXTHDR(msg, cmsg)) {
        if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) {
            ok = false;
            continue;
        }
        size_t n = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int), sizeof(int));
            if (*count < max)
                fds[(*count)++] = fd;
            else
                close(fd); /* cannot happen with max >= the control buffer's room */
        }
    }
    return ok;
}

int ivproto_recv(int sock, int64_t *value, int *fd)
{
    uint64_t wire = 0;
    size_t got = 0;
    int fds[IVPROTO_RECV_FDS];
    unsigned int nfds = 0;
    bool control_ok = true;
    int ret;

    *fd = -1;
    while (got < sizeof(wire)) {
        union {
            struct cmsghdr align;
            char buf[CMSG_SPACE(sizeof(int) * IVPROTO_RECV_FDS)];
        } control;
        struct iovec iov = {.iov_base = (char *)&wire + got, .iov_len = sizeof(wire) - got};
        struct msghdr msg = {
            .msg_iov = &iov,
            .msg_iovlen = 1,
            .msg_control = control.buf,
            .msg_controllen = sizeof(control.buf),
        };
        ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            ret = -errno;
            goto fail;
        }
        if (!collect_fds(&msg, fds, &nfds, IVPROTO_RECV_FDS))
            control_ok = false;
        if (n == 0) {
            ret = got || nfds || !control_ok ? -EPROTO : -EPIPE;
            goto fail;
        }
        got += (size_t)n;
    }
    if (!control_ok || nfds > 1) {
        ret = -EPROTO;
        goto fail;
    }
    *value = (int64_t)le64toh(wire);
    *fd = nfds ? fds[0] : -1;
    return 0;

fail:
    close_all(fds, nfds);
    return ret;
}
