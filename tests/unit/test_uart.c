/* The 16550A UART, driven through the bus the way Linux's 8250 driver drives it. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices/bus.h"
#include "devices/uart.h"

#define BASE 0x3f8

enum { RBR = 0, THR = 0, DLL = 0, IER = 1, DLM = 1, IIR = 2, FCR = 2, LCR = 3 };
enum { MCR = 4, LSR = 5, MSR = 6, SCR = 7 };

struct fake_irq {
    pthread_mutex_t lock;
    uint32_t gsi;
    bool level;
    int calls;
    bool repeated; /* set_level was called with the level the line already had */
};

static void fake_irq_set(void *ctx, uint32_t gsi, bool level)
{
    struct fake_irq *irq = ctx;
    pthread_mutex_lock(&irq->lock);
    if (irq->calls > 0 && level == irq->level)
        irq->repeated = true;
    if (irq->calls == 0 && !level)
        irq->repeated = true; /* the line starts low */
    irq->gsi = gsi;
    irq->level = level;
    irq->calls++;
    pthread_mutex_unlock(&irq->lock);
}

struct tx_capture {
    uint8_t bytes[4096];
    size_t len;
};

static void tx_capture_byte(void *ctx, uint8_t byte)
{
    struct tx_capture *tx = ctx;
    if (tx->len < sizeof(tx->bytes))
        tx->bytes[tx->len++] = byte;
}

struct fixture {
    struct bus bus;
    struct uart uart;
    struct fake_irq irq;
    struct tx_capture tx;
    int rx_space_calls;
};

static void count_rx_space(void *ctx)
{
    struct fixture *f = ctx;
    f->rx_space_calls++;
}

static struct fixture *fixture_new(int out_fd, bool capture)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    pthread_mutex_init(&f->irq.lock, NULL);
    assert_int_equal(bus_init(&f->bus, "pio"), 0);
    struct uart_config cfg = {
        .base = BASE,
        .irq = {.set_level = fake_irq_set, .ctx = &f->irq, .gsi = UART_COM1_IRQ},
        .tx = capture ? tx_capture_byte : NULL,
        .tx_ctx = &f->tx,
        .out_fd = out_fd,
        .rx_space = count_rx_space,
        .rx_space_ctx = f,
    };
    assert_int_equal(uart_init(&f->uart, &f->bus, &cfg), 0);
    return f;
}

static int setup(void **state)
{
    *state = fixture_new(-1, true);
    return 0;
}

static void fixture_free(struct fixture *f)
{
    uart_destroy(&f->uart);
    assert_int_equal(f->bus.count, 0);
    bus_destroy(&f->bus);
    pthread_mutex_destroy(&f->irq.lock);
    free(f);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    /* Every set_level call must have been a change of level. */
    assert_false(f->irq.repeated);
    fixture_free(f);
    return 0;
}

static uint8_t in(struct fixture *f, unsigned reg)
{
    uint8_t v = 0;
    assert_true(bus_access(&f->bus, BASE + reg, &v, 1, false));
    return v;
}

static void out(struct fixture *f, unsigned reg, uint8_t v)
{
    assert_true(bus_access(&f->bus, BASE + reg, &v, 1, true));
}

static void test_reset_state(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(in(f, IIR), 0x01);
    assert_int_equal(in(f, LSR), 0x60); /* THRE | TEMT */
    assert_int_equal(in(f, IER), 0x00);
    assert_int_equal(in(f, MSR) & 0xf0, 0xb0); /* DCD, DSR, CTS: a modem is there */
    assert_int_equal(f->irq.calls, 0);
}

static void test_transmit_reaches_output(void **state)
{
    struct fixture *f = *state;
    const char *msg = "Linux version 6.1\r\n";

    for (const char *p = msg; *p; p++) {
        /* The console's polled path: wait for THRE|TEMT, then write. */
        assert_int_equal(in(f, LSR) & 0x60, 0x60);
        out(f, THR, (uint8_t)*p);
    }
    assert_int_equal(f->tx.len, strlen(msg));
    assert_memory_equal(f->tx.bytes, msg, strlen(msg));
    assert_int_equal(f->irq.calls, 0); /* IER is 0: no interrupt */
}

