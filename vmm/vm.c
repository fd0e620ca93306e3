#include "vmm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "vmm/cpuid.h"
#include "vmm/layout.h"
#include "vmm/long_mode.h"
#include "vmm/mptable.h"

#define KVM_DEVICE        "/dev/kvm"
#define CPUID_MAX_ENTRIES 256

static const unsigned int required_caps[] = {KVM_CAP_IRQCHIP, KVM_CAP_PIT2, KVM_CAP_USER_MEMORY,
                                             KVM_CAP_IMMEDIATE_EXIT, KVM_CAP_SET_TSS_ADDR};
static const char *const required_cap_names[] = {"KVM_CAP_IRQCHIP", "KVM_CAP_PIT2",
                                                 "KVM_CAP_USER_MEMORY", "KVM_CAP_IMMEDIATE_EXIT",
                                                 "KVM_CAP_SET_TSS_ADDR"};

void vm_request_stop(struct vm *vm, enum vm_stop_cause cause, int status, const char *reason)
{
    bool expected = false;
    if (!atomic_compare_exchange_strong(&vm->stopping, &expected, true))
        return;
    vm->stop_cause = cause;
    vm->stop_status = status;
    snprintf(vm->stop_reason, sizeof(vm->stop_reason), "%s", reason);
    uint64_t one = 1;
    /* Cannot fail short of a bad fd; the vCPU kicks below still stop the VM if it did. */
    if (write(vm->stop_fd, &one, sizeof(one)) != sizeof(one))
        log_warn("write(stop eventfd): %s", strerror(errno));
    for (unsigned int i = 0; i < vm->cpu_count; i++) {
        struct vcpu *vcpu = &vm->vcpus[i];
        if (vcpu->run)
            __atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
        if (vcpu->thread_started && !pthread_equal(vcpu->thread, pthread_self()))
            pthread_kill(vcpu->thread, VCPU_KICK_SIGNAL);
    }
}

int vm_enter_sandbox(struct vm *vm, enum sandbox_kind kind)
{
    if (!vm->sandbox)
        return 0;
    char why[192];
    if (sandbox_enter(kind, why, sizeof(why)) == 0)
        return 0;
    log_error("%s", why);
    vm_request_stop(vm, VM_STOP_HOST_ERROR, 0, why);
    return -1;
}

static void vm_machine_stop(void *ctx, enum machine_stop_reason reason, int status)
{
    struct vm *vm = ctx;
    if (reason == MACHINE_STOP_RESET) {
        vm_request_stop(vm, VM_STOP_GUEST_RESET, 0, "guest reset the machine (i8042)");
    } else {
        char why[64];
        snprintf(why, sizeof(why), "guest wrote exit status %d to the debug-exit port", status);
        vm_request_stop(vm, VM_STOP_GUEST_STATUS, status, why);
    }
}

static void vm_set_irq_level(void *ctx, uint32_t gsi, bool level)
{
    struct vm *vm = ctx;
    struct kvm_irq_level irq = {.irq = gsi, .level = level};
    if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq) < 0)
        log_error("KVM_IRQ_LINE gsi %u level %d: %s", gsi, level, strerror(errno));
}

/* -ENODEV: this KVM cannot run minivmm (main.c reports that as "no usable KVM"). */
static int vm_check_kvm(struct vm *vm)
{
    int version = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
    if (version != KVM_API_VERSION) {
        log_error("KVM_GET_API_VERSION: got %d, need %d", version, KVM_API_VERSION);
        return -ENODEV;
    }
    for (size_t i = 0; i < sizeof(required_caps) / sizeof(required_caps[0]); i++) {
        if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, required_caps[i]) <= 0) {
            log_error("KVM_CHECK_EXTENSION: this KVM lacks %s", required_cap_names[i]);
            return -ENODEV;
        }
    }
    return 0;
}

