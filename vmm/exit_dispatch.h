/* What to do after KVM_RUN returns: a plain function of the kvm_run page and the two
 * buses, so it can be fed fabricated exits in unit tests. */
#pragma once

#include <linux/kvm.h>
#include <stddef.h>

#include "devices/bus.h"

enum exit_action {
    EXIT_ACTION_CONTINUE, /* handled: run the vCPU again */
    EXIT_ACTION_RESET,    /* the guest asked to reset or power off (KVM system event) */
    EXIT_ACTION_CRASH,    /* the guest cannot go on: triple fault, emulation failure, ... */
};

struct exit_outcome {
    enum exit_action action;
    char reason[160]; /* for RESET and CRASH: one line for the user */
};

/* run_size is the size of the vCPU's kvm_run mapping: I/O data offsets reported by KVM
 * are checked against it. */
void exit_dispatch(struct kvm_run *run, size_t run_size, struct bus *pio, struct bus *mmio,
                   struct exit_outcome *outcome);
