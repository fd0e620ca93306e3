#!/usr/bin/env bash
# libivc between two minivmm VMs in one --shm group: ivc-bench in both, on both
# shared-memory channels (shm-poll: sysfs mapping, spinning; shm-irq: guest driver,
# doorbells), messages of 3 B to 2 MiB each way, every byte checked by the receiver,
# then round trips and a message stream; then a short pass over the port I/O channel
# (portio=on; each access is a VM exit, about 250 us in the emulated KVM host): 3 B and
# 16 KiB each way, verified, and the same round trips. Passes only if both guests report
# OK and each VM printed throughput rows for every channel and size as the sender.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/test-lib.sh"
require_guest_image
run_self_with_kvm 600 "$@"
start_vm_group_test

sizes=(3 12345 4K 2M)
bytes=(3 12345 4096 2097152)
portio_sizes=(3 16K)
portio_bytes=(3 16384)
run="ivc-bench,--channel,shm-poll,--channel,shm-irq,--channel,portio,--count,200,--timeout,120"
for size in "${sizes[@]}"; do run+=",--size,$size"; done
for size in "${portio_sizes[@]}"; do run+=",--portio-size,$size"; done

"$MINIVMM" --shm=ivc,portio=on --append "quiet minivmm.run=$run" >"$logs/vm0" 2>&1 </dev/null &
vm0=$!
# The second guest boots once the first is in userspace (see wait_for_text).
wait_for_text "$logs/vm0" "init: running" 300 || fail "first VM never reached userspace"
"$MINIVMM" --shm=ivc,portio=on --append "quiet minivmm.run=$run" >"$logs/vm1" 2>&1 </dev/null &
vm1=$!
wait "$vm0"
status0=$?
wait "$vm1"
status1=$?
for vm in 0 1; do
    echo "== vm$vm =="
    grep -v '^\[' "$logs/vm$vm"
done

for vm in 0 1; do
    out=$(cat "$logs/vm$vm")
    peer=$((1 - vm))
    status_var=status$vm
    expect_status 0 "${!status_var}" "vm$vm ivc-bench"
    expect_contains "$out" "ivc-bench: OK" "vm$vm reports OK"
    for channel in shm-poll shm-irq; do
        for size in "${bytes[@]}"; do
            expect_matches "$out" "^$channel,minivmm,minivmm,${vm}to${peer},$size,throughput_MBps,[0-9.]+,MBps" \
                "vm$vm sent $size bytes on $channel, verified by vm$peer"
        done
        expect_matches "$out" "^$channel,minivmm,minivmm,${vm}to${peer},64,rtt_p50_us,[0-9.]+,us" \
            "vm$vm measured round trips on $channel"
    done
    for size in "${portio_bytes[@]}"; do
        expect_matches "$out" "^portio,minivmm,minivmm,${vm}to${peer},$size,throughput_MBps,[0-9.]+,MBps" \
            "vm$vm sent $size bytes on portio, verified by vm$peer"
    done
    expect_matches "$out" "^portio,minivmm,minivmm,${vm}to${peer},64,rtt_p50_us,[0-9.]+,us" \
        "vm$vm measured round trips on portio"
    # Interrupt-driven round trips ring doorbells (per round trip: fewer than two when the
    # peer had not gone to sleep yet); polled ones never do.
    expect_matches "$out" "^shm-irq,[^,]*,[^,]*,${vm}to${peer},64,doorbells,0*[.]?0*[1-9]" "vm$vm rang doorbells on shm-irq"
    expect_matches "$out" "^shm-poll,[^,]*,[^,]*,${vm}to${peer},64,doorbells,0([.]0+)?," "vm$vm rang none on shm-poll"
done
finish
