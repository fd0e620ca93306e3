/* Sizes on command lines: "512", "64K", "4M", "1G" in binary units, read and written the
 * same way by --mem, --shm and minivmm-broker. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Parses "512", "512K", "256M", "2G" (binary units, optional trailing "iB"/"B").
 * Returns 0 or -EINVAL (not a size) or -ERANGE (overflows 64 bits). */
int parse_size(const char *text, uint64_t *size);

/* The shortest form parse_size() reads back: "4M", "16G", "4K", or plain bytes. */
void format_size(uint64_t size, char *text, size_t len);
