#!/usr/bin/env bash
# MMIO exits from a tiny guest's user mode: reads and writes of ivshmem's BAR0 registers
# (each one an exit to the VMM), and doorbell writes that KVM's ioeventfd takes in the
# kernel. The VMM's exit count (minivmm --verbose, a run with the loops minus one without)
# must be exactly one per register access and none for the doorbells.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/test-lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
tiny_enter 240 "$@"
tiny_private_groups

reps=100000
[ "$TINY_KVM_PATH" = emulated ] && reps=2000
shm="--shm=tiny-mmio,size=4M"

tiny_run mmio.elf "tiny.reps=0 tiny.shm=4M" "$shm"
tiny_expect_pass "empty loops" || finish
base=$(tiny_exits "$tiny_log" mmio) || { fail "minivmm --verbose printed no exit counts"; finish; }
base_vmm_ns=$(tiny_vmm_ns "$tiny_log" mmio)
tiny_run mmio.elf "tiny.reps=$reps tiny.shm=4M" "$shm"
tiny_expect_pass "$reps reads, writes and doorbells" || finish
echo "$tiny_out" | grep RESULT
exits=$(($(tiny_exits "$tiny_log" mmio) - base))
if [ "$exits" -eq $((2 * reps)) ]; then
    pass "$exits MMIO exits: one per register read or write, none for the $reps doorbells (ioeventfd)"
else
    fail "$exits MMIO exits for $reps reads, $reps writes and $reps doorbells: expected $((2 * reps))"
fi
read_us=$(tiny_div "$(tiny_result "$tiny_out" read_ns)" $((reps * 1000)) 3)
write_us=$(tiny_div "$(tiny_result "$tiny_out" write_ns)" $((reps * 1000)) 3)
doorbell_us=$(tiny_div "$(tiny_result "$tiny_out" doorbell_ns)" $((reps * 1000)) 3)
echo "MMIO read exit $read_us us, MMIO write exit $write_us us, ioeventfd doorbell write $doorbell_us us"
tiny_csv mmio none in 4 exit_cost_us "$read_us" us
tiny_csv mmio none out 4 exit_cost_us "$write_us" us
tiny_csv doorbell none out 4 ioeventfd_write_us "$doorbell_us" us
# The register accesses' cost split by timestamps: minivmm's own time on those exits
# (between KVM_RUN returning and the next KVM_RUN) and the rest.
vmm_ns=$(($(tiny_vmm_ns "$tiny_log" mmio) - base_vmm_ns))
access_ns=$(($(tiny_result "$tiny_out" read_ns) + $(tiny_result "$tiny_out" write_ns)))
vmm_us=$(tiny_div "$vmm_ns" $((2 * reps * 1000)) 3)
kvm_us=$(tiny_div "$((access_ns - vmm_ns))" $((2 * reps * 1000)) 3)
echo "MMIO exit: $vmm_us us in minivmm (device and bus), $kvm_us us in the CPU, KVM and the KVM_RUN ioctl"
tiny_csv mmio none both 4 layer_vmm_handling_us "$vmm_us" us
tiny_csv mmio none both 4 layer_vm_exit_and_kvm_us "$kvm_us" us
finish