static void test_transmit_to_fd(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    struct fixture *f = fixture_new(fds[1], false);

    for (int i = 0; i < 100; i++)
        out(f, THR, (uint8_t)i);
    uint8_t got[100];
    size_t n = 0;
    while (n < sizeof(got)) {
        ssize_t r = read(fds[0], got + n, sizeof(got) - n);
        assert_true(r > 0);
        n += (size_t)r;
    }
    for (int i = 0; i < 100; i++)
        assert_int_equal(got[i], i);
    assert_int_equal(f->uart.out_dropped, 0);
    fixture_free(f);
    close(fds[0]);
    close(fds[1]);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_stalled_output_does_not_block(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    /* Fill the pipe, then leave the write end blocking as stdout would be. */
    int fl = fcntl(fds[1], F_GETFL);
    fcntl(fds[1], F_SETFL, fl | O_NONBLOCK);
    char junk[4096];
    memset(junk, 'j', sizeof(junk));
    while (write(fds[1], junk, sizeof(junk)) > 0)
        ;
    while (write(fds[1], junk, 1) > 0)
        ;
    fcntl(fds[1], F_SETFL, fl);
    struct fixture *f = fixture_new(fds[1], false);

    double t0 = now_s();
    out(f, THR, 'a');
    double first = now_s() - t0;
    t0 = now_s();
    for (int i = 0; i < 1000; i++)
        out(f, THR, 'b');
    double rest = now_s() - t0;
    /* One bounded wait, then bytes are dropped without waiting. */
    assert_true(first < 1.0);
    assert_true(rest < 0.5);
    assert_int_equal(f->uart.out_dropped, 1001);
    assert_int_equal(in(f, LSR) & 0x60, 0x60);

    /* Once the reader catches up, output flows again. */
    fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
    while (read(fds[0], junk, sizeof(junk)) > 0)
        ;
    out(f, THR, 'z');
    char c = 0;
    assert_int_equal(read(fds[0], &c, 1), 1);
    assert_int_equal(c, 'z');
    assert_int_equal(f->uart.out_dropped, 1001);
    fixture_free(f);
    close(fds[0]);
    close(fds[1]);
}

static void test_failing_output_is_not_fatal(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    close(fds[0]);
    signal(SIGPIPE, SIG_IGN);

    /* Capture stderr to count the log lines. */
    FILE *log = tmpfile();
    assert_non_null(log);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(fileno(log), STDERR_FILENO);

    struct fixture *f = fixture_new(fds[1], false);
    for (int i = 0; i < 50; i++)
        out(f, THR, 'x');
    assert_int_equal(f->uart.out_dropped, 50);
    assert_int_equal(in(f, LSR) & 0x60, 0x60);
    fixture_free(f);

    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    rewind(log);
    char line[512];
    int lines = 0;
    while (fgets(line, sizeof(line), log))
        if (strstr(line, "uart"))
            lines++;
    fclose(log);
    assert_int_equal(lines, 1);
    close(fds[1]);
}

/* Linux's serial8250_startup THRE checks, then one interrupt-driven transmit. */
static void test_thre_interrupt_sequence(void **state)
{
    struct fixture *f = *state;

    out(f, FCR, 0x07); /* enable and clear FIFOs */
    assert_int_equal(in(f, IIR), 0xc1);

    /* Enabling ETBEI with THR empty raises THRE at once. */
    out(f, IER, 0x02);
    assert_true(f->irq.level);
    assert_int_equal(f->irq.gsi, UART_COM1_IRQ);
    /* Reading IIR while it reports THRE clears it. */
    assert_int_equal(in(f, IIR), 0xc2);
    assert_false(f->irq.level);
    assert_int_equal(in(f, IIR), 0xc1);
    /* A disable/enable pair re-asserts it (else Linux sets UART_BUG_THRE). */
    out(f, IER, 0x00);
    out(f, IER, 0x02);
    assert_true(f->irq.level);
    assert_int_equal(in(f, IIR), 0xc2);
    out(f, IER, 0x00);
    assert_false(f->irq.level);

    /* start_tx: IER.THRI on -> interrupt; the handler reads IIR, LSR, fills THR. */
    int calls = f->irq.calls;
    out(f, IER, 0x03);
    assert_true(f->irq.level);
    assert_int_equal(in(f, IIR) & 0x0f, 0x02);
    assert_false(f->irq.level);
    assert_true(in(f, LSR) & 0x20);
    out(f, THR, 'o');
    /* The byte left at once: THR is empty again, a new THRE interrupt. */
    assert_true(f->irq.level);
    out(f, THR, 'k');
    assert_true(f->irq.level);
    /* Next interrupt: nothing left to send, so stop_tx clears IER.THRI. */
    assert_int_equal(in(f, IIR) & 0x0f, 0x02);
    assert_false(f->irq.level);
    out(f, IER, 0x01);
    assert_false(f->irq.level);
    assert_int_equal(in(f, IIR), 0xc1);
    assert_int_equal(f->irq.calls - calls, 4); /* up, down, up, down */
    assert_int_equal(f->tx.len, 2);
    assert_memory_equal(f->tx.bytes, "ok", 2);

    /* Turning ETBEI off drops the line even while THRE is pending. */
    out(f, IER, 0x02);
    assert_true(f->irq.level);
    out(f, IER, 0x00);
    assert_false(f->irq.level);
}

static void test_receive(void **state)
{
    struct fixture *f = *state;

    out(f, FCR, 0x01);
    out(f, IER, 0x01);
    assert_false(f->irq.level);
    assert_int_equal(uart_receive(&f->uart, (const uint8_t *)"abc", 3), 3);
    assert_true(f->irq.level);
    assert_int_equal(in(f, IIR), 0xc4);
    assert_int_equal(in(f, LSR) & 0x01, 0x01);
    assert_int_equal(in(f, RBR), 'a');
    assert_int_equal(in(f, RBR), 'b');
    assert_true(f->irq.level);
    assert_int_equal(in(f, RBR), 'c');
    assert_false(f->irq.level);
    assert_int_equal(in(f, LSR) & 0x01, 0x00);
    assert_int_equal(in(f, IIR), 0xc1);

    /* With ERBFI off, data waits without an interrupt. */
    out(f, IER, 0x00);
    assert_int_equal(uart_receive(&f->uart, (const uint8_t *)"d", 1), 1);
    assert_false(f->irq.level);
    assert_int_equal(in(f, LSR) & 0x01, 0x01);
    /* Enabling it later raises the interrupt for the waiting byte. */
    out(f, IER, 0x01);
    assert_true(f->irq.level);
    assert_int_equal(in(f, RBR), 'd');
    assert_false(f->irq.level);
}

static void test_interrupt_priority(void **state)
{
    struct fixture *f = *state;

    out(f, IER, 0x03); /* RX data and THRE */
    assert_int_equal(uart_receive(&f->uart, (const uint8_t *)"x", 1), 1);
    /* RX data outranks THRE, and reading IIR then leaves THRE pending. */
    assert_int_equal(in(f, IIR), 0x04);
    assert_int_equal(in(f, IIR), 0x04);
    assert_int_equal(in(f, RBR), 'x');
    assert_true(f->irq.level);
    assert_int_equal(in(f, IIR), 0x02);
    assert_false(f->irq.level);
}

static void test_receive_buffer_full(void **state)
{
    struct fixture *f = *state;
    uint8_t buf[300];

    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)i;
    assert_int_equal(uart_receive(&f->uart, buf, sizeof(buf)), UART_RX_BUF_SIZE);
    assert_int_equal(uart_receive(&f->uart, buf + UART_RX_BUF_SIZE, 10), 0);
    /* One byte read makes room for one byte. */
    assert_int_equal(in(f, RBR), 0);
    assert_int_equal(uart_receive(&f->uart, buf + UART_RX_BUF_SIZE, 10), 1);
    assert_int_equal(f->rx_space_calls, 0);
    /* Order is kept across the retry, and draining it all tells the feeder once. */
    for (int i = 1; i <= UART_RX_BUF_SIZE; i++)
        assert_int_equal(in(f, RBR), (uint8_t)i);
    assert_int_equal(in(f, LSR) & 0x01, 0);
    assert_int_equal(f->rx_space_calls, 1);
    in(f, LSR);
    assert_int_equal(f->rx_space_calls, 1);
    /* No overrun is reported for host input that was turned away. */
    assert_int_equal(in(f, LSR) & 0x02, 0);
}

