/* A machine for device unit tests that records the device's stop requests (reset, power
 * off, debug exit) instead of stopping anything. Header-only, like the other supports. */
#pragma once

#include "devices/device.h"

struct fake_machine {
    int calls;
    enum machine_stop_reason reason;
    int status;
};

static inline void fake_request_stop(void *ctx, enum machine_stop_reason reason, int status)
{
    struct fake_machine *m = ctx;
    m->calls++;
    m->reason = reason;
    m->status = status;
}
