/* What kind of KVM this host offers. Linux guests need hardware virtualization (VT-x or
 * AMD-V); a paravirtual KVM (PVM) runs guest user code natively but emulates guest kernel
 * code an instruction at a time, so Linux cannot boot on it in useful time. */
#pragma once

enum kvm_host_kind {
    KVM_HOST_HARDWARE, /* /dev/kvm backed by VT-x or AMD-V */
    KVM_HOST_PVM,      /* /dev/kvm without vmx/svm: paravirtual */
    KVM_HOST_NONE,     /* no /dev/kvm */
};

/* cpuinfo_path is normally /proc/cpuinfo, dev_path /dev/kvm: parameters for tests. */
enum kvm_host_kind kvm_host_probe(const char *dev_path, const char *cpuinfo_path);

/* The one line to print when a Linux guest cannot boot here, naming what to run instead. */
const char *kvm_host_advice(enum kvm_host_kind kind);
