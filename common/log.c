#include "common/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

static atomic_bool verbose_enabled;

void log_set_verbose(bool verbose)
{
    atomic_store(&verbose_enabled, verbose);
}

bool log_is_verbose(void)
{
    return atomic_load(&verbose_enabled);
}

static void log_emit(const char *level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void log_emit(const char *level, const char *fmt, va_list ap)
{
    /* One fprintf per line so lines from several threads do not interleave. */
    char line[1024];
    vsnprintf(line, sizeof(line), fmt, ap);
    fprintf(stderr, "minivmm: %s%s\n", level, line);
}

void log_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_emit("error: ", fmt, ap);
    va_end(ap);
}

void log_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_emit("warning: ", fmt, ap);
    va_end(ap);
}

void log_info(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_emit("", fmt, ap);
    va_end(ap);
}

void log_debug(const char *fmt, ...)
{
    if (!log_is_verbose())
        return;
    va_list ap;
    va_start(ap, fmt);
    log_emit("debug: ", fmt, ap);
    va_end(ap);
}
