#!/usr/bin/env bash
# Bad command lines and bad images: each gets one clear line on stderr and its documented
# exit code, before KVM is touched, so this runs on any host.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/test-lib.sh"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

run() { # expected-status expected-stderr-text what args...
    local expected=$1 text=$2 what=$3
    shift 3
    local err status
    err=$("$MINIVMM" "$@" 2>&1 >/dev/null </dev/null)
    status=$?
    expect_status "$expected" "$status" "$what"
    expect_contains "$err" "$text" "$what: message"
    local lines
    lines=$(grep -c . <<<"$err")
    [ "$lines" -eq 1 ] || fail "$what: expected one line on stderr, got $lines: $err"
}

run 64 "not a size" "--mem without a size" --mem lots
run 64 "out of range" "--mem below the minimum" --mem 1M
run 64 "expected a number from 1 to" "--cpus 0" --cpus 0
run 64 "unknown option" "unknown option" --frobnicate
run 64 "needs a value" "option without its value" --kernel
run 64 "unexpected argument" "stray argument" --kernel x stray
run 66 "cannot read kernel '$scratch/none'" "missing kernel" --kernel "$scratch/none"
run 66 "Is a directory" "directory as kernel" --kernel "$scratch"

head -c 100 /dev/zero >"$scratch/tiny"
run 65 "too small to be a kernel" "100-byte kernel" --kernel "$scratch/tiny"
head -c 65536 /dev/urandom >"$scratch/random"
run 65 "neither an ELF file nor a bzImage" "random bytes as kernel" --kernel "$scratch/random"
cp /bin/true "$scratch/true"
run 65 "not an executable" "a shared-object ELF as kernel" --kernel "$scratch/true"

bzimage=$GUEST_IMAGE_DIR/bzImage
if [ -f "$bzimage" ]; then
    # Corrupt the "HdrS" magic at 0x202, then truncate a copy to half its length.
    cp "$bzimage" "$scratch/bad-magic"
    printf 'XXXX' | dd of="$scratch/bad-magic" bs=1 seek=$((0x202)) conv=notrunc status=none
    run 65 "no \"HdrS\" boot header" "bzImage with a corrupt header" --kernel "$scratch/bad-magic"
    head -c $(($(stat -c %s "$bzimage") / 2)) "$bzimage" >"$scratch/half"
    run 65 "truncated" "half a bzImage" --kernel "$scratch/half"
    run 65 "raise --mem" "too little memory for the kernel" --kernel "$bzimage" --mem 32M
    run 66 "cannot read initrd" "missing initrd" --kernel "$bzimage" --initrd "$scratch/none"

    # Where no VT-x/AMD-V KVM exists, a good kernel gets the one-line advice instead.
    mode=$("$MINIVMM_SOURCE_DIR/tests/kvm-host/kvm-mode.sh")
    if [ "$mode" != direct ]; then
        run 69 "tests/kvm-host/with-kvm.sh" "Linux guest on a host without usable KVM ($mode)" \
            --kernel "$bzimage" --initrd "$GUEST_IMAGE_DIR/initramfs.cpio.gz"
    fi
else
    echo "note: $bzimage not built; the checks on a real bzImage did not run" >&2
fi

# A --shm whose full group would need more descriptors than RLIMIT_NOFILE allows is
# refused at start, not when the 60th peer joins.
err=$( (ulimit -n 1024 && exec "$MINIVMM" --shm=limits,vectors=64) 2>&1 >/dev/null </dev/null)
expect_status 64 $? "--shm with more eventfds than RLIMIT_NOFILE allows"
expect_contains "$err" "needs up to 4416 open files" "--shm over the descriptor limit: message"

out=$("$MINIVMM" --help)
expect_status 0 $? "--help"
expect_contains "$out" "Exit status" "--help documents exit codes"
out=$("$MINIVMM" --version)
expect_matches "$out" '^minivmm [0-9]+\.[0-9]+' "--version"
finish
