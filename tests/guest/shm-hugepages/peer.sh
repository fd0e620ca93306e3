#!/bin/sh
# Guest side of tests/guest/shm-hugepages.sh, the same in both VMs: two polled transfers of
# 8 MiB each way (shm-ring both), each followed by a mark. The first is also the first
# touch of the group's memory by this guest; the second moves the same bytes over memory
# already mapped. The host counts page faults and exits at each mark while this guest
# sleeps, with the output held back until the end.
mark() {
    echo "shm-hugepages: mark $1"
    sleep 4
}
failed=0
mark start
shm-ring --timeout 300 both 8M >>/tmp/out 2>&1 || failed=1
mark first
shm-ring --timeout 300 both 8M >>/tmp/out 2>&1 || failed=1
mark again
cat /tmp/out
exit $failed
