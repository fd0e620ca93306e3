#include "vmm/sandbox.h"

#include <errno.h>
#include <linux/kvm.h>
#include <seccomp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "vmm/exit_codes.h"
#include "vmm/reason.h"

/* Generated from <sys/syscall.h> by vmm/syscall-names.sh. */
static const char *const syscall_names[] = {
#include "syscall_names.inc"
};

/* ---- the allow-lists: one line per system call or ioctl request ----------------------- */

/* Every kind: the C library's allocator and locks, signal return, time, the SIGSYS report
 * (prctl PR_GET_NAME, write to stderr) and the way out. mmap and mprotect are allowed
 * without PROT_EXEC only, see sandbox_add_rules(). */
static const int common_syscalls[] = {
    SCMP_SYS(write),           /* log lines, the console, eventfd signals */
    SCMP_SYS(futex),           /* mutexes, condition variables, pthread_join */
    SCMP_SYS(brk),             /* malloc */
    SCMP_SYS(munmap),          /* free of large blocks; guest memory at the end */
    SCMP_SYS(madvise),         /* free, thread exit */
    SCMP_SYS(close),           /* a departed peer's eventfds; the end */
    SCMP_SYS(clock_gettime),   /* when the vDSO is not used */
    SCMP_SYS(clock_nanosleep), /* short waits (console back-pressure, lock retries) */
    SCMP_SYS(nanosleep),       /* the same, older style */
    SCMP_SYS(getpid),          /* pthread_kill's tgkill, log lines */
    SCMP_SYS(gettid),          /* raise() */
    SCMP_SYS(rt_sigreturn),    /* the end of every signal handler */
    SCMP_SYS(rt_sigprocmask),  /* pthread_create, raise() */
    SCMP_SYS(restart_syscall), /* an interrupted sleep resumed */
    SCMP_SYS(sched_yield),     /* lock back-off */
    SCMP_SYS(exit),            /* a thread ends */
    SCMP_SYS(exit_group),      /* the process ends */
    SCMP_SYS(sigaltstack),     /* thread exit, and sanitizer runtimes */
};

/* vCPU threads: KVM_RUN, and what the devices do in an exit: COM1's interrupt line and
 * output, the ivshmem BARs moving (memory slot, doorbell ioeventfds), MSI-X vectors
 * (routes, irqfds, direct MSIs), and stopping the VM (eventfd write, tgkill). A device
 * whose exits wait on another process adds its line here (futex, poll and eventfd reads
 * are on the lists already). */
static const int vcpu_syscalls[] = {
    SCMP_SYS(ioctl),  /* only the requests in vcpu_ioctls */
    SCMP_SYS(tgkill), /* the guest stopped the VM: kick the other vCPUs */
    SCMP_SYS(poll),   /* COM1 waits for its output; MSI-X checks a vector's eventfd */
    SCMP_SYS(ppoll),  /* the same, as some C libraries make it */
    SCMP_SYS(read),   /* MSI-X drains a vector's eventfd into its pending bit */
};

static const unsigned long vcpu_ioctls[] = {
    KVM_RUN,                    /* the guest runs */
    KVM_IRQ_LINE,               /* COM1's interrupt */
    KVM_SET_USER_MEMORY_REGION, /* the guest moves or disables the shared-memory BAR */
    KVM_IOEVENTFD,              /* ... and with it the doorbells */
    KVM_IRQFD,                  /* MSI-X vector unmasked or masked */
    KVM_SET_GSI_ROUTING,        /* MSI-X message written */
    KVM_SIGNAL_MSI,             /* a pending vector delivered on unmask */
    KVM_GET_REGS,               /* the guest crashed: its registers go into the log */
    KVM_GET_SREGS,
};

/* The main thread (waits for the stop eventfd and signals, then tears the VM down), the
 * console input thread and each --shm group's thread (peers joining and leaving arrive
 * as SCM_RIGHTS messages and become ioeventfds; leaving undoes them). The main thread
 * also reads --stats's statistics. */
