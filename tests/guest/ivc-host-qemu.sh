#!/usr/bin/env bash
# A host process joins a group of QEMU VMs: minivmm-broker started by hand (as a person
# does for a QEMU-only group), a QEMU VM with ivshmem-doorbell on its socket (peer 0),
# then minivmm-ivc: peer 1 for its first channel, peer 2 for its second (it joins once per
# channel, and the broker never gives a QEMU device back an ID it saw leave: QEMU cannot
# take one back). The guest runs ivc-bench with --peer 1, then --peer 2 (QEMU's device does
# not say who is present), the host minivmm-ivc bench: 64 MiB each way on shm-poll /
# host-poll and on shm-irq / host-irq (the host rings QEMU's irqfd through the eventfds
# the broker handed out, and QEMU's doorbell writes reach the host's eventfd), every byte
# checked by the receiver, plus round trips.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/test-lib.sh"
require_guest_image
require_command qemu-system-x86_64
run_self_with_kvm 900 "$@"
: "${MINIVMM_BROKER:=$MINIVMM_BUILD_DIR/minivmm-broker}"
: "${MINIVMM_IVC:=$MINIVMM_BUILD_DIR/host-apps/minivmm-ivc}"
[ -x "$MINIVMM_IVC" ] || die "no $MINIVMM_IVC: build the minivmm-ivc target"
start_vm_group_test

"$MINIVMM_BROKER" hq,size=64M,vectors=2 >"$logs/broker" 2>&1 &
broker=$!
wait_for_text "$logs/broker" "socket " 30 "$broker" || die "minivmm-broker never listened"

bench=(--size 64M --count 500 --timeout 180)
words() { local IFS=,; echo "$*"; } # minivmm.run= splits words at commas
guest_bench() { echo "ivc-bench,$(words "$@" "${bench[@]}")" | sed 's/,/${IFS}/g'; }
qemu_guest "quiet minivmm.run=sh,-c,$(guest_bench --channel shm-poll --peer 1)&&$(guest_bench --channel shm-irq --peer 2)" \
    -chardev socket,path="$XDG_RUNTIME_DIR/minivmm/hq.sock",id=c \
    -device ivshmem-doorbell,chardev=c,vectors=2 >"$logs/qemu" 2>&1 &
qemu=$!
wait_for_userspace "$logs/qemu" "$qemu" || die "the QEMU guest never reached userspace"
timeout 400 "$MINIVMM_IVC" bench hq 0 --channel host-poll --channel host-irq "${bench[@]}" \
    >"$logs/host" 2>&1
host_status=$?
wait_vm "$qemu" 240
qemu_status=$?
kill -TERM "$broker"
wait "$broker"
broker_status=$?

echo "--- QEMU guest"; grep -v '^\[' "$logs/qemu"
echo "--- host"; grep -E "^host-(poll|irq),.*(throughput_MBps|rtt_p50_us)" "$logs/host"
expect_status 0 "$host_status" "minivmm-ivc bench"
expect_status 1 "$qemu_status" "QEMU VM (isa-debug-exit reports status 0 as 1)"
expect_status 0 "$broker_status" "minivmm-broker stopped by SIGTERM"
host_out=$(cat "$logs/host")
qemu_out=$(cat "$logs/qemu")
expect_contains "$host_out" "ivc-bench: OK" "the host reports OK"
expect_matches "$(grep -c "ivc-bench: OK" <<<"$qemu_out")" "^2$" "the QEMU guest reports OK twice"
expect_lacks "$qemu_out" "double free" "QEMU survived the host peer's leaving and rejoining"
for channel in poll irq; do
    id=1
    [ $channel = irq ] && id=2
    expect_matches "$host_out" "^host-$channel,[^,]*,qemu,${id}to0,67108864,throughput_MBps," \
        "the host (peer $id) sent 64 MiB on host-$channel, verified by the QEMU guest"
    expect_matches "$qemu_out" "^shm-$channel,qemu,[^,]*,0to$id,67108864,throughput_MBps," \
        "the QEMU guest sent 64 MiB on shm-$channel to peer $id, verified by the host"
done
finish
