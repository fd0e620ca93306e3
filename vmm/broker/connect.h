/* A client's rendezvous with its group's broker: under NAME.lock (runtime.h), check the
 * status file against the size and vectors asked for, connect to NAME.sock, or else clean
 * what a dead broker left and start a new one (spawn.h). Holding the lock from the check
 * until connected is what makes two VMMs starting one group at once get one broker. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vmm/shm_spec.h"

/* Connects to the group spec names. Returns the connected socket (SOCK_CLOEXEC), or -errno
 * with a sentence in why: -EEXIST for a live group of another size, vector count or
 * hugepage size, -EUSERS for a full one. *spawned tells whether this call started the
 * broker, *broker_pid is its pid (0 if unknown); a broker this call starts gets spec's
 * shape and spec->sandbox. */
int broker_connect(const char *dir, const struct shm_spec *spec, bool *spawned, pid_t *broker_pid,
                   char *why, size_t why_len);

/* After a join failed because the broker hung up at once: -EUSERS with a sentence in why
 * when NAME.group shows a live broker with SHM_MAX_PEERS peers (it refuses the next one
 * that way, as QEMU's server does), else 0. broker_connect() makes the same check first;
 * this one catches a joiner that raced another for the last place. */
int broker_check_room(const char *dir, const char *name, char *why, size_t why_len);
