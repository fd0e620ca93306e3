#!/bin/sh
# Guest side of tests/bench/exit-cost.sh, run by both VMs of a pair:
#   ops.sh driver|responder PEER PORTIO
# Each operation runs twice, small then large (the difference is what the extra work costs,
# without the program's start). After each run both VMs sleep, and the driver prints
# "exit-cost: mark NAME" first, so the host counts while both are idle and each program
# starts inside the window it belongs to. Both keep their programs' output for the end, so
# that the console adds nothing but the marks. PORTIO=yes adds the port I/O channel's
# transfers (minivmm's --shm=NAME,portio=on).
role=$1 peer=$2 portio=$3
failed=0
step() { # name command...: runs it; the driver marks the end
    name=$1
    shift
    # A program stuck past its own timeouts fails its step, not the whole sequence.
    timeout 300 "$@" >>/tmp/out 2>&1 || { echo "exit-cost: $name failed: $*" >>/tmp/out; failed=1; }
    [ "$role" = driver ] && echo "exit-cost: mark $name"
    sleep 4
}
step start true
for run in 500 1500; do
    if [ "$role" = driver ]; then
        step doorbell-$run shm-pingpong ping --peer "$peer" --count $run --timeout 120
    else
        step doorbell-$run shm-pingpong pong --peer "$peer" --timeout 300
    fi
done
for channel in shm-poll shm-irq; do
    for run in 200 600; do
        step msg64-$channel-$run ivc-bench --channel $channel --peer "$peer" --size 4K \
            --count $run --msg 64 --timeout 120
    done
done
for mode in poll irq; do
    irq=
    [ $mode = irq ] && irq=--irq
    runs="1 17"
    [ $mode = irq ] && runs="1 9"
    for run in $runs; do
        if [ "$role" = driver ]; then
            step mib-$mode-$run shm-ring $irq --peer "$peer" --timeout 120 send ${run}M
        else
            step mib-$mode-$run shm-ring $irq --peer "$peer" --timeout 120 recv ${run}M
        fi
    done
done
if [ "$portio" = yes ]; then
    action=send
    [ "$role" = responder ] && action=recv
    for run in 256 768; do
        step portio-byte-$run portio-xfer --peer "$peer" --io byte --timeout 120 $action=$run
    done
    for run in 8K 24K; do
        step portio-page-$run portio-xfer --peer "$peer" --io string --timeout 120 $action=$run
    done
fi
# The driver's last count comes after the responder's last program.
[ "$role" = responder ] && sleep 20
cat /tmp/out
exit $failed
