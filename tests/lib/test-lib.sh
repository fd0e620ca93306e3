# Shared by the shell tests under tests/: source it. The tests get MINIVMM (the binary),
# MINIVMM_BUILD_DIR and MINIVMM_SOURCE_DIR from ctest.
# shellcheck shell=bash
set -uo pipefail

: "${MINIVMM_SOURCE_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${MINIVMM_BUILD_DIR:=$MINIVMM_SOURCE_DIR/build}"
: "${MINIVMM:=$MINIVMM_BUILD_DIR/minivmm}"
GUEST_IMAGE_DIR=$MINIVMM_BUILD_DIR/guest-image
WITH_KVM=$MINIVMM_SOURCE_DIR/tests/kvm-host/with-kvm.sh
SKIP=77

test_name=$(basename "$0" .sh)
failures=0

skip() {
    echo "SKIP $test_name: $*" >&2
    exit $SKIP
}

fail() {
    echo "FAIL $test_name: $*" >&2
    failures=$((failures + 1))
}

pass() {
    echo "ok $test_name: $*"
}

# Every check says PASS or FAIL; a test that failed any check ends with status 1, after the
# last console lines of its guests (and what they show: a triple fault, a panic), so the
# log says what happened without a rerun.
finish() {
    # MINIVMM_KEEP_LOGS=DIR keeps the guests' whole logs for a closer look.
    if [ -n "${MINIVMM_KEEP_LOGS:-}" ] && [ -n "$logs" ] && [ -d "$logs" ]; then
        mkdir -p "$MINIVMM_KEEP_LOGS" && cp -r "$logs" "$MINIVMM_KEEP_LOGS/$test_name.$$" &&
            echo "logs kept in $MINIVMM_KEEP_LOGS/$test_name.$$" >&2
    fi
    if [ "$failures" -ne 0 ]; then
        show_guest_consoles
        echo "FAIL $test_name: $failures check(s) failed" >&2
        exit 1
    fi
    echo "PASS $test_name: all checks passed"
    exit 0
}

# A test that cannot go on: FAIL at once, with the guests' consoles.
die() {
    fail "$*"
    finish
}

