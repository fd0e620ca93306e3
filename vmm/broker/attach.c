#include "vmm/broker/attach.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "vmm/broker/runtime.h"
#include "vmm/reason.h"

static int no_broker(const char *name, const char *dir, char *why, size_t why_len)
{
    return reason_fail(-ENOENT, why, why_len,
                       "shared-memory group '%s' has no broker in %s: start a VM with "
                       "--shm=%s or run 'minivmm-broker %s' first",
                       name, dir, name, name);
}

int broker_attach(const char *dir, const char *name, struct broker_status *status, char *why,
                  size_t why_len)
{
    char sock_path[PATH_MAX], lock_path[PATH_MAX], status_path[PATH_MAX];

    if (!shm_name_valid(name))
        return reason_fail(-EINVAL, why, why_len, "invalid shared-memory group name '%s'",
                           name ? name : "");
    if (broker_path(sock_path, BROKER_SOCK_PATH_MAX, dir, name, ".sock") ||
        broker_path(lock_path, sizeof(lock_path), dir, name, ".lock") ||
        broker_path(status_path, sizeof(status_path), dir, name, ".group"))
        return reason_fail(-ENAMETOOLONG, why, why_len,
                           "the paths of group '%s' in %s are too long: set XDG_RUNTIME_DIR to a "
                           "shorter folder",
                           name, dir);
    /* Without a status file there is no broker, and taking the lock would create a lock
     * file that nobody removes. */
    if (access(status_path, F_OK) < 0) {
        if (errno == ENOENT)
            return no_broker(name, dir, why, why_len);
        return reason_fail(-errno, why, why_len, "access %s: %s", status_path, strerror(errno));
    }
    int lock = broker_lock_take(lock_path, BROKER_LOCK_TIMEOUT_MS);
    if (lock == -ETIMEDOUT)
        return reason_fail(lock, why, why_len,
                           "flock %s: still held by another process after %d ms", lock_path,
                           BROKER_LOCK_TIMEOUT_MS);
    if (lock < 0)
        return reason_fail(lock, why, why_len, "open+flock %s: %s", lock_path, strerror(-lock));

    int ret = broker_status_read(status_path, status);
    if (ret == -ENOENT || (ret == 0 && !broker_alive(status->broker_pid))) {
        ret = no_broker(name, dir, why, why_len);
    } else if (ret < 0) {
        reason_set(why, why_len, "reading %s: %s", status_path, strerror(-ret));
    } else if (status->peer_count >= SHM_MAX_PEERS) {
        ret = reason_fail(-EUSERS, why, why_len,
                          "shared-memory group '%s' is full: it has %u peers (broker pid %d)", name,
                          status->peer_count, (int)status->broker_pid);
    } else {
        ret = broker_socket_connect(sock_path);
        if (ret == -ENOENT || ret == -ECONNREFUSED)
            ret = no_broker(name, dir, why, why_len);
        else if (ret < 0)
            reason_set(why, why_len, "connect %s: %s", sock_path, strerror(-ret));
    }
    close(lock);
    return ret;
}