static void test_fifo_control(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(in(f, IIR) & 0xc0, 0x00);
    out(f, FCR, 0x81); /* enable, trigger level 8 */
    assert_int_equal(in(f, IIR) & 0xc0, 0xc0);
    assert_int_equal(uart_receive(&f->uart, (const uint8_t *)"abc", 3), 3);
    out(f, FCR, 0x83); /* clear RX */
    assert_int_equal(in(f, LSR) & 0x01, 0);
    assert_int_equal(uart_receive(&f->uart, (const uint8_t *)"abc", 3), 3);
    /* Clear bits without the enable bit do nothing... */
    out(f, FCR, 0x81);
    assert_int_equal(in(f, LSR) & 0x01, 1);
    /* ...but turning the FIFOs off empties them. */
    out(f, FCR, 0x00);
    assert_int_equal(in(f, LSR) & 0x01, 0);
    assert_int_equal(in(f, IIR) & 0xc0, 0x00);
    /* IIR bit 5 (64-byte FIFO on a 16750) stays clear: this is a 16550A. */
    out(f, FCR, 0x21);
    assert_int_equal(in(f, IIR) & 0xe0, 0xc0);
}

static void test_divisor_latch(void **state)
{
    struct fixture *f = *state;

    out(f, IER, 0x05);
    out(f, LCR, 0x83); /* DLAB, 8N1 */
    out(f, DLL, 0x0c);
    out(f, DLM, 0x00);
    assert_int_equal(in(f, DLL), 0x0c);
    assert_int_equal(in(f, DLM), 0x00);
    out(f, DLM, 0x01);
    assert_int_equal(in(f, DLM), 0x01);
    assert_int_equal(in(f, LCR), 0x83);
    assert_int_equal(f->tx.len, 0); /* DLL writes are not transmitted */
    out(f, LCR, 0x03);
    assert_int_equal(in(f, IER), 0x05);
    assert_int_equal(uart_receive(&f->uart, (const uint8_t *)"q", 1), 1);
    assert_int_equal(in(f, RBR), 'q');
    out(f, LCR, 0x83);
    assert_int_equal(in(f, DLL), 0x0c);
    assert_int_equal(in(f, DLM), 0x01);
    out(f, LCR, 0x03);
}

