/* NAME.group, a group's status file: the broker writes it (a temporary file renamed over
 * the old one, so readers never see half of it) before anyone hears of a change; joiners
 * read it to check size and vectors, which the wire protocol does not carry, and
 * --shm-list prints it. Its format is in docs/broker.md. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "vmm/shm_spec.h"

/* A status file is a few KiB at most: 64 peer lines and a header. */
#define BROKER_STATUS_MAX 16384

struct broker_peer_info {
    unsigned int id;
    pid_t pid;
    uid_t uid;
};

struct broker_status {
    char name[SHM_NAME_MAX + 1];
    uint64_t size;
    unsigned int vectors;
    uint64_t hugepage_size; /* 0: ordinary pages (also when the file has no hugepages=) */
    pid_t broker_pid;
    uid_t broker_uid;
    unsigned int refused;
    unsigned int peer_count;
    struct broker_peer_info peers[SHM_MAX_PEERS]; /* by ascending ID */
};

/* Reads a status file. Returns 0, -errno from open/read, or -EBADMSG when malformed. */
int broker_status_read(const char *path, struct broker_status *status);

/* Writes status to tmp_path, then renames it to path. Returns 0, or -errno with a
 * sentence in why naming the failed call; tmp_path is removed on failure. */
int broker_status_write(const char *path, const char *tmp_path, const struct broker_status *status,
                        char *why, size_t why_len);

/* Whether pid is a running (not zombie) process named BROKER_PROCESS_NAME. */
bool broker_alive(pid_t pid);

/* For --shm-list: one line per group in the runtime folder, sorted by name:
 *   NAME size=4M vectors=2 [hugepages=2M ]broker_pid=PID peers=2 [0:pid=PID 1:pid=PID]
 * with " STALE (broker not running)" after broker_pid when its broker is dead (a status
 * file it could not remove; the next joiner cleans it up). Returns the number of groups
 * listed or -errno (the reason already logged). */
int broker_status_list(FILE *out);
