#!/usr/bin/env bash
# Groups backed by hugetlb pages (--shm=NAME,hugepages=2M), in the emulated KVM host (or on
# this machine's own KVM): what they refuse, and what they buy, counted rather than timed.
#  - A group needing more 2M pages than the host has free is refused at start, before the
#    guest boots, with "needs N hugepages of 2M, M free" (N and M as sysfs counts them).
#  - Two VMs in a 64 MiB group on ordinary pages, then in one on 2M hugepages, each run a
#    polled 8 MiB transfer both ways twice (tests/guest/shm-hugepages/peer.sh); every
#    transfer verifies its bytes.
#  - The hugetlb group shows hugepages=2M in --shm-list and hugepages=2097152 in its status
#    file; a VM asking for hugepages=2M in the ordinary group is refused, naming both; a
#    host peer (minivmm-ivc, libivc's host build) joins the hugetlb group.
# Printed, not asserted: KVM's page faults (pf_taken, pf_fixed) and exits per VM for the
# first transfer (the guest's first touch of the memory) and the second, with and without
# hugepages. The emulated host runs kvm_amd with npt=0 (shadow paging), where the guest's
# own page size for BAR2 matters as much as the host's; on hardware with NPT/EPT the counts
# differ, which is why none of them is a check.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/test-lib.sh"
. "$MINIVMM_SOURCE_DIR/tests/lib/exit-count.sh"
require_guest_image
run_self_with_kvm 1500 "$@"
start_vm_group_test

GROUP_MB=64
PAGES=$((GROUP_MB / 2)) # 2M pages in the group
pool=/sys/kernel/mm/hugepages/hugepages-2048kB
[ -d "$pool" ] || skip "this host has no 2M hugepage pool ($pool)"
available() { # what the broker counts: free - reserved + overcommit headroom
    echo $(($(<"$pool/free_hugepages") - $(<"$pool/resv_hugepages") +
        $(<"$pool/nr_overcommit_hugepages") - $(<"$pool/surplus_hugepages")))
}
initrd=$(initrd_with_folder "$MINIVMM_SOURCE_DIR/tests/guest/shm-hugepages")

# 1. Refused at start: a group one power of two beyond what is free.
have=$(available)
short=1
while [ "$short" -le "$have" ]; do short=$((short * 2)); done
if [ $((short * 2)) -le 16384 ]; then
    out=$(timeout 300 "$MINIVMM" --shm="short,size=$((short * 2))M,hugepages=2M,vectors=0" \
        --initrd "$initrd" --append "quiet" 2>&1 </dev/null)
    status=$?
    if [ "$status" -ne 0 ]; then
        pass "a group of $short 2M pages, $have free: minivmm exits $status"
    else
        fail "a group of $short 2M pages with $have free started"
    fi
    expect_contains "$out" "needs $short hugepages of 2M, $have free" \
        "the refusal names what it needs and what is free"
    expect_lacks "$out" "init: running" "refused before the guest booted"
fi

# 2. The pool for the group: as root (the emulated host's test runs as root) grow it.
old_nr=$(<"$pool/nr_hugepages")
if [ "$(available)" -lt "$PAGES" ]; then
    [ "$(id -u)" = 0 ] || skip "needs $PAGES free 2M hugepages, $(available) free: as root," \
        "echo $((old_nr + PAGES - $(available))) > $pool/nr_hugepages"
    echo $((old_nr + PAGES - $(available))) >"$pool/nr_hugepages" ||
        die "writing $pool/nr_hugepages"
    # shellcheck disable=SC2154 # watchdog and logs: start_vm_group_test's
    trap 'kill -9 $(jobs -p) $watchdog 2>/dev/null; echo "$old_nr" >"$pool/nr_hugepages"; rm -rf "$logs" "$XDG_RUNTIME_DIR"' EXIT
    [ "$(available)" -ge "$PAGES" ] ||
        die "asked the kernel for $PAGES more 2M pages, it has $(available) free (fragmented memory?)"
fi
pass "$(available) free 2M hugepages for a group of $PAGES"