static const int io_syscalls[] = {
    SCMP_SYS(ioctl),   /* only the requests in io_ioctls */
    SCMP_SYS(poll),    /* stop eventfd, signalfd, console input, broker socket */
    SCMP_SYS(ppoll),   /* the same, as some C libraries make it */
    SCMP_SYS(read),    /* those fds */
    SCMP_SYS(recvmsg), /* peer joins and departures, with their eventfds */
    SCMP_SYS(tgkill),  /* kicking vCPU threads out of KVM_RUN to stop */
    SCMP_SYS(pread64), /* --stats: KVM's statistics fds, on SIGUSR1 and at the end */
};

static const unsigned long io_ioctls[] = {
    KVM_IOEVENTFD,              /* a peer's doorbells bound or unbound */
    KVM_IRQFD,                  /* teardown: irqfds detached */
    KVM_SET_USER_MEMORY_REGION, /* teardown: the shared memory unmapped */
    KVM_SET_GSI_ROUTING,        /* teardown: routes freed */
    KVM_SIGNAL_MSI,             /* a peer event raised on the peers-changed vector */
    TCSETS,                     /* the terminal's mode restored at exit */
};

/* The broker: accepts clients, checks their credentials, creates their eventfds, sends
 * the burst, and rewrites its status file under its runtime folder (opened by path: the
 * broker never reads a path from a client). syslog reconnects to /dev/log on demand. */
static const int broker_syscalls[] = {
    SCMP_SYS(poll),         /* the listening socket and every client */
    SCMP_SYS(ppoll),        /* the same, as some C libraries make it */
    SCMP_SYS(accept4),      /* a client */
    SCMP_SYS(getsockopt),   /* its SO_PEERCRED */
    SCMP_SYS(setsockopt),   /* its SO_SNDTIMEO */
    SCMP_SYS(eventfd2),     /* its eventfds */
    SCMP_SYS(sendmsg),      /* the protocol's messages, with SCM_RIGHTS */
    SCMP_SYS(recvfrom),     /* a client's EOF, or its port I/O channel request */
    SCMP_SYS(read),         /* NAME.group, when a joiner asks */
    SCMP_SYS(openat),       /* NAME.group.tmp, NAME.lock */
    SCMP_SYS(rename),       /* NAME.group.tmp to NAME.group */
    SCMP_SYS(unlink),       /* the files, at the end */
    SCMP_SYS(flock),        /* NAME.lock around teardown */
    SCMP_SYS(fstat),        /* lock_take's inode check */
    SCMP_SYS(newfstatat),   /* the same, as newer C libraries make it */
    SCMP_SYS(stat),         /* the same, by path */
    SCMP_SYS(geteuid),      /* peer credential check, status file */
    SCMP_SYS(connect),      /* syslog's /dev/log */
    SCMP_SYS(sendto),       /* syslog's messages */
    SCMP_SYS(memfd_create), /* the port I/O channel's memory, on the first request */
    SCMP_SYS(ftruncate),    /* ... sized */
    SCMP_SYS(fcntl),        /* ... and sealed */
};

struct sandbox_policy {
    const char *name;
    const int *syscalls;
    size_t syscall_count;
    const unsigned long *ioctls;
    size_t ioctl_count;
    bool unix_sockets; /* socket(AF_UNIX, ...) */
};

#define LIST(a) a, sizeof(a) / sizeof(a[0])

static const struct sandbox_policy policies[] = {
    [SANDBOX_VCPU] = {"vcpu", LIST(vcpu_syscalls), LIST(vcpu_ioctls), false},
    [SANDBOX_IO] = {"io", LIST(io_syscalls), LIST(io_ioctls), false},
    [SANDBOX_BROKER] = {"broker", LIST(broker_syscalls), NULL, 0, true},
};

const char *sandbox_kind_name(enum sandbox_kind kind)
{
    return policies[kind].name;
}

/* ---- the denial report ------------------------------------------------------------- */

