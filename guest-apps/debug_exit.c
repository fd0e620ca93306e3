/*
 * Guest side of the debug-exit port (abi/debug_exit.h).
 *
 * Two ways to reach the port from a Linux guest:
 * - ioperm() + outl from user mode, the direct way. Under nested KVM in
 *   QEMU's TCG emulator (the emulated KVM host, tests/kvm-host/) the user-mode OUT faults
 *   with #GP -> SIGSEGV although ioperm() succeeded: TCG's I/O-permission check
 *   (helper_check_io) accepts only an "available" TSS type in TR, most likely not what the
 *   nested guest's TR says once loaded from the VMCB. It works on real AMD-V/VT-x hardware
 *   and under plain TCG.
 * - /dev/port: the kernel does the (1-byte) outb at CPL0, where no I/O bitmap applies.
 * AUTO tries the first, catches the fault, and falls back to the second, silently: the VM
 * ends at once on success, and a half-sent line would only garble the console. Reasons are
 * printed when no way worked.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "debug_exit.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/io.h>
#include <termios.h>
#include <unistd.h>

static sigjmp_buf out_fault;

static void on_fault(int sig)
{
    (void)sig;
    siglongjmp(out_fault, 1);
}

/* Returns after the write was made (it did not end the VM: 0) or failed (-1, WHY says). */
static int via_ioperm(uint32_t status, char *why, size_t size)
{
    struct sigaction catch = {.sa_handler = on_fault}, old_segv, old_bus;
    volatile int faulted = 0;

    if (ioperm(DEBUG_EXIT_PORT, DEBUG_EXIT_NUM_PORTS, 1) != 0) {
        snprintf(why, size, "ioperm(0x%x): %s%s", DEBUG_EXIT_PORT, strerror(errno),
                 errno == EPERM ? " (needs root)" : "");
        return -1;
    }
    sigemptyset(&catch.sa_mask);
    sigaction(SIGSEGV, &catch, &old_segv);
    sigaction(SIGBUS, &catch, &old_bus);
    if (sigsetjmp(out_fault, 1) == 0)
        outl(status, DEBUG_EXIT_PORT);
    else
        faulted = 1;
    sigaction(SIGSEGV, &old_segv, NULL);
    sigaction(SIGBUS, &old_bus, NULL);
    if (faulted) {
        snprintf(why, size, "outl to port 0x%x faulted although ioperm() succeeded",
                 DEBUG_EXIT_PORT);
        return -1;
    }
    return 0;
}

static int via_devport(uint32_t status, char *why, size_t size)
{
    unsigned char byte = status & 0xff;
    int fd = open("/dev/port", O_WRONLY | O_CLOEXEC);

    if (fd < 0) {
        snprintf(why, size, "/dev/port: %s", strerror(errno));
        return -1;
    }
    ssize_t n = pwrite(fd, &byte, 1, DEBUG_EXIT_PORT);
    int err = errno;
    close(fd);
    if (n != 1) {
        snprintf(why, size, "write to /dev/port at 0x%x: %s", DEBUG_EXIT_PORT,
                 n < 0 ? strerror(err) : "short write");
        return -1;
    }
    return 0;
}

void debug_exit(uint32_t status, enum debug_exit_via via, const char *prog)
{
    char why_ioperm[160] = "", why_devport[160] = "";
    int rc = -1;

    /*
     * The console is a serial port: write() returns once the bytes are in the tty buffer,
     * and the VM stops at once on the port write. Wait until the UART has sent them, or
     * the last lines of output are lost.
     */
    fflush(NULL);
    for (int fd = 0; fd <= 2; fd++) {
        if (isatty(fd))
            tcdrain(fd);
    }

    if (via != DEBUG_EXIT_DEVPORT)
        rc = via_ioperm(status, why_ioperm, sizeof(why_ioperm));
    if (via == DEBUG_EXIT_DEVPORT || (rc != 0 && via == DEBUG_EXIT_AUTO))
        rc = via_devport(status, why_devport, sizeof(why_devport));

    if (why_ioperm[0])
        fprintf(stderr, "%s: %s\n", prog, why_ioperm);
    if (why_devport[0])
        fprintf(stderr, "%s: %s\n", prog, why_devport);
    if (rc == 0)
        fprintf(stderr,
                "%s: writing %u to port 0x%x did not end the VM "
                "(no debug-exit device in this VMM?)\n",
                prog, status, DEBUG_EXIT_PORT);
}
