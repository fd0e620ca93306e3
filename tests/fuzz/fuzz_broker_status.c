/* NAME.group, the broker's status file, as a client parses it before connecting (sizes and
 * vector counts are checked against it, --shm-list prints it). Another process of the same
 * user can write anything there. Invariants of a file that parses: a valid group name, at
 * most SHM_MAX_VECTORS vectors, at most SHM_MAX_PEERS peers, each with an ID below it. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "vmm/broker/connect.h"
#include "vmm/broker/runtime.h"
#include "vmm/broker/server.h"
#include "vmm/broker/status.h"

static char dir[] = "/tmp/minivmm-fuzz-status-XXXXXX";
static char path[sizeof(dir) + 16];

static void remove_files(void)
{
    unlink(path);
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!path[0]) {
        FUZZ_REQUIRE(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
        snprintf(path, sizeof(path), "%s/fuzz.group", dir);
        atexit(remove_files);
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FUZZ_REQUIRE(fd >= 0 && write(fd, data, size) == (ssize_t)size && close(fd) == 0,
                 "writing %s: %s", path, strerror(errno));

    struct broker_status status;
    int ret = broker_status_read(path, &status);
    FUZZ_REQUIRE(ret == 0 || ret == -EBADMSG, "broker_status_read: %d", ret);
    if (ret == 0) {
        FUZZ_REQUIRE(shm_name_valid(status.name), "name '%s'", status.name);
        FUZZ_REQUIRE(status.vectors <= SHM_MAX_VECTORS, "vectors %u", status.vectors);
        FUZZ_REQUIRE(status.peer_count <= SHM_MAX_PEERS, "%u peers", status.peer_count);
        for (unsigned i = 0; i < status.peer_count; i++)
            FUZZ_REQUIRE(status.peers[i].id < SHM_MAX_PEERS, "peer ID %u", status.peers[i].id);
    }
    return 0;
}
