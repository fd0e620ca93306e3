/*
 * ivshmem-selftest [--device BDF|/dev/ivshmemN] [--peer-event SEC] [--unplug] [--rmmod]:
 * checks the ivshmem_guest driver's interface (abi/ivshmem_guest_ioctl.h) on one
 * device, one line per check ("ok <check>" or "FAIL <check>: <why>"), then a final line
 *   ivshmem-selftest: OK <n> checks        or   ivshmem-selftest: FAIL <k> of <n> checks
 * Always: INFO against sysfs, argument validation (each bad ioctl gets its documented
 * errno), mmap bounds and that the mapping is BAR2 (a word written through it reads back
 * through resource2). With interrupts (MSI-X): a doorbell to the own ID reaches poll, read
 * (on every open file) and a bound eventfd. Without: every interrupt operation fails with
 * EOPNOTSUPP. minivmm's extension: ENABLE_PEER_EVENTS reads back; QEMU's device refuses it.
 *   --peer-event SEC  also wait up to SEC s for a peer to join or leave, raised as the
 *                     "peers changed" interrupt (minivmm's device only)
 *   --unplug          remove the device through sysfs while it is open and mapped (read,
 *                     poll, ioctl fail with ENODEV, the mapping is gone), then rescan
 *   --rmmod           unload the module (refused while a file is open), check the kernel
 *                     log has no warning since, and load it again from
 *                     /lib/modules/ivshmem_guest.ko
 * Exit status: 0 when every check passed, 1 otherwise, 2 usage.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "ivshmem_dev.h"

#define MODULE_NAME "ivshmem_guest"
#define MODULE_PATH "/lib/modules/ivshmem_guest.ko"

static int checks, failures;

__attribute__((format(printf, 3, 4))) static void check(int ok, const char *what, const char *fmt,
                                                        ...)
{
    checks++;
    if (ok) {
        printf("ok %s\n", what);
    } else {
        char why[256] = "";
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, sizeof(why), fmt, ap);
        va_end(ap);
        printf("FAIL %s: %s\n", what, why);
        failures++;
    }
    fflush(stdout);
}

/* The errno of a call that should fail, or 0 when it succeeded. */
static int err_of(int rc)
{
    return rc < 0 ? errno : 0;
}

static void expect_errno(int got, int want, const char *what)
{
    check(got == want, what, "errno %d (%s), expected %d (%s)", got, strerror(got), want,
          strerror(want));
}

static int find(const char *spec, struct ivshmem_dev *dev)
{
    char why[256];
    if (ivshmem_dev_find(spec, dev, why, sizeof(why)) != 0) {
        check(0, "find the device", "%s", why);
        return -1;
    }
    return 0;
}

/* Waits up to ms for the device node to appear (devtmpfs) after a probe. */
static int wait_node(const char *spec, struct ivshmem_dev *dev, int ms)
{
    char why[256];
    for (int t = 0; t < ms; t += 50) {
        if (ivshmem_dev_find(spec, dev, why, sizeof(why)) == 0 && dev->devnode[0] &&
            access(dev->devnode, R_OK) == 0)
            return 0;
        usleep(50 * 1000);
    }
    return -1;
}

static int write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = write(fd, text, strlen(text));
    int err = n < 0 ? -errno : 0;
    close(fd);
    return err;
}

