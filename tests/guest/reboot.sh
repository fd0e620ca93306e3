#!/usr/bin/env bash
# Linux's own reboot (through the i8042 reset line, as reboot=k asks) ends the VM with
# exit status 0.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/test-lib.sh"
require_guest_image

run_guest 280 --append "minivmm.run=reboot,-f"
expect_status 0 "$guest_status" "guest reboot"
expect_contains "$guest_out" "reboot: Restarting system" "the kernel went down its reboot path"
finish
