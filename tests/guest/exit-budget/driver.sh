#!/bin/sh
# Guest side of tests/guest/exit-budget.sh: the VM that drives. Each operation runs between
# two marks with its output held back, so that nothing but the operation itself and one
# mark line reach the console inside the window; the host counts exits at each mark, while
# this guest sleeps. Each operation runs twice, small and large: the difference is what the
# extra round trips or bytes cost, without the program's start and setup. The round trips
# run through minivmm's doorbell port, then through BAR0 (as on QEMU's device) to compare.
mark() {
    echo "exit-budget: mark $1"
    sleep 4
}
failed=0
mark start
for doorbell in port bar0; do
    [ $doorbell = bar0 ] && echo N >/sys/module/ivshmem_guest/parameters/doorbell_port
    for count in 1000 3000; do
        shm-pingpong ping --count $count --timeout 300 >>/tmp/out 2>&1 || failed=1
        mark $doorbell-$count
    done
done
for size in 16 80; do
    shm-ring --timeout 300 send ${size}M >>/tmp/out 2>&1 || failed=1
    mark polled-$size
done
cat /tmp/out
exit $failed
