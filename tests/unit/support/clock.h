/* Milliseconds of CLOCK_MONOTONIC, for tests and fuzz harnesses that bound how long
 * something may take. Header-only (see support/text.h). */
#pragma once

#include <stdint.h>
#include <time.h>

static inline int64_t test_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