static int vm_set_memory(struct vm *vm)
{
    struct kvm_userspace_memory_region low = {
        .slot = 0,
        .guest_phys_addr = 0,
        .memory_size = vm->ram.low_size,
        .userspace_addr = (uintptr_t)vm->ram.host,
    };
    if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &low) < 0) {
        int err = errno;
        log_error("KVM_SET_USER_MEMORY_REGION slot 0 (%llu MiB at 0): %s",
                  (unsigned long long)(low.memory_size >> 20), strerror(err));
        return -err;
    }
    if (vm->ram.high_size) {
        struct kvm_userspace_memory_region high = {
            .slot = 1,
            .guest_phys_addr = HIGH_RAM_START,
            .memory_size = vm->ram.high_size,
            .userspace_addr = (uintptr_t)(vm->ram.host + vm->ram.low_size),
        };
        if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &high) < 0) {
            int err = errno;
            log_error("KVM_SET_USER_MEMORY_REGION slot 1 (%llu MiB at 4 GiB): %s",
                      (unsigned long long)(high.memory_size >> 20), strerror(err));
            return -err;
        }
    }
    return 0;
}

static time_t vm_clock(void *ctx)
{
    (void)ctx;
    return time(NULL);
}

static int vm_add_devices(struct vm *vm, int console_out)
{
    struct machine_control mc = {.request_stop = vm_machine_stop, .ctx = vm};
    struct uart_config com1 = {
        .base = UART_COM1_BASE,
        .irq = {.set_level = vm_set_irq_level, .ctx = vm, .gsi = UART_COM1_IRQ},
        .out_fd = console_out,
    };
    const char *what = "the legacy devices on the port I/O bus";
    int ret;

    if ((ret = uart_init(&vm->com1, &vm->pio, &com1)))
        goto fail;
    if ((ret = i8042_init(&vm->i8042, &vm->pio, &mc)))
        goto undo_uart;
    if ((ret = debug_exit_init(&vm->debug_exit, &vm->pio, DEBUG_EXIT_PORT, &mc)))
        goto undo_i8042;
    if ((ret = cmos_init(&vm->cmos, &vm->pio, vm_clock, NULL)))
        goto undo_debug_exit;
    if ((ret = legacy_ports_init(&vm->legacy_ports, &vm->pio)))
        goto undo_cmos;
    what = "the PCI host bridge (ports 0xcf8-0xcff)";
    if ((ret = pci_bus_init(&vm->pci, &vm->pio, &vm->mmio, LAYOUT_PCI_WINDOWS)))
        goto undo_legacy_ports;
    return 0;

undo_legacy_ports:
    legacy_ports_destroy(&vm->legacy_ports);
undo_cmos:
    cmos_destroy(&vm->cmos);
undo_debug_exit:
    debug_exit_destroy(&vm->debug_exit);
undo_i8042:
    i8042_destroy(&vm->i8042);
undo_uart:
    uart_destroy(&vm->com1);
fail:
    log_error("registering %s: %s", what, strerror(-ret));
    return ret;
}

static void vm_remove_devices(struct vm *vm)
{
    pci_bus_destroy(&vm->pci);
    legacy_ports_destroy(&vm->legacy_ports);
    cmos_destroy(&vm->cmos);
    debug_exit_destroy(&vm->debug_exit);
    i8042_destroy(&vm->i8042);
    uart_destroy(&vm->com1);
}

/* Logs a failed call with its errno and returns -errno. */
static int vm_fail(const char *what)
{
    int err = errno;
    log_error("%s: %s", what, strerror(err));
    return -err;
}

