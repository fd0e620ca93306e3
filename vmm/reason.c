#include "vmm/reason.h"

#include <stdarg.h>
#include <stdio.h>

static void reason_vset(char *why, size_t why_len, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void reason_vset(char *why, size_t why_len, const char *fmt, va_list ap)
{
    if (why && why_len)
        vsnprintf(why, why_len, fmt, ap);
}

void reason_set(char *why, size_t why_len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reason_vset(why, why_len, fmt, ap);
    va_end(ap);
}

int reason_fail(int err, char *why, size_t why_len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reason_vset(why, why_len, fmt, ap);
    va_end(ap);
    return err;
}
