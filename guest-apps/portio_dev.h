/*
 * portio_dev: finding the port I/O channel device (1af4:10f0, abi/portio_regs.h) from a Linux
 * guest and reaching its ports from user space, without a driver. Shared by portio-xfer
 * and libivc's port I/O backend.
 */
#pragma once

#include <stddef.h>

/* Finds a channel device: spec NULL or "" = the first by BDF, else a BDF (0000:00:03.0 or
 * 00:03.0). *base gets its BAR0 port base (from sysfs `resource`). Returns 0, or -ENODEV
 * with the reason in why. */
int portio_dev_find(const char *spec, unsigned int *base, char *why, size_t why_size);

/* Grants this process the device's 256 ports (ioperm) and checks that a user-mode `in`
 * reaches them: some nested KVM set-ups fault it although ioperm() succeeded (the probe
 * catches the SIGSEGV). Returns 0, or with the reason in why: -errno of ioperm() (-EPERM
 * without CAP_SYS_RAWIO), -EOPNOTSUPP (the `in` faulted), -ENODEV (the ports do not read
 * the channel's ID). */
int portio_dev_ioperm(unsigned int base, char *why, size_t why_size);
