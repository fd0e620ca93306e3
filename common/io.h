/* Small I/O helpers shared by the VMM, the broker and the host programs. */
#pragma once

#include <stddef.h>

/* Writes all len bytes of buf to fd, retrying on EINTR and after short writes. Returns 0 or
 * -errno. */
int write_all(int fd, const void *buf, size_t len);
