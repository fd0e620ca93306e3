#!/bin/bash
# Usage: qemu-boot-image.sh [--timeout SEC] IMAGE_DIR [KERNEL_ARG...]
#
# Boots a guest image (IMAGE_DIR/bzImage + IMAGE_DIR/initramfs.cpio.gz, as
# configs/guest-image/build.sh makes it) in QEMU with KVM: a known-good VMM to hold
# minivmm's results against, and a check of the image itself. The kernel command line is
# minivmm's default, `console=ttyS0 reboot=k panic=-1`, plus KERNEL_ARGs
# (e.g. minivmm.run=guest-info,--exit,3). The console is on stdout.
#
# Exit status: the guest's debug-exit status V, like minivmm's (QEMU's isa-debug-exit
# gives (2V + 1) & 0xff; mapped back, so only V < 128 comes back unchanged); 125 when the
# guest ended without a debug-exit write or QEMU failed; 124 on timeout.
# Needs a /dev/kvm that boots Linux: run it through with-kvm.sh.
set -euo pipefail

timeout_s=0
if [[ ${1:-} == --timeout ]]; then
    timeout_s=${2:?}
    shift 2
fi
(($# >= 1)) || { sed -n '2p' "${BASH_SOURCE[0]}" | sed 's/^# //' >&2; exit 125; }
image=$1
shift

rc=0
errlog=$(mktemp)
trap 'rm -f -- "$errlog"' EXIT
# shellcheck disable=SC2054 # commas inside QEMU option values
qemu=(qemu-system-x86_64 -enable-kvm -cpu host -m 256 -nographic -no-reboot
    # No iPXE option ROM to wait for at boot (minivmm has no NIC either).
    -nic none
    -kernel "$image/bzImage" -initrd "$image/initramfs.cpio.gz"
    -append "console=ttyS0 reboot=k panic=-1 $*"
    -device isa-debug-exit,iobase=0xf4,iosize=4)
if [[ -t 0 ]]; then
    # A person at a terminal (minivmm.shell=1): QEMU owns it, Ctrl-A x quits.
    timeout --foreground -k 10 "$timeout_s" "${qemu[@]}" 2>"$errlog" || rc=$?
else
    # The pipe through cat keeps QEMU's stdio chardev from making the caller's stdout
    # non-blocking.
    timeout -k 10 "$timeout_s" "${qemu[@]}" </dev/null 2>"$errlog" | cat ||
        rc=${PIPESTATUS[0]}
fi
cat -- "$errlog" >&2

if ((rc == 124)); then
    exit 124
elif ((rc % 2 == 1)) && ! grep -v ': warning: ' "$errlog" | grep -q '^qemu-system-x86_64: '; then
    # Odd and no error from QEMU itself: the guest wrote the debug-exit port.
    exit $(((rc - 1) / 2))
fi
echo "qemu-boot-image.sh: no debug-exit status came back (QEMU status $rc)" >&2
exit 125
