# Counting what guest operations cost in VM exits (source it after test-lib.sh). Two
# instruments, read at the same moments:
#  - minivmm's own --stats (KVM's binary statistics of its VM, plus the exits KVM_RUN
#    returned to minivmm), asked for with SIGUSR1: the minivmm-stats line on its stderr;
#  - the KVM host's per-VM debugfs statistics (/sys/kernel/debug/kvm/PID-FD/NAME), which
#    count every VMM the same way, QEMU included.
# A guest marks the edges of an operation by printing "exit-budget: mark NAME" on its
# console and then sleeping a few seconds, so the snapshot lands while it is idle. The
# counts between two marks are the operation's, plus one marker line of console output,
# which a calibration window (two marks with nothing between) measures.
# shellcheck shell=bash

# What the cost tables show, in this order.
EXIT_COUNT_STATS="exits io_exits mmio_exits insn_emulation halt_exits irq_injections pf_taken pf_fixed"

# The KVM host's debugfs statistics of the VMs that process PID holds, summed, as
# "name=value ..." for EXIT_COUNT_STATS; returns 1 where debugfs shows no VM of PID.
kvm_debugfs_counts() { # pid
    local dirs=(/sys/kernel/debug/kvm/"$1"-*/) name dir line='' sum
    [ -d "${dirs[0]}" ] || return 1
    for name in $EXIT_COUNT_STATS; do
        sum=0
        for dir in "${dirs[@]}"; do
            sum=$((sum + $(cat "$dir/$name" 2>/dev/null || echo 0)))
        done
        line+="${line:+ }$name=$sum"
    done
    echo "$line"
}

# Asks minivmm (PID, console and stderr in LOG) for its --stats and prints the new
# minivmm-stats line; returns 1 when none came within 30 s.
minivmm_stats_counts() { # pid log
    local before deadline=$((SECONDS + 30)) now
    before=$(grep -c '^minivmm-stats: event=sigusr1' "$2")
    kill -USR1 "$1" || return 1
    while :; do
        now=$(grep -c '^minivmm-stats: event=sigusr1' "$2")
        [ "$now" -gt "$before" ] && break
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.1
    done
    grep '^minivmm-stats: event=sigusr1' "$2" | tail -n1 | cut -d' ' -f2-
}

# The value of NAME in a "name=value ..." line (empty when absent).
count_of() { # line name
    local word
    for word in $1; do
        [ "${word%%=*}" = "$2" ] && { echo "${word#*=}"; return; }
    done
}

# NAME's growth from line BEFORE to line AFTER.
count_delta() { # before after name
    echo $(($(count_of "$2" "$3") - $(count_of "$1" "$3")))
}

# What the large of two runs costs beyond the small one: NAME's growth from SMALL to LARGE
# minus its growth from BEFORE to SMALL (three snapshot lines, each run ending at a mark).
count_marginal() { # before small large name
    echo $(($(count_delta "$2" "$3" "$4") - $(count_delta "$1" "$2" "$4")))
}

# x / n with two decimals, for "per operation" figures.
per_op() { # x n
    awk -v x="$1" -v n="$2" 'BEGIN { printf "%.2f", n ? x / n : 0 }'
}