static void check_info(int fd, const struct ivshmem_dev *dev, struct ivshmem_guest_info *info)
{
    int rc = ioctl(fd, IVSHMEM_GUEST_INFO, info);
    check(rc == 0, "INFO", "%s", strerror(errno));
    if (rc)
        return;
    printf("info: shm %" PRIu64 " bytes, own ID %" PRIu32 ", vectors %" PRIu32 ", flags 0x%" PRIx32
           ", peers 0x%" PRIx64 ", max peers %" PRIu32 "\n",
           (uint64_t)info->shm_size, info->own_id, info->vectors, info->flags,
           (uint64_t)info->peers, info->max_peers);
    check(info->shm_size == dev->bar2_size, "INFO shm_size is BAR2's size",
          "%" PRIu64 " vs %" PRIu64, (uint64_t)info->shm_size, dev->bar2_size);
    unsigned msix_size = ivshmem_dev_msix_size(dev);
    check(info->vectors <= msix_size, "INFO vectors within the MSI-X table", "%" PRIu32 " > %u",
          info->vectors, msix_size);
    check(!!(info->flags & IVSHMEM_GUEST_INFO_IRQ) == (info->vectors > 0),
          "INFO flags: IRQ exactly when vectors", "flags 0x%" PRIx32, info->flags);
    check(!!(info->flags & IVSHMEM_GUEST_INFO_EXT) !=
              !!(info->flags & IVSHMEM_GUEST_INFO_PEERS_UNKNOWN),
          "INFO flags: either EXT or PEERS_UNKNOWN", "flags 0x%" PRIx32, info->flags);
    if (info->flags & IVSHMEM_GUEST_INFO_EXT) {
        check(info->own_id >= 64 || (info->peers >> info->own_id & 1),
              "INFO peers includes the own ID", "peers 0x%" PRIx64, (uint64_t)info->peers);
    } else {
        check(info->peers == 0 && info->peers_changed_vector == IVSHMEM_GUEST_VECTOR_OFF,
              "INFO without the extension: no peers", "peers 0x%" PRIx64, (uint64_t)info->peers);
    }
    check(info->reserved[0] == 0 && info->reserved[1] == 0, "INFO reserved fields are 0",
          "not zero");
    check(!(info->flags & (IVSHMEM_GUEST_INFO_STATUS_PAGE | IVSHMEM_GUEST_INFO_DOORBELL_PORT)) ||
              (info->flags & IVSHMEM_GUEST_INFO_EXT),
          "INFO flags: status page and doorbell port only with the extension", "flags 0x%" PRIx32,
          info->flags);
}

static void check_bad_args(int fd, const struct ivshmem_guest_info *info)
{
    bool irq = info->flags & IVSHMEM_GUEST_INFO_IRQ;
    struct ivshmem_guest_ring ring = {.peer = 0x10000, .vector = 0};
    struct ivshmem_guest_eventfd efd = {.vector = IVSHMEM_GUEST_MAX_VECTORS, .fd = -1};
    uint64_t mask;
    uint32_t vector = 1000;

    expect_errno(err_of(ioctl(fd, _IO(IVSHMEM_GUEST_IOC_MAGIC, 0x7f))), ENOTTY,
                 "unknown ioctl: ENOTTY");
    expect_errno(err_of(ioctl(fd, IVSHMEM_GUEST_INFO, NULL)), EFAULT, "INFO to NULL: EFAULT");
    expect_errno(err_of(ioctl(fd, IVSHMEM_GUEST_RING, &ring)), EINVAL, "RING peer 65536: EINVAL");
    ring.peer = info->own_id;
    ring.vector = 0x10000;
    expect_errno(err_of(ioctl(fd, IVSHMEM_GUEST_RING, &ring)), EINVAL, "RING vector 65536: EINVAL");
    expect_errno(err_of(ioctl(fd, IVSHMEM_GUEST_BIND_EVENTFD, &efd)), irq ? EINVAL : EOPNOTSUPP,
                 irq ? "BIND_EVENTFD vector 64: EINVAL" : "BIND_EVENTFD without MSI-X: EOPNOTSUPP");
    expect_errno(err_of((int)read(fd, &mask, 4)), EINVAL, "read of 4 bytes: EINVAL");
    expect_errno(err_of(ioctl(fd, IVSHMEM_GUEST_ENABLE_PEER_EVENTS, &vector)),
                 irq && (info->flags & IVSHMEM_GUEST_INFO_EXT) ? EINVAL : EOPNOTSUPP,
                 "ENABLE_PEER_EVENTS vector 1000: EINVAL, or EOPNOTSUPP without it");
    if (!irq) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ring.vector = 0;
        expect_errno(err_of(ioctl(fd, IVSHMEM_GUEST_RING, &ring)), EOPNOTSUPP,
                     "RING without MSI-X: EOPNOTSUPP");
        expect_errno(err_of((int)read(fd, &mask, 8)), EOPNOTSUPP, "read without MSI-X: EOPNOTSUPP");
        check(poll(&p, 1, 0) == 1 && (p.revents & POLLERR), "poll without MSI-X: POLLERR",
              "revents 0x%x", p.revents);
    }
}

