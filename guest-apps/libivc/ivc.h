/*
 * libivc: message channels between VMs, for Linux guest programs and host processes.
 *
 * A context (struct ivc_ctx) is one channel device seen through one backend; a channel
 * (struct ivc_chan) is a two-way message pipe between this VM and one peer VM on that
 * device. Backends:
 *   IVC_SHM_POLL  an ivshmem device's shared memory (BAR2) mapped through sysfs
 *                 (/sys/bus/pci/devices/<BDF>/resource2); no driver; waiting spins.
 *   IVC_SHM_IRQ   the same memory through the ivshmem_guest driver (/dev/ivshmemN);
 *                 a side that waits sleeps in poll() and is woken by the peer's doorbell.
 *   IVC_SHM_MEMORY  memory the caller maps and shares by other means (a memfd between two
 *                 processes, an ivshmem-plain BAR2 it mapped itself); waiting spins, no
 *                 presence, and own ID from ivc_ctx_opts.self_id. The unit tests use it.
 *   IVC_PORTIO    minivmm's port I/O channel device (1af4:10f0, --shm=NAME,portio=on):
 *                 a byte stream per pair of peers that guest user space drives with in/out
 *                 instructions (ioperm(), so root), no driver. Messages are framed on it
 *                 (ivc_portio.h) and sent in chunks as the device's 64 KiB ring frees up,
 *                 so they may be longer than the ring: up to IVC_PORTIO_MAX_MSG. Waiting
 *                 sleeps in the VMM (the device's WAIT registers, 20 ms at a time), and a
 *                 timeout is kept to about 1 ms. The zero-copy calls work through bounce
 *                 buffers in the library (ivc_reserve gives a library buffer, ivc_commit
 *                 sends it, ivc_recv_ref points into the library's copy): they save the
 *                 caller a buffer, not a copy. Limits: one user of the device per VM at a
 *                 time (the device has one PEER register: the library switches it between
 *                 its channels, costing one VM exit per switch); ivc_open discards what
 *                 the peer sent before it (a peer must open before it sends); every access
 *                 is a VM exit (4 bytes per exit sending, up to 1 KiB receiving); where
 *                 user-mode in/out fault although ioperm() succeeded, ivc_ctx_open says
 *                 -EOPNOTSUPP. ivc_ctx_opts.port_io replaces the instructions (the unit
 *                 tests drive the device model in-process with it).
 *   IVC_HOST_POLL, IVC_HOST_IRQ  (the host build of the library only) a process on the
 *                 host joins the group ivc_ctx_opts.group (--shm=NAME) as one more peer
 *                 through its broker and takes the ID the broker gives; it never starts a
 *                 broker (-ENOENT when the group has none: start a VM with --shm=NAME or
 *                 run minivmm-broker NAME). Its VMs see it in their presence bitmap; it
 *                 learns departures from the broker. host-poll spins while it waits;
 *                 host-irq sleeps in poll() on its eventfd and rings peers' eventfds
 *                 (a guest's doorbell to its ID wakes it). Needs vectors >= 1 for
 *                 presence and doorbells; in a memory-only group only host-poll works
 *                 and presence is unknown, as on QEMU. Same layout, checks and errors
 *                 as shm-poll/shm-irq.
 *
 * Shared-memory layout (both shm backends; ivc_ring.h has the byte-level details): the
 * memory is split among at most `peers` peer IDs (ivc_ctx_opts.peers, default
 * IVC_DEFAULT_PEERS, at most the device's MAX_PEERS register and IVC_MAX_PEERS). Every
 * ordered pair of IDs (a, b) owns one region holding the ring that carries messages from
 * a to b; only a writes its data, so no peer can overwrite what another sent. Every VM of
 * a group must use the same `peers`; the IDs are the ivshmem IVPosition register values.
 *
 * Messages: 0 to ivc_max_msg() bytes, delivered whole and in order, never merged or split.
 *
 * Blocking: every call that may wait takes timeout_ms: 0 = do not wait (-EAGAIN when it
 * would have to), > 0 = at most that long (-ETIMEDOUT), IVC_FOREVER = until it can.
 *
 * Errors: calls return 0 (or a length) on success and a negative errno value on failure:
 *   -EAGAIN      nothing to receive / no room to send, and timeout_ms was 0
 *   -ETIMEDOUT   still so after timeout_ms
 *   -EMSGSIZE    message longer than ivc_max_msg(), or longer than the receive buffer
 *                (the message then stays queued)
 *   -ECONNRESET  the peer closed the channel, left the group, or restarted; the channel is
 *                dead, close it (after a close or a departure, the messages queued
 *                before it are still received first; a restart discards them)
 *   -EPROTO      the shared memory holds something the protocol forbids (a length, index
 *                or offset out of range, a peer with another layout): the channel is dead
 *                and every later call on it says -EPROTO. Nothing outside the channel's
 *                own regions was read or written.
 *   -EBUSY       a zero-copy reservation or received reference is still outstanding
 *   -EINVAL, -ERANGE (a peer ID outside the layout), -ENODEV, -EOPNOTSUPP, -ENOMEM
 *
 * IVC_PORTIO specifics: `peers` only bounds the peer IDs (0 = all 64), self_id must be -1 or
 * the device's OWN_ID; a send that times out halfway through a long message has sent
 * nothing the peer will see (the receiver drops the unfinished message); ivc_commit sends
 * with the timeout given to ivc_reserve and, when that runs out (-EAGAIN, -ETIMEDOUT),
 * keeps the reservation so the commit can be tried again; a peer that leaves is seen
 * through the device's STATUS (PEER_GONE) within one wait (20 ms); the stats count port
 * I/O as ring_ns and STATUS reads as presence_ns.
 *
 * Peers that leave: on minivmm's device (presence extension in BAR0) a peer whose VM
 * leaves the group is seen after at most about 10 ms of waiting on the channel (a call
 * that finds work to do does not look) and reported as -ECONNRESET. QEMU's
 * ivshmem-doorbell device tells nobody who is present: there a peer that vanishes is only
 * noticed when it comes back (it restarts its rings, -ECONNRESET) or by timeouts
 * (-ETIMEDOUT); ivc_ctx_peers() answers -EOPNOTSUPP.
 *
 * Ownership and threads: ivc_ctx_open allocates the context, ivc_open the channel; close
 * them with ivc_close / ivc_ctx_close (channels first). A context and its channels must
 * be used by one thread at a time. Separate contexts on the same device may be used by
 * separate threads, as long as no two open a channel to the same peer: a pair of IDs has
 * exactly one region per direction in the whole group. Pointers from ivc_reserve and
 * ivc_recv_ref point into shared memory and are valid until the matching
 * ivc_commit/ivc_release; bytes received by reference can still be changed by a hostile
 * peer while you read them, so copy what you validate.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define IVC_FOREVER       (-1)
#define IVC_DEFAULT_PEERS 8
#define IVC_MAX_PEERS     64

enum ivc_backend {
    IVC_SHM_POLL,
    IVC_SHM_IRQ,
    IVC_SHM_MEMORY,
    IVC_PORTIO,
    IVC_HOST_POLL,
    IVC_HOST_IRQ,
};

/* The longest message over IVC_PORTIO (the library's buffers, not the device, bound it). */
#define IVC_PORTIO_MAX_MSG (1u << 20)

