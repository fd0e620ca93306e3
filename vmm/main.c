/* minivmm: boots a Linux kernel straight into its 64-bit entry on KVM. This file turns
 * the command line into a running VM and the VM's end into an exit code; everything it
 * calls is testable on its own. */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "common/log.h"
#include "vmm/boot.h"
#include "vmm/broker/status.h"
#include "vmm/cli.h"
#include "vmm/console.h"
#include "vmm/exit_codes.h"
#include "vmm/kernel_image.h"
#include "vmm/kvm_host.h"
#include "vmm/mapped_file.h"
#include "vmm/shm_group.h"
#include "vmm/vm.h"

_Static_assert(CLI_MAX_CPUS <= VM_MAX_CPUS && CLI_MAX_SHM <= VM_MAX_SHM,
               "the command line allows more than a VM holds");

/* reboot=k: Linux resets through the i8042, which ends the VM. panic=-1: a panicking
 * kernel resets at once instead of hanging. acpi=off: there are no ACPI tables (the MP
 * table describes the CPUs), so spare the guest its search and complaint. */
#define BASE_CMDLINE      "console=ttyS0 reboot=k panic=-1 acpi=off"
#define DEFAULT_IMAGE_DIR "guest-image"

struct boot_files {
    char kernel_path[PATH_MAX];
    char initrd_path[PATH_MAX];
    struct mapped_file kernel;
    struct mapped_file initrd;
    bool has_initrd;
};

/* The default guest image lives next to the real binary (./minivmm is a symlink to it). */
static int default_image_path(char *out, size_t len, const char *name)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n < 0) {
        log_error("readlink /proc/self/exe: %s", strerror(errno));
        return -1;
    }
    exe[n] = '\0';
    int written = snprintf(out, len, "%s/%s/%s", dirname(exe), DEFAULT_IMAGE_DIR, name);
    return written < 0 || (size_t)written >= len ? -1 : 0;
}

static int open_boot_file(struct mapped_file *file, const char *what, const char *path,
                          bool is_default)
{
    int ret = mapped_file_open(file, path);
    if (ret == 0)
        return 0;
    if (is_default && ret == -ENOENT)
        log_error("no --kernel given and the default guest image is not built (%s missing); "
                  "build it with: cmake --build build --target guest-image",
                  path);
    else
        log_error("cannot read %s '%s': %s", what, path, strerror(-ret));
    return EXIT_NO_INPUT;
}

static int boot_files_open(struct boot_files *files, const struct vm_config *config)
{
    bool default_kernel = config->kernel_path == NULL;
    if (default_kernel) {
        if (default_image_path(files->kernel_path, sizeof(files->kernel_path), "bzImage") ||
            default_image_path(files->initrd_path, sizeof(files->initrd_path), "initramfs.cpio.gz"))
            return EXIT_HOST_ERROR;
    } else {
        snprintf(files->kernel_path, sizeof(files->kernel_path), "%s", config->kernel_path);
    }
    if (config->initrd_path)
        snprintf(files->initrd_path, sizeof(files->initrd_path), "%s", config->initrd_path);
    files->has_initrd = default_kernel || config->initrd_path;

    int ret = open_boot_file(&files->kernel, "kernel", files->kernel_path, default_kernel);
    if (ret)
        return ret;
    if (files->has_initrd)
        ret = open_boot_file(&files->initrd, "initrd", files->initrd_path, default_kernel);
    return ret;
}

static char *build_cmdline(const char *append)
{
    size_t len = strlen(BASE_CMDLINE) + (append ? strlen(append) + 1 : 0) + 1;
    char *cmdline = malloc(len);
    if (cmdline)
        snprintf(cmdline, len, "%s%s%s", BASE_CMDLINE, append ? " " : "", append ? append : "");
    return cmdline;
}

/* SIGINT, SIGTERM and SIGHUP stop the VM in an orderly way, and SIGUSR1 prints the --stats
 * statistics: they are blocked in every thread and read from a signalfd by the thread that
 * waits for the VM. */
static int stop_signals_fd(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
        return -1;
    int fd = signalfd(-1, &set, SFD_CLOEXEC);
    if (fd < 0)
        log_error("signalfd: %s", strerror(errno));
    return fd;
}

/* minivmm's exit status for a VM that ran and stopped (exit_codes.h). */
static int exit_code_of_stop(const struct vm *vm)
{
    switch (vm->stop_cause) {
    case VM_STOP_GUEST_STATUS:
        return vm->stop_status;
    case VM_STOP_GUEST_RESET:
        return EXIT_GUEST_RESET;
    case VM_STOP_GUEST_CRASH:
        return EXIT_GUEST_CRASH;
    case VM_STOP_SIGNAL:
        return EXIT_SIGNAL_BASE + vm->stop_status;
    case VM_STOP_HOST_ERROR:
        break;
    }
    return EXIT_HOST_ERROR;
}

/* The set-up steps of run_vm(), each of which logs why it failed and returns -errno. */
enum setup_step { SETUP_CREATE, SETUP_SHM, SETUP_LOAD, SETUP_STATS };

/* The exit status for a failed step: only the errno that step documents for a cause of its
 * own gets that cause's code (vm.h); anything else is a host error. */
