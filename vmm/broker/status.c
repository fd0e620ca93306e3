#include "vmm/broker/status.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/io.h"
#include "common/log.h"
#include "vmm/broker/runtime.h"
#include "vmm/hugepages.h"
#include "vmm/reason.h"
#include "vmm/size.h"

int broker_status_read(const char *path, struct broker_status *status)
{
    memset(status, 0, sizeof(*status));
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    char *text = malloc(BROKER_STATUS_MAX + 1);
    if (!text) {
        close(fd);
        return -ENOMEM;
    }
    size_t len = 0;
    while (len < BROKER_STATUS_MAX) {
        ssize_t n = read(fd, text + len, BROKER_STATUS_MAX - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int err = errno;
            free(text);
            close(fd);
            return -err;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    text[len] = '\0';

    bool have_name = false, have_size = false, have_vectors = false, have_pid = false;
    int ret = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        unsigned long long v;
        unsigned int id, uid;
        int pid, end = 0;
        if (line[0] == '#')
            continue;
        if (sscanf(line, "peer=%u pid=%d uid=%u%n", &id, &pid, &uid, &end) == 3 && !line[end]) {
            if (id >= SHM_MAX_PEERS || status->peer_count >= SHM_MAX_PEERS) {
                ret = -EBADMSG;
                break;
            }
            struct broker_peer_info *p = &status->peers[status->peer_count++];
            p->id = id;
            p->pid = pid;
            p->uid = uid;
        } else if (strncmp(line, "name=", 5) == 0) {
            if (!shm_name_valid(line + 5)) {
                ret = -EBADMSG;
                break;
            }
            strcpy(status->name, line + 5);
            have_name = true;
        } else if (sscanf(line, "size=%llu%n", &v, &end) == 1 && !line[end]) {
            status->size = v;
            have_size = true;
        } else if (sscanf(line, "vectors=%llu%n", &v, &end) == 1 && !line[end] &&
                   v <= SHM_MAX_VECTORS) {
            status->vectors = (unsigned int)v;
            have_vectors = true;
        } else if (sscanf(line, "hugepages=%llu%n", &v, &end) == 1 && !line[end]) {
            status->hugepage_size = v;
        } else if (sscanf(line, "broker_pid=%d%n", &pid, &end) == 1 && !line[end]) {
            status->broker_pid = pid;
            have_pid = true;
        } else if (sscanf(line, "broker_uid=%u%n", &uid, &end) == 1 && !line[end]) {
            status->broker_uid = uid;
        } else if (sscanf(line, "refused=%u%n", &id, &end) == 1 && !line[end]) {
            status->refused = id;
        }
        /* Unknown lines are skipped: a newer broker may say more. */
    }
    free(text);
    if (ret == 0 && !(have_name && have_size && have_vectors && have_pid))
        ret = -EBADMSG;
    return ret;
}

bool broker_alive(pid_t pid)
{
    if (pid <= 0)
        return false;
    char path[64], text[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return false;
        /* No /proc: existence is the best we can tell. */
        return kill(pid, 0) == 0 || errno == EPERM;
    }
    ssize_t n = read(fd, text, sizeof(text) - 1);
    close(fd);
    if (n <= 0)
        return false;
    text[n] = '\0';
    /* "PID (COMM) STATE ...": COMM may hold spaces and parentheses, so take the last ')'. */
    char *open_paren = strchr(text, '(');
    char *close_paren = strrchr(text, ')');
    if (!open_paren || !close_paren || close_paren < open_paren || close_paren[1] != ' ')
        return false;
    *close_paren = '\0';
    char state = close_paren[2];
    return state != 'Z' && state != 'X' && strcmp(open_paren + 1, BROKER_PROCESS_NAME) == 0;
}

int broker_status_write(const char *path, const char *tmp_path, const struct broker_status *status,
                        char *why, size_t why_len)
{
    char text[BROKER_STATUS_MAX];
    size_t len = 0;
    /* Bounded by 64 short peer lines, but never trusted to be: a cut file is malformed,
     * an overflow would be worse. */
#define STATUS_ADD(...)                                                                            \
    do {                                                                                           \
        if (len < sizeof(text))                                                                    \
            len += (size_t)snprintf(text + len, sizeof(text) - len, __VA_ARGS__);                  \
        if (len >= sizeof(text))                                                                   \
            len = sizeof(text) - 1;                                                                \
    } while (0)
    STATUS_ADD("# minivmm shared-memory group, rewritten by its broker on every change\n");
    STATUS_ADD("name=%s\nsize=%" PRIu64 "\nvectors=%u\nhugepages=%" PRIu64
               "\nbroker_pid=%d\nbroker_uid=%u\nrefused=%u\n",
               status->name, status->size, status->vectors, status->hugepage_size,
               (int)status->broker_pid, (unsigned int)status->broker_uid, status->refused);
    for (unsigned int i = 0; i < status->peer_count && i < SHM_MAX_PEERS; i++) {
        const struct broker_peer_info *p = &status->peers[i];
        STATUS_ADD("peer=%u pid=%d uid=%u\n", p->id, (int)p->pid, (unsigned int)p->uid);
    }
#undef STATUS_ADD

    int fd = open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        int err = errno;
        reason_set(why, why_len, "open %s: %s", tmp_path, strerror(err));
        return -err;
    }
    int ret = write_all(fd, text, len);
    if (ret < 0)
        reason_set(why, why_len, "write %s: %s", tmp_path, strerror(-ret));
    if (close(fd) < 0 && ret == 0) {
        ret = -errno;
        reason_set(why, why_len, "close %s: %s", tmp_path, strerror(-ret));
    }
    if (ret == 0 && rename(tmp_path, path) < 0) {
        ret = -errno;
        reason_set(why, why_len, "rename %s %s: %s", tmp_path, path, strerror(-ret));
    }
    if (ret < 0)
        unlink(tmp_path);
    return ret;
}

