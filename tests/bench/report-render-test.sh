#!/usr/bin/env bash
# The report generator on its own (no KVM): scripts/report-render.py on the fixture CSVs in
# tests/bench/fixtures/, and on small made-up runs: the tables, the goal verdicts computed
# from the rows, the plots (when gnuplot is installed), and its answer to malformed input.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/test-lib.sh"
. "$MINIVMM_SOURCE_DIR/tests/lib/bench-lib.sh"
command -v python3 >/dev/null || skip "python3 not installed"
render=$MINIVMM_SOURCE_DIR/scripts/report-render.py
fixtures=$MINIVMM_SOURCE_DIR/tests/bench/fixtures
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

line_of() { # file fixed-text: the number of its first line holding the text, else 0
    local n
    n=$(grep -nFm1 -- "$2" "$1" | cut -d: -f1)
    echo "${n:-0}"
}

# The fixture: every section present, three goals met, port I/O missing, 3 bad rows, and
# report-exit-cost.csv: every operation's counts, port I/O on minivmm only.
out=$(python3 "$render" --out "$tmp/full" --env "$fixtures/report-env.txt" \
    "$fixtures"/report-{bench,host,samples,exit-cost}.csv 2>&1)
expect_status 0 $? "renders the fixture"
md=$(cat "$tmp/full/report.md")
expect_contains "$md" "| cpu_model | Fixture CPU |" "environment table"
expect_contains "$md" "- **met**: Shared memory, 1 GB: at least 80% of host memcpy bandwidth measured in the same run: shm-poll both 850 MB/s = 85% of memcpy 1000 MB/s (emulated-host)" "shared-memory goal against the emulated host's memcpy, not the build machine's"
expect_contains "$md" "- **met**: Doorbell round trip: no slower than QEMU's in the same run: shm-irq p50 40.0 us against QEMU 50.0 us (ratio 0.80)" "doorbell goal"
expect_contains "$md" "- **met**: Doorbell round trip: at most QEMU's exits per VM: 2.71 exits against QEMU 3.25 (ratio 0.83)" "doorbell exits goal"

# The cost table leads, after the goals and before anything timed.
goals=$(line_of "$tmp/full/report.md" "## Goals")
cost=$(line_of "$tmp/full/report.md" "## What each operation costs in VM exits")
timed=$(line_of "$tmp/full/report.md" "## minivmm against QEMU and the physical limit")
if [ "$goals" -gt 0 ] && [ "$goals" -lt "$cost" ] && [ "$cost" -lt "$timed" ]; then
    pass "goals (line $goals), then the cost table (line $cost), then the first wall-clock table (line $timed)"
else
    fail "section order: goals at line $goals, cost table at $cost, first wall-clock table at $timed"
fi
expect_contains "$md" "| doorbell, per round trip | 2.71 | 3.25 | 0.83 | 0.00 | 0.02 | - |" "doorbell exits: minivmm/QEMU 2.71/3.25; userspace beside QEMU's mmio_exits, not divided"
expect_contains "$md" "| boot, per boot | 9000 | 15000 | 0.60 | 3000 | 3500 | 0.86 | 5000 | 5200 | 0.96 |" "boot's emulated instructions, halts and injections with their ratios"
expect_contains "$md" "| portio-byte, per byte | 1.01 | - | - | 1.00 | - | - |" "port I/O byte: no QEMU value, no ratio"
expect_contains "$md" "| portio-page, per page | 0.00 | - | - | 0.05 | - | - | 0.02 | - | - |" "port I/O page: no QEMU value, no ratio"
expect_contains "$md" "| msg64-poll, per message | 0.00 | 0.00 | - |" "no ratio against a QEMU count of 0"
expect_contains "$md" "Boot wall clock, VM creation to /init (timed, unlike the counts): minivmm 30.0 s, QEMU 40.0 s, minivmm/QEMU 0.75." "boot wall clock against QEMU"
# The first cost table's rows: the operation, then a count or "-".
operations=$(grep -oE '^\| [a-z0-9-]+, per [A-Za-z ]+ \| [-0-9]' <<<"$md" | sed -n '1,8p' |
    cut -d' ' -f2 | tr -d , | paste -sd' ')
if [ "$operations" = "doorbell msg64-poll msg64-irq mib-poll mib-irq portio-byte portio-page boot" ]; then
    pass "one row per operation, in the order of the brief"
else
    fail "cost table rows: '$operations'"
