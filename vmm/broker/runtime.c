#include "vmm/broker/runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vmm/reason.h"

int64_t broker_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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

int broker_lock_take(const char *path, int timeout_ms)
{
    int64_t deadline = broker_now_ms() + timeout_ms;
    for (;;) {
        int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
            return -errno;
        while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
            int err = errno;
            if (err == EINTR)
                continue;
            if (err != EWOULDBLOCK || broker_now_ms() >= deadline) {
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

int broker_socket_connect(const char *path)
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

int broker_remove_stale(const char *sock_path, const char *status_path, char *why, size_t why_len)
{
    if (unlink(sock_path) < 0 && errno != ENOENT)
        return reason_fail(-errno, why, why_len, "unlink stale socket %s: %s", sock_path,
                           strerror(errno));
    if (unlink(status_path) < 0 && errno != ENOENT)
        return reason_fail(-errno, why, why_len, "unlink stale status %s: %s", status_path,
                           strerror(errno));
    return 0;
}
