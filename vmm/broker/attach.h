/* A client that joins only a group that already has a broker (a host program through
 * libivc's host backends): unlike broker_connect() (connect.h) it never starts one. Under
 * NAME.lock, like every joiner (a broker tearing down holds it too), it reads NAME.group
 * for the size and vectors, which the wire protocol does not carry, and connects. */
#pragma once

#include <stddef.h>

#include "vmm/broker/status.h"

/* Returns the connected socket (SOCK_CLOEXEC) and the group's status in *status, or
 * -errno with a sentence in why: -ENOENT when no live broker serves NAME (start a VM
 * with --shm=NAME or run minivmm-broker NAME), -EUSERS when the group is full, -EINVAL
 * for a bad name. */
int broker_attach(const char *dir, const char *name, struct broker_status *status, char *why,
                  size_t why_len);