/* serial8250's autoconfig, step by step. */
static void test_linux_autoconfig_probe(void **state)
{
    struct fixture *f = *state;

    /* IER existence test: only the low four bits stick. */
    uint8_t scratch = in(f, IER);
    out(f, IER, 0x00);
    assert_int_equal(in(f, IER) & 0x0f, 0x00);
    out(f, IER, 0x0f);
    assert_int_equal(in(f, IER) & 0x0f, 0x0f);
    out(f, IER, 0xff);
    assert_int_equal(in(f, IER), 0x0f);
    out(f, IER, scratch);

    /* Loopback test: MSR must reflect MCR (RTS -> CTS, OUT2 -> DCD). */
    uint8_t save_mcr = in(f, MCR);
    uint8_t save_lcr = in(f, LCR);
    out(f, MCR, 0x10 | 0x0a);
    assert_int_equal(in(f, MSR) & 0xf0, 0x90);
    out(f, MCR, 0x10 | 0x05); /* DTR -> DSR, OUT1 -> RI */
    assert_int_equal(in(f, MSR) & 0xf0, 0x60);
    out(f, MCR, save_mcr);
    assert_int_equal(in(f, MSR) & 0xf0, 0xb0);

    /* FIFO type: EFR write with LCR=0xbf lands in FCR on a 16550A. */
    out(f, LCR, 0xbf);
    out(f, FCR, 0x00);
    out(f, LCR, 0x00);
    out(f, FCR, 0x01);
    assert_int_equal(in(f, IIR) >> 6, 3);
    /* No EFR: reading offset 2 with DLAB set gives IIR, never 0. */
    out(f, LCR, 0x80);
    assert_int_not_equal(in(f, IIR), 0);
    out(f, LCR, 0xbf);
    assert_int_not_equal(in(f, IIR), 0);
    out(f, LCR, save_lcr);

    /* The LSR safety check in startup: never 0xff. */
    assert_int_not_equal(in(f, LSR), 0xff);
    assert_int_equal(f->tx.len, 0);
}

