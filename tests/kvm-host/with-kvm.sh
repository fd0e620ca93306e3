#!/bin/bash
# Usage: with-kvm.sh [--timeout SEC] -- COMMAND [ARGS...]
#
# Runs COMMAND where a real KVM can boot Linux guests: directly when this machine has one
# (kvm-mode.sh says direct), otherwise inside the emulated KVM host (kvm-host.sh). Prints
# exactly one line on stderr saying which path it took and why; everything else on
# stdout/stderr is COMMAND's.
#
# Exit status: COMMAND's; 124 when --timeout expired; 125 when the emulated host failed;
# 123 when the emulated host itself failed: its own kernel crashed, or it never reached
# COMMAND (kvm-host.sh).
# MINIVMM_KVM_PATH=direct|emulated forces a path (default: auto).
set -euo pipefail

here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=configs/guest-image/lib.sh
source "$here/../../configs/guest-image/lib.sh"

usage() {
    sed -n '2p' "${BASH_SOURCE[0]}" | sed 's/^# //' >&2
    exit "$1"
}

timeout_s=0
while (($# > 0)); do
    case $1 in
    --timeout) timeout_s=${2:?}; shift 2 ;;
    --timeout=*) timeout_s=${1#*=}; shift ;;
    --) shift; break ;;
    -h | --help) usage 0 ;;
    -*) printf 'with-kvm.sh: unknown option %s\n' "$1" >&2; usage 125 ;;
    *) break ;;
    esac
done
(($# > 0)) || usage 125
[[ $timeout_s =~ ^[0-9]+$ ]] || { echo 'with-kvm.sh: --timeout takes whole seconds' >&2; exit 125; }

mode=$("$here/kvm-mode.sh")
case ${MINIVMM_KVM_PATH:-auto} in
auto)
    case $mode in
    direct) path=direct why="VT-x/AMD-V and /dev/kvm here" ;;
    pvm) path=emulated why="/dev/kvm here is paravirtual KVM (PVM): no VT-x/AMD-V in /proc/cpuinfo" ;;
    *) path=emulated why="no VT-x/AMD-V here: /dev/kvm missing" ;;
    esac
    ;;
direct) path=direct why="forced by MINIVMM_KVM_PATH; kvm-mode here: $mode" ;;
emulated) path=emulated why="forced by MINIVMM_KVM_PATH; kvm-mode here: $mode" ;;
*) echo "with-kvm.sh: MINIVMM_KVM_PATH must be auto, direct or emulated" >&2; exit 125 ;;
esac

if [[ $path == emulated ]]; then
    echo "minivmm: KVM path: emulated host, QEMU $(minivmm_qemu_version) TCG ($why)" >&2
    exec "$here/kvm-host.sh" --quiet --timeout "$timeout_s" -- "$@"
fi

echo "minivmm: KVM path: direct ($why)" >&2
if ((timeout_s == 0)); then
    exec "$@"
elif [[ -t 0 ]]; then
    # --foreground: an interactive COMMAND keeps the terminal (otherwise timeout moves it
    # to a background process group); only COMMAND itself is timed out then.
    exec timeout --foreground -k 10 "$timeout_s" "$@"
else
    exec timeout -k 10 "$timeout_s" "$@"
fi
