/* The command line, parsed into a plain config so it can be tested without a VM. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "vmm/shm_spec.h"

#define CLI_MAX_CPUS    64
#define CLI_DEFAULT_MEM (256ull << 20)
#define CLI_MIN_MEM     (16ull << 20)
/* Guest RAM stays far below the 64-bit PCI window at 256 GiB. */
#define CLI_MAX_MEM (64ull << 30)
#define CLI_MAX_SHM 4

struct vm_config {
    const char *kernel_path; /* NULL: the default guest image next to the binary */
    const char *initrd_path; /* NULL: none, or the default image's when kernel is default */
    const char *append;      /* added to the built-in kernel command line */
    uint64_t mem_size;
    unsigned int cpus;
    bool verbose;
    bool shm_list; /* --shm-list: print the shared-memory groups and exit */
    bool sandbox;  /* false with --no-sandbox (debugging: strace, gdb) */
    bool stats;    /* --stats: KVM's statistics at exit and on SIGUSR1 */
    unsigned int shm_count;
    struct shm_spec shm[CLI_MAX_SHM];
};

enum cli_result {
    CLI_RUN,     /* config is complete: start the VM */
    CLI_EXIT_OK, /* --help or --version was printed */
    CLI_ERROR,   /* an error was printed to err */
};

enum cli_result cli_parse(int argc, char **argv, struct vm_config *config, FILE *out, FILE *err);
