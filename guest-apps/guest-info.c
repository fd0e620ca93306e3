/*
 * guest-info [--exit N]: print what the guest sees, one fact per line, so that a person
 * reads it and a test greps it:
 *   kernel: <sysname> <release> <version> <machine>
 *   hypervisor: <CPUID 0x40000000 signature> | none
 *   tsc-deadline timer: yes | no          (CPUID.1:ECX[24])
 *   cpus online: <count> (<list from /sys/devices/system/cpu/online>)
 *   cpu <n>: apicid <id>                   (one per processor in /proc/cpuinfo)
 *   memory: total <kB> kB, free <kB> kB, available <kB> kB
 *   cmdline: <kernel command line>
 *   pci <bdf>: <vendor>:<device> class <class>   (one per device, sorted)
 *   pci devices: <count>
 *   time: <UTC ISO 8601>, uptime <s> s
 * With --exit N it then ends the VM with status N through the debug-exit port.
 * Exit status otherwise: 0, or 1 when something could not be read (said on stderr).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <cpuid.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "debug_exit.h"

static int failures;

static void fail(const char *what)
{
    fprintf(stderr, "guest-info: %s: %s\n", what, strerror(errno));
    failures++;
}

/* Reads the first line of PATH into BUF without its newline; false on failure. */
static int read_line(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int ok = fgets(buf, (int)size, f) != NULL;
    fclose(f);
    if (ok)
        buf[strcspn(buf, "\n")] = '\0';
    return ok;
}

static void print_kernel(void)
{
    struct utsname u;
    if (uname(&u) != 0) {
        fail("uname");
        return;
    }
    printf("kernel: %s %s %s %s\n", u.sysname, u.release, u.version, u.machine);
}

static void print_timer(void)
{
    unsigned int a, b, c, d;

    __cpuid(1, a, b, c, d);
    printf("tsc-deadline timer: %s\n", c & (1u << 24) ? "yes" : "no");
}

static void print_hypervisor(void)
{
    unsigned int a, b, c, d;
    char sig[13];

    __cpuid(1, a, b, c, d);
    if (!(c & (1u << 31))) { /* CPUID.1:ECX.hypervisor */
        printf("hypervisor: none\n");
        return;
    }
    __cpuid(0x40000000, a, b, c, d);
    memcpy(sig, &b, 4);
    memcpy(sig + 4, &c, 4);
    memcpy(sig + 8, &d, 4);
    sig[12] = '\0';
    printf("hypervisor: %s\n", sig);
}

static void print_cpus(void)
{
    char online[256] = "?";
    char line[256];
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    int cpu = -1;

    read_line("/sys/devices/system/cpu/online", online, sizeof(online));
    printf("cpus online: %ld (%s)\n", n, online);

    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) {
        fail("/proc/cpuinfo");
        return;
    }
    while (fgets(line, sizeof(line), f)) {
        int v;
        if (sscanf(line, "processor : %d", &v) == 1)
            cpu = v;
        else if (sscanf(line, "apicid : %d", &v) == 1)
            printf("cpu %d: apicid %d\n", cpu, v);
    }
    fclose(f);
}

static void print_memory(void)
{
    char line[256];
    long total = -1, free_kb = -1, avail = -1;

    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) {
        fail("/proc/meminfo");
        return;
    }
    while (fgets(line, sizeof(line), f)) {
        sscanf(line, "MemTotal: %ld", &total);
        sscanf(line, "MemFree: %ld", &free_kb);
        sscanf(line, "MemAvailable: %ld", &avail);
    }
    fclose(f);
    printf("memory: total %ld kB, free %ld kB, available %ld kB\n", total, free_kb, avail);
}

static void print_cmdline(void)
{
    char buf[4096];
    if (!read_line("/proc/cmdline", buf, sizeof(buf))) {
        fail("/proc/cmdline");
        return;
    }
    printf("cmdline: %s\n", buf);
}

/* Reads /sys/bus/pci/devices/<dev>/<attr> ("0x8086") without its 0x. */
static void pci_attr(const char *dev, const char *attr, char *buf, size_t size)
{
    char path[512];
    snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/%s", dev, attr);
    if (!read_line(path, buf, size))
        snprintf(buf, size, "????");
    else if (strncmp(buf, "0x", 2) == 0)
        memmove(buf, buf + 2, strlen(buf + 2) + 1);
}

static int skip_dots(const struct dirent *e)
{
    return e->d_name[0] != '.';
}

static void print_pci(void)
{
    struct dirent **devs;
    int n = scandir("/sys/bus/pci/devices", &devs, skip_dots, alphasort);

    if (n < 0) {
        if (errno == ENOENT) {
            printf("pci devices: 0 (no /sys/bus/pci)\n");
            return;
        }
        fail("/sys/bus/pci/devices");
        return;
    }
    for (int i = 0; i < n; i++) {
        char vendor[16], device[16], class[16];
        pci_attr(devs[i]->d_name, "vendor", vendor, sizeof(vendor));
        pci_attr(devs[i]->d_name, "device", device, sizeof(device));
        pci_attr(devs[i]->d_name, "class", class, sizeof(class));
        printf("pci %s: %s:%s class %s\n", devs[i]->d_name, vendor, device, class);
        free(devs[i]);
    }
    free(devs);
    printf("pci devices: %d\n", n);
}

static void print_time(void)
{
    struct timespec now;
    struct tm tm;
    char stamp[64], uptime[64] = "?";

    if (clock_gettime(CLOCK_REALTIME, &now) != 0 || !gmtime_r(&now.tv_sec, &tm)) {
        fail("clock_gettime");
        return;
    }
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (read_line("/proc/uptime", uptime, sizeof(uptime)))
        uptime[strcspn(uptime, " ")] = '\0';
    printf("time: %s, uptime %s s\n", stamp, uptime);
}

int main(int argc, char **argv)
{
    long exit_status = -1;

    for (int i = 1; i < argc; i++) {
        char *end;
        if (strcmp(argv[i], "--exit") == 0 && i + 1 < argc) {
            errno = 0;
            exit_status = strtol(argv[++i], &end, 0);
            if (errno || end == argv[i] || *end || exit_status < 0 || exit_status > 255) {
                fprintf(stderr, "guest-info: bad exit status '%s' (want 0-255)\n", argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr, "usage: guest-info [--exit N]\n");
            return 2;
        }
    }

    print_kernel();
    print_hypervisor();
    print_timer();
    print_cpus();
    print_memory();
    print_cmdline();
    print_pci();
    print_time();
    fflush(stdout);

    if (exit_status >= 0) {
        debug_exit((uint32_t)exit_status, DEBUG_EXIT_AUTO, "guest-info");
        return 1;
    }
    return failures ? 1 : 0;
}
