#!/usr/bin/env bash
# Shared-memory benchmark: minivmm against QEMU (ivshmem-doorbell joined to minivmm's
# broker), the same guest image and programs, in one KVM environment (directly on
# VT-x/AMD-V, else one emulated-host run), so the numbers compare with each other:
#   - doorbell round trip (shm-pingpong: guest ioctl, ioeventfd, eventfd, irqfd, MSI,
#     interrupt, wake-up, and back), minivmm<->minivmm, QEMU<->QEMU, minivmm<->QEMU;
#   - throughput of a 64 MiB transfer each way at once, polled and interrupt-driven
#     (shm-ring), minivmm<->minivmm and QEMU<->QEMU.
# Prints a table with ratios; writes $MINIVMM_BUILD_DIR/bench/shm.json.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/test-lib.sh"
require_guest_image
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not installed"
run_self_with_kvm 1800 "$@"
use_private_runtime_dir

bytes=${SHM_BENCH_BYTES:-64M}
count=${SHM_BENCH_PINGS:-2000}
out_dir=$MINIVMM_BUILD_DIR/bench
logs=$(mktemp -d)
mkdir -p "$out_dir"
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$logs" "$XDG_RUNTIME_DIR"' EXIT
echo "shm benchmark: $(uname -r), $(nproc) CPUs, ${MINIVMM_IN_KVM_HOST:+emulated KVM host (absolute times are those of an emulator), }$bytes each way, $count round trips"

minivmm_vm() { # group log run-list
    "$MINIVMM" --shm="$1" --append "quiet minivmm.run=$3" >"$logs/$2" 2>&1 </dev/null &
}
qemu_vm() { # group log run-list
    qemu_guest "quiet minivmm.run=$3" \
        -chardev socket,path="$XDG_RUNTIME_DIR/minivmm/$1.sock",id=c \
        -device ivshmem-doorbell,chardev=c,vectors=2 >"$logs/$2" 2>&1 &
}
# QEMU cannot start a group; an idle minivmm (peer 0) holds it open for the QEMU pair.
holders=()
group_holder() { # group
    minivmm_vm "$1" "holder-$1" "sleep,900"
    holders+=($!)
    local deadline=$((SECONDS + 120))
    until [ -S "$XDG_RUNTIME_DIR/minivmm/$1.sock" ] && grep -q "peer=0" "$XDG_RUNTIME_DIR/minivmm/$1.group" 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || { fail "group $1 never started"; break; }
        sleep 0.2
    done
}
field() { # log regex: the first number after the regex on the OK line
    grep -oE "$2 [0-9.]+" "$logs/$1" | head -1 | awk '{print $NF}'
}
pair() { # group log-a log-b kind-a kind-b run-a run-b
    "$4"_vm "$1" "$2" "$6"
    local a=$!
    sleep 1
    "$5"_vm "$1" "$3" "$7"
    local b=$!
    wait "$a" "$b"
}

# minivmm <-> minivmm (peers 0 and 1)
pair mm-ping mm-ping mm-pong minivmm minivmm "shm-pingpong,ping,--count,$count" "shm-pingpong,pong"
pair mm-poll mm-poll-a mm-poll-b minivmm minivmm "shm-ring,both,$bytes" "shm-ring,both,$bytes"
pair mm-irq mm-irq-a mm-irq-b minivmm minivmm "shm-ring,--irq,both,$bytes" "shm-ring,--irq,both,$bytes"

# QEMU <-> QEMU (peers 1 and 2, the holder is 0)
for g in qq-ping qq-poll qq-irq; do group_holder $g; done
pair qq-ping qq-ping qq-pong qemu qemu "shm-pingpong,ping,--peer,2,--count,$count" "shm-pingpong,pong,--peer,1"
pair qq-poll qq-poll-a qq-poll-b qemu qemu "shm-ring,--peer,2,both,$bytes" "shm-ring,--peer,1,both,$bytes"
pair qq-irq qq-irq-a qq-irq-b qemu qemu "shm-ring,--irq,--peer,2,both,$bytes" "shm-ring,--irq,--peer,1,both,$bytes"

# minivmm (peer 0) <-> QEMU (peer 1)
pair mq-ping mq-ping mq-pong minivmm qemu "shm-pingpong,ping,--peer,1,--count,$count" "shm-pingpong,pong,--peer,0"
kill "${holders[@]}" 2>/dev/null

for log in mm-ping mm-poll-a mm-irq-a qq-ping qq-poll-a qq-irq-a mq-ping; do
    grep -qE "shm-(pingpong|ring): OK" "$logs/$log" || { fail "$log did not succeed:"; grep -v '^\[' "$logs/$log" | tail -5 >&2; }
done
[ "$failures" -eq 0 ] || finish

mm_p50=$(field mm-ping "p50") mm_p99=$(field mm-ping "p99")
qq_p50=$(field qq-ping "p50") qq_p99=$(field qq-ping "p99")
mq_p50=$(field mq-ping "p50") mq_p99=$(field mq-ping "p99")
mm_poll=$(grep -oE "[0-9.]+ MB/s, polled" "$logs/mm-poll-a" | awk '{print $1}')
qq_poll=$(grep -oE "[0-9.]+ MB/s, polled" "$logs/qq-poll-a" | awk '{print $1}')
mm_irq=$(grep -oE "[0-9.]+ MB/s, irq" "$logs/mm-irq-a" | awk '{print $1}')
qq_irq=$(grep -oE "[0-9.]+ MB/s, irq" "$logs/qq-irq-a" | awk '{print $1}')
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

printf '\n%-34s %12s %12s %12s\n' "" "minivmm" "QEMU" "minivmm/QEMU"
printf '%-34s %9s us %9s us %12s\n' "doorbell round trip p50" "$mm_p50" "$qq_p50" "$(ratio "$mm_p50" "$qq_p50")"
printf '%-34s %9s us %9s us %12s\n' "doorbell round trip p99" "$mm_p99" "$qq_p99" "$(ratio "$mm_p99" "$qq_p99")"
printf '%-34s %7s MB/s %7s MB/s %12s\n' "polled ring, $bytes each way" "$mm_poll" "$qq_poll" "$(ratio "$mm_poll" "$qq_poll")"
printf '%-34s %7s MB/s %7s MB/s %12s\n' "interrupt ring, $bytes each way" "$mm_irq" "$qq_irq" "$(ratio "$mm_irq" "$qq_irq")"
printf '%-34s p50 %s us, p99 %s us\n' "minivmm <-> QEMU round trip" "$mq_p50" "$mq_p99"
echo "(throughput: both directions together, as shm-ring reports it; lower is better for round trips)"

cat >"$out_dir/shm.json" <<JSON
{
  "benchmark": "shm",
  "date": "$(date -u +%FT%TZ)",
  "environment": "$([ "${MINIVMM_IN_KVM_HOST:-0}" = 1 ] && echo emulated-kvm-host || echo direct-kvm)",
  "bytes_each_way": "$bytes",
  "round_trips": $count,
  "doorbell_rtt_us": { "minivmm": { "p50": $mm_p50, "p99": $mm_p99 }, "qemu": { "p50": $qq_p50, "p99": $qq_p99 },
                       "minivmm_qemu": { "p50": $mq_p50, "p99": $mq_p99 } },
  "polled_mb_s": { "minivmm": $mm_poll, "qemu": $qq_poll },
  "irq_mb_s": { "minivmm": $mm_irq, "qemu": $qq_irq }
}
JSON
echo "wrote $out_dir/shm.json"
finish
