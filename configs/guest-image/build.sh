#!/bin/bash
# Usage: build.sh OUTDIR GUEST_APPS_BINDIR [MODULE.ko...]
#
# Builds minivmm's default guest image into OUTDIR:
#   bzImage            the current Debian kernel (linux-image-amd64's), unpacked from the
#                      package by fetch-kernel.sh into the cache, never installed
#   kernel-version     its release, e.g. 6.1.0-56-amd64 (out-of-tree guest modules build
#                      against linux-headers-<that>)
#   linux-image        symlink to the unpacked package in the cache (lib/modules/...)
#   initramfs.cpio.gz  busybox-static with its applet links, guest-info and guest-exit
#                      from GUEST_APPS_BINDIR in /usr/bin, and /init from this folder;
#                      each MODULE.ko (built for this kernel) in /lib/modules/, which
#                      /init loads at boot
# The CMake target guest-image runs it. Unchanged inputs leave OUTDIR untouched.
set -euo pipefail

here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=configs/guest-image/lib.sh
source "$here/lib.sh"

(($# >= 2)) || { sed -n '2p' "${BASH_SOURCE[0]}" | sed 's/^# //' >&2; exit 2; }
outdir=$1
bindir=$2
modules=("${@:3}")
apps=(guest-info guest-exit pci-scribble ivshmem-info shm-ring ivshmem-selftest shm-pingpong shm-peer-watch shm-note shm-doorbell-storm shm-churn portio-xfer)
apps+=(ivc-bench) # libivc's benchmark, linked with libivc.a
for app in "${apps[@]}"; do
    [[ -x $bindir/$app ]] || minivmm_die "no $bindir/$app: build the guest-apps first"
done

minivmm_require_packages busybox-static cpio
tree=$("$here/fetch-kernel.sh")
release=$(<"$tree/kernel-version")
mkdir -p -- "$outdir"

# Copy only on change, so that anything depending on the files' times is not rebuilt.
install_if_changed() {
    cmp -s -- "$1" "$2" || cp -- "$1" "$2"
}
install_if_changed "$tree/boot/vmlinuz-$release" "$outdir/bzImage"
printf '%s\n' "$release" >"$outdir/kernel-version.new"
install_if_changed "$outdir/kernel-version.new" "$outdir/kernel-version"
rm -f -- "$outdir/kernel-version.new"
ln -sfn -- "$tree" "$outdir/linux-image"
for module in "${modules[@]}"; do
    built_for=$(modinfo -F vermagic "$module") || minivmm_die "no kernel module $module"
    [[ ${built_for%% *} == "$release" ]] ||
        minivmm_die "$module is built for Linux ${built_for%% *}, the image's kernel is $release"
done

build_initramfs() {
    local stage applet app
    stage=$(mktemp -d "$outdir/.initramfs.XXXXXX")
    mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,root,etc}
    cp /bin/busybox "$stage/bin/busybox"
    for applet in $(/bin/busybox --list-full); do
        [[ -e $stage/$applet ]] || ln -s /bin/busybox "$stage/$applet"
    done
    for app in "${apps[@]}"; do
        cp -- "$bindir/$app" "$stage/usr/bin/$app"
    done
    mkdir -p "$stage/lib/modules"
    for module in "${modules[@]}"; do
        cp -- "$module" "$stage/lib/modules/"
    done
    cp "$here/init" "$stage/init"
    chmod 755 "$stage/init"
    # /dev/console comes from the kernel's built-in initramfs (mknod needs root here).
    (cd -- "$stage" && find . -mindepth 1 | LC_ALL=C sort |
        cpio --quiet -o -H newc --owner=0:0 --reproducible | gzip -9n) >"$stage.cpio.gz"
    mv -- "$stage.cpio.gz" "$outdir/initramfs.cpio.gz"
    rm -rf -- "$stage"
}

stamp=$(
    cd -- "$bindir" && cat /bin/busybox "${apps[@]}" "${modules[@]}" "$here/init" | sha256sum
    declare -f build_initramfs
)
if [[ ! -f $outdir/initramfs.cpio.gz || $(cat "$outdir/.initramfs.stamp" 2>/dev/null) != "$stamp" ]]; then
    build_initramfs
    printf '%s\n' "$stamp" >"$outdir/.initramfs.stamp"
    printf 'minivmm: guest image in %s (Linux %s)\n' "$outdir" "$release" >&2
fi
