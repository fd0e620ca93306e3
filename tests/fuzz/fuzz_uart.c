/* The 16550A UART: the fuzzer is the guest (port accesses of every width, which reach
 * consecutive registers) and the host console (uart_receive of any length).
 *
 * A model of the receive path runs alongside: what uart_receive accepted and what loopback
 * transmitted must come out of RBR in order, unless the guest cleared the FIFO; accepted
 * input never exceeds the buffer. Also checked: every THR write outside loopback reaches
 * the transmit callback, in order; LSR always shows THRE and TEMT, and DR exactly when data
 * waits; IER bits 7:4 read 0; the IRQ line only changes on a real change. */
#include <string.h>

#include "devices/bus.h"
#include "devices/uart.h"
#include "fuzz.h"

#define REG_RBR 0
#define REG_IER 1
#define REG_FCR 2
#define REG_LCR 3
#define REG_MCR 4
#define REG_LSR 5
#define DLAB    0x80
#define LOOP    0x10

enum op { OP_ACCESS, OP_RECEIVE, OP_COUNT };

struct model {
    uint8_t queue[UART_RX_BUF_SIZE];
    size_t head, count;
    uint8_t last; /* RBR when the FIFO is empty */
    uint8_t lcr, mcr, fcr;
    uint8_t tx_expected[8]; /* THR writes of the current access, in order */
    uint8_t tx_seen[8];     /* what the transmit callback got during it */
    size_t tx_expected_count, tx_seen_count;
    bool irq_level;
    unsigned irq_changes;
};

static void model_push(struct model *m, uint8_t byte)
{
    if (m->count < UART_RX_BUF_SIZE)
        m->queue[(m->head + m->count++) % UART_RX_BUF_SIZE] = byte;
}

static void on_tx(void *ctx, uint8_t byte)
{
    struct model *m = ctx;
    FUZZ_REQUIRE(m->tx_seen_count < sizeof(m->tx_seen), "more bytes sent than written");
    m->tx_seen[m->tx_seen_count++] = byte;
}

static void on_irq(void *ctx, uint32_t gsi, bool level)
{
    struct model *m = ctx;
    FUZZ_REQUIRE(gsi == UART_COM1_IRQ && level != m->irq_level, "irq %u set to %d again", gsi,
                 level);
    m->irq_level = level;
    m->irq_changes++;
}

/* The model's view of one byte of a guest access to register reg; read is what the device
 * returned for a read. */
static void model_access(struct model *m, unsigned reg, bool is_write, uint8_t value)
{
    bool dlab = m->lcr & DLAB;
    if (!is_write) {
        if (reg == REG_RBR && !dlab) {
            uint8_t expected = m->last;
            if (m->count) {
                expected = m->last = m->queue[m->head];
                m->head = (m->head + 1) % UART_RX_BUF_SIZE;
                m->count--;
            }
            FUZZ_REQUIRE(value == expected, "RBR read %#x, expected %#x", value, expected);
        }
        if (reg == REG_LSR) {
            FUZZ_REQUIRE((value & 0x60) == 0x60, "LSR %#x without THRE/TEMT", value);
            FUZZ_REQUIRE(!(value & 1) == !m->count, "LSR.DR %d with %zu bytes waiting", value & 1,
                         m->count);
        }
        if (reg == REG_IER && !dlab)
            FUZZ_REQUIRE(!(value & 0xF0), "IER reads %#x", value);
        return;
    }
    switch (reg) {
    case REG_RBR:
        if (!dlab && (m->mcr & LOOP))
            model_push(m, value); /* a full FIFO drops it (overrun) */
        else if (!dlab && m->tx_expected_count < sizeof(m->tx_expected))
            m->tx_expected[m->tx_expected_count++] = value;
        break;
    case REG_FCR:
        if (((value ^ m->fcr) & 1) || ((value & 1) && (value & 2)))
            m->count = 0;
        m->fcr = value & 1;
        break;
    case REG_LCR:
        m->lcr = value;
        break;
    case REG_MCR:
        m->mcr = value;
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct model m;
    static struct uart uart;
    struct fuzz_input in = fuzz_input_of(data, size);
    struct bus pio;

    memset(&m, 0, sizeof(m));
    FUZZ_REQUIRE(bus_init(&pio, "pio") == 0, "bus_init");
    const struct uart_config cfg = {
        .base = UART_COM1_BASE,
        .irq = {.set_level = on_irq, .ctx = &m, .gsi = UART_COM1_IRQ},
        .tx = on_tx,
        .tx_ctx = &m,
        .out_fd = -1,
    };
    FUZZ_REQUIRE(uart_init(&uart, &pio, &cfg) == 0, "uart_init");

    while (fuzz_more(&in)) {
        switch (fuzz_u8(&in) % OP_COUNT) {
        case OP_ACCESS: {
            struct fuzz_access a = fuzz_access_next(&in, UART_NUM_PORTS + 4);
            m.tx_expected_count = m.tx_seen_count = 0;
            uint64_t value = fuzz_access_do(&pio, UART_COM1_BASE, &a);
            if (a.is_write)
                value = a.value;
            /* Bytes past the eighth port belong to nobody: the bus drops the access. */
            if (a.offset + a.size <= UART_NUM_PORTS) {
                for (uint32_t i = 0; i < a.size; i++)
                    model_access(&m, (unsigned)(a.offset + i), a.is_write,
                                 (uint8_t)(value >> (8 * i)));
            }
            FUZZ_REQUIRE(m.tx_seen_count == m.tx_expected_count &&
                             !memcmp(m.tx_seen, m.tx_expected, m.tx_seen_count),
                         "sent %zu bytes, not the %zu written", m.tx_seen_count,
                         m.tx_expected_count);
            break;
        }
        case OP_RECEIVE: {
            size_t len;
            const uint8_t *bytes = fuzz_bytes(&in, 255, &len);
            size_t room = m.mcr & LOOP ? 0 : UART_RX_BUF_SIZE - m.count;
            size_t taken = uart_receive(&uart, bytes, len);
            FUZZ_REQUIRE(taken == (len < room ? len : room), "accepted %zu of %zu with room %zu",
                         taken, len, room);
            for (size_t i = 0; i < taken; i++)
                model_push(&m, bytes[i]);
            break;
        }
        }
        FUZZ_REQUIRE(uart.rx_count == m.count && uart.rx_head < UART_RX_BUF_SIZE,
                     "%zu bytes waiting, model says %zu", uart.rx_count, m.count);
        FUZZ_REQUIRE(uart.irq_level == m.irq_level, "IRQ line %d, last set %d", uart.irq_level,
                     m.irq_level);
    }

    uart_destroy(&uart);
    bus_destroy(&pio);
    return 0;
}
