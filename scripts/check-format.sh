#!/usr/bin/env bash
# Fails, listing the files, when any C source is not laid out as .clang-format says.
# guest-kernel-module/ is Linux kernel code: its own .clang-format gives the kernel's layout.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bad=()
while IFS= read -r -d '' file; do
    clang-format --dry-run -Werror "$file" >/dev/null 2>&1 || bad+=("$file")
done < <(git ls-files -z '*.c' '*.h')
if [ ${#bad[@]} -gt 0 ]; then
    echo "not clang-formatted (run clang-format -i): ${bad[*]}" >&2
    exit 1
fi
echo "clang-format: all $(git ls-files '*.c' '*.h' | wc -l) C files laid out as .clang-format says"
