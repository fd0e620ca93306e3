#!/usr/bin/env bash
# The README's main job as a test: two minivmm VMs in one --shm group move data both ways
# at once, polled (no driver) and interrupt-driven (guest driver, doorbells), and verify
# every byte.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/test-lib.sh"
require_guest_image

run_self_with_kvm 600 "$@"

start_vm_group_test
MINIVMM=$MINIVMM MINIVMM_DEMO_BYTES=4M "$MINIVMM_SOURCE_DIR/scripts/two-vms.sh" >"$logs/out" 2>&1
status=$?
out=$(cat "$logs/out")
echo "$out"
expect_status 0 "$status" "two-vms.sh"
for vm in 0 1; do
    expect_matches "$out" "\[vm$vm\] shm-ring: OK 8388608 bytes .*, polled" "vm$vm polled transfer verified"
    expect_matches "$out" "\[vm$vm\] shm-ring: OK 8388608 bytes .*, irq" "vm$vm interrupt-driven transfer verified"
done
finish
