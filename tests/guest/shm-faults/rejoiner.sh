#!/bin/sh
# Guest side of tests/guest/shm-faults.sh: a killed VM started again with the same --shm.
# It must find the note the survivor left in the group's memory, then move data with it.
shm-note wait 1048576 left-by-the-survivor 120 || exit 1
shm-ring --timeout 120 both 8M
