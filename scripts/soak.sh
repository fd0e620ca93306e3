#!/usr/bin/env bash
# Usage: scripts/soak.sh [--rounds N] [--out DIR] TEST...
#
# Runs each named ctest test (e.g. guest.shm_faults) N times (default 5), round by round,
# from the build folder (MINIVMM_BUILD_DIR, default build/), keeps every log, and prints
# one row per test with its runs sorted by what ended them:
#   pass          passed at its first try
#   host-retried  passed after the emulated KVM host itself failed once and was retried
#   host-crash    the emulated host's own kernel crashed (twice: the harness retries once)
#   host-no-boot  the emulated host never reached the command
#   host-hang     the emulated host stopped as a whole (no heartbeat from it)
#   hang          a time-out: the test, a guest or the emulated host stopped making progress
#   triple-fault  a guest triple-faulted
#   panic         a guest kernel panicked
#   other         any other failed check: a real failure until shown otherwise
# A run counts once, under the first of these causes its log shows.
# For judging the emulated host: tests/kvm-host/README.md has the numbers this measured.
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${MINIVMM_BUILD_DIR:-$repo/build}
rounds=5 out=''
while (($# > 0)); do
    case $1 in
    --rounds) rounds=${2:?}; shift 2 ;;
    --out) out=${2:?}; shift 2 ;;
    -*) sed -n '2p' "$0" | sed 's/^# //' >&2; exit 2 ;;
    *) break ;;
    esac
done
(($# > 0)) && [[ $rounds =~ ^[1-9][0-9]*$ ]] || { sed -n '2p' "$0" | sed 's/^# //' >&2; exit 2; }
out=${out:-$build/soak/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"

# The cause of one run, from its log and ctest's verdict.
classify() { # log
    local log=$1
    if grep -q "tests passed, 0 tests failed" "$log"; then
        if grep -q "^RETRY " "$log"; then echo host-retried; else echo pass; fi
    elif grep -q "own kernel crashed" "$log"; then echo host-crash
    elif grep -q "did not reach the command" "$log"; then echo host-no-boot
    elif grep -q "host VM stopped: no heartbeat" "$log"; then echo host-hang
    elif grep -qE "^FAIL [^:]*: timed out after|kvm-host: timed out after|still running after|\*\*\*Timeout" "$log"; then echo hang
    elif grep -q "triple-faulted\|guest triple fault" "$log"; then echo triple-fault
    elif grep -q "kernel panicked\|Kernel panic" "$log"; then echo panic
    else echo other
    fi
}

causes=(pass host-retried host-crash host-no-boot host-hang hang triple-fault panic other)
for ((round = 1; round <= rounds; round++)); do
    for test in "$@"; do
        log=$out/$test.$round.log
        start=$SECONDS
        (cd "$build" && ctest --output-on-failure -R "^${test//./\\.}\$") >"$log" 2>&1
        cause=$(classify "$log")
        printf '%s\t%s\t%s\t%s\n' "$test" "$round" "$cause" "$((SECONDS - start))" >>"$out/runs.tsv"
        echo "soak: round $round/$rounds: $test: $cause ($((SECONDS - start)) s)"
    done
done

echo
printf '%-22s' test; printf '%-13s' "${causes[@]}"
echo
for test in "$@"; do
    printf '%-22s' "$test"
    for cause in "${causes[@]}"; do
        printf '%-13s' "$(awk -F'\t' -v t="$test" -v c="$cause" '$1 == t && $3 == c' "$out/runs.tsv" | wc -l)"
    done
    echo
done
echo "logs: $out"