fi
expect_lacks "$md" "| cost |" "exit-cost rows are not repeated under other measurements"
expect_contains "$md" "- **not measured**: Port I/O bulk: a full page per exit for string I/O (no portio bytes-per-exit row)" "port I/O goal without rows"
expect_contains "$md" "| shm-poll | both | 1 GiB | throughput_MBps | 850 MB/s | 800 | 1.06 | 1000 | 0.85 |" "comparison row with both ratios"
expect_contains "$md" "| shm-irq | round_trip | - | rtt_p50_us | 40.0 us | 50.0 | 0.80 | 20.0 | 2.00 |" "latency against QEMU and the host eventfd"
expect_contains "$md" "| channel | VMMs / where | direction | 4 KiB MB/s | 2 MiB MB/s | 1 GiB MB/s |" "throughput table by size"
expect_contains "$md" "| shm-poll | qemu↔qemu | both | 10.0 | 400 | 800 |" "QEMU throughput row"
expect_contains "$md" "| shm-irq | minivmm↔minivmm | round_trip | - | vm_exit | 1500 ns |" "layer breakdown row"
expect_contains "$md" "| boot | minivmm | none | - | boot_ms | 2100 ms |" "other measurements"
expect_contains "$md" "- 3 malformed row(s) left out" "malformed rows counted"
expect_contains "$out" "row left out: shm-poll,minivmm,minivmm,both,4096,throughput_MBps,nan,MB/s" "malformed rows named on stderr"
if command -v gnuplot >/dev/null; then
    for plot in throughput latency-cdf; do
        if grep -q "<svg" "$tmp/full/$plot.svg" 2>/dev/null && grep -qF "($plot.svg)" <<<"$md"; then
            pass "$plot.svg drawn and linked"
        else
            fail "$plot.svg missing or not linked"
        fi
    done
    grep -q "host emulated-host round_trip (n=3)" "$tmp/full/latency-cdf.svg" || fail "the CDF lacks the host's samples"
    # gnuplot names a multiplot's panels' first plots gnuplot_plot_1a, _1b, ...
    svg=$(cat "$tmp/full/throughput.svg" 2>/dev/null)
    panels=$(grep -oE 'gnuplot_plot_1[a-z]+"' <<<"$svg" | sort -u | wc -l)
    expect_status 3 "$panels" "throughput plot: one panel per channel (portio, shm-irq, shm-poll)"
    for channel in portio shm-irq shm-poll; do
        expect_contains "$svg" "<text>$channel</text>" "throughput panel titled $channel"
    done
    expect_lacks "$svg" "<text>host</text>" "the host limit is a line in every panel, not a panel"
    limits=$(grep -cF "<text>host memcpy (emulated-host)</text>" <<<"$svg")
    expect_status 3 "$limits" "host memcpy from where the VMs ran in each panel"
    expect_lacks "$svg" "build-machine" "not the build machine's memcpy, which the VMs did not run on"
else
    expect_contains "$md" "Plots left out: gnuplot is not installed" "says why there are no plots"
fi

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
csv_row "$csv" cost minivmm minivmm doorbell 0 exits 3.50 count_per_round_trip
csv_row "$csv" cost qemu qemu doorbell 0 exits 3.25 count_per_round_trip
python3 "$render" --out "$tmp/notmet" "$csv" >/dev/null
expect_status 0 $? "renders a run without an environment file"
md=$(cat "$tmp/notmet/report.md")
expect_contains "$md" "- **not met**: Doorbell round trip: at most QEMU's exits per VM: 3.50 exits against QEMU 3.25 (ratio 1.08)" "more doorbell exits than QEMU is not met"
expect_contains "$md" "Not measured: msg64-poll, msg64-irq, mib-poll, mib-irq, portio-byte, portio-page, boot (no exit-cost rows)." "operations without exit-cost rows are named"
expect_contains "$md" "Boot wall clock: not measured" "boot wall clock without its rows"
expect_contains "$md" "- **not met**: Shared memory, 1 GB: at least 80% of host memcpy bandwidth measured in the same run: shm-poll b_to_a 790 MB/s = 79% of memcpy" "79% is not met (best direction taken)"
expect_contains "$md" "- **not met**: Doorbell round trip: no slower than QEMU's in the same run: shm-irq p50 61.0 us against QEMU 60.0 us" "a slower doorbell is not met"
expect_contains "$md" "- **not met**: Port I/O bulk: a full page per exit for string I/O: at least 1.00 bytes per exit" "the worst port I/O row decides, under any of its names"

# Only host rows: nothing to compare, every goal says so.
python3 "$render" --out "$tmp/host" "$fixtures/report-host.csv" >/dev/null
md=$(cat "$tmp/host/report.md")
expect_contains "$md" "- **not measured**: Shared memory, 1 GB: at least 80% of host memcpy bandwidth measured in the same run (no host memcpy 1 GiB row from where the VMs ran and no minivmm shared-memory 1 GiB throughput row)" "shared-memory goal without VM rows, host rows from two places and no environment to choose"
expect_contains "$md" "- **not measured**: Doorbell round trip" "doorbell goal without VM rows"
expect_contains "$md" "Not measured: no minivmm↔minivmm rows." "comparison without VM rows"
expect_contains "$md" "Not measured: no exit-cost rows" "cost table without exit-cost rows"
expect_contains "$md" "- **not measured**: Doorbell round trip: at most QEMU's exits per VM" "doorbell exits goal without exit-cost rows"

# A file that is not a benchmark CSV is refused.
echo "not,the,header" >"$tmp/bad.csv"
out=$(python3 "$render" --out "$tmp/bad" "$tmp/bad.csv" 2>&1)
expect_status 1 $? "refuses a file without the header"
expect_contains "$out" "first line is not the header" "says why"
if [ -e "$tmp/bad/report.md" ]; then fail "wrote a report from a bad file"; else pass "no report from a bad file"; fi
finish
