/* A failure's reason, written as one line into a buffer the caller provides, for the
 * pure functions (image parsing, boot layout, the broker) that report why they refused
 * without printing anything themselves. */
#pragma once

#include <stddef.h>

/* Formats the reason into why (nothing when why is NULL or why_len 0). */
void reason_set(char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The same, returning err: for `return reason_fail(-EINVAL, why, why_len, ...);`. */
int reason_fail(int err, char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
