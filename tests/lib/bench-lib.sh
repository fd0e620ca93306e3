# Shared by the benchmarks under tests/bench/ (source it after test-lib.sh): the CSV
# contract and the guest-side glue. Every benchmark writes rows of
#   channel,vmm,peer_vmm,direction,size_bytes,metric,value,unit
# into $MINIVMM_BUILD_DIR/bench/*.csv (raw latency samples, metric rtt_sample_us, into
# *-samples.csv); scripts/report-render.py documents the metrics it knows.
# shellcheck shell=bash

BENCH_CSV_HEADER=channel,vmm,peer_vmm,direction,size_bytes,metric,value,unit
BENCH_DIR=$MINIVMM_BUILD_DIR/bench

# Where this process runs, as the host rows' vmm column names it.
bench_env_label() {
    if [ "${MINIVMM_IN_KVM_HOST:-0}" = 1 ]; then echo emulated-host; else echo build-machine; fi
}

# The QEMU that the benchmarks compare with, as "QEMU 7.2.22": every result names it.
# shellcheck source=configs/guest-image/lib.sh
. "$MINIVMM_SOURCE_DIR/configs/guest-image/lib.sh"
bench_qemu_version() {
    echo "QEMU $(minivmm_qemu_version)"
}

csv_start() { # file: (re)starts it with the header
    mkdir -p "$(dirname "$1")"
    echo "$BENCH_CSV_HEADER" >"$1"
}

csv_row() { # file channel vmm peer_vmm direction size_bytes metric value unit
    local file=$1
    shift
    [ $# -eq 8 ] && [ -n "$7" ] || { echo "csv_row: bad row: $*" >&2; return 1; }
    (IFS=,; echo "$*") >>"$file"
}

# The value of minivmm.run= that makes the default guest's /init run each shell command
# in turn, stopping at the first failure, with PAUSE seconds between them (so two VMs
# running the same sequence finish one step on both sides before the next one starts).
# /init splits minivmm.run on commas and the kernel command line splits on spaces, so the
# commands go through `sh -c` with every space written as ${IFS}; a command holding a
# comma, a quote or a backslash is refused.
guest_run_list() { # pause command...
    local pause=$1 script='' cmd
    shift
    for cmd in "$@"; do
        case $cmd in *[,\'\"\\]*)
            echo "guest_run_list: cannot pass '$cmd' on the kernel command line" >&2
            return 1 ;;
        esac
        script+=${script:+ && sleep $pause && }$cmd
    done
    # shellcheck disable=SC2016 # ${IFS} is for the guest's shell
    echo "sh,-c,${script// /'${IFS}'}"
}

# Copies the CSV block a guest program printed on the console between
# "--- NAME csv begin ---" and "--- NAME csv end ---" (ivc-bench, shm-pingpong --csv)
# into SUMMARY, and its rtt_sample_us rows into SAMPLES. The guest cannot know which VMM
# runs it, so the vmm and peer_vmm columns are set here. Header lines are dropped; a row
# without exactly 8 cells, or with a cell holding anything but [A-Za-z0-9_.+/%-], is counted
# and left out. Prints "ROWS BAD"; returns 1 when there was no complete block.
collect_csv_block() { # log name vmm peer_vmm summary samples
    local result
    result=$(tr -d '\r' <"$1" | awk -F, -v OFS=, -v name="$2" -v vmm="$3" -v peer="$4" \
        -v summary="$5" -v samples="$6" -v header="$BENCH_CSV_HEADER" '
        $0 == "--- " name " csv begin ---" { inside = 1; next }
        $0 == "--- " name " csv end ---" { if (inside) ended = 1; inside = 0; next }
        !inside { next }
        $0 == header { next }
        {
            ok = NF == 8
            for (i = 1; ok && i <= NF; i++) ok = $i ~ /^[A-Za-z0-9_.+%\/-]+$/
            if (!ok) { bad++; print "left out: " $0 >"/dev/stderr"; next }
            $2 = vmm; $3 = peer
            if ($6 == "rtt_sample_us") print >>samples; else print >>summary
            rows++
        }
        END { printf "%d %d %d\n", rows, bad, ended }')
    echo "${result% *}"
    [ "${result##* }" = 1 ]
}