/* How IVC_PORTIO reaches the device's 256 ports (offset = port - BAR0 base). */
struct ivc_port_io {
    uint32_t (*in32)(void *opaque, unsigned int offset);                            /* inl */
    void (*out32)(void *opaque, unsigned int offset, uint32_t value);               /* outl */
    void (*ins)(void *opaque, unsigned int offset, void *buf, uint32_t len);        /* rep insb */
    void (*outs)(void *opaque, unsigned int offset, const void *buf, uint32_t len); /* rep outsb */
    void *opaque;
};

/* ivc_ctx_opts.flags */
#define IVC_TIMING 1u /* keep the per-layer times of struct ivc_stats (costs clock reads) */

struct ivc_ctx_opts {
    enum ivc_backend backend;
    const char *device; /* BDF (0000:00:01.0 or 00:01.0), /dev/ivshmemN, or NULL: the first */
    unsigned peers;     /* layout size, 2..IVC_MAX_PEERS; 0 = IVC_DEFAULT_PEERS */
    int self_id;        /* own peer ID; -1 = IVPosition (ivshmem-plain reads 0 everywhere) */
    unsigned flags;     /* IVC_TIMING */
    void *memory;       /* IVC_SHM_MEMORY: the shared memory (stays the caller's) */
    size_t memory_size; /* IVC_SHM_MEMORY: its size */
    const struct ivc_port_io *port_io; /* IVC_PORTIO: NULL = in/out on the device found */
    const char *group;                 /* IVC_HOST_*: the group's NAME */
    char *why; /* where ivc_ctx_open writes why it failed (host backends), or NULL */
    size_t why_len;
};