static void check_mmap(int fd, const struct ivshmem_dev *dev, uint64_t size)
{
    long page = sysconf(_SC_PAGESIZE);
    void *m;

    m = mmap(NULL, size + (size_t)page, PROT_READ, MAP_SHARED, fd, 0);
    check(m == MAP_FAILED && errno == EINVAL, "mmap beyond BAR2: EINVAL", "%s",
          m == MAP_FAILED ? strerror(errno) : "it succeeded");
    if (m != MAP_FAILED)
        munmap(m, size + (size_t)page);
    m = mmap(NULL, (size_t)page, PROT_READ, MAP_SHARED, fd, (off_t)size);
    check(m == MAP_FAILED && errno == EINVAL, "mmap at offset = size: EINVAL", "%s",
          m == MAP_FAILED ? strerror(errno) : "it succeeded");
    if (m != MAP_FAILED)
        munmap(m, (size_t)page);

    m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    check(m != MAP_FAILED, "mmap of all of BAR2", "%s", strerror(errno));
    if (m == MAP_FAILED)
        return;
    /* The last word: a marker through the driver's mapping must read back through sysfs. */
    volatile uint64_t *last = (volatile uint64_t *)((uint8_t *)m + size - 8);
    uint64_t saved = *last, marker = 0x5E1F7E57ull << 32 | (uint32_t)getpid();
    *last = marker;
    struct ivshmem_guest_info info;
    check(ioctl(fd, IVSHMEM_GUEST_INFO, &info) == 0 &&
              info.shm_memtype != IVSHMEM_GUEST_MEMTYPE_NONE,
          "INFO shm_memtype names what the mmap got", "type %" PRIu32, info.shm_memtype);
    /* On minivmm's device nothing else maps BAR2 yet, and BAR2 lies in write-back memory. */
    if (info.flags & IVSHMEM_GUEST_INFO_STATUS_PAGE)
        check(info.shm_memtype == IVSHMEM_GUEST_MEMTYPE_WB, "the driver's mapping is write-back",
              "type %" PRIu32, info.shm_memtype);
    munmap(m, size);

    uint64_t sysfs_size;
    void *s = ivshmem_dev_map_shm(dev, false, &sysfs_size);
    check(s != NULL, "mmap of resource2", "%s", strerror(errno));
    if (!s)
        return;
    volatile uint64_t *slast = (volatile uint64_t *)((uint8_t *)s + sysfs_size - 8);
    check(sysfs_size == size && *slast == marker, "the driver's mapping is BAR2",
          "resource2 reads 0x%" PRIx64 ", wrote 0x%" PRIx64, *slast, marker);
    *slast = saved;
    munmap(s, sysfs_size);
}

static int wait_readable(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int rc = poll(&p, 1, ms);
    return rc == 1 && (p.revents & POLLIN);
}

