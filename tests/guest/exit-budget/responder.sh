#!/bin/sh
# Guest side of tests/guest/exit-budget.sh: the VM that answers the driver's doorbells (the
# same way round as the driver rings them: port, then BAR0) and receives its data, printing
# nothing until the driver's last mark has been counted.
failed=0
for doorbell in port bar0; do
    [ $doorbell = bar0 ] && echo N >/sys/module/ivshmem_guest/parameters/doorbell_port
    for run in small large; do
        shm-pingpong pong --timeout 600 >>/tmp/out 2>&1 || { echo "pong $run failed"; failed=1; }
    done
done
for size in 16 80; do
    shm-ring --timeout 300 recv ${size}M >>/tmp/out 2>&1 || failed=1
done
sleep 20
cat /tmp/out
exit $failed
