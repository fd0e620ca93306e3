#!/usr/bin/env bash
# Shared-memory benchmark: minivmm against QEMU (ivshmem-doorbell joined to minivmm's
# broker), the same guest image and programs, in one KVM environment (directly on
# VT-x/AMD-V, else one emulated-host run), so the numbers compare with each other:
#   - the physical limits of that host first (tests/bench/host-limits.c: memcpy bandwidth
#     for each size, eventfd round trip between two processes);
#   - doorbell round trip (shm-pingpong: guest ioctl, ioeventfd, eventfd, irqfd, MSI,
#     interrupt, wake-up, and back), minivmm<->minivmm, QEMU<->QEMU, minivmm<->QEMU;
#   - throughput of a transfer of each size each way at once, polled and interrupt-driven
#     (shm-ring), minivmm<->minivmm and QEMU<->QEMU.
# One pair of VMs runs every size in turn (and the ping-pong before the interrupt-driven
# transfers): a guest boot costs far more than a transfer in the emulated host.
# Settings (MINIVMM_* variables, which with-kvm.sh passes into the emulated host):
# MINIVMM_BENCH_SIZES (default "4K 2M 1G"), MINIVMM_BENCH_PINGS (round trips, default
# 2000), MINIVMM_BENCH_REPS (memcpy repetitions, default 5), MINIVMM_BENCH_GUEST_CSV (extra guest
# command run by both VMs of each pair after shm-ring, whose "--- ivc-bench csv begin ---"
# block is collected).
# Prints a table with ratios; writes CSV rows (bench-lib.sh) to $MINIVMM_BUILD_DIR/bench/
# shm.csv, the raw round trips to shm-samples.csv, and the host's limits to
# host-limits-<where>.csv and host-limits-<where>-samples.csv.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/test-lib.sh"
. "$MINIVMM_SOURCE_DIR/tests/lib/bench-lib.sh"
require_guest_image
require_command qemu-system-x86_64
host_limits=$MINIVMM_BUILD_DIR/tests/host-limits
[ -x "$host_limits" ] || skip "no $host_limits: build the project first"
run_self_with_kvm 1800 "$@"
start_vm_group_test

read -ra sizes <<<"${MINIVMM_BENCH_SIZES:-4K 2M 1G}"
count=${MINIVMM_BENCH_PINGS:-2000}
reps=${MINIVMM_BENCH_REPS:-5}
where=$(bench_env_label)
csv=$BENCH_DIR/shm.csv
samples=$BENCH_DIR/shm-samples.csv
echo "shm benchmark: $(uname -r), $(nproc) CPUs, ${MINIVMM_IN_KVM_HOST:+emulated KVM host (absolute times are those of an emulator), }sizes ${sizes[*]} each way, $count round trips, against $(bench_qemu_version)"

# The limits first, while no VM competes for the CPUs; and what this host is.
{
    echo "${where}_kernel=$(uname -r)"
    echo "${where}_cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') x $(nproc)"
    echo "${where}_memory=$(awk '/^MemTotal/ { printf "%d MiB", $2 / 1024 }' /proc/meminfo)"
} >"$BENCH_DIR/env-$where.txt"
csv_start "$BENCH_DIR/host-limits-$where.csv"
csv_start "$BENCH_DIR/host-limits-$where-samples.csv"
"$host_limits" --env "$where" --sizes "$(IFS=,; echo "${sizes[*]}")" --reps "$reps" \
    --samples "$BENCH_DIR/host-limits-$where-samples.csv" | tail -n +2 >>"$BENCH_DIR/host-limits-$where.csv" ||
    fail "host-limits failed"
csv_start "$csv"
csv_start "$samples"

