#!/usr/bin/env bash
# Port I/O channel benchmark: two minivmm VMs (--shm=NAME,portio=on), one sends and one
# receives 4 KiB, 2 MiB and 1 GiB with single-byte in/out and with
# rep insb/outsb (portio-xfer --io both); MINIVMM_PORTIO_BENCH_SIZES overrides the list
# (sizes joined by '+'; only MINIVMM_* variables reach the emulated host). In the
# emulated KVM host the default list is 4K+256K: a single-byte exit of a VM nested in an
# emulator costs a few hundred microseconds, so 2 MB takes minutes and 1 GB days. Where
# guest user-mode port I/O faults, portio-xfer falls back to /dev/port (single bytes done
# by the guest kernel, via=devport; see guest-apps/portio-xfer.c).
# Prints each transfer's line and writes $MINIVMM_BUILD_DIR/bench/portio.csv:
#   channel,vmm,peer_vmm,direction,size_bytes,metric,value,unit
# direction is send (the sender's view) or recv (the receiver's); metric is throughput_MBps,
# exits_per_byte, exit_cost_us (the transfer's time over its exits) or bytes_per_data_exit
# (for string I/O: what KVM hands over per rep insb/outsb exit), suffixed with _byte,
# _string or _devport for the kind of I/O.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/test-lib.sh"
. "$MINIVMM_SOURCE_DIR/tests/lib/bench-lib.sh"
require_guest_image
run_self_with_kvm 1800 "$@"
start_vm_group_test

# '+' between sizes: minivmm.run splits its words on commas.
if [ "${MINIVMM_IN_KVM_HOST:-0}" = 1 ]; then
    sizes=${MINIVMM_PORTIO_BENCH_SIZES:-4K+256K}
else
    sizes=${MINIVMM_PORTIO_BENCH_SIZES:-4K+2M+1G}
fi
csv=$BENCH_DIR/portio.csv
echo "portio benchmark: $(uname -r), $(nproc) CPUs, ${MINIVMM_IN_KVM_HOST:+emulated KVM host (absolute times are those of an emulator), }sizes $sizes"

xfer="portio-xfer,--io,both,--timeout,300"
"$MINIVMM" --shm=bench,vectors=0,portio=on --append "quiet minivmm.run=$xfer,--peer,1,send=$sizes" \
    >"$logs/send" 2>&1 </dev/null &
sender=$!
wait_for_text "$logs/send" "portio-xfer: channel at port" 300 || fail "the sending VM never found its channel"
"$MINIVMM" --shm=bench,vectors=0,portio=on --append "quiet minivmm.run=$xfer,--peer,0,recv=$sizes" \
    >"$logs/recv" 2>&1 </dev/null &
receiver=$!
wait "$sender"
send_status=$?
wait "$receiver"
recv_status=$?
expect_status 0 "$send_status" "sender"
expect_status 0 "$recv_status" "receiver"
grep -h "^portio-xfer" "$logs/send" "$logs/recv"

csv_start "$csv"
for direction in send recv; do
    grep -E "^portio-xfer: $direction [0-9]+ bytes .* ok" "$logs/$direction" | while read -r line; do
        size=$(sed -E 's/.* (send|recv) ([0-9]+) bytes.*/\2/' <<<"$line")
        io=$(sed -E 's/.* io=([a-z]+) via=([a-z]+).*/\1 \2/' <<<"$line")
        kind=${io% *}
        [ "${io#* }" = devport ] && kind=devport
        mbps=$(grep -oE '[0-9.]+ MB/s' <<<"$line" | cut -d' ' -f1)
        epb=$(grep -oE '[0-9.]+ exits/byte' <<<"$line" | cut -d' ' -f1)
        cost=$(grep -oE '[0-9.]+ us/exit' <<<"$line" | cut -d' ' -f1)
        bpe=$(grep -oE '[0-9.]+ bytes/data-exit' <<<"$line" | cut -d' ' -f1)
        row() { csv_row "$csv" portio minivmm minivmm "$direction" "$size" "$@"; }
        row "throughput_MBps_$kind" "$mbps" MB/s
        row "exits_per_byte_$kind" "$epb" exits/byte
        row "exit_cost_us_$kind" "$cost" us
        row "bytes_per_data_exit_$kind" "$bpe" bytes
    done
done
rows=$(($(wc -l <"$csv") - 1))
if [ "$rows" -ge 6 ]; then pass "$rows rows in $csv"; else fail "only $rows rows in $csv"; fi
finish
