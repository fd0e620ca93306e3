/* A VM's membership in a shared-memory group (--shm=NAME[,size=SIZE][,vectors=N]): every
 * minivmm of this user started with the same NAME shares one memory of SIZE bytes and can
 * interrupt the others through eventfds; QEMU's ivshmem-doorbell joins the same group
 * through the broker's socket. Joining reads the broker's initial burst (docs/broker.md,
 * "What a client reads"), then a thread of the group's own reports peers joining and
 * leaving. In a memory-only group (vectors=0) the protocol announces no peer at all. */
#pragma once

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vmm/shm_spec.h"

/* How long shm_group_join() waits for each message of the initial burst. */
#define SHM_JOIN_TIMEOUT_MS 5000

/* Another peer as the initial burst described it: its eventfds, one per vector (write the
 * 8-byte value 1 to fds[v] to raise vector v in that peer). */
struct shm_group_peer {
    bool present;
    unsigned int nfds;
    int fds[SHM_MAX_VECTORS];
};

/* Called from the group's thread (signals blocked there); must not call shm_group_leave(). */
struct shm_group_events {
    /* First thing in the group's thread, before any event: where the VMM sandboxes it. */
    void (*thread_started)(void *ctx);
    /* Peer id is present with nfds (== vectors) eventfds, fds[v] for vector v. The callee
     * owns the fds (not the array) and closes them; NULL: they are closed for it. */
    void (*peer_joined)(void *ctx, unsigned int id, int *fds, unsigned int nfds);
    /* Peer id, announced before by peer_joined, has left. */
    void (*peer_left)(void *ctx, unsigned int id);
    /* The broker's socket hit EOF or an error; no more events will come. The memory and
     * every eventfd already delivered stay valid: the VM keeps running with what it has. */
    void (*broker_lost)(void *ctx);
};

struct shm_group {
    /* Valid after a successful shm_group_join(). */
    struct shm_spec spec;
    unsigned int id;   /* our peer ID: the IVPosition register */
    void *mem;         /* MAP_SHARED mapping of the whole memory */
    uint64_t mem_size; /* == spec.size */
    int mem_fd;        /* the sealed memfd behind mem */
    /* With spec.portio: the port I/O channel (devices/portio_channel.h), PORTIO_CHANNEL_SIZE
     * bytes mapped shared, from the broker's extension (vmm/ivshmem_protocol.h). */
    void *portio_mem;
    int portio_fd;
    unsigned int vectors;
    int own_fds[SHM_MAX_VECTORS]; /* own_fds[v] signals us on vector v (for KVM_IRQFD);
                                     -1 once shm_group_take_own_fds() moved them out */
    /* Peers already in the group when we joined, by ID. shm_group_start() hands their fds
     * to peer_joined; after it the group's thread owns this array. */
    struct shm_group_peer peers[SHM_MAX_PEERS];
    bool spawned_broker; /* this process started the broker */
    pid_t broker_pid;
    char runtime_dir[PATH_MAX];

    /* Private. */
    bool joined;
    bool thread_started;
    int sock;
    int stop_fd;
    pthread_t thread;
    struct shm_group_events events;
    void *ctx;
};

/* Joins (or creates) the group: finds the runtime folder, connects to NAME's broker or
 * starts one (vmm/broker/connect.h), reads the initial burst, checks the
 * memfd's seals (F_SEAL_SHRINK|F_SEAL_GROW) and size, and maps it. Returns 0, or -errno
 * with a sentence in why; on failure g holds nothing and shm_group_leave() is a no-op.
 * g is overwritten: it must not hold a group already. */
int shm_group_join(struct shm_group *g, const struct shm_spec *spec, char *why, size_t why_len);

/* Descriptors a VM keeps besides its groups' eventfds: KVM, vCPUs, the console... */
#define SHM_FD_MARGIN 256

/* Raises RLIMIT_NOFILE for the worst case of these groups: every peer's eventfds and our
 * own, per vector, plus SHM_FD_MARGIN, so a peer joining late never meets EMFILE. Returns
 * 0, or -EMFILE (the hard limit is too low) or -errno with a sentence in why. */
int shm_reserve_fds(const struct shm_spec *specs, unsigned int count, char *why, size_t why_len);

/* The protocol half of shm_group_join(), on a socket already connected to a broker (the
 * fuzz harness feeds it a socketpair): reads the initial burst, checks and maps the memory.
 * g owns sock from here on, also on failure. Returns 0 or -errno with a sentence in why. */
int shm_group_join_socket(struct shm_group *g, const struct shm_spec *spec, int sock, char *why,
                          size_t why_len);

/* Moves our own eventfds out of g into fds[0..vectors-1] (for a consumer that takes
 * ownership, such as ivshmem_set_own()); g no longer closes them. Returns how many (0 when
 * already taken or not joined). */
unsigned int shm_group_take_own_fds(struct shm_group *g, int *fds);

/* Reports the peers already present through events->peer_joined (in ID order, from the
 * calling thread), then starts a thread that reports later joins and departures. events
 * and ctx are copied/kept until shm_group_leave(). Returns 0 or -errno. */
int shm_group_start(struct shm_group *g, const struct shm_group_events *events, void *ctx);

/* shm_group_start() without the thread, for a client of one thread (libivc on the host):
 * reports the peers already present through events->peer_joined, and afterwards each
 * shm_group_dispatch() reads one message of the broker (call it when shm_group_socket() is
 * readable) and reports it as the thread would. Returns 0 or -errno; dispatch says -EPIPE
 * once the broker closed the connection. */
int shm_group_start_polled(struct shm_group *g, const struct shm_group_events *events, void *ctx);
int shm_group_dispatch(struct shm_group *g);
int shm_group_socket(const struct shm_group *g);

/* Stops the thread, closes the socket (so the broker tells the others we left), unmaps
 * the memory and closes every fd still owned by g. Safe on a zeroed g, after a failed
 * join, and twice. */
void shm_group_leave(struct shm_group *g);
