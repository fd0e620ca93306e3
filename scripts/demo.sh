#!/usr/bin/env bash
# The README's main job. Installs missing packages, builds minivmm and the default guest
# image, and boots the guest: on a terminal to a shell prompt (Ctrl-A x or `exit` ends
# it), otherwise it prints what it sees and powers off. Where this machine's /dev/kvm
# cannot boot Linux, the VM runs inside the emulated KVM host, and says so.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

scripts/install-deps.sh
build=${MINIVMM_BUILD_DIR:-$repo/build}
cmake -S . -B "$build" >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null
cmake --build "$build" --target guest-image >/dev/null

args=(--cpus 2)
[ -t 0 ] && args+=(--append "minivmm.shell=1")
exec tests/kvm-host/with-kvm.sh -- "$build/minivmm" "${args[@]}" "$@"
