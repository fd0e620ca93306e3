#!/usr/bin/env bash
# What the data paths cost in VM exits, on minivmm's device, counted (not timed): two minivmm
# VMs in one group; the driver VM runs 1000 and then 3000 doorbell round trips (shm-pingpong,
# through the guest driver) through minivmm's doorbell port, the same through BAR0 (the way
# QEMU's device rings), then a 16 MiB and an 80 MiB polled transfer (shm-ring), each
# between two marks (tests/lib/exit-count.sh). The large run's counts minus the small one's
# are what 2000 round trips or 64 MiB cost, without the programs' start and setup. Checks,
# for both VMs:
#  - no exit reaches minivmm's userspace on the doorbell path or the polled data path, and
#    no MMIO exit reaches it in any window at all;
#  - a doorbell through the port costs KVM no emulated instruction: at least 0.8 fewer per
#    round trip and per VM than through BAR0;
#  - the shared memory is mapped write-back (shm-ring reads pat_memtype_list);
#  - minivmm's --stats agrees with the KVM host's debugfs counters, where there are any.
# Prints the marginal counts per round trip and per MiB.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/test-lib.sh"
. "$MINIVMM_SOURCE_DIR/tests/lib/exit-count.sh"
require_guest_image
run_self_with_kvm 900 "$@"
start_vm_group_test

initrd=$(initrd_with_folder "$MINIVMM_SOURCE_DIR/tests/guest/exit-budget")
ROUND_TRIPS=2000 # per doorbell kind: the large run's 3000 minus the small one's 1000
marks=(start port-1000 port-3000 bar0-1000 bar0-3000 polled-16 polled-80)

"$MINIVMM" --stats --shm=budget --initrd "$initrd" \
    --append "quiet minivmm.run=sh,/exit-budget/responder.sh" >"$logs/responder" 2>&1 </dev/null &
responder=$!
wait_for_userspace "$logs/responder" "$responder" || die "the responder never reached userspace"
"$MINIVMM" --stats --shm=budget --initrd "$initrd" \
    --append "quiet minivmm.run=sh,/exit-budget/driver.sh" >"$logs/driver" 2>&1 </dev/null &
driver=$!

# At each mark: both VMs' --stats, then both VMs' debugfs counters (if this host has them).
declare -A stats debugfs
for mark in "${marks[@]}"; do
    wait_for_text "$logs/driver" "exit-budget: mark $mark" 600 "$driver" "$responder" ||
        die "the driver never reached mark $mark"
    for vm in driver responder; do
        pid=${!vm}
        stats[$vm.$mark]=$(minivmm_stats_counts "$pid" "$logs/$vm") ||
            die "$vm: no --stats line after SIGUSR1"
        debugfs[$vm.$mark]=$(kvm_debugfs_counts "$pid") || debugfs[$vm.$mark]=''
    done
done
wait_vm "$driver" 600
driver_status=$?
wait_vm "$responder" 600
responder_status=$?
expect_status 0 "$driver_status" "the driver VM (round trips and polled transfer)"
expect_status 0 "$responder_status" "the responder VM"
expect_equal_count() { # text count what
    if [ "$(grep -c -- "$1" <<<"$out")" -eq "$2" ]; then pass "$3"; else fail "$3: not $2 times"; fi
}
out=$(cat "$logs/driver")
for count in 1000 3000; do
    expect_equal_count "shm-pingpong: $count doorbell round trips" 2 "$count round trips, twice"
done
for vm in driver responder; do
    out=$(cat "$logs/$vm")
    for size in 16 80; do
        expect_contains "$out" "shm-ring: OK $((size << 20)) bytes" "$vm: $size MiB polled, verified"
    done
    expect_matches "$out" "mapped through /dev/ivshmem0, memory type write-back," \
        "$vm: shared memory mapped write-back (pat_memtype_list)"
done

# window VM FROM TO STAT: STAT's growth between two marks, by minivmm's --stats.
window() {
    count_delta "${stats[$1.$2]}" "${stats[$1.$3]}" "$4"
}
# marginal VM SMALL-FROM SMALL-TO LARGE-TO STAT: the large window's growth minus the small's.
marginal() {
    count_marginal "${stats[$1.$2]}" "${stats[$1.$3]}" "${stats[$1.$4]}" "$5"
}

columns="exits io_exits halt_exits irq_injections insn_emulation pf_taken userspace_io_exits userspace_mmio_exits"
printf '\nPer operation, the large run minus the small one (minivmm --stats):\n%-24s %-9s' operation vm
for stat in $columns; do printf ' %14s' "${stat/userspace_/user_}"; done
echo
checks=()
for vm in driver responder; do
    declare -A emulated=()
    for op in port bar0 polled; do
        case $op in
        port | bar0) edges=(start "$op-1000" "$op-3000") n=$ROUND_TRIPS unit="per round trip" ;;
        polled) edges=(bar0-3000 polled-16 polled-80) n=64 unit="per MiB" ;;
        esac
        [ "$op" = bar0 ] && edges[0]=port-3000 # the small run starts at the mark before it
        printf '%-24s %-9s' "$op $unit" "$vm"
        for stat in $columns; do
            printf ' %14s' "$(per_op "$(marginal "$vm" "${edges[@]}" "$stat")" "$n")"
        done
        echo
        emulated[$op]=$(marginal "$vm" "${edges[@]}" insn_emulation)
        uio=$(marginal "$vm" "${edges[@]}" userspace_io_exits)
        [ "$uio" -le 4 ] &&
            checks+=("ok|$vm, $op: no exit to userspace ($uio more port exits in the large run, marks included)") ||
            checks+=("FAIL|$vm, $op: $uio more port exits to userspace in the large run")
    done
    # KVM must decode a memory write from the instruction; a port write arrives decoded. (The
    # rest of what it emulates here are skips past HLT and other intercepted instructions:
    # the emulated host's SVM has no next-RIP save, real hardware does.)
    saved=$((emulated[bar0] - emulated[port]))
    [ "$saved" -ge $((ROUND_TRIPS * 8 / 10)) ] &&
        checks+=("ok|$vm: the port doorbell saves $saved emulated instructions in $ROUND_TRIPS round trips") ||
        checks+=("FAIL|$vm: the port doorbell saves only $saved emulated instructions in $ROUND_TRIPS round trips")
    ummio=$(window "$vm" start polled-80 userspace_mmio_exits)
    [ "$ummio" -eq 0 ] && checks+=("ok|$vm: no MMIO exit to userspace from the first mark to the last") ||
        checks+=("FAIL|$vm: $ummio MMIO exits to userspace from the first mark to the last")
done
echo
for check in "${checks[@]}"; do
    if [ "${check%%|*}" = ok ]; then pass "${check#*|}"; else fail "${check#*|}"; fi
done

# The two instruments read the same KVM counters a moment apart, with the guests asleep.
for vm in driver responder; do
    for mark in "${marks[@]}"; do
        [ -n "${debugfs[$vm.$mark]}" ] || continue
        ours=$(count_of "${stats[$vm.$mark]}" exits)
        host=$(count_of "${debugfs[$vm.$mark]}" exits)
        if [ $((host - ours)) -ge 0 ] && [ $((host - ours)) -le $((ours / 100 + 200)) ]; then
            pass "$vm at $mark: --stats says $ours exits, the host's debugfs $host"
        else
            fail "$vm at $mark: --stats says $ours exits, the host's debugfs $host"
        fi
    done
done
finish
