#include "vmm/kvm_host.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static bool cpuinfo_has_virt_flag(const char *cpuinfo_path)
{
    FILE *f = fopen(cpuinfo_path, "r");
    if (!f)
        return false;
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f)) {
        if (strncmp(line, "flags", 5) != 0)
            continue;
        /* Flags are space separated: match whole words only. */
        for (char *tok = strtok(line, " \t\n"); tok; tok = strtok(NULL, " \t\n"))
            if (strcmp(tok, "vmx") == 0 || strcmp(tok, "svm") == 0)
                found = true;
        break;
    }
    fclose(f);
    return found;
}

enum kvm_host_kind kvm_host_probe(const char *dev_path, const char *cpuinfo_path)
{
    if (access(dev_path, F_OK) != 0)
        return KVM_HOST_NONE;
    return cpuinfo_has_virt_flag(cpuinfo_path) ? KVM_HOST_HARDWARE : KVM_HOST_PVM;
}

const char *kvm_host_advice(enum kvm_host_kind kind)
{
    switch (kind) {
    case KVM_HOST_NONE:
        return "no /dev/kvm on this host, so no guest can run here; run minivmm inside the "
               "emulated KVM host instead: tests/kvm-host/with-kvm.sh -- ./minivmm ARGS";
    case KVM_HOST_PVM:
        return "this /dev/kvm is paravirtual (no vmx/svm in /proc/cpuinfo): it emulates guest "
               "kernel code, so Linux will not boot; run minivmm inside the emulated KVM host "
               "instead: tests/kvm-host/with-kvm.sh -- ./minivmm ARGS";
    case KVM_HOST_HARDWARE:
        break;
    }
    return "";
}
