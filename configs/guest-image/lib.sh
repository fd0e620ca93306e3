# shellcheck shell=bash
# Helpers shared by the guest-image and kvm-host scripts. Sourced, never run.
#
# Every script locates the repository from its own path, so it works from any cwd,
# and keeps everything it builds or downloads under the build folder
# (MINIVMM_BUILD_DIR, default <repo>/build) so that a second run is fast.

# The repository root: this file lives in <repo>/configs/guest-image/.
MINIVMM_REPO_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd -P)
MINIVMM_BUILD_DIR=${MINIVMM_BUILD_DIR:-$MINIVMM_REPO_DIR/build}
# Downloads (the Debian kernel package) are shared by the guest image and the
# emulated KVM host; a separate variable lets several build folders share one copy.
MINIVMM_CACHE_DIR=${MINIVMM_CACHE_DIR:-$MINIVMM_BUILD_DIR/cache}

# Callers that give their own failures a special status (kvm-host.sh: 125) set this.
minivmm_die_status=1
minivmm_die() {
    printf 'minivmm: %s\n' "$*" >&2
    exit "$minivmm_die_status"
}

# minivmm_abspath PATH: PATH made absolute and free of symlinks (it must exist). The
# emulated host shares folders by these paths, and a 9p mount cannot land on a symlink.
minivmm_abspath() {
    (cd -- "$1" && pwd -P)
}

# minivmm_qemu_version: the version of qemu-system-x86_64 (e.g. 7.2.22), empty without it.
# The emulated KVM host's emulator and the QEMU peers and baselines are this one binary.
minivmm_qemu_version() {
    qemu-system-x86_64 --version 2>/dev/null |
        sed -n '1s/^QEMU emulator version \([0-9][0-9.]*\).*/\1/p'
}

# minivmm_require_packages PKG...: install the Debian packages that are missing.
# CI starts from a bare Debian 12, so nothing beyond the base system may be assumed;
# `apt-get update` only runs when something is actually missing, to keep reruns fast
# and offline-safe.
minivmm_require_packages() {
    local pkg missing=()
    for pkg in "$@"; do
        if [[ $(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null) != installed ]]; then
            missing+=("$pkg")
        fi
    done
    ((${#missing[@]} == 0)) && return 0
    if ((EUID != 0)); then
        minivmm_die "missing Debian packages: ${missing[*]} (install them, or run as root)"
    fi
    printf 'minivmm: installing %s\n' "${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    # apt's own progress goes to stderr: stdout of these scripts carries results only.
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}
