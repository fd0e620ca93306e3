/* The broker's server loop: the server side of QEMU's ivshmem protocol (see
 * ivshmem_protocol.h and docs/broker.md), run by minivmm-broker (main.c) as a
 * process of its own, so that any VM of a group may exit or be killed, the one that
 * started the group included, without the others losing anything. Single-threaded; the
 * unit tests and fuzzers also run it in a child or a thread. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A broker started by a VMM, with no client at all after this long, exits. */
#define BROKER_FIRST_CLIENT_TIMEOUT_MS 10000

struct broker_options {
    /* With no client ever connected, exit after this many ms; < 0: wait forever. */
    int first_client_timeout_ms;
    /* Keep serving when the last client has left (a broker run by hand); only stop_fd
     * ends it then. */
    bool persist;
    /* -1, or a pipe the broker writes "ok PID\n" (or "error ERRNO TEXT\n") to once the
     * memory and the status file exist, then closes. */
    int ready_fd;
    /* -1, or the caller's NAME.lock, closed (released) at the same moment. */
    int lock_fd;
    /* -1, or an fd (a signalfd) whose readability means: remove the files and return 0.
     * Not closed by the broker. */
    int stop_fd;
    /* Also send warnings and errors to syslog (a spawned broker's stderr is /dev/null). */
    bool use_syslog;
    /* Once set up, enter the broker's sandbox (sandbox.h) before reporting ready. */
    bool sandbox;
    /* 0: the memory is ordinary shmem; else hugetlb pages of this size (hugepages.h), all
     * allocated before the broker reports ready, so a shortage is a start error. */
    uint64_t hugepage_size;
    /* NULL: HUGEPAGES_SYSFS; tests point the free-page check elsewhere. */
    const char *hugepages_sysfs;
};

/* The broker loop. listen_fd: a listening UNIX stream socket (the broker owns it and closes
 * it); state_dir holds NAME.group and NAME.lock, and NAME.sock is unlinked from it on exit.
 * Creates the sealed memfd of size bytes (hugetlb-backed with opts->hugepage_size), gives each
 * client an ID below SHM_MAX_PEERS (the lowest free one that no connected QEMU device saw
 * leave, docs/broker.md) and vectors eventfds, and speaks the protocol as QEMU's server. Returns 0
 * when its last client has left (or none came in time, or stop_fd fired), having removed its files,
 * or -errno if it could not start. */
int broker_run(int listen_fd, const char *state_dir, const char *name, uint64_t size,
               unsigned int vectors);
/* broker_run() with options; broker_run() uses BROKER_FIRST_CLIENT_TIMEOUT_MS, no pipe. */
int broker_run_opts(int listen_fd, const char *state_dir, const char *name, uint64_t size,
                    unsigned int vectors, const struct broker_options *opts);

/* Creates a listening UNIX stream socket (SOCK_CLOEXEC) at path, mode 0600 (umask set
 * around bind; not thread-safe). Returns the fd or -errno with a sentence in why. */
int broker_listen(const char *path, char *why, size_t why_len);
