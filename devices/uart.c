#include "devices/uart.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

/* Register offsets from the base port. */
#define UART_RBR 0 /* read, DLAB=0 */
#define UART_THR 0 /* write, DLAB=0 */
#define UART_DLL 0 /* DLAB=1 */
#define UART_IER 1 /* DLAB=0 */
#define UART_DLM 1 /* DLAB=1 */
#define UART_IIR 2 /* read */
#define UART_FCR 2 /* write */
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_MSR 6
#define UART_SCR 7

#define IER_ERBFI 0x01 /* received data available */
#define IER_ETBEI 0x02 /* transmitter holding register empty */
#define IER_ELSI  0x04 /* receiver line status */
#define IER_EDSSI 0x08 /* modem status */
#define IER_MASK  0x0f /* bits 7:4 read as 0 on a 16550A; Linux's probe relies on it */

#define IIR_NO_INT    0x01
#define IIR_MSI       0x00
#define IIR_THRI      0x02
#define IIR_RDI       0x04
#define IIR_RLSI      0x06
#define IIR_FIFO_BITS 0xc0

#define FCR_ENABLE   0x01
#define FCR_CLEAR_RX 0x02
#define FCR_CLEAR_TX 0x04
#define FCR_KEPT     0xc9 /* trigger level, DMA mode, enable */
#define LCR_DLAB     0x80
#define MCR_DTR      0x01
#define MCR_RTS      0x02
#define MCR_OUT1     0x04
#define MCR_OUT2     0x08
#define MCR_LOOP     0x10
#define MCR_MASK     0x1f
#define LSR_DR       0x01
#define LSR_OE       0x02
#define LSR_THRE     0x20
#define LSR_TEMT     0x40
#define LSR_FIFO_ERR 0x80
#define LSR_ERRORS   0x1e /* OE, PE, FE, BI */
#define MSR_DCTS     0x01
#define MSR_DDSR     0x02
#define MSR_TERI     0x04
#define MSR_DDCD     0x08
#define MSR_DELTAS   0x0f
#define MSR_CTS      0x10
#define MSR_DSR      0x20
#define MSR_RI       0x40
#define MSR_DCD      0x80

/* How long one byte may hold a vCPU when out_fd stops draining (a paused terminal, a
 * pipe nobody reads). After that the console drops bytes until the fd is writable again,
 * so a stuck reader costs the guest this once, not per byte. */
#define UART_OUT_WAIT_MS 100

/* The modem status inputs. With no real line behind the UART, a modem is always there
 * (DCD, DSR, CTS): getty without CLOCAL waits for carrier, and CRTSCTS waits for CTS.
 * In loopback they are wired to the MCR outputs instead, which Linux's probe checks. */
static uint8_t uart_modem_inputs(uint8_t mcr)
{
    if (!(mcr & MCR_LOOP))
        return MSR_DCD | MSR_DSR | MSR_CTS;
    uint8_t in = 0;
    if (mcr & MCR_RTS)
        in |= MSR_CTS;
    if (mcr & MCR_DTR)
        in |= MSR_DSR;
    if (mcr & MCR_OUT1)
        in |= MSR_RI;
    if (mcr & MCR_OUT2)
        in |= MSR_DCD;
    return in;
}

static void uart_set_modem_inputs(struct uart *dev, uint8_t in)
{
    uint8_t old = dev->msr & ~MSR_DELTAS;
    uint8_t deltas = dev->msr & MSR_DELTAS;
    uint8_t changed = old ^ in;

    if (changed & MSR_CTS)
        deltas |= MSR_DCTS;
    if (changed & MSR_DSR)
        deltas |= MSR_DDSR;
    if (changed & MSR_DCD)
        deltas |= MSR_DDCD;
    /* TERI reports the trailing edge of RI only. */
    if ((old & MSR_RI) && !(in & MSR_RI))
        deltas |= MSR_TERI;
    dev->msr = in | deltas;
}

/* Highest-priority pending interrupt, as the 16550A ranks them. */
static uint8_t uart_pending(const struct uart *dev)
{
    if ((dev->ier & IER_ELSI) && (dev->lsr_errors & LSR_ERRORS))
        return IIR_RLSI;
    if ((dev->ier & IER_ERBFI) && dev->rx_count > 0)
        return IIR_RDI;
    if ((dev->ier & IER_ETBEI) && dev->thr_ipending)
        return IIR_THRI;
    if ((dev->ier & IER_EDSSI) && (dev->msr & MSR_DELTAS))
        return IIR_MSI;
    return IIR_NO_INT;
}

/* The IRQ output is not gated by MCR.OUT2 as on a PC board: Linux sets OUT2 anyway, and
 * simple guests that forget it still get their interrupts. */
