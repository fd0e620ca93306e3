#include "vmm/broker/connect.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/broker/runtime.h"
#include "vmm/broker/spawn.h"
#include "vmm/broker/status.h"
#include "vmm/hugepages.h"
#include "vmm/reason.h"
#include "vmm/size.h"

static void full_reason(char *why, size_t why_len, const struct broker_status *status)
{
    reason_set(why, why_len,
               "shared-memory group '%s' is full: it has %u peers, the most a group can have "
               "(broker pid %d); wait for one to leave or use another name",
               status->name, status->peer_count, (int)status->broker_pid);
}

int broker_check_room(const char *dir, const char *name, char *why, size_t why_len)
{
    char status_path[PATH_MAX];
    if (broker_path(status_path, sizeof(status_path), dir, name, ".group"))
        return 0;
    struct broker_status *status = malloc(sizeof(*status));
    if (!status)
        return 0;
    int ret = 0;
    if (broker_status_read(status_path, status) == 0 && status->peer_count >= SHM_MAX_PEERS &&
        broker_alive(status->broker_pid)) {
        full_reason(why, why_len, status);
        ret = -EUSERS;
    }
    free(status);
    return ret;
}

/* "size=4M vectors=2", with " hugepages=2M" for a hugetlb group. */
static void shape_text(char *text, size_t len, uint64_t size, unsigned int vectors,
                       uint64_t hugepage_size)
{
    char size_text[32], huge_text[48];
    format_size(size, size_text, sizeof(size_text));
    hugepage_option(hugepage_size, ' ', huge_text, sizeof(huge_text));
    snprintf(text, len, "size=%s vectors=%u%s", size_text, vectors, huge_text);
}

int broker_connect(const char *dir, const struct shm_spec *spec, bool *spawned, pid_t *broker_pid,
                   char *why, size_t why_len)
{
    const char *name = spec->name;
    char sock_path[PATH_MAX], lock_path[PATH_MAX], status_path[PATH_MAX];
    *spawned = false;
    *broker_pid = 0;
    if (!shm_name_valid(name)) {
        reason_set(why, why_len, "invalid shared-memory group name '%s'", name ? name : "");
        return -EINVAL;
    }
    if (broker_path(sock_path, BROKER_SOCK_PATH_MAX, dir, name, ".sock")) {
        reason_set(why, why_len,
                   "socket path %s/%s.sock is longer than the %zu bytes that fit in "
                   "sockaddr_un.sun_path: set XDG_RUNTIME_DIR to a shorter folder",
                   dir, name, BROKER_SOCK_PATH_MAX - 1);
        return -ENAMETOOLONG;
    }
    if (broker_path(lock_path, sizeof(lock_path), dir, name, ".lock") ||
        broker_path(status_path, sizeof(status_path), dir, name, ".group")) {
        reason_set(why, why_len, "runtime folder path too long: %s", dir);
        return -ENAMETOOLONG;
    }

    int lock = broker_lock_take(lock_path, BROKER_LOCK_TIMEOUT_MS);
    if (lock < 0) {
        if (lock == -ETIMEDOUT)
            reason_set(why, why_len, "flock %s: still held by another process after %d ms",
                       lock_path, BROKER_LOCK_TIMEOUT_MS);
        else
            reason_set(why, why_len, "open+flock %s: %s", lock_path, strerror(-lock));
        return lock;
    }

    int ret;
    struct broker_status *status = malloc(sizeof(*status));
    if (!status) {
        reason_set(why, why_len, "out of memory");
        ret = -ENOMEM;
        goto out;
    }
    bool live = broker_status_read(status_path, status) == 0 && broker_alive(status->broker_pid);
    if (live && (status->size != spec->size || status->vectors != spec->vectors ||
                 status->hugepage_size != spec->hugepage_size)) {
        char have[96], want[96];
        shape_text(have, sizeof(have), status->size, status->vectors, status->hugepage_size);
        shape_text(want, sizeof(want), spec->size, spec->vectors, spec->hugepage_size);
        /* When only the backing differs, say so for the side that has no hugepages=. */
        bool backing_differs = status->hugepage_size != spec->hugepage_size;
        reason_set(why, why_len,
                   "shared-memory group '%s' already exists with %s%s (broker pid %d, %u peers), "
                   "but %s%s was asked for: use the same values or another name",
                   name, have, backing_differs && !status->hugepage_size ? " (ordinary pages)" : "",
                   (int)status->broker_pid, status->peer_count, want,
                   backing_differs && !spec->hugepage_size ? " (ordinary pages)" : "");
        ret = -EEXIST;
        goto out;
    }
    if (live && status->peer_count >= SHM_MAX_PEERS) {
        full_reason(why, why_len, status);
        ret = -EUSERS;
        goto out;
    }
    ret = broker_socket_connect(sock_path);
    if (ret >= 0) {
        *broker_pid = live ? status->broker_pid : 0;
        goto out;
    }
    if (ret != -ECONNREFUSED && ret != -ENOENT) {
        reason_set(why, why_len, "connect %s: %s", sock_path, strerror(-ret));
        goto out;
    }

    /* Nobody listens: whatever is left belongs to a dead broker. */
    ret = broker_remove_stale(sock_path, status_path, why, why_len);
    if (ret < 0)
        goto out;
    pid_t pid;
    ret = broker_spawn(dir, spec, &pid, why, why_len);
    if (ret < 0)
        goto out;
    ret = broker_socket_connect(sock_path);
    if (ret < 0) {
        reason_set(why, why_len, "connect %s (broker pid %d just started): %s", sock_path, (int)pid,
                   strerror(-ret));
        goto out;
    }
    *spawned = true;
    *broker_pid = pid;
out:
    free(status);
    close(lock);
    return ret;
}
