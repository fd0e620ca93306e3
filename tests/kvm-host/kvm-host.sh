#!/bin/bash
# Usage: kvm-host.sh [--timeout SEC] [--mem MB] [--cpus N] [--quiet] -- COMMAND [ARGS...]
#
# Runs COMMAND inside the emulated KVM host: QEMU's TCG emulator with an AMD EPYC CPU
# (which has AMD-V), booting the Debian kernel with kvm-amd loaded, so /dev/kvm is a real
# KVM that can boot Linux guests. The build machines' own /dev/kvm cannot (see
# the project's shared docs/kvm-hosts.md, and README.md here).
#
# Inside, the build machine's root is mounted read-only and chrooted into, with the
# repository (and the build folder, and the cwd when it lies under /tmp, /run or
# /dev/shm) mounted read-write over their own paths. COMMAND runs in the caller's cwd
# with the caller's PATH, HOME, TERM, locale, CI and MINIVMM_* variables, plus
# MINIVMM_IN_KVM_HOST=1.
#
# Exit status: COMMAND's own; 124 when --timeout expired; 125 when the host VM failed
# (no status came back: its console log is then printed and kept); 123 when it failed
# because the host VM's own kernel crashed (an oops or panic in its log: nested SVM under
# TCG is not flawless, see README.md) or never reached COMMAND (a hung boot, after
# MINIVMM_KVM_HOST_BOOT_TIMEOUT seconds, default 180), which callers may treat as the
# environment's fault.
# stdout/stderr: COMMAND's, as they happen. When stdin is a terminal, COMMAND gets it as
# its controlling terminal (stdout and stderr then share it; Ctrl-A x kills QEMU). When
# stdin is not a terminal, QEMU never reads it, and COMMAND's stdin is empty.
#
# Environment: MINIVMM_BUILD_DIR (default <repo>/build) holds the cached kernel,
# initramfs and per-run folders; MINIVMM_KVM_HOST_KEEP=1 keeps the per-run folder
# (console.log: the host kernel's log); MINIVMM_KVM_HOST_APPEND adds host kernel
# parameters (e.g. loglevel=7).
set -euo pipefail

here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=configs/guest-image/lib.sh
source "$here/../../configs/guest-image/lib.sh"

# Every failure of this script itself (bad usage, apt, building the initramfs) is 125,
# like timeout(1) and env(1) do, so it cannot pass for a status of COMMAND.
minivmm_die_status=125
trap 'exit 125' ERR

usage() {
    sed -n '2p' "${BASH_SOURCE[0]}" | sed 's/^# //' >&2
    exit "$1"
}

timeout_s=0 mem_mb=4096 cpus=2 quiet=0
while (($# > 0)); do
    case $1 in
    --timeout) timeout_s=${2:?}; shift 2 ;;
    --timeout=*) timeout_s=${1#*=}; shift ;;
    --mem) mem_mb=${2:?}; shift 2 ;;
    --mem=*) mem_mb=${1#*=}; shift ;;
    --cpus) cpus=${2:?}; shift 2 ;;
    --cpus=*) cpus=${1#*=}; shift ;;
    --quiet) quiet=1; shift ;; # with-kvm.sh prints its own line instead
    --) shift; break ;;
    -h | --help) usage 0 ;;
    -*) printf 'kvm-host.sh: unknown option %s\n' "$1" >&2; usage 125 ;;
    *) break ;;
    esac
