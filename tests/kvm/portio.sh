#!/usr/bin/env bash
# Port I/O exits from a tiny guest's user mode: the cost of one `out` exit to the VMM, and
# how many items KVM hands the VMM per exit for `rep outsb`/`rep insb` of a 4 KiB page.
# Exit counts come from minivmm --verbose, as the difference between a run with the loop
# and one without (the guest prints fixed-width numbers, so both make the same other exits).
. "$(dirname "${BASH_SOURCE[0]}")/../lib/test-lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
tiny_enter 240 "$@"

if [ "$TINY_KVM_PATH" = emulated ]; then
    single_reps=2000 page_reps=4
else
    single_reps=200000 page_reps=64
fi

phase_names=(out outsb insb)
for phase in 0 1 2; do
    name=${phase_names[$phase]}
    reps=$single_reps
    [ "$phase" -eq 0 ] || reps=$page_reps
    tiny_run portio.elf "tiny.phase=$phase tiny.reps=0"
    tiny_expect_pass "$name, empty loop" || continue
    base_exits=$(tiny_exits "$tiny_log" io) base_items=$(tiny_exits "$tiny_log" items)
    base_vmm_ns=$(tiny_vmm_ns "$tiny_log" io)
    tiny_run portio.elf "tiny.phase=$phase tiny.reps=$reps"
    tiny_expect_pass "$name x $reps" || continue
    [ -n "$base_exits" ] && tiny_exits "$tiny_log" io >/dev/null ||
        { fail "$name: minivmm --verbose printed no exit counts"; continue; }
    exits=$(($(tiny_exits "$tiny_log" io) - base_exits))
    items=$(($(tiny_exits "$tiny_log" items) - base_items))
    ns=$(tiny_result "$tiny_out" ns)
    guest_items=$(tiny_result "$tiny_out" items)
    echo "$tiny_out" | grep RESULT
    if [ "$items" -ne "$guest_items" ]; then
        fail "$name: the VMM saw $items port accesses from the loop, the guest made $guest_items"
        continue
    fi
    pass "$name: every one of the $items port accesses reached the VMM"
    if [ "$phase" -eq 0 ]; then
        if [ "$exits" -ne "$reps" ]; then
            fail "out: $exits exits for $reps single outb, expected one each"
            continue
        fi
        cost_us=$(tiny_div "$ns" "$((reps * 1000))" 3)
        pass "out: one exit per outb, $cost_us us per exit (user mode to the VMM and back)"
        tiny_csv portio none out 1 exit_cost_us "$cost_us" us
        # The exit's cost split by timestamps: what minivmm's vCPU thread spent between
        # KVM_RUN returning and the next KVM_RUN, and the rest (CPU, KVM, the ioctl).
        vmm_ns=$(($(tiny_vmm_ns "$tiny_log" io) - base_vmm_ns))
        vmm_us=$(tiny_div "$vmm_ns" "$((reps * 1000))" 3)
        kvm_us=$(tiny_div "$((ns - vmm_ns))" "$((reps * 1000))" 3)
        echo "out exit: $vmm_us us in minivmm (device and bus), $kvm_us us in the CPU, KVM and the KVM_RUN ioctl"
        tiny_csv portio none out 1 layer_vmm_handling_us "$vmm_us" us
        tiny_csv portio none out 1 layer_vm_exit_and_kvm_us "$kvm_us" us
    else
        per_exit=$(tiny_div "$items" "$exits" 1)
        page_us=$(tiny_div "$ns" "$((reps * 1000))" 1)
        item_ns=$(tiny_div "$ns" "$items" 1)
        direction=out
        [ "$name" = insb ] && direction=in
        pass "$name: $exits exits for $reps pages: $per_exit bytes per exit, $page_us us per 4 KiB page, $item_ns ns per byte"
        tiny_csv portio none "$direction" 4096 "${name}_items_per_exit" "$per_exit" items
        tiny_csv portio none "$direction" 4096 "${name}_page_us" "$page_us" us
        tiny_csv portio none "$direction" 4096 throughput_MBps "$(tiny_div "$((items * 1000))" "$ns" 3)" MBps
    fi
done
finish
