#!/bin/bash
# Usage: build-module.sh OUTDIR [KERNEL_RELEASE]
#
# Builds ivshmem_guest.ko for the guest image's kernel into OUTDIR:
#   OUTDIR/ivshmem_guest.ko   the module without debug info (replaced only when it changed)
#   OUTDIR/kernel-version     the release it was built for
#   OUTDIR/src/               the Kbuild tree: a copy of this folder's sources, because an
#                             out-of-tree build writes its objects next to them; the
#                             headers of abi/ are read where they are (-I the repository)
# KERNEL_RELEASE defaults to the guest image's kernel, the one linux-image-amd64 points at
# (configs/guest-image/fetch-kernel.sh resolves it; never hard-coded). The headers come from
# linux-headers-<release>, installed when missing. Progress on stderr; reruns are cheap
# (Kbuild rebuilds nothing when nothing changed).
set -euo pipefail

here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=configs/guest-image/lib.sh
source "$here/../configs/guest-image/lib.sh"

(($# == 1 || $# == 2)) || { sed -n '2p' "${BASH_SOURCE[0]}" | sed 's/^# //' >&2; exit 2; }
outdir=$1
release=${2:-}
if [[ -z $release ]]; then
    tree=$("$here/../configs/guest-image/fetch-kernel.sh")
    release=$(<"$tree/kernel-version")
fi
headers=/usr/src/linux-headers-$release
[[ -f $headers/Makefile ]] || minivmm_require_packages "linux-headers-$release"
[[ -f $headers/Makefile ]] || minivmm_die "no kernel headers in $headers"

mkdir -p -- "$outdir/src"
outdir=$(minivmm_abspath "$outdir")
# Copy only on change: Kbuild decides what to rebuild from the files' times.
for file in Kbuild ivshmem_guest.c; do
    cmp -s -- "$here/$file" "$outdir/src/$file" || cp -- "$here/$file" "$outdir/src/$file"
done
# Objects of another release must not be reused.
if [[ $(cat "$outdir/src/.kernel-version" 2>/dev/null) != "$release" ]]; then
    rm -f -- "$outdir"/src/*.o "$outdir"/src/*.ko "$outdir"/src/.*.cmd
    printf '%s\n' "$release" >"$outdir/src/.kernel-version"
fi

make -s -C "$headers" M="$outdir/src" MINIVMM_SOURCE_DIR="$(cd -- "$here/.." && pwd -P)" modules >&2
# Without its debug information (the headers' config has DEBUG_INFO): 10x smaller in the
# initramfs.
strip --strip-debug -o "$outdir/ivshmem_guest.ko.new" "$outdir/src/ivshmem_guest.ko"
if cmp -s -- "$outdir/ivshmem_guest.ko.new" "$outdir/ivshmem_guest.ko"; then
    rm -f -- "$outdir/ivshmem_guest.ko.new"
else
    mv -- "$outdir/ivshmem_guest.ko.new" "$outdir/ivshmem_guest.ko"
fi
printf '%s\n' "$release" >"$outdir/kernel-version.new"
cmp -s -- "$outdir/kernel-version.new" "$outdir/kernel-version" ||
    mv -- "$outdir/kernel-version.new" "$outdir/kernel-version"
rm -f -- "$outdir/kernel-version.new"
