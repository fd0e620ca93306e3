/* A 16550A UART as Linux's 8250 driver sees it: the guest's serial console.
 * Transmission is instant (THR is empty again as soon as it is written), so LSR always
 * shows THRE and TEMT and the THRE interrupt re-arms after every THR write, which is what
 * drives Linux's interrupt-driven transmit loop. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/bus.h"
#include "devices/device.h"

#define UART_COM1_BASE 0x3f8
#define UART_COM1_IRQ  4
#define UART_NUM_PORTS 8
/* Host input waiting for the guest. Larger than a real 16-byte FIFO so a pasted line fits,
 * and the guest drains it the same way (Linux reads RBR while LSR.DR is set). */
#define UART_RX_BUF_SIZE 256

/* Receives each transmitted byte, in order, on a vCPU thread with the device lock held:
 * it must not call back into the UART and should not block for long. */
typedef void (*uart_tx_fn)(void *ctx, uint8_t byte);

/* Called on a vCPU thread, without the device lock, when the guest has emptied the receive
 * buffer after uart_receive turned bytes away, so a feeder can retry without polling (it may
 * call uart_receive from the callback). */
typedef void (*uart_rx_space_fn)(void *ctx);

struct uart_config {
    uint16_t base;       /* UART_COM1_BASE */
    struct irq_line irq; /* gsi UART_COM1_IRQ for COM1 */
    /* Transmitted bytes go to tx when it is set, else are written to out_fd (not owned,
     * never closed, e.g. STDOUT_FILENO), else (out_fd < 0) are discarded. */
    uart_tx_fn tx;
    void *tx_ctx;
    int out_fd;
    uart_rx_space_fn rx_space; /* optional */
    void *rx_space_ctx;
};

struct uart {
    pthread_mutex_t lock; /* vCPU threads and the input thread both reach the registers */
    struct bus *pio;
    struct uart_config cfg;
    bool irq_level; /* last level given to cfg.irq */

    bool out_stalled;     /* out_fd did not drain in time: drop bytes until it is writable */
    bool out_error_seen;  /* a write error was logged already */
    bool out_stall_seen;  /* a stall was logged already */
    uint64_t out_dropped; /* bytes lost to a stalled or failing out_fd */

    uint8_t ier;
    uint8_t lcr;
    uint8_t mcr;
    uint8_t lsr_errors; /* OE/PE/FE/BI: sticky until LSR is read */
    uint8_t msr;        /* modem inputs (bits 7:4) and their deltas (bits 3:0) */
    uint8_t fcr;        /* FIFO enable and trigger bits as last written */
    uint8_t scr;
    uint8_t dll;
    uint8_t dlm;
    uint8_t rbr;       /* last byte handed to the guest, read again when the FIFO is empty */
    bool thr_ipending; /* THRE interrupt condition, cleared by IIR read or THR write */
    bool rx_refused;   /* uart_receive turned bytes away since the buffer last emptied */

    uint8_t rx_buf[UART_RX_BUF_SIZE];
    size_t rx_head;
    size_t rx_count;
};

/* Registers the eight ports at cfg->base. Returns 0 or -errno (bus_register's, or a
 * pthread error). */
int uart_init(struct uart *dev, struct bus *pio, const struct uart_config *cfg);

/* Unregisters the ports: call after the vCPUs and the input thread have stopped, and
 * before bus_destroy. */
void uart_destroy(struct uart *dev);

/* Offers host input to the guest, from any thread. Returns how many bytes of buf were
 * accepted: fewer than len when the receive buffer is full, and 0 while the guest has the
 * UART in loopback (its serial input is disconnected then). The caller keeps the rest and
 * retries later. Input arriving before the guest's driver starts is cleared with the FIFO
 * by the driver's FCR writes, as on real hardware. */
size_t uart_receive(struct uart *dev, const uint8_t *buf, size_t len);
