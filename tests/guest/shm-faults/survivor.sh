#!/bin/sh
# Guest side of tests/guest/shm-faults.sh: the VM that stays. Its peers are killed in the
# middle of a transfer twice (polled, then interrupt-driven); each time it must see the
# departure and keep what it verified. Then it leaves a note in the shared memory for a
# restarted peer and moves data with it, polled, then interrupt-driven while that peer
# rings doorbells to every peer and vector as fast as it can. Ends with the last status.
echo "survivor: phase 1, polled, from the group's creator"
shm-ring --timeout 120 recv 4G
echo "survivor: phase 1 ended with status $?"

echo "survivor: phase 2, interrupt-driven, from a new peer"
shm-ring --irq --timeout 120 recv 4G
echo "survivor: phase 2 ended with status $?"

shm-note write 1048576 left-by-the-survivor || exit 1
echo "survivor: phase 3, both ways with the restarted peer"
shm-ring --timeout 120 both 8M
echo "survivor: phase 3 ended with status $?"

echo "survivor: phase 4, interrupt-driven, during a doorbell storm"
shm-ring --irq --timeout 120 both 8M
status=$?
echo "survivor: phase 4 ended with status $status"
exit $status
