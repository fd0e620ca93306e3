#!/usr/bin/env bash
# Load and churn: 8 VMs in one --shm group for at least 3 minutes (MINIVMM_CHURN_SECONDS,
# default 180): two Linux guests (shm-churn) that live through it all, and six tiny guests
# (tests/kvm/guest/churn.c; eight Linux guests are too heavy for the emulated KVM host)
# that are SIGKILLed and restarted at random, one or two at a time, so at least six VMs are
# in the group throughout. Every VM publishes messages into its own region of the shared
# memory and rings every other VM's doorbell; every VM verifies every byte it reads
# (guest-apps/shm_churn.h). At the end: every survivor verified its messages with no
# mismatch, the broker's peer list equals the live VMs, and the broker's fds, the Linux VMs'
# fds and the runtime folder's files are what they were before the churn (same 8 members).
. "$(dirname "${BASH_SOURCE[0]}")/../lib/test-lib.sh"
require_guest_image
TINY_ELF=$MINIVMM_BUILD_DIR/tests/kvm/churn.elf
[ -f "$TINY_ELF" ] || die "tiny guests not built ($TINY_ELF): cmake --build build"
run_self_with_kvm 900 "$@"
start_vm_group_test

CHURN_SECONDS=${MINIVMM_CHURN_SECONDS:-180}
GROUP=churn
SHM=--shm=$GROUP,size=4M,vectors=1
TINY_APPEND="tiny.shm=4M tiny.period_ms=500 tiny.report_ms=5000"
TINY_SLOTS=6
RUNTIME=$XDG_RUNTIME_DIR/minivmm
mkdir "$logs/killed" # logs of killed VMs, kept out of finish()'s console dump
started=0 killed=0 killed_bytes=0 killed_doorbells=0

# The first line of LOG matching the sed expression's capture, carriage returns dropped.
log_value() { # log sed-expression
    tr -d '\r' <"$1" | sed -n "$2" | head -n 1
}

# KEY's value in a tiny guest's RESULT line.
result_value() { # line key
    sed -n "s/.* $2=\([0-9]*\).*/\1/p" <<<"$1"
}

# The last whole RESULT line of KIND (progress, final) in a tiny guest's log.
tiny_last_result() { # log kind
    grep -E "^RESULT churn-$2 peer=[0-9]+ .* mismatches=0$" "$1" | tail -n 1
}

broker_pid() {
    "$MINIVMM" --shm-list | sed -n "s/^$GROUP size=.* broker_pid=\([0-9]*\) .*/\1/p"
}

# "ID:pid=PID" for each member, sorted, as the broker's status file lists them.
broker_peers() {
    "$MINIVMM" --shm-list | sed -n "s/^$GROUP size=.*\[\(.*\)\]$/\1/p" | tr ' ' '\n' | sort
}

# The same list built from the VMs this script runs and the peer IDs their guests printed.
live_peers() {
    local i id
    {
        for i in a b; do
            id=$(log_value "$logs/linux-$i" 's/^shm-churn: peer \([0-9]*\) started.*/\1/p')
            echo "$id:pid=${linux_pid[$i]}"
        done
        for i in $(seq 0 $((TINY_SLOTS - 1))); do
            id=$(log_value "${tiny_log[i]}" 's/^churn: peer \([0-9]*\),.*/\1/p')
            echo "$id:pid=${tiny_pid[i]}"
        done
    } | sort
}

check_peer_list() { # when
    local listed expected
    listed=$(broker_peers)
    expected=$(live_peers)
    if [ -n "$listed" ] && [ "$listed" = "$expected" ]; then
        pass "$1: the broker lists exactly the 8 live VMs ($(tr '\n' ' ' <<<"$listed"))"
    else
        fail "$1: the broker lists [$(tr '\n' ' ' <<<"$listed")], the live VMs are [$(tr '\n' ' ' <<<"$expected")]"
    fi
}

