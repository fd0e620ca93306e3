#!/usr/bin/env bash
# shm-ring beyond the main job (shm-two-vms.sh covers `both`, polled and irq):
#  - no driver at all: one guest unloads ivshmem_guest, lists the device through sysfs
#    (ivshmem-info reads BAR0 through resource0) and sends 4 MiB polled through resource2;
#    the other receives with the driver loaded;
#  - failures fail instead of hanging: a VM alone in its group gives up after --timeout,
#    and a pair that disagrees on the byte counts both refuse at the handshake;
#  - QEMU's ivshmem-plain (memory only, no broker, every VM reads peer ID 0): two QEMU VMs
#    on one file move 4 MiB each way, given --id, finding each other through the ring's
#    slots.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/test-lib.sh"
require_guest_image
require_command qemu-system-x86_64
run_self_with_kvm 900 "$@"
start_vm_group_test


minivmm_vm() { # group log run-list
    "$MINIVMM" --shm="$1" --append "quiet minivmm.run=$3" >"$logs/$2" 2>&1 </dev/null &
}
qemu_plain_vm() { # log run-list: QEMU ends with 2 * status + 1
    qemu_guest "quiet minivmm.run=$2" \
        -object memory-backend-file,id=m,mem-path="$XDG_RUNTIME_DIR/plain.mem",size=4M,share=on \
        -device ivshmem-plain,memdev=m >"$logs/$1" 2>&1 &
}
show() { # log...
    for log in "$@"; do
        echo "--- $log"
        grep -v '^\[' "$logs/$log"
    done
}

# 1. Without the driver (and, at the same time, a VM alone in another group).
# One guest boots at a time (see wait_for_text in test-lib.sh), and no wait is unbounded.
minivmm_vm nodrv nodrv-send "sh,-c,rmmod\${IFS}ivshmem_guest&&ivshmem-info&&shm-ring\${IFS}send\${IFS}4M"
sender=$!
wait_for_userspace "$logs/nodrv-send" "$sender" || fail "nodrv-send never reached userspace"
minivmm_vm nodrv nodrv-recv "shm-ring,recv,4M"
receiver=$!
wait_for_userspace "$logs/nodrv-recv" "$receiver" || fail "nodrv-recv never reached userspace"
minivmm_vm alone alone "shm-ring,--timeout,5,both,1M"
alone=$!
wait_vm "$sender" 600
sender_status=$?
wait_vm "$receiver" 600
receiver_status=$?
wait_vm "$alone" 600
alone_status=$?
show nodrv-send nodrv-recv alone
expect_status 0 "$sender_status" "sender without the driver"
expect_status 0 "$receiver_status" "receiver"
out=$(cat "$logs/nodrv-send")
expect_contains "$out" "driver none" "the driver was unloaded"
expect_contains "$out" "registers via resource0" "ivshmem-info read BAR0 through sysfs"
expect_contains "$out" "mapped through resource2" "shm-ring mapped BAR2 through sysfs"
expect_contains "$out" "shm-ring: OK 4194304 bytes (sent 4194304, received 0)" "4 MiB sent without a driver"
expect_contains "$(cat "$logs/nodrv-recv")" "shm-ring: OK 4194304 bytes (sent 0, received 4194304)" \
    "4 MiB received and verified"
expect_status 1 "$alone_status" "a VM without a peer"
expect_contains "$(cat "$logs/alone")" "shm-ring: FAIL timed out after 5 s: no peer showed up" \
    "a missing peer fails after --timeout"

# 2. Disagreeing byte counts.
minivmm_vm mismatch mismatch-a "shm-ring,--timeout,120,send,4M"
a=$!
wait_for_userspace "$logs/mismatch-a" "$a" || fail "mismatch-a never reached userspace"
minivmm_vm mismatch mismatch-b "shm-ring,--timeout,120,recv,1M"
b=$!
wait_vm "$a" 600
a_status=$?
wait_vm "$b" 600
b_status=$?
show mismatch-a mismatch-b
expect_status 1 "$a_status" "sender of 4 MiB"
expect_status 1 "$b_status" "receiver of 1 MiB"
expect_contains "$(cat "$logs/mismatch-a")" "shm-ring: FAIL peer 1 sends 0 and expects 1048576 bytes" \
    "the sender names the disagreement"
expect_contains "$(cat "$logs/mismatch-b")" "shm-ring: FAIL peer 0 sends 4194304 and expects 0 bytes" \
    "the receiver names the disagreement"

# 3. Two QEMU VMs on ivshmem-plain.
# One boot at a time here too; --timeout covers the second VM's boot.
qemu_plain_vm plain-0 "shm-ring,--id,0,--timeout,300,both,4M"
p0=$!
wait_for_userspace "$logs/plain-0" "$p0" || fail "QEMU VM 0 never reached userspace"
qemu_plain_vm plain-1 "shm-ring,--id,1,--timeout,300,both,4M"
p1=$!
wait_for_userspace "$logs/plain-1" "$p1" || fail "QEMU VM 1 never reached userspace"
plain_status=()
wait_vm "$p0" 600
plain_status[0]=$?
wait_vm "$p1" 600
plain_status[1]=$?
show plain-0 plain-1
for id in 0 1; do
    expect_status 1 "${plain_status[id]}" "QEMU ivshmem-plain VM $id (isa-debug-exit reports 0 as 1)"
    out=$(cat "$logs/plain-$id")
    expect_matches "$out" "shm-ring: OK 8388608 bytes .*, polled, peer $((1 - id))" \
        "ivshmem-plain VM $id moved 4 MiB each way"
    expect_contains "$out" "found by slots" "ivshmem-plain VM $id found its peer through the slots"
done
finish