static size_t text_append(char *line, size_t len, size_t at, const char *text)
{
    while (*text && at + 1 < len)
        line[at++] = *text++;
    line[at] = '\0';
    return at;
}

static size_t number_append(char *line, size_t len, size_t at, unsigned long value, unsigned base)
{
    char digits[24];
    size_t n = 0;
    do {
        digits[n++] = "0123456789abcdef"[value % base];
        value /= base;
    } while (value);
    char text[27] = "0x";
    size_t start = base == 16 ? 2 : 0;
    for (size_t i = 0; i < n; i++)
        text[start + i] = digits[n - 1 - i];
    text[start + n] = '\0';
    return text_append(line, len, at, text);
}

/* Async-signal-safe: no stdio, no allocation. */
static void denial_format(char *line, size_t len, const char *thread, long nr, bool has_request,
                          unsigned long request)
{
    const char *name = nr >= 0 && (size_t)nr < sizeof(syscall_names) / sizeof(syscall_names[0]) &&
                               syscall_names[nr]
                           ? syscall_names[nr]
                           : "unknown";
    size_t at = text_append(line, len, 0, "minivmm: error: sandbox: thread '");
    at = text_append(line, len, at, thread);
    at = text_append(line, len, at, "' made system call ");
    at = text_append(line, len, at, name);
    at = text_append(line, len, at, " (");
    at = number_append(line, len, at, (unsigned long)nr, 10);
    if (has_request) {
        at = text_append(line, len, at, ", request ");
        at = number_append(line, len, at, request, 16);
    }
    at = text_append(line, len, at, "), which its allow-list denies; exiting with status ");
    at = number_append(line, len, at, EXIT_SANDBOX_DENIED, 10);
    text_append(line, len, at, "\n");
}

void sandbox_format_denial(char *line, size_t len, const char *thread, long syscall_nr)
{
    denial_format(line, len, thread, syscall_nr, false, 0);
}

static void sandbox_sigsys(int sig, siginfo_t *info, void *context)
{
    (void)sig;
    char thread[17] = "?";
    prctl(PR_GET_NAME, thread, 0, 0, 0);
    thread[16] = '\0';
    const ucontext_t *uc = context;
    long nr = info->si_syscall;
    char line[256];
    /* For ioctl the request (second argument, in rsi) is what was refused. */
    denial_format(line, sizeof(line), thread, nr, nr == SCMP_SYS(ioctl),
                  (unsigned long)uc->uc_mcontext.gregs[REG_RSI]);
    size_t left = strlen(line);
    const char *p = line;
    while (left > 0) {
        ssize_t n = write(STDERR_FILENO, p, left);
        if (n <= 0)
            break;
        p += n;
        left -= (size_t)n;
    }
    /* Straight to the kernel: _exit() may be wrapped (sanitizers) in more system calls. */
    syscall(SYS_exit_group, EXIT_SANDBOX_DENIED);
}

/* ---- entering ------------------------------------------------------------------------ */

static int drop_capabilities(char *why, size_t why_len)
{
    cap_t none = cap_init(); /* every set empty */
    if (!none) {
        reason_set(why, why_len, "cap_init: out of memory");
        return -ENOMEM;
    }
    int ret = cap_set_proc(none) < 0 ? -errno : 0;
    cap_free(none);
    if (ret) {
        reason_set(why, why_len, "capset (drop every capability): %s", strerror(-ret));
        return ret;
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) {
        ret = -errno;
        reason_set(why, why_len, "prctl PR_CAP_AMBIENT_CLEAR_ALL: %s", strerror(-ret));
    }
    return ret;
}

static int rule_add(scmp_filter_ctx ctx, int nr, unsigned int arg_count,
                    const struct scmp_arg_cmp *arg, char *why, size_t why_len)
{
    int ret = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, arg_count, arg);
    if (ret < 0) {
        char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
        reason_set(why, why_len, "seccomp_rule_add %s: %s", name ? name : "?", strerror(-ret));
        free(name);
    }
    return ret;
}

