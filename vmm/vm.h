/* One virtual machine: its KVM handles, memory, buses, devices and vCPUs. Everything a VM
 * owns hangs off this struct, so one process can hold several (the unit tests do). */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/bus.h"
#include "devices/cmos.h"
#include "devices/debug_exit.h"
#include "devices/i8042.h"
#include "devices/legacy_ports.h"
#include "devices/pci.h"
#include "devices/uart.h"
#include "vmm/boot.h"
#include "vmm/guest_ram.h"
#include "vmm/irq_routing.h"
#include "vmm/kvm_stats.h"
#include "vmm/kvm_stats_report.h"
#include "vmm/sandbox.h"
#include "vmm/shm_device.h"
#include "vmm/vcpu.h"

/* What one VM holds at most; the command line's limits (cli.h) stay within these. */
#define VM_MAX_CPUS 64
#define VM_MAX_SHM  4

struct vm;

/* Why a VM stopped; main.c turns it into minivmm's exit status. */
enum vm_stop_cause {
    VM_STOP_GUEST_STATUS, /* the guest wrote stop_status to the debug-exit port */
    VM_STOP_GUEST_RESET,  /* the guest reset or shut down the machine */
    VM_STOP_GUEST_CRASH,  /* triple fault, KVM internal or emulation error, failed entry */
    VM_STOP_SIGNAL,       /* stop_status is the signal (SIGINT also for Ctrl-A x) */
    VM_STOP_HOST_ERROR,   /* a KVM ioctl or system call failed while the VM ran */
};

struct vm {
    int kvm_fd;
    int vm_fd;
    struct guest_ram ram;
    struct bus pio;
    struct bus mmio;
    unsigned int cpu_count;
    struct vcpu vcpus[VM_MAX_CPUS];
    struct boot_layout boot;

    struct uart com1;
    struct i8042 i8042;
    struct debug_exit debug_exit;
    struct cmos cmos;
    struct legacy_ports legacy_ports;
    struct pci_bus pci;
    struct irq_routing irq_routing;
    struct shm_device shm[VM_MAX_SHM];
    unsigned int shm_count;
    /* Set after vm_create(): each thread enters its sandbox once running (sandbox.h). */
    bool sandbox;
    /* --stats (vm_open_stats()): KVM's statistics of this VM, read by the main thread only,
     * on SIGUSR1 and at the end; nothing on a vCPU's exit path. */
    bool stats_wanted;
    bool stats_ready; /* false also where KVM has no binary statistics */
    struct kvm_stats stats;

    /* Stopping: the first request wins and fixes the cause; stop_fd (an eventfd)
     * wakes the threads that wait in poll(). */
    int stop_fd;
    atomic_bool stopping;
    enum vm_stop_cause stop_cause;
    int stop_status;
    char stop_reason[192];
};

/* The set-up functions below log why they failed and return -errno, or 0. */

/* Opens KVM, creates the VM with its irqchip, PIT, memory and legacy devices.
 * console_out is where COM1's output goes. -ENODEV: this host has no KVM that minivmm can
 * use. On failure nothing is left to destroy. */
int vm_create(struct vm *vm, uint64_t mem_size, unsigned int cpus, int console_out);

/* Joins each --shm group (at most VM_MAX_SHM) and plugs its ivshmem device into the PCI
 * bus. -EUSERS: a group is full. */
int vm_add_shm(struct vm *vm, const struct shm_spec *specs, unsigned int count);

/* Loads the kernel and initrd, writes the MP table and boot tables, creates the vCPUs
 * with the boot CPU at the kernel entry. -ENOEXEC: the image cannot be loaded. */
int vm_load(struct vm *vm, const struct kernel_image *image, const uint8_t *initrd,
            size_t initrd_size, const char *cmdline);

/* --stats: opens the VM's and its vCPUs' KVM statistics. Call after vm_load() (the vCPUs
 * exist) and before vm_run() (the sandbox forbids it there). A KVM without binary
 * statistics is no error: the reports say so in one line. */
int vm_open_stats(struct vm *vm);

/* With --stats, prints the statistics as they are now to stderr (kvm_stats_report.h). */
void vm_report_stats(struct vm *vm, enum kvm_stats_event event);

/* Runs every vCPU in its own thread until the guest or a signal (SIGINT, SIGTERM, SIGHUP,
 * delivered through signal_fd) stops the VM; SIGUSR1, delivered there too, prints the
 * statistics (vm_report_stats()) and the VM runs on. Returns 0 once the VM has stopped
 * (stop_cause, stop_status), or -errno if it could not start. */
int vm_run(struct vm *vm, int signal_fd);

/* Asks the VM to stop for cause (with status, see vm_stop_cause) unless a stop is already
 * under way. Thread-safe. */
void vm_request_stop(struct vm *vm, enum vm_stop_cause cause, int status, const char *reason);

/* Sandboxes the calling thread of the VM as kind when vm->sandbox is set. On failure it
 * logs why, asks the VM to stop (VM_STOP_HOST_ERROR) and returns -1; else 0. */
int vm_enter_sandbox(struct vm *vm, enum sandbox_kind kind);

void vm_destroy(struct vm *vm);
