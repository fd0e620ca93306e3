/* The shared-memory broker: the server side of QEMU's ivshmem protocol (see
 * ivshmem_protocol.h), run as its own process so that any VM of a group may exit or be
 * killed, the one that started the group included, without the others losing anything.
 *
 * Runtime folder, per user: $XDG_RUNTIME_DIR/minivmm when XDG_RUNTIME_DIR is set to an
 * absolute path (the XDG spec says to ignore a relative one), else /tmp/minivmm-<euid>; mode 0700,
 * owned by the user, not a symlink. For a group NAME: NAME.sock   the broker's listening socket
 * (0600); QEMU's -chardev socket,path= goes here NAME.lock   flock()ed around "connect, or clean a
 * stale socket and spawn a broker", and by the broker around its teardown, so one broker serves
 * each NAME NAME.group  status, rewritten (NAME.group.tmp + rename) on every change: name=NAME
 *                   size=BYTES
 *                   vectors=N
 *                   broker_pid=PID
 *                   broker_uid=UID
 *                   refused=COUNT          connections refused (other uid, group full)
 *                   peer=ID pid=PID uid=UID    one line per connected peer, by ID
 *               Clients read it before connecting: the wire protocol carries neither the
 *               size nor the vector count, so a mismatch can only be caught here.
 * The broker removes all three when it exits. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Group limits, enforced by the option parser, the broker and the client alike. */
#define SHM_NAME_MAX    64
#define SHM_MIN_SIZE    (4ull << 10)
#define SHM_MAX_SIZE    (16ull << 30)
#define SHM_MAX_VECTORS 64
#define SHM_MAX_PEERS   64

/* A spawned broker with no client at all after this long exits. */
#define BROKER_FIRST_CLIENT_TIMEOUT_MS 10000
/* prctl(PR_SET_NAME) of a spawned broker: /proc/PID/comm, what ps -o comm shows. */
#define BROKER_PROCESS_NAME "minivmm-broker"

/* NAME: 1..SHM_NAME_MAX characters of [A-Za-z0-9._-], not starting with '.'. */
bool shm_name_valid(const char *name);

/* Finds the runtime folder, creating it (0700) when absent, and checks it is a real
 * folder owned by this user with mode 0700. Returns 0, or -errno with a sentence in why. */
int broker_runtime_dir(char *dir, size_t dir_len, char *why, size_t why_len);

/* "DIR/NAME" SUFFIX into path. Returns 0, or -ENAMETOOLONG when it does not fit in
 * path_len bytes (pass sizeof(sockaddr_un.sun_path) for a socket path). */
int broker_path(char *path, size_t path_len, const char *dir, const char *name, const char *suffix);

struct broker_options {
    /* With no client ever connected, exit after this many ms; < 0: wait forever. */
    int first_client_timeout_ms;
    /* -1, or a pipe the broker writes "ok PID\n" (or "error TEXT\n") to once the memory
     * and the status file exist, then closes. */
    int ready_fd;
    /* Also send warnings and errors to syslog (a spawned broker's stderr is /dev/null). */
    bool use_syslog;
    /* Once set up, enter the broker's sandbox (sandbox.h) before reporting ready. */
    bool sandbox;
};

/* The broker loop. listen_fd: a listening UNIX stream socket (the broker owns it and closes
 * it); state_dir holds NAME.group and NAME.lock, and NAME.sock is unlinked from it on exit.
 * Creates the sealed memfd of size bytes, gives each client the lowest free ID below
 * SHM_MAX_PEERS and vectors eventfds, and speaks the protocol exactly as QEMU's server.
 * Returns 0 when its last client has left (or none came in time), having removed its
 * files, or -errno if it could not start. Single-threaded; usable in a thread or a child. */
int broker_run(int listen_fd, const char *state_dir, const char *name, uint64_t size,
               unsigned int vectors);
/* broker_run() with options; broker_run() uses BROKER_FIRST_CLIENT_TIMEOUT_MS, no pipe. */
int broker_run_opts(int listen_fd, const char *state_dir, const char *name, uint64_t size,
                    unsigned int vectors, const struct broker_options *opts);

/* Creates a listening UNIX stream socket at path, mode 0600 (umask set around bind; not
 * thread-safe). Returns the fd or -errno with a sentence in why. */
int broker_listen(const char *path, char *why, size_t why_len);

/* Starts a broker process for NAME in dir: listens on NAME.sock (which must not exist),
 * then fork, setsid, fork; the grandchild closes every other fd, points stdio at
 * /dev/null, names itself BROKER_PROCESS_NAME and runs broker_run_opts() (sandboxed
 * once set up when sandbox is true). Waits (5 s at
 * most) until the broker is ready. Call with NAME.lock held and before creating threads.
 * Returns 0 and the broker's pid, or -errno with a sentence in why. */
int broker_spawn(const char *dir, const char *name, uint64_t size, unsigned int vectors,
                 bool sandbox, pid_t *broker_pid, char *why, size_t why_len);

/* A client's rendezvous: under NAME.lock, checks NAME.group against size and vectors
 * (a live group with other values is an error, a full one -EUSERS), connects to NAME.sock, or else
 * removes a stale socket and status file and spawns a broker, then connects. Returns the connected
 * socket (SOCK_CLOEXEC) or -errno with a sentence in why; *spawned tells whether this call
 * started the broker, *broker_pid is its pid (0 if unknown). */
int broker_connect(const char *dir, const char *name, uint64_t size, unsigned int vectors,
                   bool sandbox, bool *spawned, pid_t *broker_pid, char *why, size_t why_len);

/* After a join failed because the broker hung up at once: -EUSERS with a sentence in why
 * when NAME.group shows a live broker with SHM_MAX_PEERS peers (it refuses the next one
 * that way, as QEMU's server does), else 0. broker_connect() makes the same check first;
 * this one catches a joiner that raced another for the last place. */
int broker_check_room(const char *dir, const char *name, char *why, size_t why_len);

/* NAME.group, parsed. */
struct broker_peer_info {
    unsigned int id;
    pid_t pid;
    uid_t uid;
};

struct broker_status {
    char name[SHM_NAME_MAX + 1];
    uint64_t size;
    unsigned int vectors;
    pid_t broker_pid;
    uid_t broker_uid;
    unsigned int refused;
    unsigned int peer_count;
    struct broker_peer_info peers[SHM_MAX_PEERS];
};

/* Reads a status file. Returns 0, -errno from open/read, or -EBADMSG when malformed. */
int broker_status_read(const char *path, struct broker_status *status);

/* Whether pid is a running (not zombie) process named BROKER_PROCESS_NAME. */
bool broker_alive(pid_t pid);

/* A size as the option parser reads it: "4M", "16G", "4K", or plain bytes. */
void shm_format_size(uint64_t size, char *text, size_t len);

/* Raises RLIMIT_NOFILE's soft limit to at least need (capped at the hard limit): a group
 * of 64 peers with 64 vectors puts 4096 eventfds in one process. Returns 0 or -errno. */
int shm_raise_fd_limit(unsigned long need);