# 3. The two rounds: ordinary pages, then hugepages.
marks=(start first again)
declare -A counts pids
for backing in 4K 2M; do
    group=plain option=''
    [ "$backing" = 2M ] && group=huge option=,hugepages=2M
    spec="$group,size=${GROUP_MB}M$option"
    for vm in a b; do
        "$MINIVMM" --stats --shm="$spec" --initrd "$initrd" \
            --append "quiet minivmm.run=sh,/shm-hugepages/peer.sh" >"$logs/$group-$vm" 2>&1 </dev/null &
        pids[$vm]=$!
        if [ $vm = a ]; then
            wait_for_userspace "$logs/$group-a" "${pids[a]}" || die "$group: VM a never reached userspace"
        fi
    done
    if [ "$backing" = 2M ]; then
        list=$("$MINIVMM" --shm-list 2>&1)
        expect_contains "$list" "huge size=${GROUP_MB}M vectors=2 hugepages=2M" "--shm-list shows the hugetlb backing"
        expect_contains "$(cat "$XDG_RUNTIME_DIR/minivmm/huge.group")" "hugepages=2097152" \
            "the status file says hugepages=2097152"
    else
        err=$("$MINIVMM" --shm="plain,size=${GROUP_MB}M,hugepages=2M" --initrd "$initrd" \
            --append quiet 2>&1 >/dev/null </dev/null)
        expect_contains "$err" "already exists with size=${GROUP_MB}M vectors=2 (ordinary pages)" \
            "a hugepages=2M joiner of the ordinary group is refused"
        expect_contains "$err" "hugepages=2M was asked for" "the refusal says what was asked"
    fi
    for mark in "${marks[@]}"; do
        for vm in a b; do
            wait_for_text "$logs/$group-$vm" "shm-hugepages: mark $mark" 600 "${pids[a]}" "${pids[b]}" ||
                die "$group: VM $vm never reached mark $mark"
            counts[$backing.$vm.$mark]=$(kvm_debugfs_counts "${pids[$vm]}") ||
                counts[$backing.$vm.$mark]=$(minivmm_stats_counts "${pids[$vm]}" "$logs/$group-$vm") ||
                die "$group: VM $vm, no counts at mark $mark"
        done
    done
    if [ "$backing" = 2M ]; then
        # After both transfers: a host peer (libivc's host build) joins the same hugetlb
        # memory. Nobody answers it, so it gives up opening a channel, which it only tries
        # once it has joined.
        out=$(timeout 60 "$MINIVMM_BUILD_DIR/host-apps/minivmm-ivc" recv huge any --timeout 2 2>&1 </dev/null)
        expect_lacks "$out" "joining group" "a host peer joins the hugepage-backed group"
        expect_contains "$out" "opening the channel to peer" "the host peer got as far as a channel"
    fi
    for vm in a b; do
        wait_vm "${pids[$vm]}" 600
        expect_status 0 $? "$group: VM $vm (two transfers)"
        if [ "$(grep -c "shm-ring: OK 16777216 bytes" "$logs/$group-$vm")" -eq 2 ]; then
            pass "$group: VM $vm moved and verified 8 MiB each way, twice"
        else
            fail "$group: VM $vm: not two verified transfers"
        fi
    done
done

# A count's growth between two snapshot lines; n/a where the instrument lacks it (--stats
# has no pf_fixed or mmio_exits where debugfs was missing).
grown() { # before after name
    local a b
    a=$(count_of "$1" "$3")
    b=$(count_of "$2" "$3")
    if [ -n "$a" ] && [ -n "$b" ]; then echo $((b - a)); else echo n/a; fi
}
printf '\nPer VM and window, counted by the KVM host (debugfs, else minivmm --stats):\n'
printf '%-8s %-3s %-22s %10s %10s %10s %10s\n' backing vm window exits pf_taken pf_fixed mmio_exits
for backing in 4K 2M; do
    for vm in a b; do
        for window in first again; do
            from=start
            [ "$window" = again ] && from=first
            printf '%-8s %-3s %-22s' "$backing" "$vm" "$window transfer"
            for stat in exits pf_taken pf_fixed mmio_exits; do
                printf ' %10s' "$(grown "${counts[$backing.$vm.$from]}" "${counts[$backing.$vm.$window]}" "$stat")"
            done
            echo
        done
    done
done
echo
finish
