/* minivmm-broker: the broker of one shared-memory group (docs/broker.md). Run by hand, it
 * starts the group NAME in the foreground and serves it until SIGINT, SIGTERM or SIGHUP, so
 * that QEMU VMs alone can form a group. Started by minivmm (--ready-fd, spawn.h), it
 * leaves its parent at once, reports ready on that fd and serves until its last client
 * has left. Either way it ends by removing the group's socket and status file. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "common/log.h"
#include "vmm/broker/runtime.h"
#include "vmm/broker/server.h"
#include "vmm/broker/status.h"
#include "vmm/hugepages.h"
#include "vmm/reason.h"
#include "vmm/shm_spec.h"
#include "vmm/size.h"

/* Exit statuses (sysexits.h numbers, as minivmm's). */
#define BROKER_EXIT_USAGE  64
#define BROKER_EXIT_ERROR  71
#define BROKER_EXIT_EXISTS 73

struct broker_args {
    struct shm_spec spec;
    const char *runtime_dir; /* NULL: find it as minivmm does */
    int ready_fd;            /* -1: run by hand */
    bool sandbox;
    bool verbose;
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: minivmm-broker [OPTIONS] NAME[,size=SIZE][,vectors=N][,hugepages=2M|1G]\n"
            "Start the shared-memory group NAME and serve it in the foreground until SIGINT,\n"
            "SIGTERM or SIGHUP. minivmm VMs join it with --shm=NAME (same size, vectors and\n"
            "hugepages), QEMU VMs with -chardev socket,path=SOCKET -device ivshmem-doorbell;\n"
            "the socket's path is printed at start. Defaults: size 4M (a power of two, %lluK\n"
            "to %lluG), %d vectors (0 to %d), ordinary pages; hugepages=2M or 1G takes the\n"
            "memory from the host's hugetlb pool (see /proc/sys/vm/nr_hugepages) at start.\n"
            "\n"
            "  --no-sandbox       skip the seccomp allow-list (debugging)\n"
            "  -v, --verbose      debug messages\n"
            "  -h, --help         show this help\n"
            "\n"
            "Used by minivmm when it starts a group itself:\n"
            "  --ready-fd=FD      write \"ok PID\" or \"error ERRNO TEXT\" to FD once listening;\n"
            "                     leave the parent at once; exit when the last client has left\n"
            "  --runtime-dir=DIR  the group's folder, checked by the caller, which holds\n"
            "                     NAME.lock and removed any stale NAME.sock\n"
            "\n"
            "Exit status: 0 stopped by a signal or the last client left; 64 usage error;\n"
            "71 a system call failed; 73 the group already has a broker.\n",
            SHM_MIN_SIZE >> 10, SHM_MAX_SIZE >> 30, SHM_DEFAULT_VECTORS, SHM_MAX_VECTORS);
}

enum { OPT_NO_SANDBOX = 0x100, OPT_READY_FD, OPT_RUNTIME_DIR };

/* Returns -1 to run, else the exit status. */
static int parse_args(int argc, char **argv, struct broker_args *args)
{
    static const struct option options[] = {
        {"no-sandbox", no_argument, NULL, OPT_NO_SANDBOX},
        {"ready-fd", required_argument, NULL, OPT_READY_FD},
        {"runtime-dir", required_argument, NULL, OPT_RUNTIME_DIR},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *args = (struct broker_args){.ready_fd = -1, .sandbox = true};
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, ":vh", options, NULL)) != -1) {
        switch (opt) {
        case OPT_NO_SANDBOX:
            args->sandbox = false;
            break;
        case OPT_READY_FD: {
            char *end;
            errno = 0;
            long fd = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || fd < 3 || fd > INT_MAX) {
                fprintf(stderr, "minivmm-broker: error: --ready-fd '%s': expected an fd >= 3\n",
                        optarg);
                return BROKER_EXIT_USAGE;
            }
            args->ready_fd = (int)fd;
            break;
        }
        case OPT_RUNTIME_DIR:
            args->runtime_dir = optarg;
            break;
        case 'v':
            args->verbose = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case ':':
            fprintf(stderr, "minivmm-broker: error: option '%s' needs a value (see --help)\n",
                    argv[optind - 1]);
            return BROKER_EXIT_USAGE;
        default:
            fprintf(stderr, "minivmm-broker: error: unknown option '%s' (see --help)\n",
                    argv[optind - 1]);
            return BROKER_EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "minivmm-broker: error: %s (see --help)\n",
                optind == argc ? "missing NAME[,size=SIZE][,vectors=N][,hugepages=2M|1G]"
                               : "more than one group");
        return BROKER_EXIT_USAGE;
    }
    char why[192];
    if (shm_spec_parse(argv[optind], &args->spec, why, sizeof(why)) < 0) {
        fprintf(stderr, "minivmm-broker: error: '%s': %s\n", argv[optind], why);
        return BROKER_EXIT_USAGE;
    }
    if (args->spec.portio) {
        fprintf(stderr,
                "minivmm-broker: error: '%s': portio is each VM's choice (--shm="
                "...,portio=on); the broker offers the channel to any that asks\n",
                argv[optind]);
        return BROKER_EXIT_USAGE;
    }
    if (args->runtime_dir && args->ready_fd < 0) {
        fprintf(stderr, "minivmm-broker: error: --runtime-dir is only for minivmm, with "
                        "--ready-fd\n");
        return BROKER_EXIT_USAGE;
    }
    return -1;
}