minivmm_vm() { # group log run-list
    "$MINIVMM" --shm="$1" --append "quiet minivmm.run=$3" >"$logs/$2" 2>&1 </dev/null &
}
qemu_vm() { # group log run-list
    qemu_guest "quiet minivmm.run=$3" \
        -chardev socket,path="$XDG_RUNTIME_DIR/minivmm/$1.sock",id=c \
        -device ivshmem-doorbell,chardev=c,vectors=2 >"$logs/$2" 2>&1 &
}
# Starts the second VM once the first reached userspace (see wait_for_text), then waits.
pair() { # group log-a log-b kind-a kind-b run-a run-b
    "$4"_vm "$1" "$2" "$6"
    local a=$!
    wait_for_text "$logs/$2" "init: running" 300 || fail "$2 never reached userspace"
    "$5"_vm "$1" "$3" "$7"
    local b=$!
    wait "$a" "$b"
}
# QEMU cannot start a group; an idle minivmm (peer 0) holds it open for the QEMU pairs,
# which join one after the other as peers 1 and 2 (shm-ring's handshake ignores what an
# earlier pair left in the memory).
group_holder() { # group
    minivmm_vm "$1" "holder-$1" "sleep,1700"
    holder=$!
    wait_for_text "$logs/holder-$1" "init: running" 300 || fail "the holder of $1 never reached userspace"
}

rings() { # options: one shm-ring command per size
    local size
    for size in "${sizes[@]}"; do echo "shm-ring --timeout 300 $1 both $size"; done
}
readarray -t poll_a < <(rings "")
readarray -t irq_a < <(rings "--irq")
ping=("shm-pingpong ping --count $count --timeout 300 --csv")
pong=("shm-pingpong pong --timeout 300")
extra=(${MINIVMM_BENCH_GUEST_CSV:+"$MINIVMM_BENCH_GUEST_CSV"})
# Each side of a pair runs the same sequence; QEMU's device has no presence bitmap, so
# its pairs name the peer.
run() { guest_run_list 2 "$@" "${extra[@]}"; }
with_peer() { # peer commands...: adds --peer to each
    local peer=$1
    shift
    printf '%s\n' "${@/ --timeout/ --peer $peer --timeout}"
}

pair mm-poll mm-poll-a mm-poll-b minivmm minivmm "$(run "${poll_a[@]}")" "$(run "${poll_a[@]}")"
pair mm-irq mm-irq-a mm-irq-b minivmm minivmm "$(run "${ping[@]}" "${irq_a[@]}")" \
    "$(run "${pong[@]}" "${irq_a[@]}")"
group_holder qq
readarray -t qq_poll_a < <(with_peer 2 "${poll_a[@]}")
readarray -t qq_poll_b < <(with_peer 1 "${poll_a[@]}")
readarray -t qq_irq_a < <(with_peer 2 "${ping[@]}" "${irq_a[@]}")
readarray -t qq_irq_b < <(with_peer 1 "${pong[@]}" "${irq_a[@]}")
pair qq qq-poll-a qq-poll-b qemu qemu "$(run "${qq_poll_a[@]}")" "$(run "${qq_poll_b[@]}")"
pair qq qq-irq-a qq-irq-b qemu qemu "$(run "${qq_irq_a[@]}")" "$(run "${qq_irq_b[@]}")"
kill "$holder" 2>/dev/null
# QEMU (peer 1) <-> minivmm (peer 0): the doorbell round trip across the two VMMs. QEMU
# pings: minivmm's driver refuses to ring a peer that has not joined yet, QEMU's device
# drops the ring, so the side that starts first must be the one that only answers.
pair mq mq-pong mq-ping minivmm qemu "$(run "$(with_peer 1 "${pong[@]}")")" \
    "$(run "$(with_peer 0 "${ping[@]}")")"

