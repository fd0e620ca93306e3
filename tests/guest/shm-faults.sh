#!/usr/bin/env bash
# Fault test for the shared-memory channels: VMs of one --shm group are SIGKILLed in the
# middle of transfers and the group carries on.
#   1. The VM that created the group (and so started its broker) is killed during a polled
#      transfer: the survivor's guest sees it leave, what it verified stays verified, its
#      VMM keeps running.
#   2. A new VM can still join the group the dead creator made; it is killed during an
#      interrupt-driven transfer, with the same outcome.
#   3. The killed creator is started again with the same --shm: it rejoins, reads a note
#      the survivor left in the shared memory, and the two move 8 MiB each way, verified.
#   4. The restarted VM rings doorbells to every peer and vector as fast as it can while
#      the two move 8 MiB each way interrupt-driven: the transfer completes, verified.
# The guest halves are tests/guest/shm-faults/*.sh, added to the default initramfs.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/test-lib.sh"
require_guest_image
run_self_with_kvm 1200 "$@"
start_vm_group_test

initrd=$(initrd_with_folder "$MINIVMM_SOURCE_DIR/tests/guest/shm-faults")

# Counts the lines of FILE that contain TEXT.
count_text() { # file text
    grep -cF -- "$2" "$1" 2>/dev/null
}

# Waits until FILE holds TEXT at least N times, at most SECONDS.
wait_for_count() { # file text n seconds
    local deadline=$((SECONDS + $4))
    until [ "$(count_text "$1" "$2")" -ge "$3" ]; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.2
    done
}

# Kills VM (pid) with SIGKILL a few seconds into the survivor's Nth pairing, while data
# is flowing, and checks that the VM was still running until then.
kill_mid_transfer() { # pid n what
    wait_for_count "$logs/survivor" "shm-ring: paired with peer" "$2" 300 ||
        fail "$3: the survivor never paired with it"
    sleep 3
    kill -0 "$1" 2>/dev/null || fail "$3 ended by itself before it could be killed"
    kill -9 "$1"
    wait "$1" 2>/dev/null
}

"$MINIVMM" --shm=faults --append "minivmm.run=shm-ring,--timeout,300,send,4G" >"$logs/creator" 2>&1 &
creator=$!
wait_for_text "$logs/creator" "shm-ring: device" 300 || fail "the creator's guest never started shm-ring"

"$MINIVMM" --shm=faults --initrd "$initrd" --append "minivmm.run=sh,/shm-faults/survivor.sh" \
    >"$logs/survivor" 2>&1 &
survivor=$!
kill_mid_transfer "$creator" 1 "the group's creator"
wait_for_text "$logs/survivor" "survivor: phase 1 ended" 180 || fail "phase 1 never ended"

"$MINIVMM" --shm=faults --append "minivmm.run=shm-ring,--irq,--timeout,300,send,4G" \
    >"$logs/newcomer" 2>&1 &
newcomer=$!
kill_mid_transfer "$newcomer" 2 "the newcomer"
wait_for_text "$logs/survivor" "survivor: phase 2 ended" 180 || fail "phase 2 never ended"
kill -0 "$survivor" 2>/dev/null || fail "the survivor's VMM died"

"$MINIVMM" --shm=faults --initrd "$initrd" --append "minivmm.run=sh,/shm-faults/rejoiner.sh" \
    >"$logs/rejoiner" 2>&1 &
rejoiner=$!

wait "$survivor"
survivor_status=$?
wait "$rejoiner"
rejoiner_status=$?
for vm in creator survivor newcomer rejoiner; do
    grep -v '^\[' "$logs/$vm" | sed "s/^/[$vm] /"
done
survivor_out=$(cat "$logs/survivor")
rejoiner_out=$(cat "$logs/rejoiner")

expect_matches "$survivor_out" \
    "shm-ring: FAIL peer 0 left the group \(sent 0 of 0, received and verified [1-9][0-9]* of" \
    "the survivor saw the creator leave mid-transfer, after verified data"
expect_contains "$survivor_out" "survivor: phase 1 ended with status 1" "phase 1 reported the loss"
expect_matches "$(grep -A30 'survivor: phase 2' "$logs/survivor")" \
    "shm-ring: FAIL peer 0 left the group \(sent 0 of 0, received and verified [1-9][0-9]* of" \
    "a newcomer joined the dead creator's group; its departure mid-transfer was seen"
expect_contains "$rejoiner_out" 'shm-note: found "left-by-the-survivor"' \
    "the restarted VM read what the survivor left in shared memory"
expect_matches "$survivor_out" "shm-ring: OK 16777216 bytes .*polled, peer 0" \
    "the survivor moved 8 MiB each way with the restarted VM"
expect_matches "$rejoiner_out" "shm-ring: OK 16777216 bytes .*polled, peer 1" \
    "the restarted VM moved 8 MiB each way with the survivor"
expect_matches "$survivor_out" "shm-ring: OK 16777216 bytes .*irq, peer 0" \
    "the survivor's interrupt-driven transfer completed during the doorbell storm"
expect_matches "$rejoiner_out" "shm-ring: OK 16777216 bytes .*irq, peer 1" \
    "the storming VM's own interrupt-driven transfer completed"
expect_contains "$rejoiner_out" "the storm was still running when the transfer ended" \
    "the transfer did not wait for the storm to end"
expect_matches "$rejoiner_out" "shm-doorbell-storm: [1-9][0-9]{3,} doorbells rung" \
    "the storm rang thousands of doorbells"
for vm in creator survivor newcomer rejoiner; do
    # A storm must slow a guest, never stall it: the kernel reports a stall of 21 s or more.
    expect_no_match "$(cat "$logs/$vm")" "rcu: INFO|detected stall|soft lockup|blocked for more than" \
        "$vm: its kernel reported no stall"
done
expect_status 0 "$survivor_status" "the survivor's VMM and guest"
expect_status 0 "$rejoiner_status" "the restarted VM"
finish
