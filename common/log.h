/* One logging interface for the VMM and its devices. Messages go to stderr with a
 * "minivmm: " prefix; debug messages only with --verbose. Errors name the failing call
 * and its arguments, e.g. error("KVM_SET_USER_MEMORY_REGION slot %u: %s", ...). */
#pragma once

#include <stdbool.h>

void log_set_verbose(bool verbose);
bool log_is_verbose(void);

void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
