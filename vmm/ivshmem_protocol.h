/* The wire format of QEMU's ivshmem server protocol (docs/specs/ivshmem-spec.rst in QEMU,
 * restated in shared/docs/ivshmem-interface.md): a UNIX stream socket, one way from server
 * to client, each message one signed 64-bit little-endian integer with zero or one file
 * descriptor attached as SCM_RIGHTS. What the values mean is up to broker.c (the server)
 * and shm_group.c (the client); this file only frames them. */
#pragma once

#include <stdint.h>

/* The first message a server sends: the protocol version. */
#define IVPROTO_VERSION 0
/* The value that carries the shared-memory fd (third message). */
#define IVPROTO_SHM_ID (-1)
/* Peer IDs on the wire are 0..65535 (QEMU keeps them in a uint16_t). */
#define IVPROTO_MAX_ID 65535

/* minivmm's extension, which QEMU never meets: QEMU's client never writes to the socket, and
 * a minivmm broker answers only a client that asks. A minivmm client that wants the port
 * I/O channel (--shm=NAME,portio=on) sends IVPROTO_PORTIO_REQUEST (no fd) right after
 * connecting; after the initial burst, with other peers' joins and departures possibly
 * in between, the broker answers IVPROTO_PORTIO_ID with the channel's sealed memfd
 * (devices/portio_channel.h). Other values a client sends are ignored. */
#define IVPROTO_PORTIO_REQUEST 0x4D56504F52543031ll /* "MVPORT01" */
#define IVPROTO_PORTIO_ID      (-2)
/* Every minivmm client (a VMM, a host libivc peer) sends IVPROTO_HELLO first, with no fd,
 * and expects no answer: a client that never does is a QEMU device, whose peer table
 * cannot take back an ID it saw leave (docs/broker.md, "Peer IDs"). */
#define IVPROTO_HELLO 0x4D5648454C4C4F31ll /* "MVHELLO1" */

/* Sends one message: value, and fd as SCM_RIGHTS unless fd is -1. Retries on EINTR,
 * finishes partial writes, never raises SIGPIPE. Returns 0 or -errno (e.g. -EPIPE when
 * the peer is gone, -EAGAIN when SO_SNDTIMEO expired). The caller keeps its fd. */
int ivproto_send(int sock, int64_t value, int fd);

/* Receives one message into *value and *fd (-1 when none; otherwise a new fd with
 * FD_CLOEXEC that the caller owns). Retries on EINTR and reassembles a value split over
 * several reads. Returns 0; -EPIPE on an orderly EOF before the first byte; -EPROTO on a
 * malformed message (EOF inside the 8 bytes, more than one fd, truncated or unexpected
 * control data such as SCM_CREDENTIALS); -errno otherwise (-EAGAIN: SO_RCVTIMEO expired).
 * On any error every fd that arrived is closed and *fd is -1. */
int ivproto_recv(int sock, int64_t *value, int *fd);
