#!/usr/bin/env bash
# Doorbell to interrupt between two VMs: guest 0 rings guest 1's doorbell (ioeventfd), guest
# 1 takes it as an MSI-X interrupt (irqfd) and rings back; round-trip latency p50/p99 from
# the TSC, calibrated against the PIT (KVM's in-kernel PIT counts host time).
. "$(dirname "${BASH_SOURCE[0]}")/../lib/test-lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
tiny_enter 240 "$@"
tiny_private_groups

reps=10000
[ "$TINY_KVM_PATH" = emulated ] && reps=200
tiny_pair doorbell.elf "tiny.shm=4M tiny.reps=$reps" --shm=tiny-doorbell,size=4M,vectors=1 120
tiny_expect_pair_pass "$reps doorbell round trips" || finish
printf '%s\n%s\n' "${pair_out[0]}" "${pair_out[1]}" | grep RESULT
for role in 0 1; do
    got=$(tiny_result "${pair_out[role]}" interrupts)
    if [ "$got" = "$reps" ]; then
        pass "guest $role took $reps MSI-X interrupts, one per doorbell"
    else
        fail "guest $role took ${got:-no} interrupts for $reps doorbells"
    fi
done
for metric in min p50 p99 max; do
    ns=$(tiny_result "${pair_out[0]}" "${metric}_ns")
    us=$(tiny_div "${ns:-0}" 1000 2)
    printf '%s' "round trip $metric $us us; "
    [ "$metric" = min ] || [ "$metric" = max ] || tiny_csv doorbell minivmm a-to-b-to-a 4 "rtt_${metric}_us" "$us" us
done
echo "($reps round trips)"
finish
