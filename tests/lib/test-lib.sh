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
    echo "SKIPPED $test_name: $*" >&2
    exit $SKIP
}

fail() {
    echo "FAIL $test_name: $*" >&2
    failures=$((failures + 1))
}

pass() {
    echo "ok $test_name: $*"
}

# A test that starts several Linux guests names the folder of their console logs here.
# Inside the emulated KVM host, a guest now and then triple-faults with several VMs running,
# mostly while another VM boots or exits (README; QEMU's guests too). A watcher then ends
# the test at once with status 123, which asks run_with_kvm for another run, instead of
# letting every later check wait out its timeout. Never on direct KVM, where a triple
# fault fails the test like any other broken check.
vm_log_dir=''
watch_vm_logs() { # folder
    vm_log_dir=$1
    [ "${MINIVMM_IN_KVM_HOST:-0}" = 1 ] || return 0
    trap stop_after_emulator_fault USR1
    local test_pid=$$
    (
        while kill -0 "$test_pid" 2>/dev/null; do
            if guest_triple_faulted; then
                kill -USR1 "$test_pid"
                exit 0
            fi
            sleep 1
        done
    ) >/dev/null 2>&1 &
    disown $! # it ends by itself; the tests' "kill every job" traps need not reap it
}

# True when a log in vm_log_dir shows a guest's triple fault.
guest_triple_faulted() {
    [ -n "$vm_log_dir" ] && grep -qs "guest triple fault" "$vm_log_dir"/*
}

stop_after_emulator_fault() {
    local log
    echo "$test_name: a guest triple-faulted in the emulated KVM host (its known multi-VM" \
        "fault, see README); this run says nothing, stopping it for another" >&2
    for log in "$vm_log_dir"/*; do
        grep -qs "guest triple fault" "$log" || continue
        echo "--- last lines of $(basename "$log"):" >&2
        tail -n 25 "$log" >&2
    done
    exit 123
}

finish() {
    if [ "$failures" -ne 0 ]; then
        if [ "${MINIVMM_IN_KVM_HOST:-0}" = 1 ] && guest_triple_faulted; then
            stop_after_emulator_fault
        fi
        echo "$test_name: $failures check(s) failed" >&2
        exit 1
    fi
    echo "$test_name: all checks passed"
    exit 0
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

require_guest_image() {
    [ -f "$GUEST_IMAGE_DIR/bzImage" ] && [ -f "$GUEST_IMAGE_DIR/initramfs.cpio.gz" ] ||
        skip "default guest image not built ($GUEST_IMAGE_DIR): cmake --build build --target guest-image"
}

# Runs a command where KVM can boot Linux: directly on VT-x/AMD-V hosts, otherwise in the
# emulated KVM host. with-kvm.sh says on stderr which path it took.
# Status 123 means the emulated environment failed, not the command: the emulated host's
# own kernel crashed (an oops in nested SVM under TCG, seen now and then in multi-VM runs),
# or a test saw a guest triple-fault there (watch_vm_logs above). In the emulated host a
# timeout (124) is treated the same way: a guest there once hung for 600 s in a test that
# takes 20 s, and passed on every other run. Such a run is made again, at most twice more.
# Any other failure, and any failure on direct KVM, fails. When the third run fails the
# same way the status stays 123 (or 124): callers hand it to skip_if_emulator_failed.
run_with_kvm() { # timeout-seconds command...
    local timeout=$1 status attempt retried=123
    shift
    [ "$("$MINIVMM_SOURCE_DIR/tests/kvm-host/kvm-mode.sh")" = direct ] || retried="123 124"
    for attempt in 1 2 3; do
        "$WITH_KVM" --timeout "$timeout" -- "$@" </dev/null
        status=$?
        if [[ " $retried " != *" $status "* ]] || [ "$attempt" -eq 3 ]; then
            break
        fi
        echo "minivmm-test: the emulated KVM environment failed (status $status, attempt" \
            "$attempt of 3); running once more" >&2
    done
    return "$status"
}

# A test whose every run ended in an emulated-environment failure (status 123: the
# emulated host's kernel crashed or a guest triple-faulted there, three times) has no
# result at all, so it is skipped, loudly, rather than passed or blamed on minivmm. A
# timeout (124) on the last run still fails: a VMM that hangs every time is a bug.
skip_if_emulator_failed() { # status
    [ "$1" -eq 123 ] || return 0
    [ "$("$MINIVMM_SOURCE_DIR/tests/kvm-host/kvm-mode.sh")" != direct ] || return 0
    skip "the emulated KVM host failed in each of 3 runs (its kernel crashed or did not" \
        "boot, or a guest triple-faulted there, see above), so this test has NO result;" \
        "run it again, or on VT-x/AMD-V hardware"
}

# Runs the calling script again inside the emulated KVM host and ends with its result:
# its status, or skipped when the emulated host failed every run.
rerun_self_in_kvm_host() { # timeout "$@"
    local timeout=$1 status
    shift
    run_with_kvm "$timeout" "$0" "$@"
    status=$?
    skip_if_emulator_failed "$status"
    exit "$status"
}

# Re-runs the calling script inside a KVM that boots Linux, unless it already is in one:
# for tests that start several VMs and act on them (kill one, say) from the host side.
# Call as: run_self_with_kvm TIMEOUT "$@" (first thing in the script).
run_self_with_kvm() {
    if [ "${MINIVMM_IN_KVM_HOST:-0}" != 1 ] &&
        [ "$("$MINIVMM_SOURCE_DIR/tests/kvm-host/kvm-mode.sh")" != direct ]; then
        rerun_self_in_kvm_host "$@"
    fi
}

# A private runtime folder, so the test's groups never meet a user's or another test's.
use_private_runtime_dir() {
    XDG_RUNTIME_DIR=$(mktemp -d "${TMPDIR:-/tmp}/minivmm-test.XXXXXX")
    chmod 0700 "$XDG_RUNTIME_DIR"
    export XDG_RUNTIME_DIR
}

# For tests that start several VMs: a private runtime folder (their groups meet no other),
# $logs for the VMs' console logs, watched for the emulated host's fault (watch_vm_logs);
# on exit every VM still running is killed and both folders are removed.
start_vm_group_test() {
    use_private_runtime_dir
    logs=$(mktemp -d)
    watch_vm_logs "$logs"
    trap 'kill -9 $(jobs -p) 2>/dev/null; rm -rf "$logs" "$XDG_RUNTIME_DIR"' EXIT
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
# several VMs use it to let one guest reach userspace before the next boots: in the
# emulated KVM host, two Linux guests (minivmm's or QEMU's alike) in early boot at the
# same moment now and then die with a triple fault.
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
# 300 s; returns 1 when its process ended first, or on direct KVM when time ran out. In
# the emulated KVM host a guest still booting after 300 s is that host's fault (a nested
# boot there hung for good in CI, a QEMU guest as well as minivmm's): the test stops with
# 123 at once, which asks run_with_kvm for another run.
wait_for_userspace() { # log pid
    wait_for_text "$1" "init: running" 300 "$2" && return 0
    if [ "${MINIVMM_IN_KVM_HOST:-0}" = 1 ] && kill -0 "$2" 2>/dev/null; then
        echo "$test_name: $(basename "$1") is still booting after 300 s in the emulated KVM" \
            "host; stopping this run for another. Its last lines:" >&2
        tail -n 15 "$1" >&2
        exit 123
    fi
    return 1
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
