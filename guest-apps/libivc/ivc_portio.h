/*
 * The wire format of libivc's port I/O backend (ivc_portio.c) on the byte stream that the
 * port I/O channel device carries from one peer to another (abi/portio_regs.h).
 *
 * The stream is a sequence of frames: a 16-byte header (struct ivc_pio_hdr, little
 * endian), `len` payload bytes and zeros up to a multiple of 4 (IVC_PIO_PADDED), so that
 * every frame moves as whole dwords (rep outsl / insl: KVM emulates `rep outs` one element
 * per exit, so that is 4 bytes an exit instead of 1). Types:
 *   DATA   a chunk of a message: msg_len is the whole message's length (at most
 *          IVC_PORTIO_MAX_MSG), offset where the chunk's len bytes go in it. A chunk at offset
 *          0 starts a message (and drops an unfinished one: a send that timed out halfway);
 *          every other chunk continues the message at exactly the bytes received so far.
 *          The message is delivered when offset + len == msg_len (msg_len 0: one empty
 *          chunk). A sender writes each frame whole in one `rep outsl`, only when TX_SPACE
 *          says it fits, so the device never refuses part of a frame.
 *   HELLO  opens the channel: payload struct ivc_pio_hello (len 16, msg_len and offset 0).
 *          nonce is the sender's for this channel; seen the receiver's nonce the sender
 *          knows, 0 if none. A side answers a HELLO whose seen is not its own nonce with its
 *          own HELLO (the receiver may have drained the first one away when it opened). A
 *          HELLO with another nonce than the first is the peer reopening: -ECONNRESET.
 *   CLOSE  the sender closed the channel (len, msg_len and offset 0).
 * Anything else, once the channel is open, is a protocol error (-EPROTO, sticky). Before
 * it is open the receiver skips bytes until a HELLO header (what an earlier session left).
 */
#pragma once

#include <stdint.h>

#include "ivc.h" /* IVC_PORTIO_MAX_MSG */

#define IVC_PIO_MAGIC 0x49565000u /* "IVP" above the type byte */
#define IVC_PIO_DATA  1u
#define IVC_PIO_HELLO 2u
#define IVC_PIO_CLOSE 3u

struct ivc_pio_hdr {
    uint32_t magic_type; /* IVC_PIO_MAGIC | type */
    uint32_t len;        /* payload bytes after this header */
    uint32_t msg_len;    /* DATA: the whole message */
    uint32_t offset;     /* DATA: this chunk's place in it */
};

struct ivc_pio_hello {
    uint64_t nonce;
    uint64_t seen;
};

#define IVC_PIO_HDR         sizeof(struct ivc_pio_hdr)
#define IVC_PIO_PADDED(len) (((len) + 3u) & ~3u)
