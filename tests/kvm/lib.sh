# Shared by the tiny-guest tests (tests/kvm/*.sh): source it after tests/lib/test-lib.sh.
# shellcheck shell=bash

TINY_DIR=$MINIVMM_BUILD_DIR/tests/kvm
TINY_CSV=$MINIVMM_BUILD_DIR/bench/kvm-tiny.csv
TINY_CSV_HEADER=channel,vmm,peer_vmm,direction,size_bytes,metric,value,unit

# Runs the calling script where a KVM with VT-x/AMD-V is: this machine's /dev/kvm, else the
# emulated KVM host. A paravirtual /dev/kvm (PVM) is not relied on: on the one these
# machines had in December 2026, the guests' user-mode port I/O faulted (#GP on `in`).
# Sets TINY_KVM_PATH (direct or emulated) and says it. Call as: tiny_enter TIMEOUT "$@".
tiny_enter() {
    local timeout=$1
    shift
    [ -f "$TINY_DIR/portio.elf" ] || die "tiny guests not built ($TINY_DIR): cmake --build build"
    if [ "${MINIVMM_IN_KVM_HOST:-0}" = 1 ]; then
        TINY_KVM_PATH=emulated
    else
        TINY_KVM_PATH=$("$MINIVMM_SOURCE_DIR/tests/kvm-host/kvm-mode.sh")
        if [ "$TINY_KVM_PATH" != direct ] || [ "${MINIVMM_KVM_PATH:-}" = emulated ]; then
            require_kvm_path
            echo "$test_name: no VT-x/AMD-V here (kvm-mode: $TINY_KVM_PATH): running inside the emulated KVM host" >&2
            rerun_self_in_kvm_host "$timeout" "$@"
        fi
    fi
    case $TINY_KVM_PATH in
    direct) echo "$test_name: on this machine's /dev/kvm (VT-x/AMD-V): native speed" ;;
    emulated) echo "$test_name: inside the emulated KVM host (nested kvm_amd in QEMU TCG): NOT native speed, numbers only compare within this run" ;;
    esac
}

# Runs a tiny guest: tiny_run ELF "tiny.KEY=VALUE ..." [minivmm args...]. Sets tiny_status,
# tiny_out (the guest's console) and tiny_log (minivmm's --verbose messages).
tiny_run() {
    local elf=$1 params=$2
    shift 2
    local log
    log=$(mktemp)
    tiny_out=$("$MINIVMM" --verbose --mem 64M --kernel "$TINY_DIR/$elf" --append "$params" "$@" \
        </dev/null 2>"$log")
    tiny_status=$?
    tiny_log=$(cat "$log")
    rm -f "$log"
}

# The guest's "RESULT ..." line's value of KEY (leading zeros dropped).
tiny_result() { # output key
    sed -n "s/.*RESULT .* $2=0*\([0-9][0-9]*\).*/\1/p" <<<"$1" | head -n 1
}

# From minivmm --verbose: "exits to the VMM: port I/O N (M items), MMIO K".
tiny_exits() { # log io|items|mmio
    local re='exits to the VMM: port I/O ([0-9]+) \(([0-9]+) items\), MMIO ([0-9]+)'
    [[ $1 =~ $re ]] || return 1
    case $2 in
    io) echo "${BASH_REMATCH[1]}" ;;
    items) echo "${BASH_REMATCH[2]}" ;;
    mmio) echo "${BASH_REMATCH[3]}" ;;
    esac
}

# From minivmm --verbose: "time in the VMM on those exits: port I/O N ns, MMIO K ns".
tiny_vmm_ns() { # log io|mmio
    local re='time in the VMM on those exits: port I/O ([0-9]+) ns, MMIO ([0-9]+) ns'
    [[ $1 =~ $re ]] || return 1
    case $2 in
    io) echo "${BASH_REMATCH[1]}" ;;
    mmio) echo "${BASH_REMATCH[2]}" ;;
    esac
}

# Requires the guest's pass status; on failure shows its console and minivmm's messages.
tiny_expect_pass() { # what
    if [ "$tiny_status" -eq 32 ]; then
        pass "$1: guest reported success (status 32)"
        return 0
    fi
    fail "$1: exit status $tiny_status, expected 32 (33: the guest's check failed, 34: CPU exception, 70: crash)"
    echo "--- guest console:" >&2
    echo "$tiny_out" >&2
    echo "--- minivmm:" >&2
    tail -n 20 <<<"$tiny_log" >&2
    return 1
}

# Appends one row to build/bench/kvm-tiny.csv (header written on first use); vmm is
# minivmm, and the KVM path (direct or emulated) goes into kvm-tiny.kvm-path.
tiny_csv() { # channel peer_vmm direction size_bytes metric value unit
    mkdir -p "$(dirname "$TINY_CSV")"
    [ -s "$TINY_CSV" ] || echo "$TINY_CSV_HEADER" >"$TINY_CSV"
    local vmm=minivmm
    [ "$1" = host ] && vmm=host
    echo "$1,$vmm,$2,$3,$4,$5,$6,$7" >>"$TINY_CSV"
    echo "$TINY_KVM_PATH" >"${TINY_CSV%.csv}.kvm-path"
}

# a / b with the given decimals (awk: bash has only integers).
tiny_div() { # a b decimals
    awk -v a="$1" -v b="$2" -v d="$3" 'BEGIN { if (b == 0) print "nan"; else printf "%.*f\n", d, a / b }'
}

# A private runtime folder (tests/lib/test-lib.sh) for the test's --shm groups, removed at exit.
tiny_private_groups() {
    use_private_runtime_dir
    trap 'rm -rf "$XDG_RUNTIME_DIR"' EXIT
}

# Runs two tiny guests in one --shm group: role 0 first, role 1 once role 0 has printed its
# ": peer N" line (so it holds peer ID 0 and started the broker). Sets pair_status[0..1] and
# pair_out[0..1] (console and minivmm's messages).
tiny_pair() { # elf params shm-option timeout-seconds
    local elf=$1 params=$2 shm=$3 timeout=$4 dir role
    dir=$(mktemp -d)
    local pids=()
    for role in 0 1; do
        timeout "$timeout" "$MINIVMM" --mem 64M --kernel "$TINY_DIR/$elf" \
            --append "$params tiny.role=$role" "$shm" </dev/null >"$dir/out$role" 2>&1 &
        pids[role]=$!
        [ "$role" = 1 ] || wait_for_text "$dir/out0" ": peer " 60 ||
            echo "$test_name: the first guest did not start within 60 s" >&2
    done
    for role in 0 1; do
        wait "${pids[role]}"
        pair_status[role]=$?
        pair_out[role]=$(cat "$dir/out$role")
    done
    rm -rf "$dir"
}

# Requires both guests of a pair to pass; on failure shows their output.
tiny_expect_pair_pass() { # what
    local role ok=0
    for role in 0 1; do
        if [ "${pair_status[role]}" -eq 32 ]; then
            pass "$1: guest $role reported success (status 32)"
        else
            fail "$1: guest $role exit status ${pair_status[role]}, expected 32 (33: its check failed, 34: CPU exception, 124: timed out)"
            echo "--- guest $role:" >&2
            tail -n 20 <<<"${pair_out[role]}" >&2
            ok=1
        fi
    done
    return $ok
}
