/* The guest's serial console on the user's terminal: stdin feeds COM1 from a thread of
 * its own; on a terminal, raw mode so keys reach the guest as typed (Ctrl-C included),
 * with Ctrl-A x to quit and the terminal restored on every way out. */
#pragma once

#include <pthread.h>
#include <stdbool.h>

struct vm;

struct console {
    struct vm *vm;
    int in_fd;
    bool started;
    pthread_t thread;
};

/* Puts in_fd in raw mode if it is a terminal (restored at exit, also on fatal signals). */
void console_init(struct console *console, struct vm *vm, int in_fd);
int console_start(struct console *console);
/* Waits for the input thread, which ends once the VM is stopping. */
void console_stop(struct console *console);
/* Gives the terminal its settings back; safe to call more than once. */
void console_restore_terminal(void);