static void test_loopback_data(void **state)
{
    struct fixture *f = *state;

    out(f, MCR, 0x10);
    out(f, IER, 0x01);
    out(f, THR, 'L');
    assert_int_equal(f->tx.len, 0); /* not sent to the console */
    assert_true(f->irq.level);
    assert_int_equal(in(f, LSR) & 0x01, 0x01);
    assert_int_equal(in(f, RBR), 'L');
    assert_false(f->irq.level);
    /* The serial input is disconnected in loopback: host input waits. */
    assert_int_equal(uart_receive(&f->uart, (const uint8_t *)"h", 1), 0);
    out(f, MCR, 0x00);
    assert_int_equal(f->rx_space_calls, 1);
    assert_int_equal(uart_receive(&f->uart, (const uint8_t *)"h", 1), 1);
    out(f, THR, 'T');
    assert_int_equal(f->tx.len, 1);
}

static void test_loopback_overrun(void **state)
{
    struct fixture *f = *state;

    out(f, MCR, 0x10);
    for (int i = 0; i < UART_RX_BUF_SIZE; i++)
        out(f, THR, (uint8_t)i);
    assert_false(f->irq.level);
    out(f, THR, 0xee);
    out(f, IER, 0x05); /* RX data and line status */
    assert_true(f->irq.level);
    assert_int_equal(in(f, IIR), 0x06); /* line status outranks RX data */
    assert_int_equal(in(f, LSR) & 0x03, 0x03);
    /* Reading LSR clears the error; RX data remains. */
    assert_int_equal(in(f, IIR), 0x04);
    assert_int_equal(in(f, LSR) & 0x03, 0x01);
    out(f, MCR, 0x00);
}

static void test_modem_status_interrupt(void **state)
{
    struct fixture *f = *state;

    in(f, MSR); /* clear deltas */
    out(f, IER, 0x08);
    assert_false(f->irq.level);
    out(f, MCR, 0x10 | 0x04); /* loopback, OUT1 -> RI */
    assert_true(f->irq.level);
    assert_int_equal(in(f, IIR), 0x00);
    uint8_t msr = in(f, MSR);
    assert_int_equal(msr & 0xf0, 0x40);
    assert_int_equal(msr & 0x0f, 0x0b); /* CTS, DSR, DCD dropped */
    assert_false(f->irq.level);
    assert_int_equal(in(f, MSR) & 0x0f, 0);
    out(f, MCR, 0x10); /* RI falls: trailing edge */
    assert_true(f->irq.level);
    assert_int_equal(in(f, MSR), 0x04);
    assert_false(f->irq.level);
    out(f, IER, 0x00);
    out(f, MCR, 0x00);
}

static void test_scratch_register(void **state)
{
    struct fixture *f = *state;

    out(f, SCR, 0x5a);
    assert_int_equal(in(f, SCR), 0x5a);
    out(f, SCR, 0xa5);
    assert_int_equal(in(f, SCR), 0xa5);
    /* It survives DLAB, which only overlays offsets 0 and 1. */
    out(f, LCR, 0x80);
    assert_int_equal(in(f, SCR), 0xa5);
    out(f, LCR, 0x00);
}

