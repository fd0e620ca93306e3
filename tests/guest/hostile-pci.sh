#!/usr/bin/env bash
# A guest that writes random values of every width to every config register of the
# ivshmem device, to its registers (BAR0) and to its MSI-X table and PBA (BAR1) must not
# crash or hang minivmm: the VM runs on and ends with the status the guest chooses.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/test-lib.sh"
require_guest_image

group=scribble-$$
run_guest 280 --verbose --shm="$group,vectors=4" \
    --append "minivmm.run=pci-scribble,--rounds,8,0000:00:01.0"
out=$guest_out
echo "$out" | grep -v '^\[' | grep -v 'debug: i8042' | tail -20
expect_status 0 "$guest_status" "minivmm survived the scribbling guest, which ended the VM itself"
expect_matches "$out" "pci-scribble: 0000:00:01.0: [1-9][0-9]* config writes, [1-9][0-9]* BAR writes" \
    "the guest issued its writes"
expect_contains "$out" "VM stopped: guest wrote exit status 0" "the VM stopped the way the guest asked"
finish
