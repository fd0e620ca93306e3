#!/usr/bin/env bash
# `cmake --install` into a scratch prefix: the programs land in bin, and the guest driver's
# DKMS tree is self-contained. It is built, with MINIVMM_SOURCE_DIR unset and far from the
# repository, against the kernel headers this machine has (/lib/modules/*/build); without
# any, every quoted #include of the tree must at least resolve inside it.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/test-lib.sh"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
prefix=$scratch/prefix

if ! out=$(cmake --install "$MINIVMM_BUILD_DIR" --prefix "$prefix" 2>&1); then
    die "cmake --install $MINIVMM_BUILD_DIR --prefix $prefix failed: $out"
fi
pass "cmake --install --prefix $prefix"

for program in minivmm minivmm-broker; do
    if [ -x "$prefix/bin/$program" ] && [ ! -L "$prefix/bin/$program" ]; then
        pass "bin/$program installed"
    else
        fail "bin/$program missing or not an executable file"
    fi
done
# Both installed programs run (no RPATH into the build folder to lose).
for run in "minivmm --version" "minivmm-broker --help"; do
    if "$prefix/bin/${run% *}" "${run#* }" >/dev/null 2>&1; then
        pass "installed ${run% *} runs"
    else
        fail "installed $run failed"
    fi
done

version=$(sed -n 's/^project(minivmm VERSION \([0-9.]*\).*/\1/p' "$MINIVMM_SOURCE_DIR/CMakeLists.txt")
dkms=$prefix/src/ivshmem_guest-$version
for file in dkms.conf Kbuild ivshmem_guest.c; do
    if [ -f "$dkms/$file" ]; then pass "dkms tree has $file"; else fail "dkms tree lacks $file ($dkms)"; fi
done
conf=$(cat "$dkms/dkms.conf" 2>/dev/null)
expect_contains "$conf" "PACKAGE_VERSION=\"$version\"" "dkms.conf names version $version"
expect_contains "$conf" 'BUILT_MODULE_NAME[0]="ivshmem_guest"' "dkms.conf names the module"
expect_lacks "$conf" "@" "dkms.conf has no unsubstituted @VAR@"

# Every #include "..." of the tree, relative to its root (Kbuild's -I) or to the including
# file, must be a file of the tree.
missing=0
while IFS= read -r file; do
    while IFS= read -r header; do
        if [ ! -f "$dkms/$header" ] && [ ! -f "$(dirname "$file")/$header" ]; then
            fail "$(basename "$file") includes \"$header\", which the dkms tree lacks"
            missing=$((missing + 1))
        fi
    done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$file")
done < <(find "$dkms" -name '*.[ch]')
[ "$missing" -eq 0 ] && pass "every quoted #include resolves inside the dkms tree"

# Build it as dkms would: a copy of the tree, nothing from the repository in sight.
headers=
for dir in /lib/modules/*/build; do
    [ -f "$dir/Makefile" ] && headers=$dir && break
done
if [ -z "$headers" ]; then
    echo "no kernel headers under /lib/modules/*/build: the dkms tree is not built (SKIP of that check)"
else
    cp -r "$dkms" "$scratch/build"
    if out=$(env -u MINIVMM_SOURCE_DIR make -s -C "$headers" M="$scratch/build" modules 2>&1) &&
        [ -f "$scratch/build/ivshmem_guest.ko" ]; then
        pass "the dkms tree builds ivshmem_guest.ko alone against $headers"
    else
        fail "make -C $headers M=<copy of the dkms tree> modules: $out"
    fi
fi
finish