static void check_irq(int fd, const struct ivshmem_dev *dev, const struct ivshmem_guest_info *info)
{
    uint32_t v = info->vectors - 1;
    struct ivshmem_guest_ring ring = {.peer = info->own_id, .vector = v};
    struct ivshmem_guest_eventfd bind = {.vector = v};
    uint64_t mask = 0, count = 0;
    int pipefd[2];

    int fd2 = open(dev->devnode, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    check(fd2 >= 0 && efd >= 0, "second open and an eventfd", "%s", strerror(errno));
    if (fd2 < 0 || efd < 0)
        return;

    /* Nothing pending right after open. */
    expect_errno(err_of((int)read(fd2, &mask, 8)), EAGAIN, "read with nothing pending: EAGAIN");

    bind.fd = efd;
    check(ioctl(fd, IVSHMEM_GUEST_BIND_EVENTFD, &bind) == 0, "BIND_EVENTFD", "%s", strerror(errno));
    expect_errno(err_of(ioctl(fd2, IVSHMEM_GUEST_BIND_EVENTFD, &bind)), EBUSY,
                 "BIND_EVENTFD of a vector another file holds: EBUSY");
    if (pipe(pipefd) == 0) {
        struct ivshmem_guest_eventfd bad = {.vector = v, .fd = pipefd[0]};
        expect_errno(err_of(ioctl(fd, IVSHMEM_GUEST_BIND_EVENTFD, &bad)), EINVAL,
                     "BIND_EVENTFD of a pipe: EINVAL");
        close(pipefd[0]);
        close(pipefd[1]);
    }
    struct ivshmem_guest_eventfd badfd = {.vector = v, .fd = 1000};
    expect_errno(err_of(ioctl(fd, IVSHMEM_GUEST_BIND_EVENTFD, &badfd)), EBADF,
                 "BIND_EVENTFD of a closed fd: EBADF");

    /* A doorbell to ourselves: the own ID is a peer like the others. */
    check(ioctl(fd, IVSHMEM_GUEST_RING, &ring) == 0, "RING own ID", "%s", strerror(errno));
    check(wait_readable(fd, 5000), "poll wakes on the interrupt", "no POLLIN within 5 s");
    check(read(fd, &mask, 8) == 8 && (mask >> v & 1), "read returns the vector's bit",
          "mask 0x%" PRIx64, mask);
    mask = 0;
    check(read(fd2, &mask, 8) == 8 && (mask >> v & 1), "every open file sees it", "mask 0x%" PRIx64,
          mask);
    expect_errno(err_of((int)read(fd2, &mask, 8)), EAGAIN, "then nothing pending: EAGAIN");
    for (int t = 0; t < 100 && read(efd, &count, 8) != 8; t++)
        usleep(10 * 1000);
    check(count >= 1, "the bound eventfd is signalled", "count %" PRIu64, count);

    bind.fd = -1;
    check(ioctl(fd, IVSHMEM_GUEST_BIND_EVENTFD, &bind) == 0, "BIND_EVENTFD -1 unbinds", "%s",
          strerror(errno));
    bind.fd = efd;
    check(ioctl(fd2, IVSHMEM_GUEST_BIND_EVENTFD, &bind) == 0,
          "then another file may bind the vector", "%s", strerror(errno));
    close(fd2); /* drops its binding */
    close(efd);

    if (info->flags & IVSHMEM_GUEST_INFO_EXT) {
        struct ivshmem_guest_info now;
        uint32_t off = IVSHMEM_GUEST_VECTOR_OFF;
        check(ioctl(fd, IVSHMEM_GUEST_ENABLE_PEER_EVENTS, &v) == 0 &&
                  ioctl(fd, IVSHMEM_GUEST_INFO, &now) == 0 && now.peers_changed_vector == v,
              "ENABLE_PEER_EVENTS reads back", "%s", strerror(errno));
        check(ioctl(fd, IVSHMEM_GUEST_ENABLE_PEER_EVENTS, &off) == 0 &&
                  ioctl(fd, IVSHMEM_GUEST_INFO, &now) == 0 &&
                  now.peers_changed_vector == IVSHMEM_GUEST_VECTOR_OFF,
              "ENABLE_PEER_EVENTS off reads back", "%s", strerror(errno));
    }
}

static void check_peer_event(int fd, const struct ivshmem_guest_info *info, int seconds)
{
    uint32_t v = info->vectors - 1, off = IVSHMEM_GUEST_VECTOR_OFF;
    struct ivshmem_guest_info now = *info;
    uint64_t mask;

    if (!(info->flags & IVSHMEM_GUEST_INFO_EXT) || !(info->flags & IVSHMEM_GUEST_INFO_IRQ)) {
        check(0, "peer event", "needs minivmm's extension and interrupts");
        return;
    }
    while (read(fd, &mask, 8) == 8) /* start from nothing pending (fd is non-blocking) */
        ;
    check(ioctl(fd, IVSHMEM_GUEST_ENABLE_PEER_EVENTS, &v) == 0, "ENABLE_PEER_EVENTS", "%s",
          strerror(errno));
    ioctl(fd, IVSHMEM_GUEST_INFO, &now);
    uint64_t before = now.peers;
    printf("peer event: peers 0x%" PRIx64 ", waiting up to %d s on vector %" PRIu32 "\n", before,
           seconds, v);
    fflush(stdout);
    bool fired = false;
    for (time_t end = time(NULL) + seconds; time(NULL) < end && !fired;) {
        if (wait_readable(fd, 1000) && read(fd, &mask, 8) == 8 && (mask >> v & 1))
            fired = true;
    }
    ioctl(fd, IVSHMEM_GUEST_INFO, &now);
    ioctl(fd, IVSHMEM_GUEST_ENABLE_PEER_EVENTS, &off);
    check(fired && now.peers != before, "a peer joining or leaving raises the vector",
          "fired %d, peers 0x%" PRIx64 " -> 0x%" PRIx64, fired, before, (uint64_t)now.peers);
    if (fired)
        printf("peer event: peers 0x%" PRIx64 " -> 0x%" PRIx64 "\n", before, (uint64_t)now.peers);
}

static sigjmp_buf fault_jmp;

static void on_fault(int sig)
{
    siglongjmp(fault_jmp, sig);
}

/* /dev/kmsg positioned at its end: reading it returns only what the kernel logs later. */
static int kmsg_open(void)
{
    int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0 && lseek(fd, 0, SEEK_END) < 0) {
        close(fd);
        fd = -1;
    }
    check(fd >= 0, "open /dev/kmsg", "%s", strerror(errno));
    return fd;
}

