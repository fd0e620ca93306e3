/* Least privilege after set-up. Every thread of minivmm, and the broker process, calls
 * sandbox_enter() for itself once it has opened everything it will ever open: it drops
 * every capability, sets no_new_privs and installs the seccomp allow-list of its kind.
 * Seccomp filters and capabilities belong to a thread, so each thread does it for itself;
 * a thread created afterwards would inherit its creator's filter, which is why minivmm
 * creates its vCPU threads before the main thread enters its own sandbox.
 *
 * A system call outside the list raises SIGSYS; the handler writes one line naming the
 * call and the thread (its comm name) to stderr and ends the whole process with
 * EXIT_SANDBOX_DENIED. The lists live in sandbox.c, one line per call. */
#pragma once

#include <stddef.h>

enum sandbox_kind {
    SANDBOX_VCPU,   /* KVM_RUN and what an exit needs: the devices, their ioctls, the console */
    SANDBOX_IO,     /* main, console and shm-group threads: poll, reads, peer ioctls */
    SANDBOX_BROKER, /* the broker process: accept, SCM_RIGHTS, status and lock files */
};

/* The kind's name as the denial line prints it ("vcpu", "io", "broker"). */
const char *sandbox_kind_name(enum sandbox_kind kind);

/* Sandboxes the calling thread (see above). Returns 0, or -errno with a sentence in why
 * that names the failing call; the thread is then unchanged or only partly restricted,
 * and the caller should stop. */
int sandbox_enter(enum sandbox_kind kind, char *why, size_t why_len);

/* Formats the line the SIGSYS handler (installed by sandbox_enter()) writes for a denied
 * call, as it does: async-signal-safe, truncated to len. Exposed for tests. */
void sandbox_format_denial(char *line, size_t len, const char *thread, long syscall_nr);
