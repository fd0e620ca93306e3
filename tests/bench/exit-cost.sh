#!/usr/bin/env bash
# The cost table: what each inter-VM operation costs in VM exits, minivmm against QEMU, in
# one KVM environment (directly on VT-x/AMD-V, else one emulated-host run). Counts, not
# times: they are what hardware pays for, and the emulator does not change them.
#
# A pair of minivmm VMs (--shm=cost,portio=on) and a pair of QEMU VMs (ivshmem-doorbell on
# a group held by an idle minivmm) run the same guest sequence, tests/bench/exit-cost/ops.sh:
# doorbell round trips (shm-pingpong), 64-byte messages polled and interrupt-driven
# (ivc-bench: each is one echoed round trip plus one streamed message), 1 MiB polled and
# interrupt-driven (shm-ring), and on minivmm a port I/O byte and a 4 KiB page
# (portio-xfer). Each runs small and large between marks; the KVM host's per-VM debugfs
# counters (tests/lib/exit-count.sh) are read at every mark for every VM, and minivmm's
# own --stats too, which must agree. Large minus small, per operation and per VM (the mean
# of the pair), is the table; boot is the count from VM creation to /init's first mark.
#
# Writes $MINIVMM_BUILD_DIR/bench/exit-cost.csv (bench-lib.sh's columns: channel "cost",
# direction = the operation, metric = the statistic, unit "count_per_<unit>") and
# exit-cost.md (the table, for the report).
. "$(dirname "${BASH_SOURCE[0]}")/../lib/test-lib.sh"
. "$MINIVMM_SOURCE_DIR/tests/lib/bench-lib.sh"
. "$MINIVMM_SOURCE_DIR/tests/lib/exit-count.sh"
require_guest_image
require_command qemu-system-x86_64
run_self_with_kvm 1800 "$@"
start_vm_group_test

csv=$BENCH_DIR/exit-cost.csv
table=$BENCH_DIR/exit-cost.md
initrd=$(initrd_with_folder "$MINIVMM_SOURCE_DIR/tests/bench/exit-cost")
[ -d /sys/kernel/debug/kvm ] || die "no /sys/kernel/debug/kvm: the KVM host's counters are the instrument (mount debugfs)"
echo "exit-cost benchmark: $(uname -r), $(nproc) CPUs, ${MINIVMM_IN_KVM_HOST:+emulated KVM host, }against $(bench_qemu_version)"

# operation small-mark large-mark mark-before units-between unit
ops=(
    "doorbell doorbell-500 doorbell-1500 start 1000 round_trip"
    "msg64-poll msg64-shm-poll-200 msg64-shm-poll-600 doorbell-1500 400 message"
    "msg64-irq msg64-shm-irq-200 msg64-shm-irq-600 msg64-shm-poll-600 400 message"
    "mib-poll mib-poll-1 mib-poll-17 msg64-shm-irq-600 16 MiB"
    "mib-irq mib-irq-1 mib-irq-9 mib-poll-17 8 MiB"
    "portio-byte portio-byte-256 portio-byte-768 mib-irq-9 512 byte"
    "portio-page portio-page-8K portio-page-24K portio-byte-768 4 page"
)
marks_common=(start doorbell-500 doorbell-1500 msg64-shm-poll-200 msg64-shm-poll-600
    msg64-shm-irq-200 msg64-shm-irq-600 mib-poll-1 mib-poll-17 mib-irq-1 mib-irq-9)
marks_portio=(portio-byte-256 portio-byte-768 portio-page-8K portio-page-24K)

declare -A counts stats boot_s
# The process that holds the VM: minivmm itself, or qemu-system under qemu_guest's subshell.
vm_process() { # pid
    local child
    [ "$(cat "/proc/$1/comm" 2>/dev/null)" = bash ] || { echo "$1"; return; }
    for _ in $(seq 50); do
        child=$(pgrep -P "$1" qemu-system | head -n1)
        [ -n "$child" ] && { echo "$child"; return; }
        sleep 0.2
    done
    echo "$1"
}