# fd targets of a process, with numbers stripped (pipe:[123] -> pipe), counted by kind.
fd_kinds() { # pid
    local fd
    for fd in /proc/"$1"/fd/*; do
        readlink "$fd"
    done | sed 's/:\[[0-9]*\]$//; s/^anon_inode:\[\(.*\)\]$/anon_inode:\1/' | sort | uniq -c |
        awk '{ printf "%s %s, ", $1, $2 }'
}

fd_count() { # pid
    find /proc/"$1"/fd -mindepth 1 -maxdepth 1 2>/dev/null | wc -l
}

runtime_files() {
    (cd "$RUNTIME" && ls -A) 2>/dev/null | tr '\n' ' '
}

start_linux() { # a|b
    "$MINIVMM" "$SHM" --append "minivmm.run=shm-churn,--seconds,1500,--report-s,30" \
        </dev/null >"$logs/linux-$1" 2>&1 &
    linux_pid[$1]=$!
    started=$((started + 1))
    wait_for_userspace "$logs/linux-$1" "${linux_pid[$1]}" ||
        die "Linux guest $1 did not reach userspace"
    wait_for_text "$logs/linux-$1" "shm-churn: peer " 120 "${linux_pid[$1]}" ||
        die "Linux guest $1's shm-churn did not start"
    echo "$test_name: Linux guest $1 (pid ${linux_pid[$1]}): $(log_value "$logs/linux-$1" '/^shm-churn: peer/p')"
}

start_tiny() { # slot
    local slot=$1
    tiny_log[slot]=$logs/tiny$slot-$started
    "$MINIVMM" --mem 64M --kernel "$TINY_ELF" --append "$TINY_APPEND" "$SHM" </dev/null \
        >"${tiny_log[slot]}" 2>&1 &
    tiny_pid[slot]=$!
    started=$((started + 1))
    wait_for_text "${tiny_log[slot]}" "churn: peer " 60 "${tiny_pid[slot]}" && return 0
    local why="no output within 60 s"
    if ! kill -0 "${tiny_pid[slot]}" 2>/dev/null; then
        wait "${tiny_pid[slot]}"
        why="minivmm ended with status $? before its guest printed"
    fi
    echo "--- $(basename "${tiny_log[slot]}"):" >&2
    cat "${tiny_log[slot]}" >&2
    echo "--- the group: $("$MINIVMM" --shm-list)" >&2
    if [ "${MINIVMM_IN_KVM_HOST:-0}" = 1 ]; then
        echo "--- the emulated host's kernel log:" >&2
        dmesg | tail -n 20 >&2
    fi
    die "tiny guest in slot $slot (pid ${tiny_pid[slot]}) did not start: $why"
}

kill_tiny() { # slot
    local slot=$1 status line
    if ! kill -0 "${tiny_pid[slot]}" 2>/dev/null; then
        wait "${tiny_pid[slot]}"
        status=$?
        fail "tiny guest in slot $slot ended by itself (status $status): $(grep -m1 FAIL "${tiny_log[slot]}")"
    else
        kill -KILL "${tiny_pid[slot]}"
        wait "${tiny_pid[slot]}" 2>/dev/null
        killed=$((killed + 1))
    fi
    if grep -q "FAIL" "${tiny_log[slot]}"; then
        fail "tiny guest in slot $slot: $(grep -m1 FAIL "${tiny_log[slot]}")"
    fi
    # What it verified and rang up to its last report counts too; the rest died with it.
    line=$(tiny_last_result "${tiny_log[slot]}" progress)
    if [ -n "$line" ]; then
        killed_bytes=$((killed_bytes + $(result_value "$line" verified_bytes)))
        killed_doorbells=$((killed_doorbells + $(result_value "$line" doorbells)))
    fi
    mv "${tiny_log[slot]}" "$logs/killed/"
}

# Every tiny guest has reported progress at least once: it joined, set up its interrupt
# and exchanged messages, so the group is at rest with all 8 members.
wait_all_tiny_reporting() {
    local slot
    for slot in $(seq 0 $((TINY_SLOTS - 1))); do
        wait_for_text "${tiny_log[slot]}" "RESULT churn-progress" 60 "${tiny_pid[slot]}" ||
            die "tiny guest in slot $slot (pid ${tiny_pid[slot]}) never reported progress"
    done
}

begin=$SECONDS
declare -A linux_pid linux_fds_before
start_linux a
start_linux b
for slot in $(seq 0 $((TINY_SLOTS - 1))); do
    start_tiny "$slot"
done
wait_all_tiny_reporting
broker=$(broker_pid)
[ -n "$broker" ] || die "no broker for group $GROUP in --shm-list: $("$MINIVMM" --shm-list)"
check_peer_list "before the churn"
broker_fds_before=$(fd_count "$broker")
broker_kinds_before=$(fd_kinds "$broker")
files_before=$(runtime_files)
for i in a b; do
    linux_fds_before[$i]=$(fd_count "${linux_pid[$i]}")
done
echo "$test_name: 8 VMs up after $((SECONDS - begin)) s; broker (pid $broker) holds" \
    "$broker_fds_before fds ($broker_kinds_before); runtime folder: $files_before"

churn_start=$SECONDS
while [ $((SECONDS - churn_start)) -lt "$CHURN_SECONDS" ]; do
    sleep $((10 + RANDOM % 11))
    for i in a b; do
        kill -0 "${linux_pid[$i]}" 2>/dev/null || die "Linux guest $i ended during the churn"
    done
    # One or two distinct slots: with two gone, 6 VMs stay in the group.
    victims=($((RANDOM % TINY_SLOTS)))
    if [ $((RANDOM % 2)) = 1 ]; then
        victims+=($(((victims[0] + 1 + RANDOM % (TINY_SLOTS - 1)) % TINY_SLOTS)))
    fi
    for slot in "${victims[@]}"; do
        kill_tiny "$slot"
    done
    # Restarted in a random order, so the lowest free IDs go to either slot.
    [ ${#victims[@]} = 2 ] && [ $((RANDOM % 2)) = 1 ] && victims=("${victims[1]}" "${victims[0]}")
    for slot in "${victims[@]}"; do
        start_tiny "$slot"
    done
    echo "$test_name: at $((SECONDS - churn_start)) s killed and restarted slot(s) ${victims[*]};" \
        "$killed killed so far"
done
churn_time=$((SECONDS - churn_start))
wait_all_tiny_reporting
echo "$test_name: churn over after $churn_time s"

check_peer_list "after the churn"
broker_fds_after=$(fd_count "$broker")
if [ "$broker_fds_after" = "$broker_fds_before" ]; then
    pass "the broker holds $broker_fds_after fds, as before the churn"
else
    fail "the broker holds $broker_fds_after fds ($(fd_kinds "$broker")), $broker_fds_before before the churn ($broker_kinds_before)"
fi
for i in a b; do
    after=$(fd_count "${linux_pid[$i]}")
    if [ "$after" = "${linux_fds_before[$i]}" ]; then
        pass "Linux guest $i's minivmm holds $after fds, as before the churn"
    else
        fail "Linux guest $i's minivmm holds $after fds ($(fd_kinds "${linux_pid[$i]}")), ${linux_fds_before[$i]} before the churn"
    fi
done
files_after=$(runtime_files)
if [ "$files_after" = "$files_before" ]; then
    pass "the runtime folder holds the same files as before the churn: $files_after"
else
    fail "the runtime folder holds '$files_after', before the churn '$files_before'"
fi

# The stopper (a 9th peer, briefly) sets the group's stop word: each VM ends its run with a
# last pass over the others' regions and reports.
"$MINIVMM" --mem 64M --kernel "$TINY_ELF" --append "$TINY_APPEND tiny.stop=1" "$SHM" </dev/null \
    >"$logs/stopper" 2>&1 &
stopper=$!
wait_vm "$stopper" 60
expect_status 32 $? "the stopper set the stop word"

total_bytes=$killed_bytes total_doorbells=$killed_doorbells
for slot in $(seq 0 $((TINY_SLOTS - 1))); do
    wait_vm "${tiny_pid[slot]}" 60
    expect_status 32 $? "surviving tiny guest in slot $slot stopped"
    line=$(tiny_last_result "${tiny_log[slot]}" final)
    bytes=$(result_value "$line" verified_bytes)
    if [ -n "$line" ] && [ "${bytes:-0}" -gt 0 ]; then
        pass "surviving tiny guest in slot $slot: 0 mismatches, $bytes bytes verified"
        total_bytes=$((total_bytes + bytes))
        total_doorbells=$((total_doorbells + $(result_value "$line" doorbells)))
    else
        fail "surviving tiny guest in slot $slot: no final report with 0 mismatches and bytes verified: $(grep -m1 -E 'FAIL|RESULT churn-final' "${tiny_log[slot]}")"
    fi
done
ok_re='shm-churn: OK after [0-9]+ s \(the group.s stop word\): verified ([0-9]+) bytes in [0-9]+ messages from ([0-9]+) incarnations, rang ([0-9]+) doorbells, 0 mismatches'
for i in a b; do
    wait_vm "${linux_pid[$i]}" 120
    expect_status 0 $? "Linux guest $i's shm-churn"
    line=$(tr -d '\r' <"$logs/linux-$i" | grep -E "$ok_re")
    if [[ $line =~ $ok_re ]] && [ "${BASH_REMATCH[1]}" -gt 0 ]; then
        pass "Linux guest $i: ${line#shm-churn: }"
        total_bytes=$((total_bytes + BASH_REMATCH[1]))
        total_doorbells=$((total_doorbells + BASH_REMATCH[3]))
        # Every other VM that ever ran (the other Linux guest, every tiny boot) was read.
        if [ "${BASH_REMATCH[2]}" -eq $((started - 1)) ]; then
            pass "Linux guest $i read messages of all $((started - 1)) other VM boots"
        else
            fail "Linux guest $i read messages of ${BASH_REMATCH[2]} VM boots, $((started - 1)) others ran"
        fi
    else
        fail "Linux guest $i did not end with its OK line: $(tr -d '\r' <"$logs/linux-$i" | grep -m1 -E 'shm-churn: (FAIL|OK)')"
    fi
done

# The last member gone, the broker exits and takes its files with it.
for _ in $(seq 1 60); do
    kill -0 "$broker" 2>/dev/null || break
    sleep 0.5
done
if kill -0 "$broker" 2>/dev/null; then
    fail "the broker (pid $broker) still runs after every VM ended"
elif [ -n "$(runtime_files)" ]; then
    fail "the broker is gone but left files in the runtime folder: $(runtime_files)"
else
    pass "the broker exited after the last VM and left the runtime folder empty"
fi

echo "churn: VMs started $started, VMs killed $killed, doorbells rung $total_doorbells," \
    "bytes verified $total_bytes (in $((SECONDS - begin)) s, $churn_time s of churn)"
finish