static int sandbox_add_rules(scmp_filter_ctx ctx, const struct sandbox_policy *policy, char *why,
                             size_t why_len)
{
    int ret = 0;
    for (size_t i = 0; i < sizeof(common_syscalls) / sizeof(common_syscalls[0]) && !ret; i++)
        ret = rule_add(ctx, common_syscalls[i], 0, NULL, why, why_len);
    for (size_t i = 0; i < policy->syscall_count && !ret; i++)
        if (policy->syscalls[i] != SCMP_SYS(ioctl))
            ret = rule_add(ctx, policy->syscalls[i], 0, NULL, why, why_len);
    /* ioctl's request is an unsigned int in the kernel: compare the low 32 bits. */
    for (size_t i = 0; i < policy->ioctl_count && !ret; i++) {
        struct scmp_arg_cmp request = SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, policy->ioctls[i]);
        ret = rule_add(ctx, SCMP_SYS(ioctl), 1, &request, why, why_len);
    }
    /* Memory for the allocator, never code: a hijacked thread cannot map new code. */
    struct scmp_arg_cmp no_exec_prot = SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0);
    if (!ret)
        ret = rule_add(ctx, SCMP_SYS(mmap), 1, &no_exec_prot, why, why_len);
    if (!ret)
        ret = rule_add(ctx, SCMP_SYS(mprotect), 1, &no_exec_prot, why, why_len);
    /* The SIGSYS handler names the thread; prctl can do nothing else. */
    /* Spelled out: libseccomp's SCMP_A0(EQ, x) leaves datum_b out, which clang's
     * -Wmissing-field-initializers rejects under -Werror (the fuzz build). */
    struct scmp_arg_cmp get_name = {.arg = 0, .op = SCMP_CMP_EQ, .datum_a = PR_GET_NAME};
    if (!ret)
        ret = rule_add(ctx, SCMP_SYS(prctl), 1, &get_name, why, why_len);
    struct scmp_arg_cmp unix_domain = {.arg = 0, .op = SCMP_CMP_EQ, .datum_a = AF_UNIX};
    if (!ret && policy->unix_sockets)
        ret = rule_add(ctx, SCMP_SYS(socket), 1, &unix_domain, why, why_len);
    return ret;
}

int sandbox_enter(enum sandbox_kind kind, char *why, size_t why_len)
{
    const struct sandbox_policy *policy = &policies[kind];
    struct sigaction report = {.sa_sigaction = sandbox_sigsys, .sa_flags = SA_SIGINFO};
    sigemptyset(&report.sa_mask);
    if (sigaction(SIGSYS, &report, NULL) < 0) {
        int err = errno;
        reason_set(why, why_len, "sigaction SIGSYS: %s", strerror(err));
        return -err;
    }
    /* A SIGSYS that arrives blocked kills the process without the report. */
    sigset_t sigsys;
    sigemptyset(&sigsys);
    sigaddset(&sigsys, SIGSYS);
    int err = pthread_sigmask(SIG_UNBLOCK, &sigsys, NULL);
    if (err) {
        reason_set(why, why_len, "pthread_sigmask SIG_UNBLOCK SIGSYS: %s", strerror(err));
        return -err;
    }

    int ret = drop_capabilities(why, why_len);
    if (ret)
        return ret;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        ret = -errno;
        reason_set(why, why_len, "prctl PR_SET_NO_NEW_PRIVS: %s", strerror(-ret));
        return ret;
    }

    /* The C library reads /etc/localtime on the first local time (syslog's timestamp): now,
     * while opening files is still allowed. */
    tzset();

    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
    if (!ctx) {
        reason_set(why, why_len, "seccomp_init (%s allow-list): out of memory", policy->name);
        return -ENOMEM;
    }
    ret = sandbox_add_rules(ctx, policy, why, why_len);
    if (!ret) {
        ret = seccomp_load(ctx);
        if (ret < 0)
            reason_set(why, why_len, "seccomp_load (%s allow-list): %s", policy->name,
                       strerror(-ret));
    }
    seccomp_release(ctx);
    return ret < 0 ? ret : 0;
}
