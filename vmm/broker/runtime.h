/* Where a group lives and how its parties agree on who starts its broker (docs/broker.md
 * has the whole picture). The runtime folder, per user, is $XDG_RUNTIME_DIR/minivmm when
 * XDG_RUNTIME_DIR is absolute, else /tmp/minivmm-<euid>: mode 0700, owned by the user, not
 * a symlink. A group NAME there has NAME.sock (the broker's socket), NAME.group (its
 * status, status.h) and NAME.lock, flock()ed around every "find or start the broker" and
 * around the broker's teardown, so that one broker serves each NAME. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "vmm/shm_spec.h"

/* /proc/PID/comm of every broker: joiners and --shm-list recognise a live one by it. */
#define BROKER_PROCESS_NAME "minivmm-broker"
/* How long a joiner, or a broker started by hand, waits for NAME.lock. */
#define BROKER_LOCK_TIMEOUT_MS 10000
/* The longest socket path, terminator included. */
#define BROKER_SOCK_PATH_MAX sizeof(((struct sockaddr_un *)0)->sun_path)

/* CLOCK_MONOTONIC in milliseconds, for deadlines. */
int64_t broker_now_ms(void);

/* Finds the runtime folder, creating it (0700) when absent, and checks it is a real
 * folder owned by this user with mode 0700. Returns 0, or -errno with a sentence in why. */
int broker_runtime_dir(char *dir, size_t dir_len, char *why, size_t why_len);

/* "DIR/NAME" SUFFIX into path. Returns 0, or -ENAMETOOLONG when it does not fit in
 * path_len bytes (pass BROKER_SOCK_PATH_MAX for a socket path). */
int broker_path(char *path, size_t path_len, const char *dir, const char *name, const char *suffix);

/* Opens and flock()s the lock file at path, retrying until timeout_ms (0: one try,
 * -EWOULDBLOCK when busy; else -ETIMEDOUT). A lock file unlinked by a broker's teardown
 * while we waited is not the lock any more: it starts over on the current file.
 * Returns the locked fd (O_CLOEXEC; close it to unlock) or -errno. */
int broker_lock_take(const char *path, int timeout_ms);

/* Connects a SOCK_CLOEXEC UNIX stream socket to path. Returns it or -errno. */
int broker_socket_connect(const char *path);

/* Raises RLIMIT_NOFILE's soft limit to at least need (capped at the hard limit): a group
 * of 64 peers with 64 vectors puts 4096 eventfds in one process. Returns 0 or -errno. */
int shm_raise_fd_limit(unsigned long need);

/* Removes what a dead broker left: its socket and status file (either may be gone
 * already). Call with NAME.lock held, once nothing answers on the socket. Returns 0 or
 * -errno with a sentence in why. */
int broker_remove_stale(const char *sock_path, const char *status_path, char *why, size_t why_len);
