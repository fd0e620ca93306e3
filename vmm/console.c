#include "vmm/console.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "devices/uart.h"
#include "vmm/vm.h"

#define CONSOLE_ESCAPE   0x01 /* Ctrl-A, as in QEMU: Ctrl-A x quits, Ctrl-A Ctrl-A sends one */
#define CONSOLE_RETRY_NS 1000000

/* Terminal state is per process by nature: one terminal, one saved setting. */
static struct termios saved_termios;
static int saved_fd = -1;

void console_restore_terminal(void)
{
    if (saved_fd >= 0) {
        tcsetattr(saved_fd, TCSANOW, &saved_termios);
        saved_fd = -1;
    }
}

static void console_fatal_signal(int sig)
{
    console_restore_terminal();
    signal(sig, SIG_DFL);
    raise(sig);
}

void console_init(struct console *console, struct vm *vm, int in_fd)
{
    memset(console, 0, sizeof(*console));
    console->vm = vm;
    console->in_fd = in_fd;
    if (!isatty(in_fd) || saved_fd >= 0)
        return;
    if (tcgetattr(in_fd, &saved_termios) < 0) {
        log_warn("tcgetattr on the console: %s; leaving it in line mode", strerror(errno));
        return;
    }
    struct termios raw = saved_termios;
    cfmakeraw(&raw);
    /* Keep output processing: the guest sends \r\n already, and log lines from minivmm
     * itself still end in a bare \n. */
    raw.c_oflag |= OPOST;
    if (tcsetattr(in_fd, TCSANOW, &raw) < 0) {
        log_warn("tcsetattr raw mode on the console: %s", strerror(errno));
        return;
    }
    saved_fd = in_fd;
    atexit(console_restore_terminal);
    const int fatal[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL};
    for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++)
        signal(fatal[i], console_fatal_signal);
}

/* Hands bytes to the UART, waiting while its receive buffer is full. Returns false if
 * the VM stopped meanwhile. */
static bool console_feed(struct console *console, const uint8_t *buf, size_t len)
{
    while (len > 0) {
        size_t taken = uart_receive(&console->vm->com1, buf, len);
        buf += taken;
        len -= taken;
        if (len == 0)
            break;
        if (atomic_load(&console->vm->stopping))
            return false;
        struct timespec pause = {0, CONSOLE_RETRY_NS};
        nanosleep(&pause, NULL);
    }
    return true;
}

static void *console_thread(void *arg)
{
    struct console *console = arg;
    struct vm *vm = console->vm;
    bool escape = false;
    bool interactive = saved_fd >= 0;
    pthread_setname_np(pthread_self(), "minivmm-console");
    if (vm_enter_sandbox(vm, SANDBOX_IO))
        return NULL;

    while (!atomic_load(&vm->stopping)) {
        struct pollfd fds[2] = {{.fd = console->in_fd, .events = POLLIN},
                                {.fd = vm->stop_fd, .events = POLLIN}};
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            log_error("poll on the console input: %s", strerror(errno));
            break;
        }
        if (fds[1].revents)
            break;
        uint8_t buf[256];
        ssize_t n = read(console->in_fd, buf, sizeof(buf));
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0) /* end of input: the guest runs on without a keyboard */
            break;

        size_t out = 0;
        for (ssize_t i = 0; i < n; i++) {
            uint8_t c = buf[i];
            if (interactive && escape) {
                escape = false;
                if (c == 'x' || c == 'X') {
                    vm_request_stop(vm, VM_STOP_SIGNAL, SIGINT, "Ctrl-A x on the console");
                    return NULL;
                }
                if (c != CONSOLE_ESCAPE)
                    continue; /* unknown escape: drop it */
            } else if (interactive && c == CONSOLE_ESCAPE) {
                escape = true;
                continue;
            }
            buf[out++] = c;
        }
        if (!console_feed(console, buf, out))
            break;
    }
    return NULL;
}

int console_start(struct console *console)
{
    int err = pthread_create(&console->thread, NULL, console_thread, console);
    if (err) {
        log_error("pthread_create console input: %s", strerror(err));
        return -err;
    }
    console->started = true;
    return 0;
}

void console_stop(struct console *console)
{
    if (console->started) {
        pthread_join(console->thread, NULL);
        console->started = false;
    }
}
