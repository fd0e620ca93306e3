#!/bin/sh
# Guest side of tests/guest/shm-faults.sh: a killed VM started again with the same --shm.
# It must find the note the survivor left in the group's memory, then move data with it;
# then again, interrupt-driven, while a storm of doorbells from this VM runs.
shm-note wait 1048576 left-by-the-survivor 120 || exit 1
shm-ring --timeout 120 both 8M || exit 1
# No sleep between the two: the storm is already running when the transfer starts, and
# the overlap must not depend on this guest's timer while the storm keeps its vCPU busy.
shm-doorbell-storm 20 &
storm=$!
shm-ring --irq --timeout 120 both 8M
status=$?
kill -0 $storm && echo "rejoiner: the storm was still running when the transfer ended"
wait $storm || exit 1
exit $status