struct ivc_ctx;
struct ivc_chan;

/* Opens the device with the backend of opts (NULL: IVC_SHM_POLL, first device, defaults).
 * -ENODEV: no such device or no driver for IVC_SHM_IRQ; -ERANGE: own ID >= peers;
 * -ENOSPC: the memory is too small for `peers` peers; -EINVAL: IVC_SHM_MEMORY without
 * memory or self_id; IVC_PORTIO: -EPERM (ioperm() refused), -EOPNOTSUPP (user-mode in/out
 * fault here); IVC_HOST_*: -ENOENT (no broker serves the group), -EOPNOTSUPP (host-irq
 * in a memory-only group, or a backend this build of the library lacks). */
int ivc_ctx_open(struct ivc_ctx **ctx, const struct ivc_ctx_opts *opts);
void ivc_ctx_close(struct ivc_ctx *ctx);

/* Own peer ID, and the backend's name ("shm-poll", "shm-irq", "shm-memory", "portio",
 * "host-poll", "host-irq"). */
unsigned ivc_ctx_self(const struct ivc_ctx *ctx);
const char *ivc_ctx_backend_name(const struct ivc_ctx *ctx);

/* How the guest kernel maps the shared memory ("write-back", "uncached-minus", ...; from
 * the page attribute table), or NULL where unknown or there is none (portio). */
const char *ivc_ctx_memtype(const struct ivc_ctx *ctx);

/* The present peers (bit n = ID n, own included). -EOPNOTSUPP where the device cannot
 * tell (QEMU). */
int ivc_ctx_peers(struct ivc_ctx *ctx, uint64_t *present);

/* Opens the channel to peer and waits up to timeout_ms for the peer to open its end.
 * Earlier contents of the pair's regions are discarded. -ERANGE: peer >= peers or peer ==
 * own ID; -ETIMEDOUT: the peer did not open its end in time. */
int ivc_open(struct ivc_ctx *ctx, unsigned peer, int timeout_ms, struct ivc_chan **chan);

/* Tells the peer the channel is closed (it sees -ECONNRESET) and frees it. NULL is fine. */
void ivc_close(struct ivc_chan *chan);

/* The longest message this channel carries. */
size_t ivc_max_msg(const struct ivc_chan *chan);

/* Copies len bytes out as one message. */
int ivc_send(struct ivc_chan *chan, const void *buf, size_t len, int timeout_ms);

/* Receives one message into buf (size bytes); returns its length. */
ssize_t ivc_recv(struct ivc_chan *chan, void *buf, size_t size, int timeout_ms);

/* Zero-copy send: *slot gets room for len bytes in shared memory; fill it, then
 * ivc_commit(chan, n) sends its first n (<= len) bytes. Until then the channel sends
 * nothing else (-EBUSY); a second ivc_reserve replaces the first. */
int ivc_reserve(struct ivc_chan *chan, size_t len, void **slot, int timeout_ms);
int ivc_commit(struct ivc_chan *chan, size_t len);

/* Zero-copy receive: *msg points at the next message in shared memory; returns its
 * length. The message stays in place (and the next cannot be received, -EBUSY) until
 * ivc_release. */
ssize_t ivc_recv_ref(struct ivc_chan *chan, const void **msg, int timeout_ms);
int ivc_release(struct ivc_chan *chan);

/* Where a channel's time went, in nanoseconds, since it was opened; all 0 unless the
 * context was opened with IVC_TIMING. */
struct ivc_stats {
    uint64_t ring_ns;     /* library: ring checks, copies, publishing (send/recv/commit...) */
    uint64_t notify_ns;   /* doorbell system calls (ioctl RING), IVC_SHM_IRQ only */
    uint64_t notifies;    /* doorbells rung */
    uint64_t wait_ns;     /* blocked waiting for the peer: poll()/read() or spinning */
    uint64_t waits;       /* wait rounds: one sleep, or one short spin (shm-poll) */
    uint64_t presence_ns; /* reading who is present (BAR0 register or INFO ioctl) */
};
void ivc_chan_stats(const struct ivc_chan *chan, struct ivc_stats *stats);