static void uart_update_irq(struct uart *dev)
{
    bool level = uart_pending(dev) != IIR_NO_INT;
    if (level != dev->irq_level) {
        dev->irq_level = level;
        irq_line_set(&dev->cfg.irq, level);
    }
}

static void uart_rx_clear(struct uart *dev)
{
    dev->rx_head = 0;
    dev->rx_count = 0;
}

static bool uart_rx_push(struct uart *dev, uint8_t byte)
{
    if (dev->rx_count == UART_RX_BUF_SIZE)
        return false;
    dev->rx_buf[(dev->rx_head + dev->rx_count) % UART_RX_BUF_SIZE] = byte;
    dev->rx_count++;
    return true;
}

static uint8_t uart_rx_pop(struct uart *dev)
{
    if (dev->rx_count == 0)
        return dev->rbr;
    dev->rbr = dev->rx_buf[dev->rx_head];
    dev->rx_head = (dev->rx_head + 1) % UART_RX_BUF_SIZE;
    dev->rx_count--;
    return dev->rbr;
}

static void uart_out_dropped(struct uart *dev, int err)
{
    dev->out_dropped++;
    if (err == ETIMEDOUT) {
        if (!dev->out_stall_seen)
            log_warn("uart %#x: console output fd %d is not draining, dropping output",
                     (unsigned)dev->cfg.base, dev->cfg.out_fd);
        dev->out_stall_seen = true;
        dev->out_stalled = true;
    } else {
        if (!dev->out_error_seen)
            log_error("uart %#x: write to console output fd %d: %s; output is dropped",
                      (unsigned)dev->cfg.base, dev->cfg.out_fd, strerror(err));
        dev->out_error_seen = true;
    }
}

/* Writes one byte to out_fd without ever blocking for more than UART_OUT_WAIT_MS: the fd
 * may be a blocking terminal or pipe that the VMM does not own, so poll() stands in for
 * O_NONBLOCK (setting it would change the shell's terminal too). */
static void uart_out_write(struct uart *dev, uint8_t byte)
{
    int fd = dev->cfg.out_fd;
    int wait_ms = dev->out_stalled ? 0 : UART_OUT_WAIT_MS;

    for (int tries = 0; tries < 100; tries++) {
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int ready = poll(&pfd, 1, wait_ms);
        if (ready < 0) {
            if (errno == EINTR)
                continue;
            uart_out_dropped(dev, errno);
            return;
        }
        if (ready == 0) {
            uart_out_dropped(dev, ETIMEDOUT);
            return;
        }
        ssize_t n = write(fd, &byte, 1);
        if (n == 1) {
            if (dev->out_stalled)
                log_debug("uart %#x: console output drains again", (unsigned)dev->cfg.base);
            dev->out_stalled = false;
            return;
        }
        if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
            continue;
        uart_out_dropped(dev, n < 0 ? errno : EIO);
        return;
    }
    /* Interrupted or woken without progress 100 times: give the vCPU back. */
    uart_out_dropped(dev, ETIMEDOUT);
}

static void uart_transmit(struct uart *dev, uint8_t byte)
{
    if (dev->mcr & MCR_LOOP) {
        /* The transmitter feeds the receiver; a full FIFO loses the byte as an overrun. */
        if (!uart_rx_push(dev, byte))
            dev->lsr_errors |= LSR_OE;
    } else if (dev->cfg.tx) {
        dev->cfg.tx(dev->cfg.tx_ctx, byte);
    } else if (dev->cfg.out_fd >= 0) {
        uart_out_write(dev, byte);
    }
}

static uint8_t uart_read_reg(struct uart *dev, unsigned reg)
{
    bool dlab = dev->lcr & LCR_DLAB;
    uint8_t val;

    switch (reg) {
    case UART_RBR:
        return dlab ? dev->dll : uart_rx_pop(dev);
    case UART_IER:
        return dlab ? dev->dlm : dev->ier;
    case UART_IIR:
        val = uart_pending(dev);
        /* Reading IIR is what acknowledges a THRE interrupt, but only when IIR reports
         * it: a higher-priority source hides it and it stays pending. */
        if (val == IIR_THRI)
            dev->thr_ipending = false;
        if (dev->fcr & FCR_ENABLE)
            val |= IIR_FIFO_BITS;
        return val;
    case UART_LCR:
        return dev->lcr;
    case UART_MCR:
        return dev->mcr;
    case UART_LSR:
        val = dev->lsr_errors | LSR_THRE | LSR_TEMT;
        if (dev->rx_count > 0)
            val |= LSR_DR;
        if ((dev->fcr & FCR_ENABLE) && dev->lsr_errors)
            val |= LSR_FIFO_ERR;
        dev->lsr_errors = 0;
        return val;
    case UART_MSR:
        val = dev->msr;
        dev->msr &= ~MSR_DELTAS;
        return val;
    default:
        return dev->scr;
    }
}

