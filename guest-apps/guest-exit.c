/*
 * guest-exit [--via ioperm|devport] N: end the VM with exit status N (0-255) through the
 * debug-exit port (debug_exit.h). The default guest image's /init ends every run with it.
 * --via picks one way to reach the port (default: ioperm, falling back to /dev/port), so a
 * test can make a 4-byte (ioperm) or a 1-byte (/dev/port) write on purpose.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "debug_exit.h"

static int usage(void)
{
    fprintf(stderr, "usage: guest-exit [--via ioperm|devport] N   (end the VM with status N, "
                    "0-255)\n");
    return 2;
}

int main(int argc, char **argv)
{
    enum debug_exit_via via = DEBUG_EXIT_AUTO;
    char *end;
    long status;
    int i = 1;

    if (argc == 4 && strcmp(argv[1], "--via") == 0) {
        if (strcmp(argv[2], "ioperm") == 0)
            via = DEBUG_EXIT_IOPERM;
        else if (strcmp(argv[2], "devport") == 0)
            via = DEBUG_EXIT_DEVPORT;
        else
            return usage();
        i = 3;
    } else if (argc != 2) {
        return usage();
    }
    errno = 0;
    status = strtol(argv[i], &end, 0);
    if (errno || end == argv[i] || *end || status < 0 || status > 255) {
        fprintf(stderr, "guest-exit: bad status '%s' (want 0-255)\n", argv[i]);
        return 2;
    }
    debug_exit((uint32_t)status, via, "guest-exit");
    return 1;
}