/* Reads what the kernel logged since kmsg_open() (the message text of each record, one per
 * line), prints it, checks it has no warning and, unless NULL, that it contains expect. */
static void kmsg_check(int fd, const char *when, const char *expect)
{
    static char log[64 * 1024];
    char rec[8192], what[128];
    size_t len = 0;

    if (fd < 0)
        return;
    log[0] = '\0';
    for (;;) {
        ssize_t n = read(fd, rec, sizeof(rec) - 1);
        if (n < 0 && errno == EPIPE) /* overwritten while we read: go on */
            continue;
        if (n <= 0)
            break;
        rec[n] = '\0';
        /* "prio,seq,usec,flags;text\n", then " KEY=value\n" lines we leave out */
        char *text = strchr(rec, ';');
        text = text ? text + 1 : rec;
        text[strcspn(text, "\n")] = '\0';
        int w = snprintf(log + len, sizeof(log) - len, "%s\n", text);
        if (w < 0 || (size_t)w >= sizeof(log) - len)
            break;
        len += (size_t)w;
    }
    close(fd);
    printf("kernel log since %s:\n%s", when, log);
    const char *bad[] = {"WARNING", "BUG", "Oops", "Call Trace", "general protection", "leak"};
    const char *hit = NULL;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]) && !hit; i++)
        if (strstr(log, bad[i]))
            hit = bad[i];
    snprintf(what, sizeof(what), "no kernel warning since %s", when);
    check(!hit, what, "the log says %s", hit);
    if (expect) {
        snprintf(what, sizeof(what), "the kernel log since %s says '%s'", when, expect);
        check(strstr(log, expect) != NULL, what, "it does not");
    }
}

static void check_unplug(int fd, struct ivshmem_dev *dev, uint64_t size)
{
    char path[256], bdf[32];
    struct ivshmem_guest_info info;
    uint64_t mask;

    volatile uint8_t *m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    check(m != MAP_FAILED, "mmap before unplug", "%s", strerror(errno));
    snprintf(bdf, sizeof(bdf), "%s", dev->bdf);
    snprintf(path, sizeof(path), "%s/remove", dev->sysfs);
    int kmsg = kmsg_open();
    int err = write_file(path, "1");
    check(err == 0, "remove the device through sysfs", "%s", strerror(-err));
    if (err) {
        if (kmsg >= 0)
            close(kmsg);
        return;
    }
    expect_errno(err_of(ioctl(fd, IVSHMEM_GUEST_INFO, &info)), ENODEV, "INFO after unplug: ENODEV");
    expect_errno(err_of((int)read(fd, &mask, 8)), ENODEV, "read after unplug: ENODEV");
    struct pollfd p = {.fd = fd, .events = POLLIN};
    check(poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR)), "poll after unplug: POLLHUP",
          "revents 0x%x", p.revents);
    void *m2 = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
    check(m2 == MAP_FAILED && errno == ENODEV, "mmap after unplug: ENODEV", "%s",
          m2 == MAP_FAILED ? strerror(errno) : "it succeeded");
    if (m != MAP_FAILED) {
        struct sigaction sa = {.sa_handler = on_fault}, old_bus, old_segv;
        sigaction(SIGBUS, &sa, &old_bus);
        sigaction(SIGSEGV, &sa, &old_segv);
        int sig = sigsetjmp(fault_jmp, 1);
        if (sig == 0)
            (void)m[0];
        check(sig != 0, "the old mapping is revoked", "a read still worked");
        sigaction(SIGBUS, &old_bus, NULL);
        sigaction(SIGSEGV, &old_segv, NULL);
        munmap((void *)m, size);
    }
    close(fd);
    err = write_file("/sys/bus/pci/rescan", "1");
    check(err == 0, "rescan the PCI bus", "%s", strerror(-err));
    check(wait_node(bdf, dev, 5000) == 0, "the device and its node are back", "not within 5 s");
    kmsg_check(kmsg, "unplug", "removed");
}