int vm_create(struct vm *vm, uint64_t mem_size, unsigned int cpus, int console_out)
{
    memset(vm, 0, sizeof(*vm));
    vm->kvm_fd = vm->vm_fd = vm->stop_fd = -1;
    vm->cpu_count = cpus;
    for (unsigned int i = 0; i < VM_MAX_CPUS; i++)
        vm->vcpus[i].fd = -1;
    int ret;

    if ((ret = bus_init(&vm->pio, "port I/O"))) {
        log_error("bus_init port I/O: %s", strerror(-ret));
        return ret;
    }
    if ((ret = bus_init(&vm->mmio, "MMIO"))) {
        log_error("bus_init MMIO: %s", strerror(-ret));
        goto undo_pio_bus;
    }
    vm->stop_fd = eventfd(0, EFD_CLOEXEC);
    if (vm->stop_fd < 0) {
        ret = vm_fail("eventfd (the stop event)");
        goto undo_mmio_bus;
    }
    vm->kvm_fd = open(KVM_DEVICE, O_RDWR | O_CLOEXEC);
    if (vm->kvm_fd < 0) {
        ret = vm_fail("open " KVM_DEVICE);
        if (ret == -ENOENT)
            ret = -ENODEV;
        goto undo_stop_fd;
    }
    if ((ret = vm_check_kvm(vm)))
        goto undo_kvm_fd;
    vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
    if (vm->vm_fd < 0) {
        ret = vm_fail("KVM_CREATE_VM");
        goto undo_kvm_fd;
    }
    /* Intel needs these private pages for real-mode emulation; they must be in the hole. */
    if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)LAYOUT_KVM_TSS) < 0) {
        ret = vm_fail("KVM_SET_TSS_ADDR");
        goto undo_vm_fd;
    }
    uint64_t identity_map = LAYOUT_KVM_IDENTITY_MAP;
    if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SET_IDENTITY_MAP_ADDR) > 0 &&
        ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &identity_map) < 0) {
        ret = vm_fail("KVM_SET_IDENTITY_MAP_ADDR");
        goto undo_vm_fd;
    }
    if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
        ret = vm_fail("KVM_CREATE_IRQCHIP");
        goto undo_vm_fd;
    }
    struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
    if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
        ret = vm_fail("KVM_CREATE_PIT2");
        goto undo_vm_fd;
    }
    irq_routing_init(&vm->irq_routing, vm->vm_fd);
    if ((ret = guest_ram_init(&vm->ram, mem_size))) {
        log_error("mmap %llu MiB of guest memory: %s", (unsigned long long)(mem_size >> 20),
                  strerror(-ret));
        goto undo_irq_routing;
    }
    if ((ret = vm_set_memory(vm)))
        goto undo_ram;
    if ((ret = vm_add_devices(vm, console_out)))
        goto undo_ram;
    return 0;

undo_ram:
    guest_ram_destroy(&vm->ram);
undo_irq_routing:
    irq_routing_destroy(&vm->irq_routing);
undo_vm_fd:
    close(vm->vm_fd);
undo_kvm_fd:
    close(vm->kvm_fd);
undo_stop_fd:
    close(vm->stop_fd);
undo_mmio_bus:
    bus_destroy(&vm->mmio);
undo_pio_bus:
    bus_destroy(&vm->pio);
    return ret;
}

/* A group's thread only forwards peers: a failure to sandbox it stops the VM. */
static void vm_shm_thread_started(void *ctx)
{
    vm_enter_sandbox(ctx, SANDBOX_IO);
}

int vm_add_shm(struct vm *vm, const struct shm_spec *specs, unsigned int count)
{
    if (count > VM_MAX_SHM) {
        log_error("%u shared-memory groups asked for, a VM holds %d", count, VM_MAX_SHM);
        return -E2BIG;
    }
    const struct shm_machine machine = {
        .vm_fd = vm->vm_fd,
        .irq_routing = &vm->irq_routing,
        .pci = &vm->pci,
        .thread_started = vm_shm_thread_started,
        .ctx = vm,
    };
    for (unsigned int i = 0; i < count; i++) {
        /* Slots 0 and 1 hold guest RAM below and above the PCI hole; each device takes two
         * (shared memory, status page). */
        int ret = shm_device_create(&vm->shm[i], &machine, &specs[i], 2 + 2 * i);
        vm->shm_count = i + 1;
        if (ret)
            return ret;
    }
    return 0;
}

