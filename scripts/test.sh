#!/usr/bin/env bash
# The README's test command. Installs missing packages, builds with -Werror, builds the
# default guest image, runs every test except the benchmarks, then runs the unit tests
# again in an ASan/UBSan build. Extra arguments go to the first ctest (e.g. -L unit).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

scripts/install-deps.sh
build=${MINIVMM_BUILD_DIR:-$repo/build}
jobs=$(nproc)

cmake -S . -B "$build" -DMINIVMM_WERROR=ON
cmake --build "$build" -j"$jobs"
cmake --build "$build" --target guest-image
(cd "$build" && ctest --output-on-failure -LE bench "$@")

# The sanitizers run the unit tests only: guests are not built with them.
sanitize=$build-sanitize
cmake -S . -B "$sanitize" -DMINIVMM_WERROR=ON -DMINIVMM_SANITIZE=ON -DMINIVMM_ROOT_LINK=OFF
cmake --build "$sanitize" -j"$jobs"
(cd "$sanitize" && ctest --output-on-failure -L unit)

# The fuzz harnesses, a bounded run each (MINIVMM_FUZZ_SECONDS, default 20), built by clang.
fuzz=$build-fuzz
CC=clang cmake -S . -B "$fuzz" -DMINIVMM_WERROR=ON -DMINIVMM_FUZZ=ON -DMINIVMM_ROOT_LINK=OFF
cmake --build "$fuzz" --target fuzz -j"$jobs"
(cd "$fuzz" && ctest --output-on-failure -L fuzz)