done
(($# > 0)) || usage 125
[[ $timeout_s =~ ^[0-9]+$ && $mem_mb =~ ^[0-9]+$ && $cpus =~ ^[1-9][0-9]*$ ]] ||
    minivmm_die "kvm-host.sh: --timeout, --mem and --cpus take whole numbers"
boot_timeout_s=${MINIVMM_KVM_HOST_BOOT_TIMEOUT:-180}
hang_timeout_s=${MINIVMM_KVM_HOST_HANG_TIMEOUT:-120}
[[ $boot_timeout_s =~ ^[1-9][0-9]*$ && $hang_timeout_s =~ ^[1-9][0-9]*$ ]] ||
    minivmm_die "kvm-host.sh: MINIVMM_KVM_HOST_BOOT_TIMEOUT and _HANG_TIMEOUT take whole seconds"

# --- Build (or reuse) the host VM's kernel and initramfs ------------------------------

# busybox-static is the initramfs. QEMU: scripts/install-deps.sh installs Debian 12's 7.2,
# the emulator this host was counted reliable on (tests/kvm-host/README.md).
minivmm_require_packages busybox-static cpio xz-utils
qemu_version=$(minivmm_qemu_version)
[[ -n $qemu_version ]] || minivmm_die "kvm-host.sh: qemu-system-x86_64 not found: run scripts/install-deps.sh"
[[ $qemu_version == 7.2.* ]] ||
    printf 'minivmm: kvm-host: warning: QEMU %s; the emulated host was counted reliable on QEMU 7.2 only (tests/kvm-host/README.md)\n' \
        "$qemu_version" >&2
kernel_tree=$("$MINIVMM_REPO_DIR/configs/guest-image/fetch-kernel.sh")
release=$(<"$kernel_tree/kernel-version")
vmlinuz=$kernel_tree/boot/vmlinuz-$release
moddir=$kernel_tree/lib/modules/$release

state=$MINIVMM_BUILD_DIR/kvm-host
mkdir -p -- "$state/runs"
initramfs=$state/initramfs-$release.cpio.gz

# Modules to load, each with its parameters; modules.dep adds their dependencies
# (irqbypass, ccp, kvm; virtio*, netfs, fscache, 9pnet).
# npt=0: kvm_amd shadows the guests' page tables instead of using the emulated CPU's nested
# paging. With NPT, TCG's nested paging let guests triple-fault and the host kernel crash
# whenever several VMs ran (QEMU 7.2: guest.shm_faults failed 5 runs of 5; QEMU 10: 3 of
# 4, triple faults and a hung host); with shadow paging on QEMU 7.2, 35 runs of the
# multi-VM tests had no fault. MINIVMM_KVM_AMD_PARAMS adds or overrides parameters.
wanted_modules=("kvm-amd nested=1 npt=0 ${MINIVMM_KVM_AMD_PARAMS:-}" "virtio_pci" "9pnet_virtio" "9p")

# Writes load-order into DIR and copies the modules there: each module's dependencies
# first, as modprobe would (modules.dep lists them deepest last).
stage_modules() {
    local dir=$1 entry name params line dep i
    local -A seen=()
    local -a deps
    for entry in "${wanted_modules[@]}"; do
        read -r name params <<<"$entry"
        line=$(grep -E "/${name}\.ko(\.[a-z]+)?:" "$moddir/modules.dep") ||
            minivmm_die "module $name not in $moddir/modules.dep"
        read -r -a deps <<<"${line#*:}"
        for ((i = ${#deps[@]} - 1; i >= -1; i--)); do
            if ((i >= 0)); then dep=${deps[i]}; else dep=${line%%:*}; fi
            [[ -n ${seen[$dep]:-} ]] && continue
            seen[$dep]=1
            [[ $dep == *.ko ]] || minivmm_die "compressed module $dep: busybox insmod needs plain .ko"
            cp -- "$moddir/$dep" "$dir/modules/"
            if ((i >= 0)); then
                printf '%s\n' "${dep##*/}"
            else
                printf '%s %s\n' "${dep##*/}" "$params"
            fi >>"$dir/modules/load-order"
        done
    done
}

build_initramfs() {
    local stage applet
    stage=$(mktemp -d "$state/.initramfs.XXXXXX")
    mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,mnt,modules}
    cp /bin/busybox "$stage/bin/busybox"
    for applet in $(/bin/busybox --list-full); do
        [[ -e $stage/$applet ]] || ln -s /bin/busybox "$stage/$applet"
    done
    cp "$here/host-init" "$stage/init"
    chmod 755 "$stage/init"
    stage_modules "$stage"
    (cd -- "$stage" && find . -mindepth 1 | LC_ALL=C sort |
        cpio --quiet -o -H newc --owner=0:0 | gzip -1) >"$stage.cpio.gz"
    mv -- "$stage.cpio.gz" "$initramfs"
    rm -rf -- "$stage"
}

# The kernel decompressing itself costs seconds under TCG at every start. The Debian
# kernel has a PVH entry point (CONFIG_PVH), so QEMU boots the plain ELF vmlinux directly:
# take it out of the bzImage once (xz stream). Any other format: boot the bzImage.
extract_vmlinux() {
    local offset
    offset=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$vmlinuz" | head -n1 | cut -d: -f1) || true
    [[ -n $offset ]] || return 1
    # Not a pipe: xz stops at the end of the stream, and tail's SIGPIPE would fail it.
    xz -dc --single-stream < <(tail -c "+$((offset + 1))" "$vmlinuz") >"$1.tmp" 2>/dev/null ||
        return 1
    [[ $(head -c 4 "$1.tmp" | od -An -tx1 | tr -d ' \n') == 7f454c46 ]] || return 1
    mv -- "$1.tmp" "$1"
}

# Rebuilt only when one of its inputs changes; the lock keeps concurrent first runs apart.
stamp=$(
    cat "$here/host-init" /bin/busybox | sha256sum
    printf '%s\n' "$release" "${wanted_modules[@]}" "$(declare -f stage_modules build_initramfs)"
)
exec {lock_fd}>"$state/.lock"
flock "$lock_fd"
if [[ ! -f $initramfs || ! -f $initramfs.stamp || $(<"$initramfs.stamp") != "$stamp" ]]; then
    build_initramfs
    printf '%s\n' "$stamp" >"$initramfs.stamp"
fi
boot_kernel=$state/vmlinux-$release
if [[ ! -s $boot_kernel ]]; then
    # A kernel that has no xz-compressed ELF inside is marked, not tried again each run.
    if [[ -e $boot_kernel.none ]] || ! extract_vmlinux "$boot_kernel"; then
        rm -f -- "$boot_kernel.tmp"
        touch -- "$boot_kernel.none"
        boot_kernel=$vmlinuz
    fi
fi
flock -u "$lock_fd"

# --- The per-run folder ----------------------------------------------------------------

# Concurrent runs each get their own; share/ is what the host VM sees (mount tag run).
# Folders left by failed or killed runs go after a day.
find "$state/runs" -mindepth 1 -maxdepth 1 -mmin +1440 -exec rm -rf -- {} + 2>/dev/null || true
run=$(mktemp -d "$state/runs/run.XXXXXX")
mkdir "$run/share"

readers=() saved_tty=''
qemu_pid='' qemu_rc='' host_failed=0
# shellcheck disable=SC2317 # reached through the traps
cleanup() {
    local rc=$? f
    trap - EXIT INT TERM HUP
    if [[ -n $qemu_pid ]] && kill -0 "$qemu_pid" 2>/dev/null; then
        kill -TERM "$qemu_pid" 2>/dev/null || true
        wait "$qemu_pid" 2>/dev/null || true
    fi
    # A reader still blocked in open() (QEMU died before opening its FIFO) is released by
    # a writer that comes and goes; one that already has its data just reads to EOF.
    for f in "$run/stdout" "$run/stderr"; do
        if [[ -p $f ]]; then
            exec {fd}<>"$f"
            exec {fd}>&-
        fi
    done
    ((${#readers[@]} == 0)) || wait "${readers[@]}" 2>/dev/null || true
    [[ -z $saved_tty ]] || stty "$saved_tty" 2>/dev/null || true
    if ((host_failed)); then
        printf 'minivmm: kvm-host: the host VM failed (QEMU exit status %s); kept %s\n' \
            "${qemu_rc:-?}" "$run" >&2
        # TCG lists the EPYC features it does not emulate on every start: not the cause.
        tail -n 20 "$run/console.log" "$run/qemu.log" 2>/dev/null |
            grep -v "TCG doesn't support requested feature" >&2 || true
    elif [[ -z ${MINIVMM_KVM_HOST_KEEP:-} ]]; then
        rm -rf -- "$run"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# Read-write folders: the repository, the build folder if it lies elsewhere, and the
# cwd if it lies under one of the tmpfs mounts the host VM puts over the read-only root.
cwd=$(pwd -P)
build_dir=$(minivmm_abspath "$MINIVMM_BUILD_DIR")
shares=("$MINIVMM_REPO_DIR")
covered() {
    local s
    for s in "${shares[@]}"; do
        [[ $1 == "$s" || $1 == "$s"/* ]] && return 0
    done
    return 1
}
covered "$build_dir" || shares+=("$build_dir")
if ! covered "$cwd" && [[ $cwd =~ ^/(tmp|run|dev/shm|var/tmp)(/|$) ]]; then
    shares+=("$cwd")
fi
# Parents before children, so a child's mount is not hidden by its parent's.
mapfile -t shares < <(printf '%s\n' "${shares[@]}" | awk '{ print length($0) "\t" $0 }' |
    sort -n | cut -f2-)

# POSIX-quoted, for the busybox sh that sources config.
shq() {
    printf "'%s'" "${1//\'/\'\\\'\'}"
}

tty=0 rows='' cols=''
if [[ -t 0 ]]; then
    tty=1
    # Not `< <(stty size)`: a process substitution's stdin is /dev/null, not the terminal.
    size=$(stty size 2>/dev/null) || size=''
    read -r rows cols <<<"$size" || true
    [[ $rows != 0 ]] || rows='' cols='' # a terminal that does not know its size
fi
{
    printf 'KVMHOST_TTY=%s\n' "$tty"
    printf 'KVMHOST_SHARES=%s\n' "${#shares[@]}"
    for i in "${!shares[@]}"; do
        printf 'KVMHOST_SHARE_%s=%s\n' "$i" "$(shq "${shares[i]}")"
    done
} >"$run/share/config"

# The caller's relevant environment, and nothing of the host VM init's.
env_args=(MINIVMM_IN_KVM_HOST=1)
while IFS= read -r name; do
    case $name in
    PATH | HOME | TERM | USER | LOGNAME | SHELL | LANG | LANGUAGE | TZ | CI | LC_* | MINIVMM_*)
        env_args+=("$name=${!name}") ;;
    esac
done < <(compgen -e)
{
    printf '# Generated by kvm-host.sh; run by bash inside the emulated host chroot.\n'
    printf 'cd -- %q || { echo "minivmm: kvm-host: cannot cd to %q in the emulated host" >&2; exit 125; }\n' "$cwd" "$cwd"
    # shellcheck disable=SC2016 # expanded by the bash that runs cmd.sh
    printf 'for v in $(compgen -e); do unset "$v"; done\n'
    # Here, not in host-init: a serial port forgets its window size when it is closed.
    [[ -z $rows ]] || printf '/bin/stty rows %s cols %s\n' "$rows" "$cols"
    printf 'export'
    printf ' %q' "${env_args[@]}"
    printf '\nexec'
    printf ' %q' "$@"
    printf '\n'
} >"$run/share/cmd.sh"

# --- Run QEMU ----------------------------------------------------------------------------

p9=security_model=none,multidevs=remap
# shellcheck disable=SC2054 # commas inside QEMU option values, not array separators
qemu=(qemu-system-x86_64 -nodefaults -no-user-config -display none -no-reboot
    -accel tcg,thread=multi -cpu EPYC -smp "$cpus" -m "$mem_mb"
    -kernel "$boot_kernel" -initrd "$initramfs"
    -append "console=ttyS1 quiet printk.time=1 panic=-1 ${MINIVMM_KVM_HOST_APPEND:-}"
    -virtfs "local,path=$run/share,mount_tag=run,$p9"
    -virtfs "local,path=/,mount_tag=hostroot,readonly=on,$p9")
for i in "${!shares[@]}"; do
    qemu+=(-virtfs "local,path=${shares[i]},mount_tag=rw$i,$p9")
done

if ((tty)); then
    # QEMU owns the terminal (raw mode) like -nographic; signal=off sends ^C to the guest.
    saved_tty=$(stty -g)
    # shellcheck disable=SC2054
    qemu+=(-chardev stdio,id=con,mux=on,signal=off -serial chardev:con -mon chardev=con
        -serial "file:$run/console.log" -serial null)
else
    # QEMU writes into FIFOs that it opened itself, never into our stdout/stderr: its
    # stdio chardev would make them non-blocking and read stdin.
    mkfifo "$run/stdout" "$run/stderr"
    cat "$run/stdout" &
    readers+=($!)
    cat "$run/stderr" >&2 &
    readers+=($!)
    qemu+=(-chardev "file,id=out,path=$run/stdout" -serial chardev:out
        -serial "file:$run/console.log"
        -chardev "file,id=err,path=$run/stderr" -serial chardev:err)
fi


((quiet)) || printf 'minivmm: running in the emulated KVM host (QEMU %s TCG, -cpu EPYC, kvm_amd, Linux %s)\n' \
    "$qemu_version" "$release" >&2

# timeout gives 124; --foreground keeps QEMU in the terminal's process group (it may read
# it); the parent-death signals take QEMU down with this script even on SIGKILL.
# exec: the background subshell becomes timeout, so this script is its parent.
run_qemu() {
    exec setpriv --pdeathsig TERM timeout --foreground -k 10 "$timeout_s" \
        setpriv --pdeathsig TERM "${qemu[@]}"
}
if ((tty)); then
    # Explicitly the terminal: bash gives background jobs /dev/null otherwise.
    run_qemu 0<&0 2>"$run/qemu.log" &
else
    run_qemu </dev/null >"$run/qemu.log" 2>&1 &
fi
qemu_pid=$!
trap - ERR
# Rarely (seen once in CI: an empty console for 900 s) TCG hangs before the host VM reaches the
# command: that is this environment failing, not the command, so it ends with 123 (which
# the tests retry) after MINIVMM_KVM_HOST_BOOT_TIMEOUT seconds instead of using up --timeout.
boot_deadline=$((SECONDS + boot_timeout_s))
boot_hung=0
while [[ ! -e $run/share/started ]] && kill -0 "$qemu_pid" 2>/dev/null; do
    if ((SECONDS >= boot_deadline)); then
        boot_hung=1
        kill "$qemu_pid" 2>/dev/null
        break
    fi
    sleep 0.5
done
# Once it runs the command, the host VM writes a heartbeat every 5 s (host-init). A host
# that stops beating has stopped as a whole (seen under TCG: both vCPUs halted for good),
# whatever the command was doing: that too is this environment failing, 123.
host_hung=0
if ((!boot_hung)); then
    while kill -0 "$qemu_pid" 2>/dev/null; do
        beat=$(stat -c %Y "$run/share/heartbeat" 2>/dev/null || stat -c %Y "$run/share/started")
        if (($(date +%s) - beat > hang_timeout_s)); then
            host_hung=1
            kill "$qemu_pid" 2>/dev/null
            break
        fi
        sleep 1
    done
fi
qemu_rc=0
wait "$qemu_pid" || qemu_rc=$?
qemu_pid=''
if ((boot_hung)); then
    printf 'minivmm: kvm-host: the host VM did not reach the command in %s s\n' \
        "$boot_timeout_s" >&2
    host_failed=1 # cleanup keeps the run folder and shows the end of its logs
    exit 123
fi
if ((host_hung)); then
    printf 'minivmm: kvm-host: the host VM stopped: no heartbeat for %s s\n' "$hang_timeout_s" >&2
    host_failed=1
    exit 123
fi

status=$(cat "$run/share/status" 2>/dev/null) || true
if [[ $status =~ ^[0-9]+$ ]]; then
    exit "$status"
elif ((qemu_rc == 124 || qemu_rc == 137)); then
    printf 'minivmm: kvm-host: timed out after %s s\n' "$timeout_s" >&2
    exit 124
fi
host_failed=1
if grep -qE 'Kernel panic|BUG: |Oops: ' "$run/console.log" 2>/dev/null; then
    printf 'minivmm: kvm-host: the emulated host'"'"'s own kernel crashed (not the command)\n' >&2
    exit 123
fi
exit 125