static int vm_create_vcpus(struct vm *vm)
{
    int run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (run_size < 0) {
        int err = errno;
        log_error("KVM_GET_VCPU_MMAP_SIZE: %s", strerror(err));
        return -err;
    }
    if (run_size < (int)sizeof(struct kvm_run)) {
        log_error("KVM_GET_VCPU_MMAP_SIZE: %d bytes, less than struct kvm_run", run_size);
        return -EINVAL;
    }
    struct kvm_cpuid2 *supported =
        calloc(1, sizeof(*supported) + CPUID_MAX_ENTRIES * sizeof(supported->entries[0]));
    if (!supported) {
        log_error("allocating CPUID: out of memory");
        return -ENOMEM;
    }
    supported->nent = CPUID_MAX_ENTRIES;
    int ret = 0;
    if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, supported) < 0) {
        ret = -errno;
        log_error("KVM_GET_SUPPORTED_CPUID: %s", strerror(-ret));
        goto out;
    }
    if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0)
        cpuid_enable_tsc_deadline(supported);

    for (unsigned int i = 0; i < vm->cpu_count && !ret; i++)
        ret = vcpu_create(&vm->vcpus[i], vm, i, (size_t)run_size, supported);
out:
    free(supported);
    return ret;
}

int vm_load(struct vm *vm, const struct kernel_image *image, const uint8_t *initrd,
            size_t initrd_size, const char *cmdline)
{
    char why[256];
    if (boot_load(&vm->ram, image, initrd, initrd_size, cmdline, &vm->boot, why, sizeof(why))) {
        log_error("%s", why);
        return -ENOEXEC;
    }
    void *mp = guest_ram_ptr(&vm->ram, LAYOUT_MPTABLE, LAYOUT_HIGH_MEMORY - LAYOUT_MPTABLE);
    if (!mp || !mptable_write(mp, LAYOUT_HIGH_MEMORY - LAYOUT_MPTABLE, LAYOUT_MPTABLE,
                              vm->cpu_count, LAYOUT_IOAPIC)) {
        log_error("MP table for %u CPUs does not fit in the BIOS area", vm->cpu_count);
        return -ENOSPC;
    }
    if (long_mode_write_tables(&vm->ram)) {
        log_error("boot page tables do not fit in guest memory");
        return -ENOSPC;
    }
    log_debug("kernel entry 0x%llx, zero page 0x%llx, initrd %llu bytes at 0x%llx",
              (unsigned long long)vm->boot.entry, (unsigned long long)vm->boot.zero_page,
              (unsigned long long)vm->boot.initrd_size, (unsigned long long)vm->boot.initrd_addr);
    return vm_create_vcpus(vm);
}

int vm_open_stats(struct vm *vm)
{
    int fds[VM_MAX_CPUS];
    for (unsigned int i = 0; i < vm->cpu_count; i++)
        fds[i] = vm->vcpus[i].fd;
    vm->stats_wanted = true;
    char why[256];
    int ret =
        kvm_stats_open(&vm->stats, vm->kvm_fd, vm->vm_fd, fds, vm->cpu_count, why, sizeof(why));
    if (ret == -EOPNOTSUPP) {
        log_debug("--stats: %s", why);
        return 0;
    }
    if (ret) {
        log_error("--stats: %s", why);
        return ret;
    }
    vm->stats_ready = true;
    log_debug("--stats: %u VM and %u vCPU statistics (of %u vCPUs)", vm->stats.vm.count,
              vm->cpu_count ? vm->stats.vcpus[0].count : 0, vm->cpu_count);
    return 0;
}

void vm_report_stats(struct vm *vm, enum kvm_stats_event event)
{
    if (!vm->stats_wanted)
        return;
    if (!vm->stats_ready) {
        log_info("--stats: this host's KVM has no binary statistics (KVM_CAP_BINARY_STATS_FD, "
                 "Linux 5.14 or later): nothing to print");
        return;
    }
    char why[256];
    if (kvm_stats_refresh(&vm->stats, why, sizeof(why))) {
        log_error("--stats: %s", why);
        return;
    }
    struct vmm_exit_counts userspace = {0, 0};
    for (unsigned int i = 0; i < vm->cpu_count; i++)
        vcpu_stats_add_counts(&vm->vcpus[i].stats, &userspace);
    kvm_stats_report(stderr, &vm->stats, &userspace, event);
}

