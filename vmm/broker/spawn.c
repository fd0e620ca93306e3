#include "vmm/broker/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmm/broker/runtime.h"
#include "vmm/hugepages.h"
#include "vmm/reason.h"
#include "vmm/size.h"

extern char **environ;

/* The broker's end of the ready pipe: what --ready-fd names. */
#define BROKER_READY_FD 3

int broker_exe_path(char *path, size_t len, char *why, size_t why_len)
{
    const char *env = getenv(BROKER_EXE_ENV);
    int n;
    if (env && *env) {
        n = snprintf(path, len, "%s", env);
    } else {
        char exe[PATH_MAX];
        ssize_t got = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (got < 0) {
            int err = errno;
            reason_set(why, why_len, "readlink /proc/self/exe: %s", strerror(err));
            return -err;
        }
        exe[got] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        n = snprintf(path, len, "%s/%s", exe, BROKER_EXE_NAME);
    }
    if (n < 0 || (size_t)n >= len) {
        reason_set(why, why_len, "the path of %s is too long", BROKER_EXE_NAME);
        return -ENAMETOOLONG;
    }
    return 0;
}

/* Reads the broker's one-line report, waiting at most timeout_ms. */
static int ready_read(int fd, char *text, size_t len, int timeout_ms)
{
    size_t got = 0;
    int64_t deadline = broker_now_ms() + timeout_ms;
    while (got + 1 < len) {
        int64_t left = deadline - broker_now_ms();
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

/* posix_spawn() of the broker with ready_fd as its fd BROKER_READY_FD (ready_fd must be
 * another number, so that the dup2 clears its O_CLOEXEC) and nothing else inherited.
 * minivmm's own fds are all O_CLOEXEC; closefrom also drops what minivmm inherited without
 * it (a harness's pipe, held open for as long as the broker lives, would hang a reader
 * waiting for EOF). Returns 0 and the pid, or an errno value. */
static int spawn_process(const char *exe, char *const argv[], int ready_fd, pid_t *pid)
{
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    int err = posix_spawn_file_actions_init(&actions);
    if (err)
        return err;
    err = posix_spawnattr_init(&attr);
    if (err) {
        posix_spawn_file_actions_destroy(&actions);
        return err;
    }
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    /* Its own session: no terminal, no signal meant for minivmm's process group. Signal
     * masks and ignored signals survive exec: minivmm's (SIGINT blocked for its signalfd,
     * SIGPIPE ignored) mean nothing to the broker. */
    if (!err)
        err = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
                                                  POSIX_SPAWN_SETSIGDEF);
    if (!err)
        err = posix_spawnattr_setsigmask(&attr, &none);
    if (!err)
        err = posix_spawnattr_setsigdefault(&attr, &all);
    if (!err)
        err = posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDWR, 0);
    if (!err)
        err = posix_spawn_file_actions_adddup2(&actions, 0, 1);
    if (!err)
        err = posix_spawn_file_actions_adddup2(&actions, 0, 2);
    if (!err)
        err = posix_spawn_file_actions_adddup2(&actions, ready_fd, BROKER_READY_FD);
    if (!err)
        err = posix_spawn_file_actions_addclosefrom_np(&actions, BROKER_READY_FD + 1);
    if (!err)
        err = posix_spawn(pid, exe, &actions, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    return err;
}

int broker_spawn(const char *dir, const struct shm_spec *spec, pid_t *broker_pid, char *why,
                 size_t why_len)
{
    const char *name = spec->name;
    char exe[PATH_MAX];
    int ret = broker_exe_path(exe, sizeof(exe), why, why_len);
    if (ret < 0)
        return ret;
    char dir_arg[PATH_MAX + 16], spec_arg[SHM_NAME_MAX + 112], fd_arg[32];
    snprintf(fd_arg, sizeof(fd_arg), "--ready-fd=%d", BROKER_READY_FD);
    if (snprintf(dir_arg, sizeof(dir_arg), "--runtime-dir=%s", dir) >= (int)sizeof(dir_arg)) {
        reason_set(why, why_len, "runtime folder path too long: %s", dir);
        return -ENAMETOOLONG;
    }
    char huge_text[48];
    hugepage_option(spec->hugepage_size, ',', huge_text, sizeof(huge_text));
    snprintf(spec_arg, sizeof(spec_arg), "%s,size=%" PRIu64 ",vectors=%u%s", name, spec->size,
             spec->vectors, huge_text);
    char *argv[8];
    int argc = 0;
    argv[argc++] = (char *)BROKER_EXE_NAME;
    argv[argc++] = fd_arg;
    argv[argc++] = dir_arg;
    if (!spec->sandbox)
        argv[argc++] = (char *)"--no-sandbox";
    argv[argc++] = (char *)"--"; /* a group name may start with '-' */
    argv[argc++] = spec_arg;
    argv[argc] = NULL;

    int ready[2];
    if (pipe2(ready, O_CLOEXEC) < 0) {
        int err = errno;
        reason_set(why, why_len, "pipe2 O_CLOEXEC: %s", strerror(err));
        return -err;
    }
    /* Above BROKER_READY_FD, so that the dup2 in the child is a real one. */
    int ready_w = fcntl(ready[1], F_DUPFD_CLOEXEC, BROKER_READY_FD + 1);
    if (ready_w < 0) {
        int err = errno;
        reason_set(why, why_len, "fcntl F_DUPFD_CLOEXEC %d: %s", ready[1], strerror(err));
        close(ready[0]);
        close(ready[1]);
        return -err;
    }
    close(ready[1]);
    pid_t child;
    int err = spawn_process(exe, argv, ready_w, &child);
    close(ready_w);
    if (err) {
        if (err == ENOENT)
            reason_set(why, why_len,
                       "posix_spawn %s: %s (it is built next to minivmm; %s names another)", exe,
                       strerror(err), BROKER_EXE_ENV);
        else
            reason_set(why, why_len, "posix_spawn %s: %s", exe, strerror(err));
        close(ready[0]);
        return -err;
    }

    /* The first process only forks the broker away (it is nobody's child) and exits. */
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR)
        ;
    char text[512];
    int timeout_ms = BROKER_READY_TIMEOUT_MS;
    if (spec->hugepage_size)
        timeout_ms += (int)((spec->size >> 30) + 1) * BROKER_READY_MS_PER_GIB;
    ret = ready_read(ready[0], text, sizeof(text), timeout_ms);
    close(ready[0]);
    int pid = 0, code = 0, end = 0;
    if (ret == -ETIMEDOUT) {
        reason_set(why, why_len, "the broker for group '%s' was not ready within %d ms", name,
                   timeout_ms);
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
    if (sscanf(text, "error %d %n", &code, &end) == 1 && code > 0 && end > 0) {
        reason_set(why, why_len, "the broker for group '%s' could not start: %s", name, text + end);
        return -code;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
        reason_set(why, why_len,
                   "the broker for group '%s' (%s) exited with status %d before it "
                   "was ready",
                   name, exe, WEXITSTATUS(status));
    else
        reason_set(why, why_len, "the broker for group '%s' exited before it was ready", name);
    return -EIO;
}
