#include "vmm/vcpu.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/log.h"
#include "vmm/boot_msrs.h"
#include "vmm/cpuid.h"
#include "vmm/exit_dispatch.h"
#include "vmm/long_mode.h"
#include "vmm/vm.h"

static int vcpu_set_cpuid(struct vm *vm, struct vcpu *vcpu, const struct kvm_cpuid2 *supported)
{
    size_t size = sizeof(*supported) + supported->nent * sizeof(supported->entries[0]);
    struct kvm_cpuid2 *cpuid = malloc(size);
    if (!cpuid) {
        log_error("allocating CPUID for vCPU %u: out of memory", vcpu->index);
        return -ENOMEM;
    }
    memcpy(cpuid, supported, size);
    cpuid_customize(cpuid, vcpu->index, vm->cpu_count);
    int ret = ioctl(vcpu->fd, KVM_SET_CPUID2, cpuid);
    free(cpuid);
    if (ret < 0) {
        int err = errno;
        log_error("KVM_SET_CPUID2 vCPU %u: %s", vcpu->index, strerror(err));
        return -err;
    }
    return 0;
}

/* Every vCPU, not only the first: INIT and SIPI leave MSRs as they were, and Linux
 * complains when the CPUs' MTRR settings differ. */
static int vcpu_set_boot_msrs(struct vcpu *vcpu)
{
    struct boot_msrs msrs;
    boot_msrs_fill(&msrs);
    int set = ioctl(vcpu->fd, KVM_SET_MSRS, &msrs);
    if (set < 0) {
        int err = errno;
        log_error("KVM_SET_MSRS vCPU %u: %s", vcpu->index, strerror(err));
        return -err;
    }
    if (set != BOOT_MSR_COUNT) { /* KVM stops at the first MSR it refuses */
        log_error("KVM_SET_MSRS vCPU %u: KVM refused MSR 0x%x = 0x%llx", vcpu->index,
                  msrs.entries[set].index, (unsigned long long)msrs.entries[set].data);
        return -EINVAL;
    }
    return 0;
}

static int vcpu_enter_kernel(struct vm *vm, struct vcpu *vcpu)
{
    struct kvm_sregs sregs;
    if (ioctl(vcpu->fd, KVM_GET_SREGS, &sregs) < 0) {
        int err = errno;
        log_error("KVM_GET_SREGS vCPU %u: %s", vcpu->index, strerror(err));
        return -err;
    }
    long_mode_set_sregs(&sregs);
    if (ioctl(vcpu->fd, KVM_SET_SREGS, &sregs) < 0) {
        int err = errno;
        log_error("KVM_SET_SREGS vCPU %u: %s", vcpu->index, strerror(err));
        return -err;
    }
    struct kvm_regs regs;
    long_mode_set_regs(&regs, vm->boot.entry, vm->boot.zero_page);
    if (ioctl(vcpu->fd, KVM_SET_REGS, &regs) < 0) {
        int err = errno;
        log_error("KVM_SET_REGS vCPU %u: %s", vcpu->index, strerror(err));
        return -err;
    }
    /* The FPU's reset state has exceptions masked the way the kernel expects. */
    struct kvm_fpu fpu = {.fcw = 0x37F, .mxcsr = 0x1F80};
    if (ioctl(vcpu->fd, KVM_SET_FPU, &fpu) < 0) {
        int err = errno;
        log_error("KVM_SET_FPU vCPU %u: %s", vcpu->index, strerror(err));
        return -err;
    }
    return 0;
}

int vcpu_create(struct vcpu *vcpu, struct vm *vm, unsigned int index, size_t run_size,
                const struct kvm_cpuid2 *supported)
{
    vcpu->vm = vm;
    vcpu->index = index;
    vcpu_stats_init(&vcpu->stats, log_is_verbose());
    vcpu->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)index);
    if (vcpu->fd < 0) {
        int err = errno;
        log_error("KVM_CREATE_VCPU %u: %s", index, strerror(err));
        return -err;
    }
    void *run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu->fd, 0);
    if (run == MAP_FAILED) {
        int err = errno;
        log_error("mmap kvm_run of vCPU %u: %s", index, strerror(err));
        return -err;
    }
    vcpu->run = run;
    vcpu->run_size = run_size;
    int ret = vcpu_set_cpuid(vm, vcpu, supported);
    if (!ret)
        ret = vcpu_set_boot_msrs(vcpu);
    /* The other vCPUs wait, in KVM, for the INIT/SIPI that Linux sends them. */
    if (!ret && index == 0)
        ret = vcpu_enter_kernel(vm, vcpu);
    return ret;
}

