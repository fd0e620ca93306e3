#!/usr/bin/env bash
# Two VMs share memory; one is SIGKILLed. The survivor's guest learns of the departure
# through the presence extension (a join, then a leave, on its peers-changed vector) and
# finds its own data in the shared memory intact; the survivor's VMM keeps running.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/test-lib.sh"
require_guest_image
run_self_with_kvm 900 "$@"
start_vm_group_test

"$MINIVMM" --shm=loss --append "minivmm.run=shm-peer-watch,--timeout,300" >"$logs/a" 2>&1 &
survivor=$!
wait_for_text "$logs/a" "shm-peer-watch: peer 0 watching" 300 || fail "first VM never started watching"

"$MINIVMM" --shm=loss --append "minivmm.run=sleep,600" >"$logs/b" 2>&1 &
victim=$!
wait_for_text "$logs/a" "shm-peer-watch: peer 1 joined" 300 || fail "second VM's arrival not seen"
kill -9 "$victim"
wait "$victim" 2>/dev/null

wait "$survivor"
status=$?
grep -v '^\[' "$logs/a"
expect_status 0 "$status" "survivor's guest watched a peer come and go"
expect_contains "$(cat "$logs/a")" "shm-peer-watch: peer 1 left" "the departure reached the survivor's guest"
expect_contains "$(cat "$logs/a")" "intact after the peer left" "the survivor's shared data is intact"
finish