static void check_rmmod(struct ivshmem_dev *dev)
{
    char spec[32];

    snprintf(spec, sizeof(spec), "%s", dev->bdf);
    int fd = open(dev->devnode, O_RDONLY | O_CLOEXEC);
    check(fd >= 0, "open before rmmod", "%s", strerror(errno));
    if (fd >= 0) {
        expect_errno(err_of((int)syscall(SYS_delete_module, MODULE_NAME, O_NONBLOCK)), EWOULDBLOCK,
                     "rmmod while a file is open: EWOULDBLOCK");
        close(fd);
    }
    int kmsg = kmsg_open();
    int rc = (int)syscall(SYS_delete_module, MODULE_NAME, O_NONBLOCK);
    check(rc == 0, "rmmod", "%s", strerror(errno));
    if (rc != 0) {
        if (kmsg >= 0)
            close(kmsg);
        return;
    }
    struct stat st;
    check(stat("/sys/module/" MODULE_NAME, &st) != 0 && stat(dev->devnode, &st) != 0,
          "module and node gone", "still there");
    kmsg_check(kmsg, "rmmod", "removed");
    int mfd = open(MODULE_PATH, O_RDONLY | O_CLOEXEC);
    rc = mfd < 0 ? -1 : (int)syscall(SYS_finit_module, mfd, "", 0);
    check(rc == 0, "load " MODULE_PATH " again", "%s", strerror(errno));
    if (mfd >= 0)
        close(mfd);
    check(wait_node(spec, dev, 5000) == 0, "the node is back after reload", "not within 5 s");
}

static int usage(void)
{
    fprintf(stderr, "usage: ivshmem-selftest [--device BDF|/dev/ivshmemN] [--peer-event SEC] "
                    "[--unplug] [--rmmod]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *spec = NULL;
    int peer_event = 0;
    bool unplug = false, rmmod = false;
    struct ivshmem_dev dev;
    struct ivshmem_guest_info info;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--device") == 0 && i + 1 < argc)
            spec = argv[++i];
        else if (strcmp(argv[i], "--peer-event") == 0 && i + 1 < argc)
            peer_event = atoi(argv[++i]);
        else if (strcmp(argv[i], "--unplug") == 0)
            unplug = true;
        else if (strcmp(argv[i], "--rmmod") == 0)
            rmmod = true;
        else
            return usage();
    }

    if (find(spec, &dev) == 0) {
        printf("device %s: driver %s, node %s\n", dev.bdf, dev.driver[0] ? dev.driver : "none",
               dev.devnode[0] ? dev.devnode : "none");
        check(dev.devnode[0] != 0, "the driver is bound", "no /dev/ivshmemN for %s", dev.bdf);
    }
    int fd = dev.devnode[0] ? open(dev.devnode, O_RDWR | O_NONBLOCK | O_CLOEXEC) : -1;
    if (dev.devnode[0])
        check(fd >= 0, "open", "%s: %s", dev.devnode, strerror(errno));
    if (fd >= 0) {
        memset(&info, 0, sizeof(info));
        check_info(fd, &dev, &info);
        check_bad_args(fd, &info);
        check_mmap(fd, &dev, info.shm_size);
        if (info.flags & IVSHMEM_GUEST_INFO_IRQ)
            check_irq(fd, &dev, &info);
        if (peer_event > 0)
            check_peer_event(fd, &info, peer_event);
        if (unplug) {
            check_unplug(fd, &dev, info.shm_size);
            fd = -1; /* closed there */
        }
        if (fd >= 0)
            close(fd);
        if (rmmod && dev.devnode[0])
            check_rmmod(&dev);
    }

    if (failures)
        printf("ivshmem-selftest: FAIL %d of %d checks\n", failures, checks);
    else
        printf("ivshmem-selftest: OK %d checks\n", checks);
    return failures ? 1 : 0;
}
