/* What libivc's peers in different VMs must agree on: the layout of a shared-memory channel
 * group in ivshmem's BAR2 (control blocks, records), the doorbell vectors, and the frames
 * on the port I/O channel's byte stream. Only the cross-VM contract: the library's API is
 * guest-apps/libivc/ivc.h. Specified in docs/ivc.md; little endian throughout.
 *
 * <linux/types.h> only, like the other abi/ headers; the control block's fields are C11
 * atomics because both VMs access them concurrently. */
#pragma once

#include <linux/types.h>

/* ---- Shared memory (ivshmem BAR2): P x (P - 1) regions, one ring per ordered pair ---- */

#define IVC_RING_MAX_PEERS  64
#define IVC_RING_CTL_SIZE   256u  /* a region starts with struct ivc_ring_ctl */
#define IVC_RING_ALIGN      64u   /* records start at multiples of this stream offset */
#define IVC_RING_HDR        8u    /* a record header: __u32 length, __u32 kind */
#define IVC_RING_MIN_REGION 8192u /* regions are multiples of 4096, at least this */

#define IVC_REC_MSG 1u /* a message: length payload bytes follow the header */
#define IVC_REC_PAD 2u /* filler to the end of the data area: length includes the header */

/* The control block of the ring from producer a to consumer b. Bytes 0-127 belong to a,
 * bytes 128-255 to b; each side only ever writes its own half. */
struct ivc_ring_ctl {
    _Atomic __u64 head;       /* producer: stream bytes published */
    _Atomic __u64 tx_nonce;   /* producer: its nonce for this session, 0 = closed */
    _Atomic __u32 want_space; /* producer: asleep until tail moves (ring its doorbell) */
    _Atomic __u32 peers;      /* producer: its layout's P */
    _Atomic __u64 shm_size;   /* producer: its layout's S */
    __u8 pad0[96];
    _Atomic __u64 tail;      /* consumer: stream bytes consumed */
    _Atomic __u64 rx_ack;    /* consumer: the tx_nonce it reset tail for */
    _Atomic __u32 want_data; /* consumer: asleep until head moves */
    __u8 pad1[108];
};
_Static_assert(sizeof(struct ivc_ring_ctl) == IVC_RING_CTL_SIZE, "ctl size");

/* The MSI-X vectors libivc uses with the ivshmem device. */
#define IVC_SHM_VECTOR      0 /* rung when the peer sleeps waiting for data or space */
#define IVC_SHM_PEER_VECTOR 1 /* raised by the device when peers come or go */

/* ---- The port I/O channel's byte stream: frames of a header, payload, padding ---- */

#define IVC_PIO_MAGIC 0x49565000u /* "IVP" above the type byte */
#define IVC_PIO_DATA  1u
#define IVC_PIO_HELLO 2u
#define IVC_PIO_CLOSE 3u

struct ivc_pio_hdr {
    __u32 magic_type; /* IVC_PIO_MAGIC | type */
    __u32 len;        /* payload bytes after this header */
    __u32 msg_len;    /* DATA: the whole message */
    __u32 offset;     /* DATA: this chunk's place in it */
};

/* The payload of a HELLO. */
struct ivc_pio_hello {
    __u64 nonce; /* the sender's, for this channel */
    __u64 seen;  /* the receiver's nonce as the sender knows it, 0 if none */
};

#define IVC_PIO_HDR         sizeof(struct ivc_pio_hdr)
#define IVC_PIO_PADDED(len) (((len) + 3u) & ~3u) /* payload padded with zeros to dwords */