static int exit_code_of_setup(enum setup_step step, int err)
{
    if (step == SETUP_CREATE && err == -ENODEV)
        return EXIT_UNAVAILABLE;
    if (step == SETUP_SHM && err == -EUSERS)
        return EXIT_GROUP_FULL;
    if (step == SETUP_LOAD && err == -ENOEXEC)
        return EXIT_BAD_IMAGE;
    return EXIT_HOST_ERROR;
}

static int run_vm(const struct vm_config *config, const struct kernel_image *image,
                  struct boot_files *files, const char *cmdline)
{
    int signal_fd = stop_signals_fd();
    if (signal_fd < 0)
        return EXIT_HOST_ERROR;
    /* A console reader that goes away must not kill the VM: writes then fail with EPIPE. */
    signal(SIGPIPE, SIG_IGN);

    struct vm *vm = malloc(sizeof(*vm));
    if (!vm) {
        log_error("allocating the VM: out of memory");
        close(signal_fd);
        return EXIT_HOST_ERROR;
    }
    int err = vm_create(vm, config->mem_size, config->cpus, STDOUT_FILENO);
    if (err) {
        free(vm);
        close(signal_fd);
        return exit_code_of_setup(SETUP_CREATE, err);
    }
    vm->sandbox = config->sandbox;
    enum setup_step step = SETUP_SHM;
    err = vm_add_shm(vm, config->shm, config->shm_count);
    if (!err) {
        step = SETUP_LOAD;
        err = vm_load(vm, image, files->initrd.data, files->initrd.size, cmdline);
    }
    /* The guest has its copy now: the files would only add to the VMM's resident size. */
    mapped_file_close(&files->initrd);
    mapped_file_close(&files->kernel);
    if (!err && config->stats) {
        step = SETUP_STATS;
        err = vm_open_stats(vm);
    }
    int ret = err ? exit_code_of_setup(step, err) : 0;
    if (!err) {
        struct console console;
        console_init(&console, vm, STDIN_FILENO);
        bool ran = false;
        if (console_start(&console) == 0) {
            ran = vm_run(vm, signal_fd) == 0;
            if (!ran) /* the console's thread ends once the VM is stopping */
                vm_request_stop(vm, VM_STOP_HOST_ERROR, 0, "the vCPUs could not start");
            console_stop(&console);
        }
        console_restore_terminal();
        ret = ran ? exit_code_of_stop(vm) : EXIT_HOST_ERROR;
        /* With the terminal back in its own mode, and the vCPUs' fds still open. */
        if (ran)
            vm_report_stats(vm, KVM_STATS_AT_EXIT);
    }
    vm_destroy(vm);
    free(vm);
    close(signal_fd);
    return ret;
}

int main(int argc, char **argv)
{
    struct vm_config config;
    switch (cli_parse(argc, argv, &config, stdout, stderr)) {
    case CLI_EXIT_OK:
        return 0;
    case CLI_ERROR:
        return EXIT_USAGE;
    case CLI_RUN:
        break;
    }
    log_set_verbose(config.verbose);
    if (config.shm_list) {
        int groups = broker_status_list(stdout);
        if (groups == 0)
            printf("no shared-memory groups\n");
        return groups < 0 ? EXIT_HOST_ERROR : 0;
    }

    if (config.shm_count) {
        char why[320];
        if (shm_reserve_fds(config.shm, config.shm_count, why, sizeof(why))) {
            log_error("%s", why);
            return EXIT_USAGE;
        }
    }

    /* Every input is checked before KVM is touched: a bad file is reported the same way
     * on every host, and nothing is left half-started. */
    struct boot_files files = {0};
    struct kernel_image image;
    char *cmdline = NULL;
    int ret = boot_files_open(&files, &config);
    if (!ret) {
        char why[256];
        if (kernel_image_parse(files.kernel.data, files.kernel.size, &image, why, sizeof(why))) {
            log_error("kernel '%s': %s", files.kernel_path, why);
            ret = EXIT_BAD_IMAGE;
        } else if (boot_check_memory(&image, files.initrd.size, config.mem_size, why,
                                     sizeof(why))) {
            log_error("%s", why);
            ret = EXIT_BAD_IMAGE;
        }
    }
    if (!ret) {
        cmdline = build_cmdline(config.append);
        if (!cmdline) {
            log_error("building the kernel command line: out of memory");
            ret = EXIT_HOST_ERROR;
        }
    }
    if (!ret) {
        enum kvm_host_kind host = kvm_host_probe("/dev/kvm", "/proc/cpuinfo");
        /* A paravirtual KVM runs only guests that say they are no Linux (an ELF note). */
        if (host == KVM_HOST_NONE || (host == KVM_HOST_PVM && !image.freestanding)) {
            log_error("%s", kvm_host_advice(host));
            ret = EXIT_UNAVAILABLE;
        } else if (host == KVM_HOST_PVM) {
            log_debug("paravirtual KVM: running the freestanding guest '%s' (ELF note)",
                      files.kernel_path);
        }
    }
    if (!ret) {
        log_debug("kernel %s, initrd %s, %llu MiB, %u vCPU(s), command line \"%s\"",
                  files.kernel_path, files.has_initrd ? files.initrd_path : "(none)",
                  (unsigned long long)(config.mem_size >> 20), config.cpus, cmdline);
        ret = run_vm(&config, &image, &files, cmdline);
    }
    free(cmdline);
    mapped_file_close(&files.initrd);
    mapped_file_close(&files.kernel);
    return ret;
}
