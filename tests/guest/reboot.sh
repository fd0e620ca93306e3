#!/usr/bin/env bash
# Linux's own reboot (through the i8042 reset line, as reboot=k asks) ends the VM with
# exit status 0.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/test-lib.sh"
require_guest_image

out=$(run_with_kvm 280 "$MINIVMM" --append "minivmm.run=reboot,-f" 2>&1)
status=$?
skip_if_emulator_failed "$status"
expect_status 0 "$status" "guest reboot"
expect_contains "$out" "reboot: Restarting system" "the kernel went down its reboot path"
finish
