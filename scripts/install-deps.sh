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
    qemu-system-x86 seabios           # the emulated KVM host, and QEMU as a peer and baseline
    gnuplot-nox                       # the performance report's plots (scripts/report.sh)
)

missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    sudo=sudo
else
    sudo=
fi
echo "minivmm: installing Debian packages: ${missing[*]}" >&2
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
