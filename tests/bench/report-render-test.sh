#!/usr/bin/env bash
# The report generator on its own (no KVM): scripts/report-render.py on the fixture CSVs in
# tests/bench/fixtures/, and on small made-up runs: the tables, the goal verdicts computed
# from the rows, the plots, and its answer to malformed input.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/test-lib.sh"
. "$MINIVMM_SOURCE_DIR/tests/lib/bench-lib.sh"
command -v python3 >/dev/null || skip "python3 not installed"
command -v gnuplot >/dev/null || skip "gnuplot not installed (scripts/install-deps.sh installs gnuplot-nox)"
render=$MINIVMM_SOURCE_DIR/scripts/report-render.py
fixtures=$MINIVMM_SOURCE_DIR/tests/bench/fixtures
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The fixture: every section present, two goals met, port I/O missing, 3 bad rows.
out=$(python3 "$render" --out "$tmp/full" --env "$fixtures/report-env.txt" "$fixtures"/report-*.csv 2>&1)
expect_status 0 $? "renders the fixture"
md=$(cat "$tmp/full/report.md")
expect_contains "$md" "| cpu_model | Fixture CPU |" "environment table"
expect_contains "$md" "- **met**: Shared memory, 1 GB: at least 80% of host memcpy bandwidth measured in the same run: shm-poll both 850 MB/s = 85% of memcpy 1000 MB/s (emulated-host)" "shared-memory goal against the emulated host's memcpy, not the build machine's"
expect_contains "$md" "- **met**: Doorbell round trip: no slower than QEMU's in the same run: shm-irq p50 40.0 us against QEMU 50.0 us (ratio 0.80)" "doorbell goal"
expect_contains "$md" "- **not measured**: Port I/O bulk: a full page per exit for string I/O (no portio bytes-per-exit row)" "port I/O goal without rows"
expect_contains "$md" "| shm-poll | both | 1 GiB | throughput_MBps | 850 MB/s | 800 | 1.06 | 1000 | 0.85 |" "comparison row with both ratios"
expect_contains "$md" "| shm-irq | round_trip | - | rtt_p50_us | 40.0 us | 50.0 | 0.80 | 20.0 | 2.00 |" "latency against QEMU and the host eventfd"
expect_contains "$md" "| channel | VMMs / where | direction | 4 KiB MB/s | 2 MiB MB/s | 1 GiB MB/s |" "throughput table by size"
expect_contains "$md" "| shm-poll | qemu↔qemu | both | 10.0 | 400 | 800 |" "QEMU throughput row"
expect_contains "$md" "| shm-irq | minivmm↔minivmm | round_trip | - | vm_exit | 1500 ns |" "layer breakdown row"
expect_contains "$md" "| boot | minivmm | none | - | boot_ms | 2100 ms |" "other measurements"
expect_contains "$md" "- 3 malformed row(s) left out" "malformed rows counted"
expect_contains "$out" "row left out: shm-poll,minivmm,minivmm,both,4096,throughput_MBps,nan,MB/s" "malformed rows named on stderr"
for plot in throughput latency-cdf; do
    if grep -q "<svg" "$tmp/full/$plot.svg" 2>/dev/null && grep -qF "($plot.svg)" <<<"$md"; then
        pass "$plot.svg drawn and linked"
    else
        fail "$plot.svg missing or not linked"
    fi
done
grep -q "host emulated-host round_trip (n=3)" "$tmp/full/latency-cdf.svg" || fail "the CDF lacks the host's samples"

# Goals not met, computed from the rows.
csv=$tmp/notmet.csv
csv_start "$csv"
csv_row "$csv" host emulated-host emulated-host local $((1 << 30)) throughput_MBps 1000 MB/s
csv_row "$csv" shm-poll minivmm minivmm a_to_b $((1 << 30)) throughput_MBps 500 MB/s
csv_row "$csv" shm-poll minivmm minivmm b_to_a $((1 << 30)) throughput_MBps 790 MB/s
csv_row "$csv" shm-irq minivmm minivmm round_trip 0 rtt_p50_us 61 us
csv_row "$csv" shm-irq qemu qemu round_trip 0 rtt_p50_us 60 us
csv_row "$csv" portio minivmm none a_to_b 4096 bytes_per_exit 4096 bytes
csv_row "$csv" portio minivmm none out 4096 outsb_items_per_exit 1 items # a tiny guest's row
python3 "$render" --out "$tmp/notmet" "$csv" >/dev/null
expect_status 0 $? "renders a run without an environment file"
md=$(cat "$tmp/notmet/report.md")
expect_contains "$md" "- **not met**: Shared memory, 1 GB: at least 80% of host memcpy bandwidth measured in the same run: shm-poll b_to_a 790 MB/s = 79% of memcpy" "79% is not met (best direction taken)"
expect_contains "$md" "- **not met**: Doorbell round trip: no slower than QEMU's in the same run: shm-irq p50 61.0 us against QEMU 60.0 us" "a slower doorbell is not met"
expect_contains "$md" "- **not met**: Port I/O bulk: a full page per exit for string I/O: at least 1.00 bytes per exit" "the worst port I/O row decides, under any of its names"

# Only host rows: nothing to compare, every goal says so.
python3 "$render" --out "$tmp/host" "$fixtures/report-host.csv" >/dev/null
md=$(cat "$tmp/host/report.md")
expect_contains "$md" "- **not measured**: Shared memory, 1 GB: at least 80% of host memcpy bandwidth measured in the same run (no host memcpy 1 GiB row from where the VMs ran and no minivmm shared-memory 1 GiB throughput row)" "shared-memory goal without VM rows, host rows from two places and no environment to choose"
expect_contains "$md" "- **not measured**: Doorbell round trip" "doorbell goal without VM rows"
expect_contains "$md" "Not measured: no minivmm↔minivmm rows." "comparison without VM rows"

# A file that is not a benchmark CSV is refused.
echo "not,the,header" >"$tmp/bad.csv"
out=$(python3 "$render" --out "$tmp/bad" "$tmp/bad.csv" 2>&1)
expect_status 1 $? "refuses a file without the header"
expect_contains "$out" "first line is not the header" "says why"
[ ! -e "$tmp/bad/report.md" ] && pass "no report from a bad file" || fail "wrote a report from a bad file"
finish