# Runs one pair and counts at the driver's marks. vmm: minivmm or qemu.
run_pair() { # vmm
    # responder/driver: the processes that hold the VMs (counted); *_job: what to wait for.
    local vmm=$1 responder driver responder_job driver_job t0 marks=("${marks_common[@]}") role pid mark
    if [ "$vmm" = minivmm ]; then
        marks+=("${marks_portio[@]}")
        t0=$SECONDS
        "$MINIVMM" --stats --shm=cost,portio=on --initrd "$initrd" \
            --append "quiet minivmm.run=sh,/exit-cost/ops.sh,responder,1,yes" \
            >"$logs/minivmm-responder" 2>&1 </dev/null &
        responder=$! responder_job=$!
        wait_for_userspace "$logs/minivmm-responder" "$responder" ||
            die "minivmm responder never reached userspace"
        boot_s[minivmm]=$((SECONDS - t0))
        "$MINIVMM" --stats --shm=cost,portio=on --initrd "$initrd" \
            --append "quiet minivmm.run=sh,/exit-cost/ops.sh,driver,0,yes" \
            >"$logs/minivmm-driver" 2>&1 </dev/null &
        driver=$! driver_job=$!
    else
        # QEMU cannot start a group: an idle minivmm (peer 0) holds it; QEMU VMs are 1 and 2.
        "$MINIVMM" --shm=qq --append "quiet minivmm.run=sleep,1700" >"$logs/holder" 2>&1 </dev/null &
        holder=$!
        wait_for_userspace "$logs/holder" "$holder" || die "the group holder never reached userspace"
        t0=$SECONDS
        qemu_guest "quiet minivmm.run=sh,/exit-cost/ops.sh,responder,2,no" -initrd "$initrd" \
            -chardev socket,path="$XDG_RUNTIME_DIR/minivmm/qq.sock",id=c \
            -device ivshmem-doorbell,chardev=c,vectors=2 >"$logs/qemu-responder" 2>&1 &
        responder_job=$!
        responder=$(vm_process $!)
        wait_for_userspace "$logs/qemu-responder" "$responder" ||
            die "QEMU responder never reached userspace"
        boot_s[qemu]=$((SECONDS - t0))
        qemu_guest "quiet minivmm.run=sh,/exit-cost/ops.sh,driver,1,no" -initrd "$initrd" \
            -chardev socket,path="$XDG_RUNTIME_DIR/minivmm/qq.sock",id=c \
            -device ivshmem-doorbell,chardev=c,vectors=2 >"$logs/qemu-driver" 2>&1 &
        driver_job=$!
        driver=$(vm_process $!)
    fi
    echo "exit-cost: $vmm pair started (responder $responder, driver $driver)"
    for mark in "${marks[@]}"; do
        wait_for_text "$logs/$vmm-driver" "exit-cost: mark $mark" 400 "$driver" "$responder" ||
            die "$vmm: the driver never reached mark $mark"
        for role in driver responder; do
            pid=${!role}
            counts[$vmm.$role.$mark]=$(kvm_debugfs_counts "$pid") ||
                die "$vmm $role: no debugfs counters for process $pid"
            if [ "$vmm" = minivmm ]; then
                stats[$vmm.$role.$mark]=$(minivmm_stats_counts "$pid" "$logs/$vmm-$role") ||
                    die "minivmm $role: no --stats line after SIGUSR1"
            fi
        done
        echo "exit-cost: $vmm at mark $mark ($((SECONDS - t0)) s)"
    done
    wait_vm "$driver_job" 600
    local driver_status=$?
    wait_vm "$responder_job" 600
    local responder_status=$?
    # QEMU ends with 2 * status + 1 (isa-debug-exit).
    local ok=0
    [ "$vmm" = qemu ] && ok=1
    expect_status "$ok" "$driver_status" "$vmm driver VM"
    expect_status "$ok" "$responder_status" "$vmm responder VM"
    expect_lacks "$(cat "$logs/$vmm-driver" "$logs/$vmm-responder")" " failed: " \
        "$vmm: every operation succeeded"
    [ "$vmm" = qemu ] && kill "$holder" 2>/dev/null
}

run_pair minivmm
run_pair qemu

# Per VM (the mean of driver and responder), large window minus small window, per unit.
# prints the value, or "-" where the operation did not run on that VMM.
cost() { # vmm op stat [instrument: counts (debugfs, default) or stats (minivmm's --stats)]
    local -n source=${4:-counts}
    local spec name small large before n unit role total=0
    for spec in "${ops[@]}"; do
        read -r name small large before n unit <<<"$spec"
        [ "$name" = "$2" ] && break
    done
    [ -n "${source[$1.driver.$large]:-}" ] || { echo -; return; }
    [ -n "$(count_of "${source[$1.driver.$large]}" "$3")" ] || { echo -; return; }
    for role in driver responder; do
        total=$((total + $(count_marginal "${source[$1.$role.$before]}" \
            "${source[$1.$role.$small]}" "${source[$1.$role.$large]}" "$3")))
    done
    awk -v t="$total" -v n="$n" 'BEGIN { printf "%.2f", t / n / 2 }'
}
ratio() { # a b
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'
}

