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
    seabios                           # QEMU's firmware (QEMU itself: ensure_qemu below)
    gnuplot-nox                       # the performance report's plots (scripts/report.sh)
)

# QEMU 10 or later: the emulated KVM host's emulator, and the peer and baseline VMM of the
# interop tests and benchmarks (one version for both). QEMU 7.2, Debian 12's own, emulates
# SVM badly enough that the emulated host's kernel crashed and its nested guests hung
# (README, "Where guests run"); Debian 12 has QEMU 10 in bookworm-backports.
qemu_min_version=1:10
qemu_backports_version=1:10.0.2+ds-2+deb13u1~bpo12+1

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

qemu_is_recent() {
    local version
    version=$(dpkg-query -W -f='${Version}' qemu-system-x86 2>/dev/null) &&
        installed qemu-system-x86 && dpkg --compare-versions "$version" ge "$qemu_min_version"
}

# Adds bookworm-backports on the mirror that already serves bookworm (so a machine's own
# mirror is kept), unless some source lists it already.
add_bookworm_backports() {
    local mirror
    grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/ && return 0
    mirror=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' | awk '$2 == "bookworm" { print $1; exit }')
    if [ -z "$mirror" ]; then
        echo "minivmm: no apt source for bookworm found, so none for bookworm-backports either:" \
            "add bookworm-backports to the apt sources, then run this again" >&2
        exit 1
    fi
    echo "minivmm: adding the apt source ${mirror} bookworm-backports (for QEMU 10)" >&2
    echo "deb $mirror bookworm-backports main" | $sudo tee /etc/apt/sources.list.d/minivmm-bookworm-backports.list >/dev/null
}

ensure_qemu() {
    local codename
    qemu_is_recent && return 0
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    if [ "$codename" = bookworm ]; then
        add_bookworm_backports
        apt_get update -q
        if apt-cache show "qemu-system-x86=$qemu_backports_version" >/dev/null 2>&1; then
            apt_get install -y -q --no-install-recommends -t bookworm-backports \
                "qemu-system-x86=$qemu_backports_version"
        else
            echo "minivmm: QEMU $qemu_backports_version is gone from bookworm-backports; taking its newest" >&2
            apt_get install -y -q --no-install-recommends -t bookworm-backports qemu-system-x86
        fi
    else
        apt_get update -q
        apt_get install -y -q --no-install-recommends qemu-system-x86
    fi
    if ! qemu_is_recent; then
        echo "minivmm: qemu-system-x86 $(dpkg-query -W -f='${Version}' qemu-system-x86 2>/dev/null) is" \
            "installed, but the emulated KVM host and the QEMU peers need $qemu_min_version or later" >&2
        exit 1
    fi
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
