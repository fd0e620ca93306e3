#!/usr/bin/env bash
# Runs one libFuzzer harness for a bounded time: run-fuzzer.sh BINARY SEEDS WORKDIR [SECONDS]
# [LIBFUZZER OPTIONS...]. SECONDS defaults to $MINIVMM_FUZZ_SECONDS, else 20. The seed corpus
# in the repository is only read: new inputs go to WORKDIR/corpus, a crash or a broken
# invariant to WORKDIR/crash-* (the path is printed), and the final statistics
# (stat::number_of_executed_units, cov:, ft:) to the output.
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "usage: $0 BINARY SEEDS WORKDIR [SECONDS] [LIBFUZZER OPTIONS...]" >&2
    exit 64
fi
binary=$1 seeds=$2 workdir=$3
shift 3
seconds=${MINIVMM_FUZZ_SECONDS:-20}
if [ $# -gt 0 ]; then
    seconds=$1
    shift
fi
mkdir -p "$workdir/corpus"
# -timeout: one input taking over 10 s is a hang, reported like a crash. -error_exitcode: not
# libFuzzer's 77, which is this project's "skipped". One job: the machines are shared.
exec "$binary" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 -error_exitcode=1 \
    -artifact_prefix="$workdir/" "$@" "$workdir/corpus" "$seeds"
