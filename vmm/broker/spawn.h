/* Starting a group's broker from a VMM: minivmm-broker, the program next to the running
 * minivmm (or $MINIVMM_BROKER), started with posix_spawn in a session of its own, with
 * default signal handling, stdio on /dev/null and one inherited fd: the pipe on which it
 * reports ready (docs/broker.md). Safe with threads running. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vmm/shm_spec.h"

/* Overrides where broker_spawn() finds the broker program (tests run from other folders). */
#define BROKER_EXE_ENV  "MINIVMM_BROKER"
#define BROKER_EXE_NAME "minivmm-broker"
/* How long broker_spawn() waits for the broker to report ready; a hugepage group gets
 * BROKER_READY_MS_PER_GIB more per GiB, as the broker allocates and zeroes all of it first. */
#define BROKER_READY_TIMEOUT_MS 5000
#define BROKER_READY_MS_PER_GIB 2000

/* $MINIVMM_BROKER when set, else minivmm-broker in the folder of /proc/self/exe.
 * Returns 0 or -errno with a sentence in why. */
int broker_exe_path(char *path, size_t len, char *why, size_t why_len);

/* Starts a broker for the group spec describes (its name, size, vectors, hugepage size) in
 * dir, which must have no live broker: call with NAME.lock held (connect.h does), after
 * removing a stale NAME.sock. The broker creates NAME.sock and NAME.group and sandboxes
 * itself when spec->sandbox is true; this call returns once it listens
 * (see BROKER_READY_TIMEOUT_MS). Returns 0 and the broker's pid, or -errno with a
 * sentence in why. */
int broker_spawn(const char *dir, const struct shm_spec *spec, pid_t *broker_pid, char *why,
                 size_t why_len);
