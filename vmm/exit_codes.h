/* minivmm's process exit status. The README's table is generated from the same list:
 * keep the two in step. VMM failures use the sysexits.h numbers so they never collide
 * with the guest statuses a test suite typically chooses (0-63). */
#pragma once

enum minivmm_exit_code {
    /* The guest shut down or rebooted (i8042 reset, as Linux does with reboot=k). */
    EXIT_GUEST_RESET = 0,
    /* 0-255 also: the guest wrote a status to the debug-exit port (0xf4), which wins. */
    EXIT_USAGE = 64,     /* bad command line */
    EXIT_BAD_IMAGE = 65, /* kernel or initrd is not valid, or does not fit in guest memory */
    EXIT_NO_INPUT = 66,  /* a file named on the command line cannot be opened or read */
    EXIT_UNAVAILABLE =
        69, /* no usable KVM here (missing /dev/kvm, or one that cannot boot Linux) */
    EXIT_GUEST_CRASH = 70, /* triple fault, KVM internal or emulation error, failed VM entry */
    EXIT_HOST_ERROR = 71,  /* a KVM ioctl or system call failed */

    EXIT_SANDBOX_DENIED = 72, /* a thread made a system call its seccomp allow-list denies */
    EXIT_GROUP_FULL = 75,     /* a --shm group already has SHM_MAX_PEERS peers */
    /* 128 + signal number: stopped by SIGINT, SIGTERM or SIGHUP (and 130 for Ctrl-A x). */
    EXIT_SIGNAL_BASE = 128,
};
