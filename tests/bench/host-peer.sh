#!/usr/bin/env bash
# Host peers against guest peers, in one run: libivc's shared-memory channels between two
# minivmm VMs (ivc-bench in both), then between one minivmm VM and a host process
# (minivmm-ivc bench, the same protocol), with the same sizes and counts. Each channel runs
# as its own pair of programs (polled, then with doorbells). Every transfer is verified by
# its receiver. Prints one table, guest-guest next to guest-host, and writes the rows to
# $MINIVMM_BUILD_DIR/bench/host-peer.csv. Next to the times (the emulator's, in the
# emulated host) it prints what each run cost the VM that took part in both pairs, counted
# by KVM (debugfs) and by minivmm (--stats) between two marks around ivc-bench. HOST_PEER_SIZES (default "4K 2M 64M") and
# HOST_PEER_COUNT (default 1000) override.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/test-lib.sh"
. "$MINIVMM_SOURCE_DIR/tests/lib/exit-count.sh"
require_guest_image
run_self_with_kvm 1800 "$@"
: "${MINIVMM_IVC:=$MINIVMM_BUILD_DIR/host-apps/minivmm-ivc}"
[ -x "$MINIVMM_IVC" ] || die "no $MINIVMM_IVC: build the minivmm-ivc target"
start_vm_group_test

read -ra sizes <<<"${HOST_PEER_SIZES:-4K 2M 64M}"
count=${HOST_PEER_COUNT:-1000}
options=(--count "$count" --timeout 600)
for size in "${sizes[@]}"; do options+=(--size "$size"); done
words() { local IFS=,; echo "$*"; } # minivmm.run= splits words at commas
out_dir=$MINIVMM_BUILD_DIR/bench
mkdir -p "$out_dir"
csv=$out_dir/host-peer.csv
echo "host-peer benchmark: sizes ${sizes[*]}, $count round trips${MINIVMM_IN_KVM_HOST:+, in the emulated KVM host : times are those of an emulator}"

initrd=$(initrd_with_folder "$MINIVMM_SOURCE_DIR/tests/bench/host-peer")
guest_vm() { # group log channel
    "$MINIVMM" --stats --shm="$1,size=128M" --initrd "$initrd" \
        --append "quiet minivmm.run=$(words sh /host-peer/run.sh --channel "$3" "${options[@]}")" \
        >"$logs/$2" 2>&1 </dev/null &
}
declare -A counts
# The counts of VM pid (its console in log) at its marks, as counts[name.start|end].
count_run() { # name log pid
    local mark
    for mark in start end; do
        wait_for_text "$2" "host-peer: mark $mark" 900 "$3" || { fail "$1: no mark $mark"; return; }
        counts[$1.$mark]="$(kvm_debugfs_counts "$3") $(minivmm_stats_counts "$3" "$2")"
    done
}
for channel in poll irq; do
    guest_vm "gg-$channel" "gg-$channel-a" "shm-$channel"
    a=$!
    wait_for_userspace "$logs/gg-$channel-a" "$a" || die "gg-$channel-a never reached userspace"
    guest_vm "gg-$channel" "gg-$channel-b" "shm-$channel"
    b=$!
    count_run "gg-$channel" "$logs/gg-$channel-a" "$a"
    wait_vm "$a" 900
    expect_status 0 $? "guest-guest shm-$channel, first VM"
    wait_vm "$b" 900
    expect_status 0 $? "guest-guest shm-$channel, second VM"

    guest_vm "gh-$channel" "gh-$channel-guest" "shm-$channel"
    g=$!
    wait_for_userspace "$logs/gh-$channel-guest" "$g" || die "gh-$channel-guest never reached userspace"
    timeout 900 "$MINIVMM_IVC" bench "gh-$channel" any --channel "host-$channel" "${options[@]}" \
        >"$logs/gh-$channel-host" 2>&1 &
    host=$!
    count_run "gh-$channel" "$logs/gh-$channel-guest" "$g"
    wait "$host"
    expect_status 0 $? "guest-host host-$channel, the host"
    wait_vm "$g" 900
    expect_status 0 $? "guest-host shm-$channel, the VM"
done

# Rows: channel,vmm,peer_vmm,AtoB,bytes,metric,value,unit (each side reports what it sent).
rows() { grep -h -E "^(shm|host)-(poll|irq),[^,]*,[^,]*,[0-9]+to[0-9]+,[0-9]+,(throughput_MBps|rtt_p50_us)," "$@"; }
{
    echo "pair,channel,vmm,peer_vmm,direction,bytes,metric,value,unit"
    for channel in poll irq; do
        rows "$logs/gg-$channel-a" "$logs/gg-$channel-b" | sed 's/^/guest-guest,/'
        rows "$logs/gh-$channel-guest" | sed 's/^/guest-host,/'
        rows "$logs/gh-$channel-host" | sed 's/^/host-guest,/'
    done
} >"$csv"
value() { # pair channel bytes metric: the first matching row's value
    awk -F, -v p="$1" -v c="$2" -v b="$3" -v m="$4" \
        '$1 == p && $2 ~ "-"c"$" && $6 == b && $7 == m { print $8; exit }' "$csv"
}
bytes_of() { numfmt --from=iec "$1"; }
printf '\n| channel | bytes | guest to guest MB/s | guest to host MB/s | host to guest MB/s |\n|---|---|---|---|---|\n'
for channel in poll irq; do
    for size in "${sizes[@]}"; do
        n=$(bytes_of "$size")
        printf '| %s | %s | %s | %s | %s |\n' "$channel" "$size" "$(value guest-guest $channel "$n" throughput_MBps)" \
            "$(value guest-host $channel "$n" throughput_MBps)" "$(value host-guest $channel "$n" throughput_MBps)"
    done
done
printf '\n| channel | 64-byte round trip p50, guest-guest (us) | guest-host, measured by the guest | by the host |\n|---|---|---|---|\n'
for channel in poll irq; do
    printf '| %s | %s | %s | %s |\n' "$channel" "$(value guest-guest $channel 64 rtt_p50_us)" \
        "$(value guest-host $channel 64 rtt_p50_us)" "$(value host-guest $channel 64 rtt_p50_us)"
done
printf '\nWhat one ivc-bench run (all sizes, round trips and streams above) cost the first VM\n'
printf '| channel | pair | exits | exits to userspace | emulated instructions | halts | injections |\n|---|---|---|---|---|---|---|\n'
for channel in poll irq; do
    for pair in gg gh; do
        run=$pair-$channel
        delta() { count_delta "${counts[$run.start]}" "${counts[$run.end]}" "$1"; }
        printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$channel" \
            "$([ $pair = gg ] && echo guest-guest || echo guest-host)" "$(delta exits)" \
            "$(($(delta userspace_io_exits) + $(delta userspace_mmio_exits)))" \
            "$(delta insn_emulation)" "$(delta halt_exits)" "$(delta irq_injections)"
    done
done
echo
echo "rows: $csv"
[ "$(grep -c ',throughput_MBps,' "$csv")" -ge $((2 * 3 * ${#sizes[@]})) ] &&
    pass "every pair reported a verified throughput for every size" ||
    fail "rows missing from $csv"
finish
