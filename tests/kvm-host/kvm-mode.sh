#!/bin/bash
# Usage: kvm-mode.sh
#
# Prints what kind of KVM this machine offers, as one word, and exits 0:
#   direct  /dev/kvm exists and the CPU has VT-x or AMD-V (vmx/svm in /proc/cpuinfo):
#           Linux guests boot here.
#   pvm     /dev/kvm exists without vmx/svm: a paravirtual KVM (PVM). Only guest user-mode
#           code runs natively; guest kernel code is emulated at ~1 us per instruction,
#           so Linux cannot boot. Tiny user-mode guest payloads still work.
#   none    no /dev/kvm at all.
# Inside the emulated KVM host (kvm-host.sh) this prints direct.
set -euo pipefail

if [[ ! -e /dev/kvm ]]; then
    echo none
elif grep -qwE 'vmx|svm' /proc/cpuinfo 2>/dev/null; then
    echo direct
else
    echo pvm
fi
