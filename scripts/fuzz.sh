#!/usr/bin/env bash
# Builds the libFuzzer harnesses (clang, in build-fuzz/) and runs one for a long time:
#   scripts/fuzz.sh TARGET [SECONDS] [LIBFUZZER OPTIONS...]     (default 600 seconds)
#   scripts/fuzz.sh --list
# TARGET is a tests/fuzz/fuzz_TARGET.c. New inputs collect in build-fuzz/fuzz/TARGET/corpus,
# a crash or broken invariant in build-fuzz/fuzz/TARGET/crash-*; rerun that input with
#   build-fuzz/tests/fuzz/fuzz_TARGET build-fuzz/fuzz/TARGET/crash-...
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${MINIVMM_FUZZ_BUILD_DIR:-$repo/build-fuzz}

targets=$(cd "$repo/tests/fuzz" && ls fuzz_*.c | sed 's/^fuzz_//; s/\.c$//')
if [ $# -lt 1 ]; then
    echo "usage: $0 TARGET [SECONDS] [LIBFUZZER OPTIONS...]; targets:" $targets >&2
    exit 64
fi
if [ "$1" = --list ]; then
    echo "$targets"
    exit 0
fi
target=$1
shift
if ! grep -qx "$target" <<<"$targets"; then
    echo "$0: no fuzz target '$target'; targets: $(echo $targets)" >&2
    exit 64
fi
seconds=${1:-600}
[ $# -gt 0 ] && shift

CC=clang cmake -S "$repo" -B "$build" -DMINIVMM_FUZZ=ON -DMINIVMM_WERROR=ON \
    -DMINIVMM_ROOT_LINK=OFF >/dev/null
cmake --build "$build" --target "fuzz_$target" -j"$(nproc)"
exec "$repo/tests/fuzz/run-fuzzer.sh" "$build/tests/fuzz/fuzz_$target" \
    "$repo/tests/fuzz/corpus/$target" "$build/fuzz/$target" "$seconds" "$@"