/* SIGINT and SIGTERM (and SIGHUP, by hand) end the broker through its loop: blocked here
 * and read from a signalfd, so the files are removed as on any other way out. */
static int stop_signals_fd(bool by_hand)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (by_hand)
        sigaddset(&set, SIGHUP);
    else
        signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN); /* a client gone mid-send is an error return, not a death */
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return -errno;
    int fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    return fd < 0 ? -errno : fd;
}

/* Started by minivmm: the first process exits at once, so that the broker is nobody's
 * child (a VMM never waits for it) and the spawner learns it started. */
static int leave_parent(int ready_fd)
{
    pid_t pid = fork();
    if (pid < 0) {
        dprintf(ready_fd, "error %d fork: %s\n", errno, strerror(errno));
        return BROKER_EXIT_ERROR;
    }
    if (pid > 0)
        _exit(0);
    /* Joiners and --shm-list recognise a live broker by this name, whatever the file's. */
    if (prctl(PR_SET_NAME, BROKER_PROCESS_NAME, 0, 0, 0) < 0) {
        dprintf(ready_fd, "error %d prctl PR_SET_NAME %s: %s\n", errno, BROKER_PROCESS_NAME,
                strerror(errno));
        return BROKER_EXIT_ERROR;
    }
    if (chdir("/") < 0) {
        /* Harmless: only keeps a mount busy. */
    }
    return 0;
}

/* By hand, under NAME.lock: a live group is reported (exit status), a dead one's files
 * removed. Returns -1 to go on. */
static int claim_group(const char *dir, const struct shm_spec *spec, const char *sock_path)
{
    char status_path[PATH_MAX];
    if (broker_path(status_path, sizeof(status_path), dir, spec->name, ".group")) {
        log_error("runtime folder path too long: %s", dir);
        return BROKER_EXIT_ERROR;
    }
    struct broker_status *status = malloc(sizeof(*status));
    if (!status) {
        log_error("out of memory");
        return BROKER_EXIT_ERROR;
    }
    int ret = -1;
    if (broker_status_read(status_path, status) == 0 && broker_alive(status->broker_pid)) {
        char size[32], huge[48];
        format_size(status->size, size, sizeof(size));
        hugepage_option(status->hugepage_size, ',', huge, sizeof(huge));
        fprintf(stderr,
                "minivmm-broker: group '%s' already exists: size=%s vectors=%u%s, broker pid %d, "
                "%u peers, socket %s\n",
                spec->name, size, status->vectors, huge, (int)status->broker_pid,
                status->peer_count, sock_path);
        ret = BROKER_EXIT_EXISTS;
        goto out;
    }
    /* No live broker on record: one that answers anyway is still a broker. */
    int sock = broker_socket_connect(sock_path);
    if (sock >= 0) {
        close(sock);
        fprintf(stderr, "minivmm-broker: group '%s' already exists: a broker answers on %s\n",
                spec->name, sock_path);
        ret = BROKER_EXIT_EXISTS;
        goto out;
    }
    if (sock != -ECONNREFUSED && sock != -ENOENT) {
        log_error("connect %s: %s", sock_path, strerror(-sock));
        ret = BROKER_EXIT_ERROR;
        goto out;
    }
    char why[PATH_MAX + 64];
    if (broker_remove_stale(sock_path, status_path, why, sizeof(why)) < 0) {
        log_error("%s", why);
        ret = BROKER_EXIT_ERROR;
    }
out:
    free(status);
    return ret;
}

