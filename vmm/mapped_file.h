/* A whole file mapped read-only: kernels and initrds are copied into guest memory once,
 * so there is no reason to read them into a buffer first. */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct mapped_file {
    const uint8_t *data; /* NULL for an empty file */
    size_t size;
};

/* Returns 0 or -errno (ENOENT, EACCES, EISDIR for a directory, ...). */
int mapped_file_open(struct mapped_file *file, const char *path);
void mapped_file_close(struct mapped_file *file);
