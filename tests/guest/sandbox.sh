#!/usr/bin/env bash
# A running minivmm is sandboxed: every thread of the VMM (vCPUs, console, shm group,
# main) and the group's broker show seccomp filter mode, no_new_privs and no capability
# in /proc, while the guest runs and while a peer joins and leaves (the ioctls and fd
# passing that needs are on the allow-lists). A VM started with --no-sandbox shows none
# of it. SIGTERM still ends the sandboxed VM with 128+15.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/test-lib.sh"
require_guest_image
run_self_with_kvm 900 "$@"
start_vm_group_test


field() { # pid-or-task-path key
    awk -v key="$2:" '$1 == key { print $2 }' "$1/status" 2>/dev/null
}

expect_sandboxed() { # /proc/PID[/task/TID] what
    local where=$1 what=$2
    [ "$(field "$where" Seccomp)" = 2 ] || fail "$what: Seccomp is '$(field "$where" Seccomp)', expected 2"
    [ "$(field "$where" NoNewPrivs)" = 1 ] || fail "$what: NoNewPrivs is '$(field "$where" NoNewPrivs)'"
    local set
    for set in CapInh CapPrm CapEff CapAmb; do
        [ "$(field "$where" $set)" = 0000000000000000 ] ||
            fail "$what: $set is '$(field "$where" $set)', expected none"
    done
}

# An open stdin (a FIFO nobody writes to) keeps the console input thread alive to be checked.
mkfifo "$logs/stdin"
sleep 900 >"$logs/stdin" &
stdin_holder=$!
"$MINIVMM" --cpus 2 --shm=sb --append "minivmm.run=shm-peer-watch,--timeout,300" \
    <"$logs/stdin" >"$logs/a" 2>&1 &
vmm=$!
wait_for_text "$logs/a" "shm-peer-watch: peer 0 watching" 300 || fail "sandboxed VM never reached its guest program"

names=
for task in /proc/$vmm/task/*; do
    name=$(cat "$task/comm" 2>/dev/null) || continue
    before=$failures
    expect_sandboxed "$task" "thread $name"
    [ "$failures" -eq "$before" ] && pass "thread $name is sandboxed"
    names="$names $name "
done
for name in minivmm minivmm-console minivmm-shm vcpu0 vcpu1; do
    [[ $names == *" $name "* ]] || fail "no thread $name among:$names"
done
broker=$("$MINIVMM" --shm-list | sed -n 's/^sb .*broker_pid=\([0-9]*\).*/\1/p')
if [ -z "$broker" ]; then
    fail "no broker_pid for group sb in --shm-list"
else
    before=$failures
    expect_sandboxed "/proc/$broker" "the broker (pid $broker)"
    [ "$failures" -eq "$before" ] && pass "the broker (pid $broker) is sandboxed"
fi

# A peer joins and leaves: the sandboxed VMM's shm thread binds and unbinds its doorbells.
"$MINIVMM" --no-sandbox --shm=sb --append "minivmm.run=sleep,600" >"$logs/b" 2>&1 &
peer=$!
wait_for_text "$logs/a" "shm-peer-watch: peer 1 joined" 300 || fail "the peer's arrival not seen"
[ "$(field /proc/$peer Seccomp)" = 0 ] && pass "--no-sandbox: no seccomp filter" ||
    fail "--no-sandbox VM has Seccomp '$(field /proc/$peer Seccomp)'"
kill -9 "$peer"
wait "$peer" 2>/dev/null
wait "$vmm"
status=$?
grep -v '^\[' "$logs/a"
kill "$stdin_holder"
expect_status 0 "$status" "sandboxed VM's guest saw the peer come and go"
expect_contains "$(cat "$logs/a")" "shm-peer-watch: peer 1 left" "departure seen under the sandbox"
if grep -q "sandbox" "$logs/a"; then fail "a sandbox message: $(grep sandbox "$logs/a")"; fi

# SIGTERM is read from the signalfd by the sandboxed main thread.
"$MINIVMM" --append "minivmm.run=sleep,600" >"$logs/c" 2>&1 &
vmm=$!
wait_for_text "$logs/c" "init: running" 300 || fail "third VM never reached userspace"
kill -TERM "$vmm"
wait "$vmm"
expect_status 143 $? "SIGTERM ends a sandboxed VM"
if grep -q "sandbox" "$logs/c"; then fail "a sandbox message: $(grep sandbox "$logs/c")"; fi
finish
