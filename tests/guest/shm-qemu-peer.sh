#!/usr/bin/env bash
# A QEMU VM with ivshmem-doorbell joins a group that a minivmm VM started (through
# minivmm's broker, speaking QEMU's ivshmem-server protocol): the two exchange doorbells
# (a ping-pong) and data both ways, interrupt-driven, with the same guest driver and
# programs on both sides.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/test-lib.sh"
require_guest_image
require_command qemu-system-x86_64
run_self_with_kvm 900 "$@"
start_vm_group_test


qemu_peer() { # run-list: QEMU ends with (2 * status + 1) through isa-debug-exit
    qemu_guest "quiet minivmm.run=$1" \
        -chardev socket,path="$XDG_RUNTIME_DIR/minivmm/mixed.sock",id=c \
        -device ivshmem-doorbell,chardev=c,vectors=2
}

# minivmm starts the group (peer 0), QEMU joins as peer 1. The minivmm side runs the
# ping-pong, then the transfer; so does QEMU, with its peer named (QEMU's device has no
# presence bitmap).
"$MINIVMM" --shm=mixed --append "quiet minivmm.run=sh,-c,shm-pingpong\${IFS}pong\${IFS}--peer\${IFS}1&&shm-ring\${IFS}--irq\${IFS}--peer\${IFS}1\${IFS}both\${IFS}4M" \
    >"$logs/minivmm" 2>&1 </dev/null &
minivmm_pid=$!
wait_for_text "$XDG_RUNTIME_DIR/minivmm/mixed.group" "peer=0" 120 || fail "minivmm never started the group"
qemu_peer "sh,-c,shm-pingpong\${IFS}ping\${IFS}--peer\${IFS}0\${IFS}--count\${IFS}200&&shm-ring\${IFS}--irq\${IFS}--peer\${IFS}0\${IFS}both\${IFS}4M" >"$logs/qemu" 2>&1
qemu_status=$?
wait "$minivmm_pid"
minivmm_status=$?

echo "--- minivmm guest"; grep -v '^\[' "$logs/minivmm"
echo "--- QEMU guest"; grep -v '^\[' "$logs/qemu"
expect_status 0 "$minivmm_status" "minivmm VM"
expect_status 1 "$qemu_status" "QEMU VM (isa-debug-exit reports status 0 as 1)"
expect_matches "$(cat "$logs/qemu")" "shm-pingpong: 200 doorbell round trips with peer 0" "QEMU pinged minivmm's guest 200 times"
expect_contains "$(cat "$logs/minivmm")" "shm-pingpong: answered" "minivmm's guest answered"
for side in minivmm qemu; do
    expect_matches "$(cat "$logs/$side")" "shm-ring: OK 8388608 bytes .*, irq" "$side side sent and verified 4 MiB each way"
done
# What each guest's driver mapping got from the page attribute table: write-back on
# minivmm's device; on QEMU's whatever its firmware's MTRRs make of BAR2, but named.
expect_contains "$(cat "$logs/minivmm")" "memory type write-back," "minivmm's device: BAR2 mapped write-back"
qemu_memtype=$(grep -o 'memory type [a-z-]*' "$logs/qemu" | head -n1)
expect_matches "$qemu_memtype" "memory type [a-z-]+" "QEMU's device: the memory type is reported ($qemu_memtype)"
finish