# The last console lines of each guest log in $logs (start_vm_group_test) and of
# $guest_out (run_guest), each with a line naming a triple fault or panic it shows.
show_guest_consoles() {
    local log
    if [ -n "$guest_out" ]; then
        describe_console "the guest" <<<"$guest_out"
    fi
    [ -n "$logs" ] && [ -d "$logs" ] || return 0
    for log in "$logs"/*; do
        [ -f "$log" ] && describe_console "$(basename "$log")" <"$log"
    done
}

describe_console() { # name <console
    local text
    text=$(cat)
    echo "--- last console lines of $1:" >&2
    tail -n 20 <<<"$text" >&2
    if grep -q "guest triple fault" <<<"$text"; then
        echo "--- $1: the guest triple-faulted" >&2
    elif grep -q "Kernel panic" <<<"$text"; then
        echo "--- $1: the guest kernel panicked" >&2
    elif grep -qE "rcu: INFO|detected stall|soft lockup|blocked for more than" <<<"$text"; then
        echo "--- $1: the guest kernel reported a stall:" >&2
        grep -m3 -E "rcu: INFO|detected stall|soft lockup|blocked for more than" <<<"$text" >&2
    fi
}

expect_status() { # expected actual what
    if [ "$1" -eq "$2" ]; then pass "$3: exit status $2"; else fail "$3: exit status $2, expected $1"; fi
}

expect_contains() { # haystack needle what
    if grep -qF -- "$2" <<<"$1"; then pass "$3"; else fail "$3: output lacks '$2'"; fi
}

expect_lacks() { # haystack needle what
    if grep -qF -- "$2" <<<"$1"; then fail "$3: output has '$2'"; else pass "$3"; fi
}

expect_matches() { # haystack extended-regex what
    if grep -qE -- "$2" <<<"$1"; then pass "$3"; else fail "$3: output does not match /$2/"; fi
}

expect_no_match() { # haystack extended-regex what
    local line
    if line=$(grep -m1 -E -- "$2" <<<"$1"); then fail "$3: output has '$line'"; else pass "$3"; fi
}

# Guest tests need a KVM that boots Linux: this machine's own (VT-x/AMD-V) or the emulated
# KVM host, which needs QEMU. With neither there is no KVM path at all, the one case where
# a guest test is skipped, and it says so before it starts anything.
require_kvm_path() {
    [ "$("$MINIVMM_SOURCE_DIR/tests/kvm-host/kvm-mode.sh")" = direct ] ||
        command -v qemu-system-x86_64 >/dev/null ||
        skip "no KVM path: no VT-x/AMD-V here, and no qemu-system-x86_64 for the emulated KVM host" \
            "(scripts/install-deps.sh installs it)"
}

# What a test needs besides KVM is installed by scripts/install-deps.sh and built by
# scripts/test.sh: missing, it fails the test with what to run.
require_command() { # command
    command -v "$1" >/dev/null || die "$1 is not installed: run scripts/install-deps.sh"
}

require_guest_image() {
    require_kvm_path
    [ -f "$GUEST_IMAGE_DIR/bzImage" ] && [ -f "$GUEST_IMAGE_DIR/initramfs.cpio.gz" ] ||
        die "default guest image not built ($GUEST_IMAGE_DIR): cmake --build build --target guest-image"
}

# Runs a command where KVM can boot Linux: directly on VT-x/AMD-V hosts, otherwise in the
# emulated KVM host; with-kvm.sh says on stderr which path it took. Only a failure of the
# emulated host itself (status 123: its own kernel crashed, or it never reached the
# command) is run again, once, and says so; whatever the command did, a guest's triple
# fault, panic or hang included, is its result.
run_with_kvm() { # timeout-seconds command...
    local timeout=$1 status
    shift
    "$WITH_KVM" --timeout "$timeout" -- "$@" </dev/null
    status=$?
    if [ "$status" -eq 123 ]; then
        echo "RETRY $test_name: the emulated KVM host itself failed (see above); running once more" >&2
        "$WITH_KVM" --timeout "$timeout" -- "$@" </dev/null
        status=$?
    fi
    case $status in
    123) echo "FAIL $test_name: the emulated KVM host itself failed twice" >&2 ;;
    124) echo "FAIL $test_name: timed out after $timeout s" >&2 ;;
    esac
    return "$status"
}

# One VM of the default image (or another kernel) with minivmm ARGS: sets guest_status
# and guest_out (its console and minivmm's messages), shown by finish on failure.
guest_out=''
run_guest() { # timeout-seconds minivmm-args...
    local timeout=$1
    shift
    guest_out=$(run_with_kvm "$timeout" "$MINIVMM" "$@" 2>&1)
    guest_status=$?
}

# Runs the calling script again where KVM boots Linux, unless it already is there, and ends
# with its result: for tests that start several VMs and act on them (kill one, say) from
# the host side. Call as: run_self_with_kvm TIMEOUT "$@" (first thing in the script).
run_self_with_kvm() {
    if [ "${MINIVMM_IN_KVM_HOST:-0}" = 1 ]; then
        test_timeout=${MINIVMM_TEST_TIMEOUT:-0}
        return 0
    fi
    test_timeout=$1
    [ "$("$MINIVMM_SOURCE_DIR/tests/kvm-host/kvm-mode.sh")" != direct ] || return 0
    export MINIVMM_TEST_TIMEOUT=$1 # with-kvm.sh passes MINIVMM_* into the emulated host
    rerun_self_in_kvm_host "$@"
}

rerun_self_in_kvm_host() { # timeout "$@"
    local timeout=$1
    shift
    run_with_kvm "$timeout" "$0" "$@"
    exit $?
}

# A private runtime folder, so the test's groups never meet a user's or another test's.
use_private_runtime_dir() {
    XDG_RUNTIME_DIR=$(mktemp -d "${TMPDIR:-/tmp}/minivmm-test.XXXXXX")
    chmod 0700 "$XDG_RUNTIME_DIR"
    export XDG_RUNTIME_DIR
}

# For tests that start several VMs: a private runtime folder (their groups meet no other)
# and $logs for the VMs' console logs, which finish shows on failure; on exit every VM
# still running is killed and both folders are removed.
logs=''
start_vm_group_test() {
    use_private_runtime_dir
    logs=$(mktemp -d)
    start_hang_watchdog
    trap 'kill -9 $(jobs -p) $watchdog 2>/dev/null; rm -rf "$logs" "$XDG_RUNTIME_DIR"' EXIT
}

# A hang fails its test like any other broken check, with the guests' consoles to show for
# it: a minute before the test's time limit (run_self_with_kvm's), a watchdog kills the
# test's VMs, so every wait on them ends and finish prints what each guest said last.
test_timeout=0 watchdog=''
start_hang_watchdog() {
    [ "$test_timeout" -gt 120 ] || return 0
    local test_pid=$$ after=$((test_timeout - 60))
    (
        sleep "$after" </dev/null >/dev/null 2>&1 # an orphan must not hold ctest's pipes
        echo "FAIL $test_name: still running after $after s, a hang: killing its VMs" >&2
        for pid in $(descendants "$test_pid"); do
            case $(ps -o comm= -p "$pid" 2>/dev/null) in
            minivmm | qemu-system-x86*) kill -KILL "$pid" 2>/dev/null ;;
            esac
        done
    ) &
    watchdog=$!
    disown "$watchdog" # not one of the test's jobs: nobody waits for it, and it dies quietly
}

descendants() { # pid
    local child
    for child in $(pgrep -P "$1"); do
        echo "$child"
        descendants "$child"
    done
}

# Prints the path of an initrd that is the default image's initramfs plus the files of
# FOLDER under /FOLDER-NAME in the guest: Linux unpacks concatenated cpio archives in turn.
# For guest-side test scripts (minivmm.run=sh,/NAME/script.sh). The file is made under
# TMPDIR, which is private inside the emulated KVM host.
initrd_with_folder() { # folder
    local folder name combined
    folder=$(cd "$1" && pwd) || fail "no folder $1"
    name=$(basename "$folder")
    combined=$(mktemp "${TMPDIR:-/tmp}/minivmm-initrd.XXXXXX") || fail "mktemp"
    cp "$GUEST_IMAGE_DIR/initramfs.cpio.gz" "$combined" || fail "copying the initramfs"
    (cd "$folder/.." && find "$name" | LC_ALL=C sort |
        cpio --quiet -o -H newc --owner=0:0 | gzip -9n) >>"$combined" ||
        fail "packing $folder into $combined"
    printf '%s\n' "$combined"
}

# Waits until FILE contains TEXT, at most SECONDS; returns 1 on timeout, or at once when
# one of the PIDs given (processes the text depends on) has ended. Tests that start
# several VMs let one guest reach userspace before the next boots, which also gives the
# peer IDs in start order.
wait_for_text() { # file text seconds [pid...]
    local file=$1 text=$2 deadline=$((SECONDS + $3)) pid
    shift 3
    until grep -qF -- "$text" "$file" 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || return 1
        for pid in "$@"; do
            kill -0 "$pid" 2>/dev/null || return 1
        done
        sleep 0.2
    done
}

# Waits until the guest whose console goes to LOG (process PID) reaches userspace, at most
# 300 s; returns 1 when its process ended first or time ran out.
wait_for_userspace() { # log pid
    wait_for_text "$1" "init: running" 300 "$2"
}

# Waits for a VM's process at most SECONDS, then kills it: the VM's exit status, or 124.
# A test's own bound, so that a VM that never ends fails the test instead of hanging it.
wait_vm() { # pid seconds
    local pid=$1 deadline=$((SECONDS + $2))
    while kill -0 "$pid" 2>/dev/null; do
        if [ $SECONDS -ge $deadline ]; then
            kill -KILL "$pid" 2>/dev/null
            wait "$pid" 2>/dev/null
            return 124
        fi
        sleep 0.5
    done
    wait "$pid"
}

# Boots the default guest image in QEMU with KVM: minivmm's default kernel command line
# plus APPEND, the debug-exit port as QEMU's isa-debug-exit (so QEMU exits with
# 2 * status + 1), and the extra QEMU arguments given (an ivshmem device, say).
qemu_guest() { # append qemu-args...
    local append=$1
    shift
    qemu-system-x86_64 -enable-kvm -cpu host -m 256 -smp 1 -nographic -nodefaults -no-reboot \
        -serial stdio -kernel "$GUEST_IMAGE_DIR/bzImage" -initrd "$GUEST_IMAGE_DIR/initramfs.cpio.gz" \
        -append "console=ttyS0 reboot=k panic=-1 acpi=off $append" \
        -device isa-debug-exit,iobase=0xf4,iosize=4 "$@" </dev/null
}
