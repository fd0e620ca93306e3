#!/usr/bin/env bash
# The performance report in one command: installs what is missing, builds, measures the
# physical limits on this machine, runs every benchmark and the tiny guests' exit and
# data-path measurements (ctest -L 'bench|kvm', one test at a time, a progress line before
# and after each: the VMs run directly on a VT-x/AMD-V host, else inside the emulated KVM
# host, and the limits are measured again there, in the same run), then renders the
# Markdown report and its plots with scripts/report-render.py.
#
# Usage: scripts/report.sh [--quick] [--out DIR]
#   --quick   small sizes and counts, to try it out (a few minutes in the emulated host)
#   --out     where report.md, the SVG plots and the CSV data go (default build/report)
# The benchmarks' own settings (MINIVMM_BENCH_SIZES, MINIVMM_BENCH_PINGS, MINIVMM_BENCH_REPS,
# MINIVMM_BENCH_BOOT_RUNS, ...) are honoured when set. Exit 0 when every benchmark passed and
# the report was written; 1 when a benchmark failed (the report is still written from the
# rows that exist, and says "not measured" where rows are missing).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

quick=0
out=
while [ $# -gt 0 ]; do
    case $1 in
    --quick) quick=1 ;;
    --out) out=${2:?--out needs a folder}; shift ;;
    *) echo "usage: scripts/report.sh [--quick] [--out DIR]" >&2; exit 64 ;;
    esac
    shift
done
build=${MINIVMM_BUILD_DIR:-$repo/build}
out=${out:-$build/report}
export MINIVMM_BUILD_DIR=$build
if [ $quick = 1 ]; then
    export MINIVMM_BENCH_SIZES=${MINIVMM_BENCH_SIZES:-4K 2M 16M} MINIVMM_BENCH_PINGS=${MINIVMM_BENCH_PINGS:-300}
    export MINIVMM_BENCH_REPS=${MINIVMM_BENCH_REPS:-3} MINIVMM_BENCH_BOOT_RUNS=${MINIVMM_BENCH_BOOT_RUNS:-1}
elif [ "$(tests/kvm-host/kvm-mode.sh)" = direct ]; then
    export MINIVMM_BENCH_SIZES=${MINIVMM_BENCH_SIZES:-4K 2M 1G} MINIVMM_BENCH_PINGS=${MINIVMM_BENCH_PINGS:-2000}
    export MINIVMM_BENCH_REPS=${MINIVMM_BENCH_REPS:-5} MINIVMM_BENCH_BOOT_RUNS=${MINIVMM_BENCH_BOOT_RUNS:-5}
else
    # In the emulated host a pair moves 1G each way in seconds polled and in about half a
    # minute interrupt-driven: the issue's sizes fit.
    export MINIVMM_BENCH_SIZES=${MINIVMM_BENCH_SIZES:-4K 2M 1G} MINIVMM_BENCH_PINGS=${MINIVMM_BENCH_PINGS:-1000}
    export MINIVMM_BENCH_REPS=${MINIVMM_BENCH_REPS:-5} MINIVMM_BENCH_BOOT_RUNS=${MINIVMM_BENCH_BOOT_RUNS:-2}
fi

kvm_mode=$(tests/kvm-host/kvm-mode.sh)
case $kvm_mode in
direct) kvm_kind="direct (VT-x/AMD-V on this machine)" vm_where=build-machine ;;
*)
    kvm_kind="emulated (nested kvm_amd in QEMU TCG; this machine's /dev/kvm: $kvm_mode)"
    vm_where=emulated-host
    echo "report: this machine's KVM ($kvm_mode) cannot boot Linux: the VMs run in the emulated KVM host (slow: its times compare only with each other)"
    ;;
esac

scripts/install-deps.sh
cmake -S . -B "$build" -DMINIVMM_ROOT_LINK=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null
cmake --build "$build" --target guest-image >/dev/null

bench=$build/bench
rm -f "$bench"/*.csv "$bench"/env-*.txt
mkdir -p "$bench" "$out"
started=$(date -u +%FT%TZ)
if [ "$vm_where" != build-machine ]; then
    echo "report: physical limits of this machine (build-machine)"
    limits=$bench/host-limits-build-machine
    "$build/tests/host-limits" --env build-machine --sizes "${MINIVMM_BENCH_SIZES// /,}" \
        --reps "$MINIVMM_BENCH_REPS" --samples "$limits-samples.csv" >"$limits.csv"
fi

status=0
echo "report: benchmarks and tiny guests (ctest -L 'bench|kvm'; sizes $MINIVMM_BENCH_SIZES, $MINIVMM_BENCH_PINGS round trips, $MINIVMM_BENCH_BOOT_RUNS boot runs)"
# One ctest run per test, so that a run of a quarter of an hour says where it is.
mapfile -t bench_tests < <(cd "$build" && ctest -N -L 'bench|kvm' | sed -n 's/^ *Test *#[0-9]*: //p')
[ ${#bench_tests[@]} -gt 0 ] || { echo "report: ctest lists no bench or kvm tests in $build" >&2; status=1; }
step=0
step_log=$(mktemp)
trap 'rm -f "$step_log"' EXIT
for name in "${bench_tests[@]}"; do
    step=$((step + 1))
    echo "report: [$step/${#bench_tests[@]}] $name started $(date +%T)"
    step_started=$SECONDS
    # The name is a regular expression to ctest: its dots must match only dots.
    if (cd "$build" && ctest --output-on-failure -R "^${name//./\\.}\$") | tee "$step_log"; then
        # ctest counts a skipped test (no KVM path, say) as no failure: say so all the same.
        result=passed
        grep -q '\*\*\*Skipped' "$step_log" && result=skipped
    else
        result=FAILED status=1
    fi
    echo "report: [$step/${#bench_tests[@]}] $name $result in $((SECONDS - step_started)) s"
done

{
    echo "date=$started"
    echo "git_commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
    echo "cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "cores=$(nproc)"
    echo "kernel=$(uname -sr)"
    echo "os=$(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
    echo "kvm_kind=$kvm_kind"
    echo "vm_environment=$vm_where"
    echo "qemu_version=$(qemu-system-x86_64 --version | head -1)"
    echo "settings=sizes $MINIVMM_BENCH_SIZES; $MINIVMM_BENCH_PINGS round trips; $MINIVMM_BENCH_REPS memcpy repetitions; $MINIVMM_BENCH_BOOT_RUNS boot runs$([ $quick = 1 ] && echo ' (--quick)')"
    cat "$bench"/env-*.txt 2>/dev/null
    [ $status = 0 ] || echo "note=A benchmark failed in this run (see the ctest output): missing rows read as not measured."
} >"$out/env.txt"

mkdir -p "$out/data"
rm -f "$out"/data/*.csv "$out"/*.svg
for f in "$bench"/*.csv; do
    # The raw samples feed the plots; only the summaries are kept next to the report.
    [[ $f == *-samples.csv ]] || cp "$f" "$out/data/"
done
scripts/report-render.py --out "$out" --env "$out/env.txt" "$bench"/*.csv
echo "report: $out/report.md"
exit $status
