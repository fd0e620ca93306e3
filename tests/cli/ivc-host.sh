#!/usr/bin/env bash
# Host processes as peers of a group, with no VM and no KVM: minivmm-broker started by
# hand in a private runtime folder, then minivmm-ivc on both sides. Checks: joining a
# group without a broker fails with ENOENT and says how to start one; 64 MiB piped from
# one host peer to another, polled one way and with doorbells (--irq) the other, compared
# byte for byte; minivmm-ivc bench both ways on host-poll and host-irq (every byte checked
# by the receiver, 1 GiB polled); and a peer killed mid-transfer: the other side, sender
# or receiver, ends with ECONNRESET ("Connection reset by peer").
. "$(dirname "${BASH_SOURCE[0]}")/../lib/test-lib.sh"
: "${MINIVMM_BROKER:=$MINIVMM_BUILD_DIR/minivmm-broker}"
: "${MINIVMM_IVC:=$MINIVMM_BUILD_DIR/host-apps/minivmm-ivc}"
[ -x "$MINIVMM_IVC" ] || skip "no $MINIVMM_IVC: build the minivmm-ivc target"

scratch=$(mktemp -d)
broker=
cleanup() {
    [ -n "$broker" ] && kill "$broker" 2>/dev/null && wait "$broker" 2>/dev/null
    rm -rf "$scratch"
}
trap cleanup EXIT
export XDG_RUNTIME_DIR=$scratch/run
mkdir -m 0700 "$XDG_RUNTIME_DIR"
ivc() { timeout 60 "$MINIVMM_IVC" "$@"; }

err=$(ivc send nogroup 0 </dev/null 2>&1)
expect_status 1 $? "send to a group without a broker"
expect_contains "$err" "No such file or directory" "no broker: ENOENT"
expect_contains "$err" "minivmm-broker nogroup" "no broker: the message says how to start one"

"$MINIVMM_BROKER" --no-sandbox ivc,size=64M >"$scratch/broker.log" 2>&1 &
broker=$!
wait_for_text "$scratch/broker.log" "socket " 10 || die "minivmm-broker never listened"

head -c 64M /dev/urandom >"$scratch/in"
for mode in poll irq; do
    flag=
    [ "$mode" = irq ] && flag=--irq
    ivc recv ivc any $flag >"$scratch/out.$mode" 2>"$scratch/recv.$mode" &
    receiver=$!
    ivc send ivc any $flag <"$scratch/in" 2>"$scratch/send.$mode"
    expect_status 0 $? "send 64 MiB ($mode): $(cat "$scratch/send.$mode")"
    wait "$receiver"
    expect_status 0 $? "recv 64 MiB ($mode): $(cat "$scratch/recv.$mode")"
    if cmp -s "$scratch/in" "$scratch/out.$mode"; then
        pass "64 MiB arrived unchanged ($mode)"
    else
        fail "64 MiB came out different ($mode)"
    fi
done

bench=(--channel host-poll --channel host-irq --size 4K --size 64M --size 1G --count 2000)
ivc bench ivc any "${bench[@]}" >"$scratch/bench0" 2>&1 &
first=$!
ivc bench ivc any "${bench[@]}" >"$scratch/bench1" 2>&1
expect_status 0 $? "bench, second peer"
wait "$first"
expect_status 0 $? "bench, first peer"
for side in 0 1; do
    out=$(cat "$scratch/bench$side")
    expect_contains "$out" "ivc-bench: OK" "bench peer $side reports OK"
    for channel in host-poll host-irq; do
        for size in 4096 67108864 1073741824; do
            expect_matches "$out" "^$channel,[^,]*,[^,]*,[0-9]+to[0-9]+,$size,throughput_MBps," \
                "bench peer $side sent $size bytes on $channel, verified by the other"
        done
        expect_matches "$out" "^$channel,[^,]*,[^,]*,[0-9]+to[0-9]+,64,rtt_p50_us," \
            "bench peer $side measured round trips on $channel"
    done
done
grep -E '^host-(poll|irq),.*,(throughput_MBps|rtt_p50_us),' "$scratch/bench0"

# A peer killed mid-transfer: once the first bytes arrived, SIGKILL to the sender or the
# receiver (started directly, so $! is minivmm-ivc itself); the survivor's own --timeout
# bounds its wait. The sender reads a sparse 4 GiB file: far more than 64 MiB of rings.
truncate -s 4G "$scratch/zeros"
kill_mid_transfer() { # victim(send|recv) [--irq]
    local victim=$1 mode=${2:-}
    : >"$scratch/kill.out"
    "$MINIVMM_IVC" recv ivc any $mode --timeout 20 >"$scratch/kill.out" 2>"$scratch/kill.recv" &
    local receiver=$!
    "$MINIVMM_IVC" send ivc any $mode --timeout 20 <"$scratch/zeros" 2>"$scratch/kill.send" &
    local sender=$!
    for _ in $(seq 100); do
        [ "$(stat -c %s "$scratch/kill.out")" -gt 0 ] && break
        sleep 0.1
    done
    [ "$(stat -c %s "$scratch/kill.out")" -gt 0 ] || fail "no bytes moved before the kill"
    local victim_pid=$receiver survivor=$sender survivor_log=$scratch/kill.send
    if [ "$victim" = send ]; then
        victim_pid=$sender survivor=$receiver survivor_log=$scratch/kill.recv
    fi
    kill -KILL "$victim_pid"
    wait "$survivor"
    expect_status 1 $? "the other side after the $victim side was killed ${mode:-(polled)}"
    expect_contains "$(cat "$survivor_log")" "Connection reset by peer" \
        "the other side sees ECONNRESET when the $victim side dies ${mode:-(polled)}"
    wait "$victim_pid" 2>/dev/null
}
kill_mid_transfer recv
kill_mid_transfer send
kill_mid_transfer recv --irq
kill_mid_transfer send --irq
finish