static void uart_write_reg(struct uart *dev, unsigned reg, uint8_t val)
{
    bool dlab = dev->lcr & LCR_DLAB;

    switch (reg) {
    case UART_THR:
        if (dlab) {
            dev->dll = val;
            break;
        }
        dev->thr_ipending = false;
        uart_transmit(dev, val);
        /* Sent at once: THR is empty again, which is a new THRE event. */
        dev->thr_ipending = true;
        break;
    case UART_IER:
        if (dlab) {
            dev->dlm = val;
            break;
        }
        /* Enabling ETBEI with THR empty raises THRE at once; Linux's startup checks that
         * a disable/enable pair re-asserts it (else it flags UART_BUG_THRE). */
        if ((val & IER_ETBEI) && !(dev->ier & IER_ETBEI))
            dev->thr_ipending = true;
        dev->ier = val & IER_MASK;
        break;
    case UART_FCR:
        /* The FCR is writable whatever DLAB says. Changing the enable bit empties both
         * FIFOs; the clear bits act only together with the enable bit. */
        if ((val ^ dev->fcr) & FCR_ENABLE)
            uart_rx_clear(dev);
        if (val & FCR_ENABLE) {
            if (val & FCR_CLEAR_RX)
                uart_rx_clear(dev);
            /* FCR_CLEAR_TX: nothing is ever queued for transmission. */
            dev->fcr = val & FCR_KEPT;
        } else {
            dev->fcr = 0;
        }
        break;
    case UART_LCR:
        /* Bit 6 (break) has no line to act on; the rest only matters to a real line. */
        dev->lcr = val;
        break;
    case UART_MCR:
        dev->mcr = val & MCR_MASK;
        uart_set_modem_inputs(dev, uart_modem_inputs(dev->mcr));
        break;
    case UART_LSR:
    case UART_MSR:
        /* Factory-test writes on real parts; ignored. */
        break;
    default:
        dev->scr = val;
        break;
    }
}

static void uart_io(void *owner, uint64_t offset, void *data, uint32_t size, bool is_write)
{
    struct uart *dev = owner;
    uint8_t *bytes = data;
    bool notify = false;

    /* A wider access reaches consecutive registers, as an ISA bus splits it. The bus only
     * calls us for accesses inside our eight ports. */
    pthread_mutex_lock(&dev->lock);
    for (uint32_t i = 0; i < size; i++) {
        unsigned reg = (unsigned)(offset + i) & (UART_NUM_PORTS - 1);
        if (is_write)
            uart_write_reg(dev, reg, bytes[i]);
        else
            bytes[i] = uart_read_reg(dev, reg);
    }
    uart_update_irq(dev);
    /* Wake the feeder only once the guest has caught up, so refills come in batches. */
    if (dev->rx_refused && dev->rx_count == 0 && !(dev->mcr & MCR_LOOP)) {
        dev->rx_refused = false;
        notify = dev->cfg.rx_space != NULL;
    }
    pthread_mutex_unlock(&dev->lock);
    /* Outside the lock, so the callback may call uart_receive itself. */
    if (notify)
        dev->cfg.rx_space(dev->cfg.rx_space_ctx);
}

size_t uart_receive(struct uart *dev, const uint8_t *buf, size_t len)
{
    size_t n = 0;

    pthread_mutex_lock(&dev->lock);
    if (!(dev->mcr & MCR_LOOP)) {
        while (n < len && uart_rx_push(dev, buf[n]))
            n++;
    }
    if (n < len)
        dev->rx_refused = true;
    uart_update_irq(dev);
    pthread_mutex_unlock(&dev->lock);
    return n;
}

int uart_init(struct uart *dev, struct bus *pio, const struct uart_config *cfg)
{
    memset(dev, 0, sizeof(*dev));
    dev->pio = pio;
    dev->cfg = *cfg;
    /* Reset values from the 16550A data sheet; divisor 1 = 115200 baud. */
    dev->msr = uart_modem_inputs(0);
    dev->dll = 1;

    int err = pthread_mutex_init(&dev->lock, NULL);
    if (err)
        return -err;
    err = bus_register(pio, cfg->base, UART_NUM_PORTS, uart_io, dev, "uart");
    if (err) {
        pthread_mutex_destroy(&dev->lock);
        return err;
    }
    return 0;
}

void uart_destroy(struct uart *dev)
{
    bus_unregister(dev->pio, dev->cfg.base, dev);
    if (dev->out_dropped)
        log_debug("uart %#x: %llu output bytes dropped", (unsigned)dev->cfg.base,
                  (unsigned long long)dev->out_dropped);
    pthread_mutex_destroy(&dev->lock);
}
