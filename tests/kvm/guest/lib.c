/* Console output, exit, command-line parameters, TSC calibration and PCI configuration
 * access for the tiny guests: all of it user-mode code (IOPL=3 grants the ports). */
#include "tiny.h"

#define PCI_CONFIG_ADDRESS  0xCF8
#define PCI_CONFIG_DATA     0xCFC
#define PCI_BAR0            0x10
#define PCI_BAR_IO          0x1
#define PCI_BAR_MEM64       0x4
#define PIT_CHANNEL2        0x42
#define PIT_COMMAND         0x43
#define PIT_GATE_PORT       0x61
#define PIT_GATE2           0x01
#define PIT_SPEAKER         0x02
#define PIT_OUT2            0x20
#define PIT_HZ              1193182ull
#define PIT_CALIBRATE_TICKS 59659 /* 50 ms */

extern const char *tiny_cmdline;

void *memset(void *dst, int c, size_t n)
{
    uint8_t *d = dst;
    while (n--)
        *d++ = (uint8_t)c;
    return dst;
}

void *memcpy(void *dst, const void *src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    while (n--)
        *d++ = *s++;
    return dst;
}

/* minivmm's UART takes every byte at once, so no LSR polling: one exit per character. */
void tiny_putc(char c)
{
    outb(COM1_PORT, (uint8_t)c);
}

static void put_unsigned(uint64_t value, unsigned base, int width)
{
    char digits[24];
    int n = 0;
    do {
        digits[n++] = "0123456789abcdef"[value % base];
        value /= base;
    } while (value);
    for (; width > n; width--)
        tiny_putc('0');
    while (n)
        tiny_putc(digits[--n]);
}

static void tiny_vprintf(const char *fmt, va_list ap)
{
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            tiny_putc(*fmt);
            continue;
        }
        fmt++;
        /* Only zero padding ("%010lu"): fixed-width numbers keep the console's exit count
         * independent of the values printed. */
        int width = 0;
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        bool is_long = false;
        while (*fmt == 'l') {
            is_long = true;
            fmt++;
        }
        switch (*fmt) {
        case 's': {
            const char *s = va_arg(ap, const char *);
            while (*s)
                tiny_putc(*s++);
            break;
        }
        case 'd': {
            int64_t v = is_long ? va_arg(ap, int64_t) : va_arg(ap, int);
            if (v < 0) {
                tiny_putc('-');
                v = -v;
            }
            put_unsigned((uint64_t)v, 10, width);
            break;
        }
        case 'u':
            put_unsigned(is_long ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 10, width);
            break;
        case 'x':
            put_unsigned(is_long ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 16, width);
            break;
        case '%':
            tiny_putc('%');
            break;
        default:
            tiny_putc('?');
            break;
        }
    }
}

void tiny_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tiny_vprintf(fmt, ap);
    va_end(ap);
}

void tiny_exit(int status)
{
    outb(DEBUG_EXIT_PORT, (uint8_t)status);
    for (;;)
        cpu_relax(); /* the VMM stops the vCPU; user mode cannot hlt */
}

void tiny_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tiny_printf("FAIL: ");
    tiny_vprintf(fmt, ap);
    tiny_putc('\n');
    va_end(ap);
    tiny_exit(TINY_EXIT_FAIL);
}

/* Called from start.S at CPL3. */
void tiny_user_start(void)
{
    tiny_exit(tiny_main());
}

uint64_t tiny_param(const char *name, uint64_t fallback)
{
    static const char prefix[] = "tiny.";
    for (const char *p = tiny_cmdline; p && *p;) {
        while (*p == ' ')
            p++;
        const char *word = p;
        while (*p && *p != ' ')
            p++;
        const char *q = word;
        for (const char *r = prefix; *r && q < p && *q == *r; r++)
            q++;
        if (q - word != (long)sizeof(prefix) - 1)
            continue;
        const char *n = name;
        while (*n && q < p && *q == *n) {
            q++;
            n++;
        }
        if (*n || q >= p || *q != '=')
            continue;
        q++;
        uint64_t value = 0;
        const char *digits = q;
        while (q < p && *q >= '0' && *q <= '9')
            value = value * 10 + (uint64_t)(*q++ - '0');
        if (q == digits)
            return fallback;
        if (q < p && (*q == 'K' || *q == 'k'))
            value <<= 10;
        else if (q < p && *q == 'M')
            value <<= 20;
        else if (q < p && *q == 'G')
            value <<= 30;
        return value;
    }
    return fallback;
}

uint64_t tiny_tsc_hz(void)
{
    outb(PIT_GATE_PORT, (uint8_t)((inb(PIT_GATE_PORT) & ~PIT_SPEAKER) | PIT_GATE2));
    outb(PIT_COMMAND, 0xB0); /* channel 2, low then high byte, mode 0 (count down once) */
    outb(PIT_CHANNEL2, PIT_CALIBRATE_TICKS & 0xFF);
    outb(PIT_CHANNEL2, PIT_CALIBRATE_TICKS >> 8);
    uint64_t start = rdtsc();
    /* Mode 0's output is low while counting; bound the wait for a PIT that never answers. */
    for (uint64_t polls = 0; inb(PIT_GATE_PORT) & PIT_OUT2; polls++)
        if (polls > 1000000)
            return 0;
    uint64_t polls = 0;
    while (!(inb(PIT_GATE_PORT) & PIT_OUT2))
        if (++polls > 100000000)
            return 0;
    uint64_t ticks = rdtsc() - start;
    return ticks * PIT_HZ / PIT_CALIBRATE_TICKS;
}

uint64_t tiny_ticks_to_ns(uint64_t ticks, uint64_t tsc_hz)
{
    /* Split to keep ticks * 1e9 from overflowing for long intervals. */
    return ticks / tsc_hz * 1000000000ull + ticks % tsc_hz * 1000000000ull / tsc_hz;
}

uint32_t pci_read32(unsigned slot, unsigned offset)
{
    outl(PCI_CONFIG_ADDRESS, 0x80000000u | (slot << 11) | (offset & 0xFC));
    return inl(PCI_CONFIG_DATA);
}

void pci_write32(unsigned slot, unsigned offset, uint32_t value)
{
    outl(PCI_CONFIG_ADDRESS, 0x80000000u | (slot << 11) | (offset & 0xFC));
    outl(PCI_CONFIG_DATA, value);
}

int pci_find(uint16_t vendor, uint16_t device)
{
    for (unsigned slot = 0; slot < 32; slot++)
        if (pci_read32(slot, 0) == ((uint32_t)device << 16 | vendor))
            return (int)slot;
    return -1;
}

uint64_t pci_bar_address(unsigned slot, unsigned bar)
{
    uint32_t low = pci_read32(slot, PCI_BAR0 + bar * 4);
    if (low & PCI_BAR_IO)
        return low & ~3u;
    uint64_t address = low & ~0xFu;
    if (low & PCI_BAR_MEM64)
        address |= (uint64_t)pci_read32(slot, PCI_BAR0 + (bar + 1) * 4) << 32;
    return address;
}

void tiny_sort(uint64_t *values, size_t count)
{
    for (size_t i = 1; i < count; i++) {
        uint64_t v = values[i];
        size_t j = i;
        for (; j > 0 && values[j - 1] > v; j--)
            values[j] = values[j - 1];
        values[j] = v;
    }
}