# Rows from side A of a pair (the lower peer ID: ring 0 carries A's bytes to B).
ring_rows() { # log channel vmm peer_vmm
    local oks
    oks=$(grep -c "shm-ring: OK" "$logs/$1")
    [ "$oks" -eq ${#sizes[@]} ] || { fail "$1: $oks of ${#sizes[@]} transfers succeeded:"; grep -v '^\[' "$logs/$1" | tail -5 >&2; return; }
    # "shm-ring: sent|received N bytes in T s: X MB/s, ..." then "shm-ring: OK ... (sent N, ...) ..., X MB/s"
    tr -d '\r' <"$logs/$1" | awk -v ch="$2" -v vmm="$3" -v peer="$4" -v OFS=, '
        /^shm-ring: sent [0-9]+ bytes in/ { v = $8; sub(/,$/, "", v); print ch, vmm, peer, "a_to_b", $3, "throughput_MBps", v, "MB/s" }
        /^shm-ring: received [0-9]+ bytes in/ { v = $8; sub(/,$/, "", v); print ch, vmm, peer, "b_to_a", $3, "throughput_MBps", v, "MB/s" }
        /^shm-ring: OK / { n = $0; sub(/.*\(sent /, "", n); sub(/,.*/, "", n)
                          v = $0; sub(/ MB\/s.*/, "", v); sub(/.* /, "", v)
                          print ch, vmm, peer, "both", n, "throughput_MBps", v, "MB/s" }' >>"$csv"
}
ping_rows() { # log vmm peer_vmm
    local counts
    counts=$(collect_csv_block "$logs/$1" shm-pingpong "$2" "$3" "$csv" "$samples") ||
        { fail "$1: no shm-pingpong CSV block:"; grep -v '^\[' "$logs/$1" | tail -5 >&2; return; }
    # A kernel message on the console can land inside the block: those lines are left out.
    [ "${counts#* }" = 0 ] || echo "note: $1: ${counts#* } line(s) of the CSV block left out" >&2
    grep -q "^shm-irq,$2,$3,round_trip,0,rtt_p50_us," "$csv" || fail "$1: no round-trip row"
}
extra_rows() { # log vmm peer_vmm
    [ ${#extra[@]} -eq 0 ] && return
    collect_csv_block "$logs/$1" ivc-bench "$2" "$3" "$csv" "$samples" >/dev/null ||
        fail "$1: no ivc-bench CSV block"
}
ring_rows mm-poll-a shm-poll minivmm minivmm
ring_rows mm-irq-a shm-irq minivmm minivmm
ring_rows qq-poll-a shm-poll qemu qemu
ring_rows qq-irq-a shm-irq qemu qemu
ping_rows mm-irq-a minivmm minivmm
ping_rows qq-irq-a qemu qemu
ping_rows mq-ping qemu minivmm
extra_rows mm-poll-a minivmm minivmm
extra_rows mm-irq-a minivmm minivmm
extra_rows qq-poll-a qemu qemu
extra_rows qq-irq-a qemu qemu
for log in mm-poll-b mm-irq-b qq-poll-b qq-irq-b; do
    [ "$(grep -c "shm-ring: OK" "$logs/$log")" -eq ${#sizes[@]} ] || fail "$log: not every transfer succeeded"
done

# The table: minivmm against QEMU and the host, from the rows just written.
echo
cat "$csv" "$BENCH_DIR/host-limits-$where.csv" | awk -F, '
    { v[$1 "," $2 "," $3 "," $4 "," $5 "," $6] = $7 }
    function r(a, b) { return (a != "" && b != "" && b != 0) ? sprintf("%.2f", a / b) : "-" }
    END {
        printf "%-8s %-9s %-11s %12s %12s %12s %10s %11s\n", "channel", "direction", "size", "minivmm", "QEMU", "host", "mv/QEMU", "mv/host"
        for (k in v) {
            split(k, f, ",")
            if (f[2] != "minivmm" || f[3] != "minivmm" || f[6] == "rtt_sample_us") continue
            q = v[f[1] ",qemu,qemu," f[4] "," f[5] "," f[6]]
            h = (f[6] == "throughput_MBps") ? v["host,'"$where"','"$where"',local," f[5] "," f[6]] : v["host,'"$where"','"$where"',round_trip,8," f[6]]
            printf "%-8s %-9s %-11s %12s %12s %12s %10s %11s  %s\n", f[1], f[4], f[5], v[k], q, h, r(v[k], q), r(v[k], h), f[6]
        }
    }' | sort
echo "(throughput in MB/s, both = the two directions together; round trips in us, lower is better; host = memcpy or eventfd on $where)"
echo "wrote $csv, $samples, $BENCH_DIR/host-limits-$where.csv"
finish
