#!/usr/bin/env bash
# Installs the Debian packages minivmm needs to build, test and run its guests, skipping
# the apt work entirely when everything is already there (a second run costs nothing).
set -euo pipefail

packages=(
    build-essential cmake pkg-config  # the build
    libelf-dev                        # vmlinux ELF loading
    libcmocka-dev                     # unit tests
    libseccomp-dev libcap-dev         # the sandbox after set-up (vmm/sandbox.c)
    clang-format                      # layout check in CI
    clang libclang-rt-14-dev          # libFuzzer harnesses (tests/fuzz)
    busybox-static cpio               # the guest initramfs
    linux-headers-amd64               # the guest kernel module (guest-kernel-module/)
    seabios                           # QEMU's firmware (QEMU itself: ensure_qemu above)
    gnuplot-nox                       # the performance report's plots (scripts/report.sh)
)

# QEMU: the emulated KVM host's emulator, and the peer and baseline VMM of the interop
# tests and benchmarks (one version for both). Debian 12's own 7.2 on purpose: counted
# with scripts/soak.sh, it ran the multi-VM guest tests without a fault (kvm_amd npt=0),
# where QEMU 10 from bookworm-backports triple-faulted or hung nested guests in 3 of 4
# runs of guest.shm_faults with npt=1 and hung every boot with npt=0
# (tests/kvm-host/README.md). A newer QEMU on a Debian 12 machine is replaced by it.
qemu_series=1:7.2

if [ "$(id -u)" -ne 0 ]; then
    sudo=sudo
else
    sudo=
fi
apt_get() {
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get "$@"
}

installed() { # package
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

qemu_is_debian12s() {
    local version
    installed qemu-system-x86 && version=$(dpkg-query -W -f='${Version}' qemu-system-x86) &&
        [[ $version == "$qemu_series"* ]]
}

ensure_qemu() {
    local codename
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    if [ "$codename" != bookworm ]; then
        installed qemu-system-x86 && return 0
        apt_get update -q
        apt_get install -y -q --no-install-recommends qemu-system-x86
        return
    fi
    qemu_is_debian12s && return 0
    echo "minivmm: installing Debian 12's QEMU ($qemu_series), the emulator the tests were counted on" >&2
    apt_get update -q
    apt_get install -y -q --no-install-recommends --allow-downgrades \
        qemu-system-x86/bookworm qemu-system-common/bookworm qemu-system-data/bookworm seabios/bookworm
    qemu_is_debian12s || {
        echo "minivmm: qemu-system-x86 $(dpkg-query -W -f='${Version}' qemu-system-x86 2>/dev/null)" \
            "is installed, not Debian 12's $qemu_series" >&2
        exit 1
    }
}

missing=()
for pkg in "${packages[@]}"; do
    installed "$pkg" || missing+=("$pkg")
done
if [ ${#missing[@]} -ne 0 ]; then
    echo "minivmm: installing Debian packages: ${missing[*]}" >&2
    apt_get update -q
    apt_get install -y -q --no-install-recommends "${missing[@]}"
fi
ensure_qemu
