/*
 * The wire format of libivc's port I/O backend (ivc_portio.c) on the byte stream that the
 * port I/O channel device carries from one peer to another: the frames of
 * abi/ivc_layout.h, specified in docs/ivc.md. A message is at most IVC_PORTIO_MAX_MSG.
 */
#pragma once

#include "abi/ivc_layout.h"
#include "ivc.h" /* IVC_PORTIO_MAX_MSG */
