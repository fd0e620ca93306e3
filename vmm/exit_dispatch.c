#include "vmm/exit_dispatch.h"

#include <stdint.h>
#include <stdio.h>

static void exit_io(struct kvm_run *run, size_t run_size, struct bus *pio,
                    struct exit_outcome *outcome)
{
    uint64_t size = run->io.size;
    uint64_t bytes = size * run->io.count;
    /* Data inside struct kvm_run itself would let an IN overwrite io.count and io.port
     * while the loop below reads them. */
    if ((size != 1 && size != 2 && size != 4) || run->io.data_offset < sizeof(*run) ||
        run->io.data_offset > run_size || bytes > run_size - run->io.data_offset) {
        outcome->action = EXIT_ACTION_CRASH;
        snprintf(outcome->reason, sizeof(outcome->reason),
                 "malformed I/O exit: port 0x%x size %u count %u offset %llu", run->io.port,
                 run->io.size, run->io.count, (unsigned long long)run->io.data_offset);
        return;
    }
    /* String I/O (rep ins/outs) arrives as count elements back to back: the data pointer
     * advances through them, the port stays the same. A FIFO device takes them in one call. */
    uint8_t *data = (uint8_t *)run + run->io.data_offset;
    bool is_write = run->io.direction == KVM_EXIT_IO_OUT;
    if (run->io.count == 1)
        bus_access(pio, run->io.port, data, (uint32_t)size, is_write);
    else
        bus_access_string(pio, run->io.port, data, (uint32_t)size, run->io.count, is_write);
}

static const char *system_event_name(uint32_t type)
{
    switch (type) {
    case KVM_SYSTEM_EVENT_SHUTDOWN:
        return "shutdown";
    case KVM_SYSTEM_EVENT_RESET:
        return "reset";
    case KVM_SYSTEM_EVENT_CRASH:
        return "crash";
    default:
        return "unknown";
    }
}

void exit_dispatch(struct kvm_run *run, size_t run_size, struct bus *pio, struct bus *mmio,
                   struct exit_outcome *outcome)
{
    outcome->action = EXIT_ACTION_CONTINUE;
    outcome->reason[0] = '\0';

    switch (run->exit_reason) {
    case KVM_EXIT_IO:
        exit_io(run, run_size, pio, outcome);
        break;
    case KVM_EXIT_MMIO:
        if (run->mmio.len == 0 || run->mmio.len > sizeof(run->mmio.data)) {
            outcome->action = EXIT_ACTION_CRASH;
            snprintf(outcome->reason, sizeof(outcome->reason),
                     "malformed MMIO exit: address 0x%llx length %u",
                     (unsigned long long)run->mmio.phys_addr, run->mmio.len);
            break;
        }
        bus_access(mmio, run->mmio.phys_addr, run->mmio.data, run->mmio.len, run->mmio.is_write);
        break;
    case KVM_EXIT_INTR:
    case KVM_EXIT_HLT: /* only without an in-kernel irqchip; it will wake on its own */
        break;
    case KVM_EXIT_SHUTDOWN:
        outcome->action = EXIT_ACTION_CRASH;
        snprintf(outcome->reason, sizeof(outcome->reason),
                 "guest triple fault (KVM_EXIT_SHUTDOWN)");
        break;
    case KVM_EXIT_SYSTEM_EVENT:
        outcome->action = run->system_event.type == KVM_SYSTEM_EVENT_CRASH ? EXIT_ACTION_CRASH
                                                                           : EXIT_ACTION_RESET;
        snprintf(outcome->reason, sizeof(outcome->reason), "guest system event: %s",
                 system_event_name(run->system_event.type));
        break;
    case KVM_EXIT_FAIL_ENTRY:
        outcome->action = EXIT_ACTION_CRASH;
        snprintf(outcome->reason, sizeof(outcome->reason),
                 "VM entry failed: hardware reason 0x%llx on CPU %u",
                 (unsigned long long)run->fail_entry.hardware_entry_failure_reason,
                 run->fail_entry.cpu);
        break;
    case KVM_EXIT_INTERNAL_ERROR:
        outcome->action = EXIT_ACTION_CRASH;
        snprintf(outcome->reason, sizeof(outcome->reason), "KVM internal error, suberror %u%s",
                 run->internal.suberror,
                 run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION
                     ? " (instruction emulation failed)"
                     : "");
        break;
    default:
        outcome->action = EXIT_ACTION_CRASH;
        snprintf(outcome->reason, sizeof(outcome->reason), "unhandled KVM exit reason %u",
                 run->exit_reason);
        break;
    }
}
