/* What a device may ask of the machine it is plugged into, as callbacks, so devices stay
 * free of KVM and can be unit-tested with fakes. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* An interrupt line: gsi is the IOAPIC/PIC input the device is wired to. */
struct irq_line {
    void (*set_level)(void *ctx, uint32_t gsi, bool level);
    void *ctx;
    uint32_t gsi;
};

static inline void irq_line_set(const struct irq_line *line, bool level)
{
    if (line->set_level)
        line->set_level(line->ctx, line->gsi, level);
}

/* How the guest ended the machine, as seen by a device. */
enum machine_stop_reason {
    MACHINE_STOP_RESET,       /* guest asked for a reset (i8042 pulse): treated as power off */
    MACHINE_STOP_GUEST_STATUS /* guest wrote an exit status to the debug-exit port */
};

struct machine_control {
    void (*request_stop)(void *ctx, enum machine_stop_reason reason, int status);
    void *ctx;
};

static inline void machine_request_stop(const struct machine_control *mc,
                                        enum machine_stop_reason reason, int status)
{
    if (mc->request_stop)
        mc->request_stop(mc->ctx, reason, status);
}
