#!/bin/bash
# Usage: fetch-kernel.sh
#
# Makes sure the current Debian kernel (the one linux-image-amd64 depends on) is
# unpacked in the cache, and prints the folder that holds it:
#   DIR/kernel-version                 the kernel release, e.g. 6.1.0-56-amd64
#   DIR/boot/vmlinuz-RELEASE           the bzImage
#   DIR/lib/modules/RELEASE/           all its modules, with modules.dep
# The package is fetched with `apt-get download` and unpacked with `dpkg-deb -x`, never
# installed. The guest image takes its bzImage from here; the emulated KVM host boots the
# same kernel and loads kvm-amd, 9p, ... from the same modules tree; out-of-tree guest
# modules are built against linux-headers-RELEASE and load into this kernel.
#
# The release is resolved from the package, never hard-coded: it moves when Debian
# publishes a new kernel ABI. The answer is re-checked whenever apt's package lists change
# (apt-get update). Only stdout carries the result; progress is on stderr.
set -euo pipefail

# shellcheck source=configs/guest-image/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

# The release linux-image-amd64 currently points at, e.g. 6.1.0-56-amd64, or nothing.
resolve_release() {
    apt-cache depends linux-image-amd64 2>/dev/null |
        sed -n 's/^ *|\{0,1\}Depends: linux-image-\([0-9][^ ]*\)$/\1/p;T;q'
}

# dpkg-deb unpacks, depmod writes modules.dep (the package ships none: it is made at
# install time), and apt-get/apt-cache must be able to see the package.
minivmm_require_packages kmod

cache=$MINIVMM_CACHE_DIR/linux-image
mkdir -p -- "$cache"
# Two first runs at once (parallel ctest, two kvm-host runs) must not unpack into the
# same folder.
exec {lock_fd}>"$cache/.lock"
flock "$lock_fd"

# apt-cache takes about a second; its answer only changes when the package lists do.
resolved=$cache/resolved-release
release=
if [[ -s $resolved && $resolved -nt /var/lib/apt/lists ]]; then
    release=$(<"$resolved")
fi
[[ -n $release ]] || release=$(resolve_release)
if [[ -z $release ]]; then
    # A bare machine has no package lists yet.
    printf 'minivmm: apt-get update (to resolve linux-image-amd64)\n' >&2
    apt-get update -qq >&2 || true
    release=$(resolve_release)
fi
if [[ -z $release ]]; then
    # Offline, with the package lists gone: fall back to what was unpacked before.
    release=$(find "$cache" -mindepth 2 -maxdepth 2 -name .complete -printf '%h\n' |
        sort -V | tail -n1)
    release=${release##*/}
    [[ -n $release ]] || minivmm_die "cannot resolve linux-image-amd64 (apt-cache depends found nothing)"
    printf 'minivmm: linux-image-amd64 not resolvable, using cached %s\n' "$release" >&2
fi

printf '%s\n' "$release" >"$resolved"

tree=$cache/$release
if [[ ! -e $tree/.complete ]]; then
    printf 'minivmm: fetching linux-image-%s into %s\n' "$release" "$cache" >&2
    work=$(mktemp -d "$cache/.work.XXXXXX")
    trap 'rm -rf -- "$work"' EXIT
    # apt drops root to _apt for downloads, which cannot write a root-owned build folder.
    sandbox=()
    ((EUID == 0)) && sandbox=(-o APT::Sandbox::User=root)
    (cd -- "$work" && apt-get download -qq "${sandbox[@]}" "linux-image-$release" >&2)
    debs=("$work"/linux-image-"$release"_*.deb)
    [[ -f ${debs[0]} ]] || minivmm_die "apt-get download linux-image-$release produced no .deb"
    dpkg-deb -x "${debs[0]}" "$work/tree"
    [[ -f $work/tree/boot/vmlinuz-$release ]] || minivmm_die "no boot/vmlinuz-$release in ${debs[0]##*/}"
    depmod -b "$work/tree" "$release"
    printf '%s\n' "$release" >"$work/tree/kernel-version"
    printf '%s\n' "${debs[0]##*/}" >"$work/tree/.complete"
    # Keep the .deb: cheap to keep, and it documents exactly which build was unpacked.
    mv -- "${debs[0]}" "$cache/"
    rm -rf -- "$tree"
    mv -- "$work/tree" "$tree"
fi
printf '%s\n' "$tree"