static int name_compare(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int broker_status_list(FILE *out)
{
    char dir[PATH_MAX], why[512];
    int ret = broker_runtime_dir(dir, sizeof(dir), why, sizeof(why));
    if (ret < 0) {
        log_error("%s", why);
        return ret;
    }
    DIR *d = opendir(dir);
    if (!d) {
        ret = -errno;
        log_error("opendir %s: %s", dir, strerror(errno));
        return ret;
    }
    char **names = NULL;
    size_t count = 0, room = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len <= 6 || strcmp(e->d_name + len - 6, ".group") != 0)
            continue;
        if (count == room) {
            room = room ? room * 2 : 16;
            char **bigger = realloc(names, room * sizeof(*names));
            if (!bigger) {
                ret = -ENOMEM;
                break;
            }
            names = bigger;
        }
        names[count] = strndup(e->d_name, len - 6);
        if (!names[count]) {
            ret = -ENOMEM;
            break;
        }
        count++;
    }
    closedir(d);
    if (ret < 0) {
        log_error("listing %s: %s", dir, strerror(-ret));
        goto out;
    }
    qsort(names, count, sizeof(*names), name_compare);

    struct broker_status *st = malloc(sizeof(*st));
    if (!st) {
        ret = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < count; i++) {
        char path[PATH_MAX], size_text[32];
        if (broker_path(path, sizeof(path), dir, names[i], ".group"))
            continue;
        int r = broker_status_read(path, st);
        if (r < 0) {
            fprintf(out, "%s unreadable status file %s: %s\n", names[i], path,
                    r == -EBADMSG ? "malformed" : strerror(-r));
            continue;
        }
        format_size(st->size, size_text, sizeof(size_text));
        char huge_text[48];
        hugepage_option(st->hugepage_size, ' ', huge_text, sizeof(huge_text));
        fprintf(out, "%s size=%s vectors=%u%s broker_pid=%d%s peers=%u [", st->name, size_text,
                st->vectors, huge_text, (int)st->broker_pid,
                broker_alive(st->broker_pid) ? "" : " STALE (broker not running)", st->peer_count);
        for (unsigned int p = 0; p < st->peer_count; p++)
            fprintf(out, "%s%u:pid=%d", p ? " " : "", st->peers[p].id, (int)st->peers[p].pid);
        fprintf(out, "]\n");
    }
    free(st);
    ret = (int)count;
out:
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
    return ret;
}
