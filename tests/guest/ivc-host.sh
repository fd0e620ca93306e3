#!/usr/bin/env bash
# A host process as a peer of minivmm VMs: minivmm-ivc (libivc's host build) next to a VM
# of the group, inside the emulated KVM host where there is one. The guest runs ivc-bench,
# the host minivmm-ivc bench: the same protocol, both ways, every byte checked by the
# receiver. In order, in one boot:
#   1. shm-poll / host-poll, 1 GiB each way (about 10 s at the emulated host's 100-200 MB/s);
#   2. shm-irq / host-irq, 64 MiB each way: with doorbells every ring-full wait is a sleep
#      and a wake-up through the VMMs, several times slower under emulation, so 1 GiB
#      would not fit the test's few minutes;
#   3. the host peer killed mid-transfer of 1 GiB: the guest's ivc-bench fails with
#      ECONNRESET (it learns the departure from minivmm's presence bitmap);
#   4. nothing else broke: a new host peer and the same guest run a short shm-irq pass.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/test-lib.sh"
require_guest_image
run_self_with_kvm 600 "$@"
: "${MINIVMM_IVC:=$MINIVMM_BUILD_DIR/host-apps/minivmm-ivc}"
[ -x "$MINIVMM_IVC" ] || die "no $MINIVMM_IVC: build the minivmm-ivc target"
start_vm_group_test

poll=(--size 1G --count 1000 --timeout 120)
irq=(--size 64M --count 1000 --timeout 120)
short=(--size 4K --count 100 --timeout 60)
words() { local IFS=,; echo "$*"; } # minivmm.run= splits words at commas
guest_bench() { echo "ivc-bench,--channel,$1,$(words "${@:2}")" | sed 's/,/${IFS}/g'; }
run="sh,-c,$(guest_bench shm-poll "${poll[@]}")&&$(guest_bench shm-irq "${irq[@]}");"
run+="$(guest_bench shm-poll "${poll[@]}");echo\${IFS}phase3-status=\$?;"
run+="$(guest_bench shm-irq "${short[@]}")"

"$MINIVMM" --shm=hostivc,size=64M --append "quiet minivmm.run=$run" >"$logs/vm" 2>&1 </dev/null &
vm=$!
wait_for_userspace "$logs/vm" "$vm" || die "the VM never reached userspace"

host_bench() { # log channel options...
    local log=$1 channel=$2
    shift 2
    timeout 300 "$MINIVMM_IVC" bench hostivc any --channel "$channel" "$@" >"$log" 2>&1
}
host_bench "$logs/host-poll" host-poll "${poll[@]}"
expect_status 0 $? "host-poll bench"
host_bench "$logs/host-irq" host-irq "${irq[@]}"
expect_status 0 $? "host-irq bench"

# 3: once the guest's third ivc-bench opened its channel, the transfer of 1 GiB runs for
# seconds: kill the host side one second in.
"$MINIVMM_IVC" bench hostivc any --channel host-poll "${poll[@]}" >"$logs/host-killed" 2>&1 &
victim=$!
for _ in $(seq 600); do
    [ "$(grep -c "shm-poll channel to peer" "$logs/vm")" -ge 2 ] && break
    sleep 0.1
done
sleep 1
kill -KILL "$victim"
wait "$victim" 2>/dev/null
host_bench "$logs/host-after" host-irq "${short[@]}"
expect_status 0 $? "a new host peer after the kill"
wait_vm "$vm" 240
expect_status 0 $? "the VM (its last ivc-bench)"

vm_out=$(grep -v '^\[' "$logs/vm")
echo "--- guest"; echo "$vm_out"
echo "--- host"; grep -h -E "^host-(poll|irq),.*(throughput_MBps|rtt_p50_us)" "$logs/host-poll" "$logs/host-irq"
for channel in poll irq; do
    host_out=$(cat "$logs/host-$channel")
    size=1073741824
    [ $channel = irq ] && size=67108864
    expect_contains "$host_out" "ivc-bench: OK" "host-$channel reports OK"
    expect_matches "$host_out" "^host-$channel,[^,]*,[^,]*,[0-9]+to0,$size,throughput_MBps," \
        "the host sent $size bytes on host-$channel, verified by the guest"
    expect_matches "$vm_out" "^shm-$channel,[^,]*,[^,]*,0to[0-9]+,$size,throughput_MBps," \
        "the guest sent $size bytes on shm-$channel, verified by the host"
    expect_matches "$host_out" "^host-$channel,[^,]*,[^,]*,[0-9]+to0,64,rtt_p50_us," \
        "round trips host to guest on host-$channel"
done
expect_matches "$vm_out" "ivc-bench: FAIL [a-z ]+: Connection reset by peer" \
    "the guest saw the killed host peer leave (ECONNRESET)"
expect_contains "$vm_out" "phase3-status=1" "the guest's ivc-bench failed when the host peer died"
expect_contains "$(cat "$logs/host-after")" "ivc-bench: OK" "a new host peer works with the same guest"
expect_matches "$(tail -n 3 "$logs/vm")" "ivc-bench: OK" "the guest's last ivc-bench passed"
finish
