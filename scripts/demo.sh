#!/usr/bin/env bash
# The README's main job. Installs missing packages, builds minivmm and the default guest
# image, and runs two VMs that talk through shared memory (scripts/two-vms.sh). Where this
# machine's /dev/kvm cannot boot Linux, the VMs run inside the emulated KVM host, and the
# first line says so.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

scripts/install-deps.sh
build=${MINIVMM_BUILD_DIR:-$repo/build}
cmake -S . -B "$build" >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null
cmake --build "$build" --target guest-image >/dev/null

MINIVMM=$build/minivmm exec tests/kvm-host/with-kvm.sh --timeout 1200 -- scripts/two-vms.sh
