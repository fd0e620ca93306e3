#!/usr/bin/env bash
# Boot-time benchmark: minivmm against qemu-system-x86_64 -enable-kvm, the same kernel,
# initramfs and memory, five runs each, in one KVM environment (directly on VT-x/AMD-V,
# else one emulated-host run for both, so the numbers are comparable with each other).
# Prints medians and ratios; writes $MINIVMM_BUILD_DIR/bench/boot-time.json and the same
# medians as CSV rows (tests/lib/bench-lib.sh) in boot-time.csv.
#
# Boot time: from starting the VMM to the guest's /init banner on the console (the first
# userspace output). Overhead: the VMM's resident memory beyond the guest's RAM mapping,
# read from /proc/PID/smaps while the guest idles after boot.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/test-lib.sh"
. "$MINIVMM_SOURCE_DIR/tests/lib/bench-lib.sh"
require_guest_image
require_command qemu-system-x86_64

runs=${MINIVMM_BENCH_BOOT_RUNS:-${BOOT_BENCH_RUNS:-5}} # MINIVMM_* reach the emulated host
mem_mb=256
out_dir=$MINIVMM_BUILD_DIR/bench
mkdir -p "$out_dir"

if [ "${MINIVMM_IN_KVM_HOST:-0}" != 1 ] && [ "$("$MINIVMM_SOURCE_DIR/tests/kvm-host/kvm-mode.sh")" != direct ]; then
    # Re-run this very script inside the emulated host: both VMMs then share it.
    exec "$WITH_KVM" --timeout 1500 -- "$0" "$@" </dev/null
fi
echo "boot-time benchmark: $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $runs runs each, ${mem_mb} MiB guests, against $(bench_qemu_version)"
[ "${MINIVMM_IN_KVM_HOST:-0}" = 1 ] && echo "environment: emulated KVM host (nested kvm_amd under QEMU TCG): absolute times are an emulator's"

kernel=$GUEST_IMAGE_DIR/bzImage
initrd=$GUEST_IMAGE_DIR/initramfs.cpio.gz
append="minivmm.run=sleep,4"

now_ms() { date +%s%3N; }

# Runs "$@" (a VMM), returns via globals: boot_ms, overhead_kib, total_kib.
measure() {
    local fifo start pid line
    fifo=$(mktemp -u)
    mkfifo "$fifo"
    start=$(now_ms)
    "$@" >"$fifo" 2>&1 </dev/null &
    pid=$!
    boot_ms=-1 overhead_kib=-1 total_kib=-1
    while IFS= read -r line; do
        if [ "$boot_ms" -lt 0 ] && [[ $line == "minivmm guest:"* ]]; then
            boot_ms=$(($(now_ms) - start))
            sleep 1 # let the guest settle into its sleep before reading memory
            read -r total_kib overhead_kib < <(awk -v mem=$((mem_mb * 1024)) '
                /^Size:/ { cur = $2 }
                /^Rss:/ { total += $2; if (cur >= mem && $2 > guest) guest = $2 }
                END { print total, total - guest }' "/proc/$pid/smaps")
        fi
    done <"$fifo"
    wait "$pid"
    rm -f "$fifo"
}

median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

declare -a mv_boot mv_over qemu_boot qemu_over
for ((i = 1; i <= runs; i++)); do
    measure "$MINIVMM" --kernel "$kernel" --initrd "$initrd" --mem ${mem_mb}M --append "$append"
    mv_boot+=("$boot_ms") mv_over+=("$overhead_kib")
    measure qemu_guest "$append" # the same image and memory, minivmm's command line
    qemu_boot+=("$boot_ms") qemu_over+=("$overhead_kib")
    echo "run $i: minivmm ${mv_boot[-1]} ms, ${mv_over[-1]} KiB over guest RAM; qemu ${qemu_boot[-1]} ms, ${qemu_over[-1]} KiB"
done

mb=$(median "${mv_boot[@]}") qb=$(median "${qemu_boot[@]}")
mo=$(median "${mv_over[@]}") qo=$(median "${qemu_over[@]}")
for v in "$mb" "$qb" "$mo" "$qo"; do
    [ "$v" -ge 0 ] || { echo "FAIL: a VMM never reached guest userspace (median $v)" >&2; exit 1; }
done
ratio=$(awk -v a="$mb" -v b="$qb" 'BEGIN { printf "%.2f", a / b }')
printf '\n%-10s %14s %24s\n' VMM "boot (median)" "memory over guest RAM"
printf '%-10s %11s ms %20s KiB\n' minivmm "$mb" "$mo" qemu "$qb" "$qo"
echo "minivmm/qemu boot time ratio: $ratio (aim: at most 0.50); minivmm overhead $((mo / 1024)) MiB (aim: under 5 MiB)"

json=$out_dir/boot-time.json
cat >"$json" <<JSON
{
  "benchmark": "boot-time",
  "date": "$(date -u +%FT%TZ)",
  "environment": "$([ "${MINIVMM_IN_KVM_HOST:-0}" = 1 ] && echo emulated-kvm-host || echo direct-kvm)",
  "runs": $runs,
  "guest_mem_mib": $mem_mb,
  "minivmm": { "boot_ms": [$(IFS=,; echo "${mv_boot[*]}")], "median_boot_ms": $mb, "median_overhead_kib": $mo },
  "qemu": { "boot_ms": [$(IFS=,; echo "${qemu_boot[*]}")], "median_boot_ms": $qb, "median_overhead_kib": $qo },
  "boot_ratio_minivmm_over_qemu": $ratio
}
JSON
echo "wrote $json"

csv=$out_dir/boot-time.csv
csv_start "$csv"
csv_row "$csv" boot minivmm none boot "$((mem_mb << 20))" boot_ms "$mb" ms
csv_row "$csv" boot qemu none boot "$((mem_mb << 20))" boot_ms "$qb" ms
csv_row "$csv" boot minivmm none memory "$((mem_mb << 20))" overhead_KiB "$mo" KiB
csv_row "$csv" boot qemu none memory "$((mem_mb << 20))" overhead_KiB "$qo" KiB
echo "wrote $csv"
