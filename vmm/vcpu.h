/* One vCPU of a VM. vcpu_create() gives it the VM's CPUID (with its own APIC ID), the MSRs
 * firmware would leave, and for the boot CPU the registers of the kernel's 64-bit entry;
 * the others wait in KVM for Linux's INIT/SIPI. vcpu_thread() runs it until the VM stops:
 * KVM_RUN, hand the exit to exit_dispatch(), act on the outcome. */
#pragma once

#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "vmm/vcpu_stats.h"

struct vm;

/* Sent to a vCPU thread to pull it out of KVM_RUN when the VM stops. A real-time signal:
 * SIGUSR1 is the user's, to ask for --stats while the VM runs. */
#define VCPU_KICK_SIGNAL SIGRTMIN

struct vcpu {
    struct vm *vm;
    unsigned int index;
    int fd;
    struct kvm_run *run;
    size_t run_size;
    pthread_t thread;
    bool thread_started;
    struct vcpu_stats stats; /* exits that reached the VMM */
};

/* Creates vCPU index of vm; supported is KVM_GET_SUPPORTED_CPUID's answer, run_size
 * KVM_GET_VCPU_MMAP_SIZE's. Returns 0, or -errno after logging why; vcpu_destroy()
 * releases what a failed call made. Call after the kernel is loaded (vm->boot). */
int vcpu_create(struct vcpu *vcpu, struct vm *vm, unsigned int index, size_t run_size,
                const struct kvm_cpuid2 *supported);
void vcpu_destroy(struct vcpu *vcpu);

/* Installs the handler of VCPU_KICK_SIGNAL, whose only job is to end KVM_RUN with EINTR.
 * Returns 0 or -errno after logging why. */
int vcpu_install_kick_handler(void);

/* The thread of a vCPU (arg: its struct vcpu): runs it until vm->stopping, and stops the
 * VM itself on a guest reset or crash or a failed KVM_RUN. */
void *vcpu_thread(void *arg);