int vm_run(struct vm *vm, int signal_fd)
{
    int ret = vcpu_install_kick_handler();
    if (ret)
        return ret;
    /* vCPU threads start with the kick signal blocked and unblock it themselves, so it
     * can only arrive where it is expected. */
    sigset_t block, saved;
    sigemptyset(&block);
    sigaddset(&block, VCPU_KICK_SIGNAL);
    pthread_sigmask(SIG_BLOCK, &block, &saved);

    for (unsigned int i = 0; i < vm->cpu_count; i++) {
        int err = pthread_create(&vm->vcpus[i].thread, NULL, vcpu_thread, &vm->vcpus[i]);
        if (err) {
            log_error("pthread_create vCPU %u: %s", i, strerror(err));
            vm_request_stop(vm, VM_STOP_HOST_ERROR, 0, "could not start every vCPU");
            break;
        }
        vm->vcpus[i].thread_started = true;
    }
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    /* After the vCPU threads exist: they must not inherit this thread's filter. */
    vm_enter_sandbox(vm, SANDBOX_IO);

    while (!atomic_load(&vm->stopping)) {
        struct pollfd fds[2] = {{.fd = vm->stop_fd, .events = POLLIN},
                                {.fd = signal_fd, .events = POLLIN}};
        if (poll(fds, signal_fd >= 0 ? 2 : 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            log_error("poll on the stop and signal fds: %s", strerror(errno));
            vm_request_stop(vm, VM_STOP_HOST_ERROR, 0, "poll failed");
            break;
        }
        if (signal_fd >= 0 && (fds[1].revents & POLLIN)) {
            struct signalfd_siginfo info;
            if (read(signal_fd, &info, sizeof(info)) != sizeof(info))
                continue;
            if (info.ssi_signo == SIGUSR1) {
                if (vm->stats_wanted)
                    vm_report_stats(vm, KVM_STATS_ON_SIGUSR1);
                else
                    log_info("SIGUSR1: no statistics to print (they need --stats)");
            } else {
                char why[64];
                snprintf(why, sizeof(why), "stopped by signal %s", strsignal((int)info.ssi_signo));
                vm_request_stop(vm, VM_STOP_SIGNAL, (int)info.ssi_signo, why);
            }
        }
    }
    /* A vCPU may have been between its stopping check and KVM_RUN when the first kick
     * went out; immediate_exit catches that, and this second kick covers the rest. */
    for (unsigned int i = 0; i < vm->cpu_count; i++) {
        if (vm->vcpus[i].thread_started) {
            pthread_kill(vm->vcpus[i].thread, VCPU_KICK_SIGNAL);
            pthread_join(vm->vcpus[i].thread, NULL);
            vm->vcpus[i].thread_started = false;
        }
    }
    log_debug("VM stopped: %s", vm->stop_reason);
    if (log_is_verbose())
        log_debug("unclaimed accesses: port I/O %llu reads, %llu writes; MMIO %llu reads, "
                  "%llu writes",
                  (unsigned long long)atomic_load(&vm->pio.unclaimed_reads),
                  (unsigned long long)atomic_load(&vm->pio.unclaimed_writes),
                  (unsigned long long)atomic_load(&vm->mmio.unclaimed_reads),
                  (unsigned long long)atomic_load(&vm->mmio.unclaimed_writes));
    if (log_is_verbose()) {
        const struct vcpu_stats *stats[VM_MAX_CPUS];
        for (unsigned int i = 0; i < vm->cpu_count; i++)
            stats[i] = &vm->vcpus[i].stats;
        vcpu_stats_log_totals(stats, vm->cpu_count);
    }
    return 0;
}

void vm_destroy(struct vm *vm)
{
    if (vm->stats_ready)
        kvm_stats_destroy(&vm->stats);
    vm->stats_ready = false;
    for (unsigned int i = 0; i < vm->cpu_count; i++)
        vcpu_destroy(&vm->vcpus[i]);
    for (unsigned int i = 0; i < vm->shm_count; i++)
        shm_device_destroy(&vm->shm[i]);
    vm_remove_devices(vm);
    guest_ram_destroy(&vm->ram);
    irq_routing_destroy(&vm->irq_routing);
    close(vm->vm_fd);
    close(vm->kvm_fd);
    close(vm->stop_fd);
    bus_destroy(&vm->mmio);
    bus_destroy(&vm->pio);
}