csv_start "$csv"
columns="exits mmio_exits insn_emulation halt_exits irq_injections"
{
    echo "| operation, per VM | exits minivmm | exits QEMU | ratio | userspace MMIO minivmm | userspace MMIO QEMU | emulated minivmm | emulated QEMU | ratio | halts minivmm | halts QEMU | injections minivmm | injections QEMU | minivmm's userspace port + MMIO (--stats) |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    for spec in "${ops[@]}"; do
        read -r name _ _ _ n unit <<<"$spec"
        line="| $name, per $unit"
        for stat in $columns; do
            m=$(cost minivmm "$name" "$stat")
            q=$(cost qemu "$name" "$stat")
            for vmm in minivmm qemu; do
                v=$m
                [ $vmm = qemu ] && v=$q
                [ "$v" = - ] || csv_row "$csv" cost "$vmm" "$vmm" "$name" 0 "$stat" "$v" "count_per_$unit"
            done
            line+=" | $m | $q"
            case $stat in exits | insn_emulation) line+=" | $(ratio "$m" "$q")" ;; esac
        done
        u=$(awk -v a="$(cost minivmm "$name" userspace_io_exits stats)" \
            -v b="$(cost minivmm "$name" userspace_mmio_exits stats)" \
            'BEGIN { if (a == "-" || b == "-") print "-"; else printf "%.2f", a + b }')
        [ "$u" = - ] || csv_row "$csv" cost minivmm minivmm "$name" 0 userspace_exits "$u" "count_per_$unit"
        echo "$line | $u |"
    done
    line="| boot to /init's first mark"
    for stat in $columns; do
        m=$(count_of "${counts[minivmm.driver.start]}" "$stat")
        q=$(count_of "${counts[qemu.driver.start]}" "$stat")
        csv_row "$csv" cost minivmm minivmm boot 0 "$stat" "$m" count_per_boot
        csv_row "$csv" cost qemu qemu boot 0 "$stat" "$q" count_per_boot
        line+=" | $m | $q"
        case $stat in exits | insn_emulation) line+=" | $(ratio "$m" "$q")" ;; esac
    done
    u_io=$(count_of "${stats[minivmm.driver.start]}" userspace_io_exits)
    u_mmio=$(count_of "${stats[minivmm.driver.start]}" userspace_mmio_exits)
    u=-
    if [ -n "$u_io" ] && [ -n "$u_mmio" ]; then
        u=$((u_io + u_mmio))
        csv_row "$csv" cost minivmm minivmm boot 0 userspace_exits "$u" count_per_boot
    fi
    echo "$line | $u |"
} >"$table"
csv_row "$csv" cost minivmm minivmm boot 0 wall_s "${boot_s[minivmm]}" s
csv_row "$csv" cost qemu qemu boot 0 wall_s "${boot_s[qemu]}" s
echo
cat "$table"
echo "(large run minus small run, per operation and per VM, the mean of the pair's two VMs;"
echo " userspace: KVM's mmio_exits, the MMIO exits it hands to the VMM; boot wall clock to"
echo " userspace: minivmm ${boot_s[minivmm]} s, QEMU ${boot_s[qemu]} s, ratio $(ratio "${boot_s[minivmm]}" "${boot_s[qemu]}"))"

# minivmm's own --stats read the same counters a moment apart: they must agree, and its
# count of exits to its userspace must be what the table says (port exits included).
for role in driver responder; do
    worst=0
    for mark in "${marks_common[@]}" "${marks_portio[@]}"; do
        ours=$(count_of "${stats[minivmm.$role.$mark]}" exits)
        host=$(count_of "${counts[minivmm.$role.$mark]}" exits)
        gap=$((host - ours))
        [ "$gap" -lt 0 ] && gap=$((-gap))
        [ "$gap" -gt "$worst" ] && worst=$gap
    done
    [ "$worst" -le 300 ] && pass "minivmm $role: --stats and debugfs agree within $worst exits at every mark" ||
        fail "minivmm $role: --stats and debugfs differ by up to $worst exits"
done
echo "wrote $csv and $table"
finish
