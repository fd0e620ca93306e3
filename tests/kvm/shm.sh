#!/usr/bin/env bash
# BAR2 shared memory between two VMs: guest 0 streams data through a ring in the group's
# memory, guest 1 checks every word; the throughput is set against host memcpy bandwidth
# measured in the same run (build/tests/kvm/host-memcpy).
. "$(dirname "${BASH_SOURCE[0]}")/../lib/test-lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
tiny_enter 240 "$@"
tiny_private_groups

bytes=$((64 << 20))
[ "$TINY_KVM_PATH" = emulated ] && bytes=$((8 << 20))
tiny_pair shm.elf "tiny.shm=16M tiny.bytes=$bytes" --shm=tiny-shm,size=16M 120
tiny_expect_pair_pass "$((bytes >> 20)) MiB through a 16 MiB BAR2" || finish
printf '%s\n%s\n' "${pair_out[0]}" "${pair_out[1]}" | grep RESULT
verified=$(tiny_result "${pair_out[1]}" verified)
if [ "$verified" = "$bytes" ]; then
    pass "the reader checked all $bytes bytes"
else
    fail "the reader checked ${verified:-no} bytes of $bytes"
fi
ns=$(tiny_result "${pair_out[0]}" ns)
shm_MBps=$(tiny_div "$((bytes * 1000))" "$ns" 1)
memcpy_out=$("$TINY_DIR/host-memcpy" "$bytes") || fail "host-memcpy $bytes failed"
memcpy_MBps=$(sed -n 's/^memcpy_MBps=\([0-9.]*\).*/\1/p' <<<"$memcpy_out")
percent=$(awk -v a="$shm_MBps" -v b="$memcpy_MBps" 'BEGIN { printf "%.0f", 100 * a / b }')
echo "shared memory VM to VM: $shm_MBps MB/s for $((bytes >> 20)) MiB; host memcpy: $memcpy_MBps MB/s; ratio $percent%"
[ "$TINY_KVM_PATH" = emulated ] &&
    echo "(emulated KVM host: guests and host-memcpy alike run under QEMU TCG here, the guests nested: the ratio says nothing about real KVM)"
tiny_csv shm-poll minivmm a-to-b "$bytes" throughput_MBps "$shm_MBps" MBps
tiny_csv host none - "$bytes" memcpy_MBps "$memcpy_MBps" MBps
finish
