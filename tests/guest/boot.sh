#!/usr/bin/env bash
# The default guest boots with two vCPUs, reaches userspace, sees both CPUs with the APIC
# IDs the MP table gave them and the MSRs and CPUID bits firmware or QEMU would give it,
# and the status it writes to the debug-exit port becomes minivmm's exit code.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/test-lib.sh"
require_guest_image

run_guest 280 --cpus 2 --append "minivmm.run=guest-info,--exit,42"
out=$guest_out
echo "$out" | grep -v '^\[' # the guest's userspace output, without kernel messages
expect_status 42 "$guest_status" "guest-chosen status through port 0xf4"
expect_contains "$out" "init: running guest-info" "reached userspace (the initramfs's /init)"
expect_matches "$out" "cpus online: 2 " "guest sees two CPUs"
expect_contains "$out" "cpu 1: apicid 1" "second CPU has APIC ID 1"
expect_contains "$out" "hypervisor: KVMKVMKVM" "guest sees the KVM CPUID signature"
expect_contains "$out" "x86/PAT: Configuration [0-7]: WB  WC" \
    "guest kernel turned PAT on (MTRRs enabled, write-back default, as firmware leaves them)"
expect_lacks "$out" "inconsistent MTRRdefType" "both vCPUs start with the same MTRR settings"
expect_contains "$out" "tsc-deadline timer: yes" \
    "guest is offered the in-kernel APIC's TSC-deadline timer (KVM_CAP_TSC_DEADLINE_TIMER)"
finish
