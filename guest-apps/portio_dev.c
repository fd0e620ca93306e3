#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "portio_dev.h"

#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>

#include "abi/portio_regs.h"

static bool read_hex(const char *dir, const char *name, unsigned long *value)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool ok = fscanf(f, "%lx", value) == 1;
    fclose(f);
    return ok;
}

static int skip_dots(const struct dirent *e)
{
    return e->d_name[0] != '.';
}

static bool spec_matches(const char *spec, const char *bdf)
{
    /* "00:03.0" names the same function as "0000:00:03.0" (domain 0). */
    return !spec || !*spec || strcmp(spec, bdf) == 0 ||
           (strlen(bdf) > 5 && strncmp(bdf, "0000:", 5) == 0 && strcmp(spec, bdf + 5) == 0);
}

int portio_dev_find(const char *spec, unsigned int *base, char *why, size_t why_size)
{
    struct dirent **names;
    int n = scandir("/sys/bus/pci/devices", &names, skip_dots, alphasort);
    if (n < 0) {
        snprintf(why, why_size, "/sys/bus/pci/devices: %s", strerror(errno));
        return -ENODEV;
    }
    *base = 0;
    for (int i = 0; i < n; i++) {
        char dir[300];
        unsigned long vendor, device, start = 0;
        snprintf(dir, sizeof(dir), "/sys/bus/pci/devices/%s", names[i]->d_name);
        if (!*base && spec_matches(spec, names[i]->d_name) && read_hex(dir, "vendor", &vendor) &&
            read_hex(dir, "device", &device) && vendor == PORTIO_PCI_VENDOR_ID &&
            device == PORTIO_PCI_DEVICE_ID && read_hex(dir, "resource", &start) && start > 0 &&
            start < 0x10000)
            *base = (unsigned int)start;
        free(names[i]);
    }
    free(names);
    if (*base)
        return 0;
    snprintf(why, why_size,
             "no port I/O channel%s%s (PCI %04x:%04x with an I/O BAR); start minivmm with "
             "--shm=NAME,portio=on",
             spec && *spec ? " at " : "", spec && *spec ? spec : "", PORTIO_PCI_VENDOR_ID,
             PORTIO_PCI_DEVICE_ID);
    return -ENODEV;
}

/* The probe's way back from a faulting `in`; only touched between sigsetjmp and the
 * handler's restore, by the probing thread. */
static sigjmp_buf probe_fault;

static void on_probe_fault(int sig)
{
    (void)sig;
    siglongjmp(probe_fault, 1);
}

int portio_dev_ioperm(unsigned int base, char *why, size_t why_size)
{
    if (ioperm(base, PORTIO_BAR_SIZE, 1) != 0) {
        int err = errno;
        snprintf(why, why_size, "ioperm(0x%x, %d, 1): %s", base, PORTIO_BAR_SIZE, strerror(err));
        return -err;
    }
    struct sigaction catch = {.sa_handler = on_probe_fault}, old_segv;
    sigemptyset(&catch.sa_mask);
    sigaction(SIGSEGV, &catch, &old_segv);
    volatile uint32_t id = 0;
    bool faulted = false;
    if (sigsetjmp(probe_fault, 1) == 0)
        id = inl(base + PORTIO_REG_ID);
    else
        faulted = true;
    sigaction(SIGSEGV, &old_segv, NULL);
    if (faulted) {
        snprintf(why, why_size, "inl from port 0x%x faulted although ioperm() succeeded", base);
        return -EOPNOTSUPP;
    }
    if (id != PORTIO_ID_VALUE) {
        snprintf(why, why_size, "port 0x%x reads ID 0x%08x, not 0x%08x", base, (unsigned)id,
                 PORTIO_ID_VALUE);
        return -ENODEV;
    }
    return 0;
}