void vcpu_destroy(struct vcpu *vcpu)
{
    if (vcpu->run)
        munmap(vcpu->run, vcpu->run_size);
    if (vcpu->fd >= 0)
        close(vcpu->fd);
    vcpu->run = NULL;
    vcpu->fd = -1;
}

/* One line with the registers that say where and how a guest died (a triple fault leaves
 * nothing else): without it a crash report is only "the guest crashed". */
static void vcpu_log_crash_state(const struct vcpu *vcpu)
{
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    if (ioctl(vcpu->fd, KVM_GET_REGS, &regs) < 0) {
        log_error("KVM_GET_REGS vCPU %u: %s", vcpu->index, strerror(errno));
        return;
    }
    if (ioctl(vcpu->fd, KVM_GET_SREGS, &sregs) < 0) {
        log_error("KVM_GET_SREGS vCPU %u: %s", vcpu->index, strerror(errno));
        return;
    }
    log_error("vCPU %u at the crash: rip %#llx rsp %#llx rflags %#llx cs %#x cr0 %#llx cr2 %#llx "
              "cr3 %#llx cr4 %#llx efer %#llx idt %#llx/%#x",
              vcpu->index, regs.rip, regs.rsp, regs.rflags, sregs.cs.selector, sregs.cr0, sregs.cr2,
              sregs.cr3, sregs.cr4, sregs.efer, sregs.idt.base, sregs.idt.limit);
}

static void vcpu_kick_handler(int sig)
{
    (void)sig; /* its only job is to interrupt KVM_RUN with EINTR */
}

void *vcpu_thread(void *arg)
{
    struct vcpu *vcpu = arg;
    struct vm *vm = vcpu->vm;
    char name[16];
    snprintf(name, sizeof(name), "vcpu%u", vcpu->index);
    pthread_setname_np(pthread_self(), name);

    sigset_t kick;
    sigemptyset(&kick);
    sigaddset(&kick, VCPU_KICK_SIGNAL);
    pthread_sigmask(SIG_UNBLOCK, &kick, NULL);
    if (vm_enter_sandbox(vm, SANDBOX_VCPU))
        return NULL;

    while (!atomic_load(&vm->stopping)) {
        if (ioctl(vcpu->fd, KVM_RUN, 0) < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            char why[96];
            snprintf(why, sizeof(why), "KVM_RUN vCPU %u: %s", vcpu->index, strerror(errno));
            log_error("%s", why);
            vm_request_stop(vm, VM_STOP_HOST_ERROR, 0, why);
            break;
        }
        uint32_t reason = vcpu->run->exit_reason;
        struct exit_outcome outcome;
        vcpu_stats_exit_begin(&vcpu->stats, vcpu->run);
        exit_dispatch(vcpu->run, vcpu->run_size, &vm->pio, &vm->mmio, &outcome);
        vcpu_stats_exit_end(&vcpu->stats, reason);
        if (outcome.action == EXIT_ACTION_RESET) {
            vm_request_stop(vm, VM_STOP_GUEST_RESET, 0, outcome.reason);
        } else if (outcome.action == EXIT_ACTION_CRASH) {
            char why[192];
            snprintf(why, sizeof(why), "vCPU %u: %s", vcpu->index, outcome.reason);
            log_error("%s", why);
            vcpu_log_crash_state(vcpu);
            vm_request_stop(vm, VM_STOP_GUEST_CRASH, 0, why);
        }
    }
    return NULL;
}

int vcpu_install_kick_handler(void)
{
    struct sigaction kick = {.sa_handler = vcpu_kick_handler};
    sigemptyset(&kick.sa_mask);
    if (sigaction(VCPU_KICK_SIGNAL, &kick, NULL) < 0) {
        int err = errno;
        log_error("sigaction(SIGRTMIN, the vCPU kick): %s", strerror(err));
        return -err;
    }
    return 0;
}