static int run(const struct broker_args *args)
{
    const struct shm_spec *spec = &args->spec;
    bool by_hand = args->ready_fd < 0;
    char dir[PATH_MAX], sock_path[PATH_MAX], why[400];
    int ret, err = -ENAMETOOLONG; /* what the ready pipe says if a step below fails */
    if (args->runtime_dir) {
        snprintf(dir, sizeof(dir), "%s", args->runtime_dir);
    } else if (broker_runtime_dir(dir, sizeof(dir), why, sizeof(why)) < 0) {
        log_error("%s", why);
        return BROKER_EXIT_ERROR;
    }
    if (broker_path(sock_path, BROKER_SOCK_PATH_MAX, dir, spec->name, ".sock")) {
        reason_set(why, sizeof(why),
                   "socket path %s/%s.sock is longer than the %zu bytes that fit in "
                   "sockaddr_un.sun_path: set XDG_RUNTIME_DIR to a shorter folder",
                   dir, spec->name, BROKER_SOCK_PATH_MAX - 1);
        goto fail;
    }

    int lock = -1;
    if (by_hand) {
        char lock_path[PATH_MAX];
        if (broker_path(lock_path, sizeof(lock_path), dir, spec->name, ".lock")) {
            reason_set(why, sizeof(why), "runtime folder path too long: %s", dir);
            goto fail;
        }
        lock = broker_lock_take(lock_path, BROKER_LOCK_TIMEOUT_MS);
        if (lock < 0) {
            err = lock;
            reason_set(why, sizeof(why), "flock %s: %s", lock_path,
                       lock == -ETIMEDOUT ? "held by another process for too long"
                                          : strerror(-lock));
            goto fail;
        }
        ret = claim_group(dir, spec, sock_path);
        if (ret >= 0) {
            close(lock);
            return ret;
        }
    } else {
        ret = leave_parent(args->ready_fd);
        if (ret)
            return ret;
    }

    int stop_fd = stop_signals_fd(by_hand);
    if (stop_fd < 0) {
        err = stop_fd;
        reason_set(why, sizeof(why), "signalfd SIGINT|SIGTERM: %s", strerror(-stop_fd));
        goto fail_locked;
    }
    int listen_fd = broker_listen(sock_path, why, sizeof(why));
    if (listen_fd < 0) {
        err = listen_fd;
        close(stop_fd);
        goto fail_locked;
    }
    if (by_hand) {
        char size[32], huge[48];
        format_size(spec->size, size, sizeof(size));
        hugepage_option(spec->hugepage_size, ',', huge, sizeof(huge));
        printf("minivmm-broker: group %s size=%s vectors=%u%s, pid %d\n"
               "minivmm-broker: socket %s\n"
               "minivmm-broker: minivmm joins with --shm=%s,size=%s,vectors=%u%s; QEMU with "
               "-chardev socket,path=%s,id=%s -device ivshmem-doorbell,chardev=%s,vectors=%u\n",
               spec->name, size, spec->vectors, huge, (int)getpid(), sock_path, spec->name, size,
               spec->vectors, huge, sock_path, spec->name, spec->name, spec->vectors);
        fflush(stdout);
    }
    struct broker_options opts = {
        .first_client_timeout_ms = by_hand ? -1 : BROKER_FIRST_CLIENT_TIMEOUT_MS,
        .persist = by_hand,
        .ready_fd = args->ready_fd,
        .lock_fd = lock,
        .stop_fd = stop_fd,
        .use_syslog = !by_hand,
        .sandbox = args->sandbox,
        .hugepage_size = spec->hugepage_size,
    };
    ret = broker_run_opts(listen_fd, dir, spec->name, spec->size, spec->vectors, &opts);
    close(stop_fd);
    if (ret < 0)
        return BROKER_EXIT_ERROR; /* the reason is logged (and reported on ready_fd) */
    if (by_hand)
        printf("minivmm-broker: group %s stopped, %s removed\n", spec->name, sock_path);
    return 0;

fail_locked:
    if (lock >= 0)
        close(lock);
fail:
    log_error("%s", why);
    if (args->ready_fd >= 0)
        dprintf(args->ready_fd, "error %d %s\n", -err, why);
    return BROKER_EXIT_ERROR;
}

int main(int argc, char **argv)
{
    struct broker_args args;
    int ret = parse_args(argc, argv, &args);
    if (ret < 0) {
        log_set_verbose(args.verbose);
        ret = run(&args);
    }
    /* _exit, not exit: exit handlers (a sanitizer's leak check) may make system calls the
     * sandbox's allow-list denies. */
    fflush(stdout);
    fflush(stderr);
    _exit(ret);
}
