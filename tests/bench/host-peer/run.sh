#!/bin/sh
# Guest side of tests/bench/host-peer.sh: ivc-bench between two marks, so the host can
# count what this VM's run cost (KVM's counters at each mark, while this guest sleeps).
echo "host-peer: mark start"
sleep 3
ivc-bench "$@" >/tmp/out 2>&1
status=$?
echo "host-peer: mark end"
sleep 3
cat /tmp/out
exit $status
