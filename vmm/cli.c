#include "vmm/cli.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/size.h"

static void cli_usage(FILE *out)
{
    fprintf(out,
            "Usage: minivmm [OPTIONS]\n"
            "Boot a Linux bzImage or vmlinux ELF directly on KVM, with a serial console.\n"
            "\n"
            "  -k, --kernel=FILE   bzImage or vmlinux to boot (default: the project's guest\n"
            "                      image, build/guest-image/bzImage, with its initramfs)\n"
            "  -i, --initrd=FILE   initial ramdisk\n"
            "  -p, --append=TEXT   add TEXT to the kernel command line\n"
            "  -m, --mem=SIZE      guest memory, with suffix K, M or G (default 256M)\n"
            "  -c, --cpus=N        number of vCPUs, 1-%d (default 1)\n"
            "  -s, --shm=NAME[,size=SIZE][,vectors=N][,hugepages=2M|1G][,portio=on]\n"
            "                      share memory with every VM started with the same NAME\n"
            "                      through an ivshmem device (default 4M, 2 vectors; up to %d);\n"
            "                      hugepages= backs it with the host's hugetlb pages;\n"
            "                      portio=on adds the group's port I/O channel (1af4:10f0)\n"
            "      --shm-list      list this user's shared-memory groups and their peers\n"
            "      --no-sandbox    keep capabilities and skip the seccomp allow-lists\n"
            "                      (for debugging with strace or gdb)\n"
            "      --stats         print KVM's statistics of this VM (exits, I/O exits, ...)\n"
            "                      to stderr at exit and on SIGUSR1: a table, then one\n"
            "                      'minivmm-stats: event=... name=value ...' line\n"
            "  -v, --verbose       debug messages, and counts of unclaimed I/O at exit\n"
            "  -h, --help          show this help\n"
            "  -V, --version       show the version\n"
            "\n"
            "Console: the guest's COM1 on stdin/stdout; on a terminal, Ctrl-A x quits.\n"
            "Exit status: 0 guest reboot; N guest wrote N to port 0xf4; 64 usage error;\n"
            "65 invalid kernel or initrd; 66 file cannot be read; 69 no usable KVM;\n"
            "70 guest crashed; 71 KVM or system error; 72 sandbox denied a system call;\n"
            "75 --shm group full; 128+N stopped by signal N.\n",
            CLI_MAX_CPUS, CLI_MAX_SHM);
}

enum { CLI_OPT_SHM_LIST = 0x100, CLI_OPT_NO_SANDBOX, CLI_OPT_STATS };

enum cli_result cli_parse(int argc, char **argv, struct vm_config *config, FILE *out, FILE *err)
{
    static const struct option options[] = {
        {"kernel", required_argument, NULL, 'k'},
        {"initrd", required_argument, NULL, 'i'},
        {"append", required_argument, NULL, 'p'},
        {"mem", required_argument, NULL, 'm'},
        {"cpus", required_argument, NULL, 'c'},
        {"shm", required_argument, NULL, 's'},
        {"shm-list", no_argument, NULL, CLI_OPT_SHM_LIST},
        {"no-sandbox", no_argument, NULL, CLI_OPT_NO_SANDBOX},
        {"stats", no_argument, NULL, CLI_OPT_STATS},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };

    *config = (struct vm_config){.mem_size = CLI_DEFAULT_MEM, .cpus = 1, .sandbox = true};
    /* getopt keeps global state; resetting it lets tests parse several command lines. */
    optind = 0;
    opterr = 0;

    int opt;
    while ((opt = getopt_long(argc, argv, ":k:i:p:m:c:s:vhV", options, NULL)) != -1) {
        switch (opt) {
        case 'k':
            config->kernel_path = optarg;
            break;
        case 'i':
            config->initrd_path = optarg;
            break;
        case 'p':
            config->append = optarg;
            break;
        case 'm': {
            int ret = parse_size(optarg, &config->mem_size);
            if (ret == 0 && (config->mem_size < CLI_MIN_MEM || config->mem_size > CLI_MAX_MEM))
                ret = -ERANGE;
            if (ret) {
                fprintf(
                    err,
                    "minivmm: error: --mem '%s': %s (for example 512M or 2G, %llu M to %llu G)\n",
                    optarg, ret == -EINVAL ? "not a size" : "out of range", CLI_MIN_MEM >> 20,
                    CLI_MAX_MEM >> 30);
                return CLI_ERROR;
            }
            break;
        }
        case 'c': {
            char *end;
            errno = 0;
            long cpus = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || cpus < 1 || cpus > CLI_MAX_CPUS) {
                fprintf(err, "minivmm: error: --cpus '%s': expected a number from 1 to %d\n",
                        optarg, CLI_MAX_CPUS);
                return CLI_ERROR;
            }
            config->cpus = (unsigned int)cpus;
            break;
        }
        case 's': {
            char why[192];
            if (config->shm_count == CLI_MAX_SHM) {
                fprintf(err, "minivmm: error: --shm given more than %d times\n", CLI_MAX_SHM);
                return CLI_ERROR;
            }
            if (shm_spec_parse(optarg, &config->shm[config->shm_count], why, sizeof(why))) {
                fprintf(err, "minivmm: error: --shm '%s': %s\n", optarg, why);
                return CLI_ERROR;
            }
            for (unsigned int i = 0; i < config->shm_count; i++) {
                if (strcmp(config->shm[i].name, config->shm[config->shm_count].name) == 0) {
                    fprintf(err, "minivmm: error: --shm '%s': group named twice\n", optarg);
                    return CLI_ERROR;
                }
            }
            config->shm_count++;
            break;
        }
        case CLI_OPT_SHM_LIST:
            config->shm_list = true;
            break;
        case CLI_OPT_NO_SANDBOX:
            config->sandbox = false;
            break;
        case CLI_OPT_STATS:
            config->stats = true;
            break;
        case 'v':
            config->verbose = true;
            break;
        case 'h':
            cli_usage(out);
            return CLI_EXIT_OK;
        case 'V':
            fprintf(out, "minivmm %s\n", MINIVMM_VERSION);
            return CLI_EXIT_OK;
        case ':':
            fprintf(err, "minivmm: error: option '%s' needs a value (see --help)\n",
                    argv[optind - 1]);
            return CLI_ERROR;
        default: {
            /* For a long option argv[optind - 1] is the culprit; for a short one inside a
             * group ("-xv") it may be an earlier argument, so name optopt instead. */
            const char *arg = argv[optind - 1];
            if (strncmp(arg, "--", 2) == 0)
                fprintf(err, "minivmm: error: unknown option '%.*s' (see --help)\n",
                        (int)strcspn(arg, "="), arg);
            else
                fprintf(err, "minivmm: error: unknown option '-%c' (see --help)\n", optopt);
            return CLI_ERROR;
        }
        }
    }
    if (optind < argc) {
        fprintf(err, "minivmm: error: unexpected argument '%s' (see --help)\n", argv[optind]);
        return CLI_ERROR;
    }
    for (unsigned int i = 0; i < config->shm_count; i++)
        config->shm[i].sandbox = config->sandbox;
    return CLI_RUN;
}