static void test_wide_access_splits(void **state)
{
    struct fixture *f = *state;

    /* outw to SCR-1/SCR, i.e. MSR (ignored) then SCR. */
    uint16_t w = 0x4200;
    assert_true(bus_access(&f->bus, BASE + MSR, &w, 2, true));
    assert_int_equal(in(f, SCR), 0x42);
    uint16_t r = 0;
    assert_true(bus_access(&f->bus, BASE + LCR, &r, 2, false));
    assert_int_equal(r, 0x0000); /* LCR 0, MCR 0 */
}

static void test_two_instances(void **state)
{
    struct fixture *f = *state;
    struct uart com2;
    struct tx_capture tx2 = {0};
    struct fake_irq irq2 = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct uart_config cfg = {
        .base = 0x2f8,
        .irq = {.set_level = fake_irq_set, .ctx = &irq2, .gsi = 3},
        .tx = tx_capture_byte,
        .tx_ctx = &tx2,
        .out_fd = -1,
    };
    assert_int_equal(uart_init(&com2, &f->bus, &cfg), 0);
    /* Overlapping the first one is refused with the bus's error. */
    struct uart clash;
    cfg.base = BASE + 4;
    assert_int_equal(uart_init(&clash, &f->bus, &cfg), -EEXIST);

    uint8_t v = '2';
    assert_true(bus_access(&f->bus, 0x2f8, &v, 1, true));
    out(f, THR, '1');
    assert_int_equal(tx2.len, 1);
    assert_int_equal(tx2.bytes[0], '2');
    assert_int_equal(f->tx.len, 1);
    assert_int_equal(f->tx.bytes[0], '1');
    v = 0x02;
    assert_true(bus_access(&f->bus, 0x2f9, &v, 1, true));
    assert_true(irq2.level);
    assert_int_equal(irq2.gsi, 3);
    assert_false(f->irq.level);
    uart_destroy(&com2);
}

struct feeder {
    struct uart *uart;
    size_t total;
};

static void *feeder_main(void *arg)
{
    struct feeder *fd = arg;
    uint8_t chunk[64];
    size_t sent = 0;

    while (sent < fd->total) {
        size_t n = fd->total - sent < sizeof(chunk) ? fd->total - sent : sizeof(chunk);
        for (size_t i = 0; i < n; i++)
            chunk[i] = (uint8_t)((sent + i) * 7);
        size_t off = 0;
        while (off < n) {
            size_t got = uart_receive(fd->uart, chunk + off, n - off);
            off += got;
            if (!got)
                sched_yield();
        }
        sent += n;
    }
    return NULL;
}

/* The input thread and a vCPU thread at once: nothing lost, reordered or duplicated. */
static void test_concurrent_receive(void **state)
{
    struct fixture *f = *state;
    struct feeder fd = {.uart = &f->uart, .total = 20000};
    pthread_t thread;

    out(f, IER, 0x01);
    assert_int_equal(pthread_create(&thread, NULL, feeder_main, &fd), 0);
    size_t got = 0;
    while (got < fd.total) {
        if (!(in(f, LSR) & 0x01))
            continue;
        uint8_t b = in(f, RBR);
        assert_int_equal(b, (uint8_t)(got * 7));
        got++;
    }
    pthread_join(thread, NULL);
    assert_int_equal(in(f, LSR) & 0x01, 0);
    assert_false(f->irq.level);
    out(f, IER, 0x00);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reset_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transmit_reaches_output, setup, teardown),
        cmocka_unit_test(test_transmit_to_fd),
        cmocka_unit_test(test_stalled_output_does_not_block),
        cmocka_unit_test(test_failing_output_is_not_fatal),
        cmocka_unit_test_setup_teardown(test_thre_interrupt_sequence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_receive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interrupt_priority, setup, teardown),
        cmocka_unit_test_setup_teardown(test_receive_buffer_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fifo_control, setup, teardown),
        cmocka_unit_test_setup_teardown(test_divisor_latch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_linux_autoconfig_probe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loopback_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loopback_overrun, setup, teardown),
        cmocka_unit_test_setup_teardown(test_modem_status_interrupt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scratch_register, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wide_access_splits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_instances, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_receive, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
