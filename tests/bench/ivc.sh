#!/usr/bin/env bash
# libivc benchmark: ivc-bench between two minivmm VMs in one --shm group, both
# shared-memory channels and the port I/O channel (portio=on), in one KVM environment
# (directly on VT-x/AMD-V, else one emulated-host run). Writes both VMs' CSV rows (each VM reports what it sent) under one
# header to $MINIVMM_BUILD_DIR/bench/ivc.csv and prints the human tables.
# IVC_BENCH_SIZES (default "4K 2M 1G"), IVC_BENCH_COUNT (round trips and streamed
# messages, default 10000) and IVC_BENCH_SHM (the group's memory, default 64M) override;
# IVC_BENCH_CHANNELS (default "shm-poll shm-irq portio") picks the channels and
# IVC_BENCH_PORTIO_SIZES (default "4K 2M 64M") portio's sizes, each byte of which costs VM
# exits. In the emulated KVM host (about 5 MB/s and 10 ms round trips; about 250 us per
# port I/O exit) the defaults are "4K 2M 64M", 1000 and "4K 256K", so that a run stays
# within its half hour.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/test-lib.sh"
require_guest_image
run_self_with_kvm 1800 "$@"
start_vm_group_test

if [ "${MINIVMM_IN_KVM_HOST:-0}" = 1 ]; then
    sizes=${IVC_BENCH_SIZES:-4K 2M 64M}
    count=${IVC_BENCH_COUNT:-1000}
    portio_sizes=${IVC_BENCH_PORTIO_SIZES:-4K 256K}
else
    sizes=${IVC_BENCH_SIZES:-4K 2M 1G}
    count=${IVC_BENCH_COUNT:-10000}
    portio_sizes=${IVC_BENCH_PORTIO_SIZES:-4K 2M 64M}
fi
channels=${IVC_BENCH_CHANNELS:-shm-poll shm-irq portio}
shm=${IVC_BENCH_SHM:-64M}
out_dir=$MINIVMM_BUILD_DIR/bench
mkdir -p "$out_dir"
echo "ivc benchmark: $(uname -r), $(nproc) CPUs, ${MINIVMM_IN_KVM_HOST:+emulated KVM host (absolute times are those of an emulator), }channels $channels, sizes $sizes (portio: $portio_sizes), $count round trips, --shm size $shm"

run="ivc-bench,--count,$count,--timeout,600"
for channel in $channels; do run+=",--channel,$channel"; done
for size in $sizes; do run+=",--size,$size"; done
for size in $portio_sizes; do run+=",--portio-size,$size"; done
"$MINIVMM" --shm="ivcbench,size=$shm,portio=on" --append "quiet minivmm.run=$run" >"$logs/vm0" 2>&1 </dev/null &
vm0=$!
wait_for_text "$logs/vm0" "init: running" 300 || fail "first VM never reached userspace"
"$MINIVMM" --shm="ivcbench,size=$shm,portio=on" --append "quiet minivmm.run=$run" >"$logs/vm1" 2>&1 </dev/null &
vm1=$!
wait "$vm0"
status0=$?
wait "$vm1"
status1=$?
expect_status 0 "$status0" "vm0 ivc-bench"
expect_status 0 "$status1" "vm1 ivc-bench"

echo "channel,vmm,peer_vmm,direction,size_bytes,metric,value,unit" >"$out_dir/ivc.csv"
for vm in 0 1; do
    # The console adds \r; keep the rows between the markers, less the header.
    tr -d '\r' <"$logs/vm$vm" | sed -n '/^--- ivc-bench csv begin ---$/,/^--- ivc-bench csv end ---$/p' |
        grep -v -e '^---' -e '^channel,' >>"$out_dir/ivc.csv"
    echo "== vm$vm =="
    tr -d '\r' <"$logs/vm$vm" | sed -n '/^--- ivc-bench csv end ---$/,$p' | grep -v '^---' | grep -v '^\[' | grep -v '^init:'
done
rows=$(($(wc -l <"$out_dir/ivc.csv") - 1))
[ "$rows" -gt 0 ] || fail "no CSV rows came back"
echo "wrote $out_dir/ivc.csv ($rows rows)"
finish
