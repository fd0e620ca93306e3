#!/usr/bin/env bash
# The ivshmem guest driver (guest-kernel-module/) on the three device flavours, checked by
# ivshmem-selftest inside the guests, in one KVM environment:
#  - minivmm's device (presence extension): the whole interface (INFO against sysfs, every
#    documented errno, mmap bounds, a doorbell to itself reaching poll, read and an
#    eventfd), the peers-changed vector when a second VM joins, a PCI unplug while the
#    device is open and mapped (then a rescan), and rmmod: refused while open, no kernel
#    warning after it, and the module loads again;
#  - QEMU's ivshmem-doorbell in a minivmm group: the same checks, without the extension;
#  - QEMU's ivshmem-plain (no MSI-X, no interrupts): every interrupt call fails with
#    EOPNOTSUPP, mmap works, rmmod is clean.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/test-lib.sh"
require_guest_image
require_command qemu-system-x86_64
run_self_with_kvm 900 "$@"
start_vm_group_test


qemu_vm() { # run-list, ivshmem QEMU options...: QEMU ends with 2 * status + 1
    local run=$1
    shift
    qemu_guest "minivmm.run=$run" "$@"
}
guest_lines() { # the guests' own lines, without kernel messages
    grep -v '^\[' "$1"
}

# 1. minivmm: the first VM checks everything; a second VM joins once it waits for a peer
#    event (its VMM joins the group at start, long before its guest boots).
"$MINIVMM" --shm=drv --append "minivmm.run=ivshmem-selftest,--peer-event,120,--unplug,--rmmod" \
    >"$logs/minivmm" 2>&1 </dev/null &
checker=$!
wait_for_text "$logs/minivmm" "peer event: peers" 300 || fail "the selftest never waited for a peer event"
"$MINIVMM" --shm=drv --append "quiet minivmm.run=ivshmem-info" >"$logs/joiner" 2>&1 </dev/null &
joiner=$!
wait "$checker"
checker_status=$?
wait "$joiner"
joiner_status=$?
echo "--- minivmm guest"
guest_lines "$logs/minivmm"
echo "--- joining minivmm guest"
guest_lines "$logs/joiner"
expect_status 0 "$checker_status" "selftest on minivmm's device"
expect_status 0 "$joiner_status" "ivshmem-info on the joining VM"
out=$(cat "$logs/minivmm")
expect_contains "$out" "ivshmem-selftest: OK" "every selftest check passed on minivmm's device"
expect_contains "$out" "ok poll wakes on the interrupt" "a doorbell reached poll"
expect_contains "$out" "ok a peer joining or leaving raises the vector" "peers-changed vector"
expect_contains "$out" "ok the old mapping is revoked" "unplug revokes mappings"
expect_contains "$out" "ok the device and its node are back" "rescan brings the device back"
expect_contains "$out" "ok rmmod while a file is open: EWOULDBLOCK" "rmmod refused while open"
expect_contains "$out" "ok no kernel warning since rmmod" "rmmod left no kernel warning"
expect_contains "$out" "ok the node is back after reload" "the module loads again"
expect_contains "$(cat "$logs/joiner")" "minivmm extension: yes" "the joiner sees the extension"

# 2. QEMU's ivshmem-doorbell in a group that an idle minivmm VM holds (QEMU cannot start
#    a group: minivmm's broker is the server).
"$MINIVMM" --shm=drq --append "quiet minivmm.run=sleep,600" >"$logs/holder" 2>&1 </dev/null &
holder=$!
wait_for_text "$XDG_RUNTIME_DIR/minivmm/drq.group" "peer=0" 120 || fail "the holder never started the group"
qemu_vm "ivshmem-selftest,--rmmod" -chardev socket,path="$XDG_RUNTIME_DIR/minivmm/drq.sock",id=c \
    -device ivshmem-doorbell,chardev=c,vectors=2 >"$logs/doorbell" 2>&1
doorbell_status=$?
kill "$holder" 2>/dev/null
wait "$holder" 2>/dev/null
echo "--- QEMU ivshmem-doorbell guest"
guest_lines "$logs/doorbell"
expect_status 1 "$doorbell_status" "selftest on QEMU's ivshmem-doorbell (isa-debug-exit reports 0 as 1)"
out=$(cat "$logs/doorbell")
expect_contains "$out" "ivshmem-selftest: OK" "every selftest check passed on ivshmem-doorbell"
expect_contains "$out" "ok INFO without the extension: no peers" "QEMU's device: presence unknown"
expect_contains "$out" "ok poll wakes on the interrupt" "a doorbell reached poll on QEMU's device"
expect_contains "$out" "ok no kernel warning since rmmod" "rmmod clean on QEMU's device"

# 3. QEMU's ivshmem-plain: memory only.
qemu_vm "ivshmem-selftest,--rmmod" \
    -object memory-backend-file,id=m,mem-path="$XDG_RUNTIME_DIR/plain.mem",size=4M,share=on \
    -device ivshmem-plain,memdev=m >"$logs/plain" 2>&1
plain_status=$?
echo "--- QEMU ivshmem-plain guest"
guest_lines "$logs/plain"
expect_status 1 "$plain_status" "selftest on QEMU's ivshmem-plain (isa-debug-exit reports 0 as 1)"
out=$(cat "$logs/plain")
expect_contains "$out" "ivshmem-selftest: OK" "every selftest check passed on ivshmem-plain"
expect_contains "$out" "ok RING without MSI-X: EOPNOTSUPP" "no interrupts: RING fails with EOPNOTSUPP"
expect_contains "$out" "ok the driver's mapping is BAR2" "mmap works without interrupts"
expect_contains "$out" "ok no kernel warning since rmmod" "rmmod clean on ivshmem-plain"
finish
