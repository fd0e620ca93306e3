#include "devices/i8042.h"

#include <string.h>

#include "common/log.h"

#define STR_OBF    0x01
#define STR_SYS    0x04 /* mirrors the command byte's system flag */
#define STR_CMD    0x08 /* last write went to the command port */
#define STR_UNLOCK 0x10 /* keyboard not inhibited by the key lock */

#define CTR_SYS    0x04
#define CTR_KBDDIS 0x10
#define CTR_AUXDIS 0x20
#define CTR_XLATE  0x40

#define OUT_PORT_RESET 0x01 /* active low: 0 holds the CPU in reset */
#define OUT_PORT_A20   0x02

/* What a BIOS leaves behind: translation on, aux port off, POST passed. The interrupt
 * enable bits stay clear because no interrupt is ever raised. */
#define CTR_DEFAULT (CTR_XLATE | CTR_AUXDIS | CTR_SYS)

static void i8042_output(struct i8042 *dev, uint8_t byte)
{
    dev->outbuf = byte;
    dev->outbuf_full = true;
}

/* Returns true when the command pulses the reset line. */
static bool i8042_command(struct i8042 *dev, uint8_t cmd)
{
    dev->pending = 0;
    if (cmd >= 0x20 && cmd <= 0x3f) {
        i8042_output(dev, dev->ram[cmd & 0x1f]);
        return false;
    }
    if ((cmd >= 0x60 && cmd <= 0x7f) || (cmd >= 0xd1 && cmd <= 0xd4)) {
        dev->pending = cmd;
        return false;
    }
    /* 0xf0-0xff pulse output lines whose bit is clear; line 0 is the CPU reset. */
    if (cmd >= 0xf0)
        return !(cmd & 0x01);

    switch (cmd) {
    case 0xa7:
        dev->ram[0] |= CTR_AUXDIS;
        break;
    case 0xa8:
        dev->ram[0] &= ~CTR_AUXDIS;
        break;
    case 0xa9:
        /* "Clock line stuck low": no aux port, and Linux stops probing for one. */
        i8042_output(dev, 0x01);
        break;
    case 0xaa:
        i8042_output(dev, 0x55);
        break;
    case 0xab:
        i8042_output(dev, 0x00);
        break;
    case 0xad:
        dev->ram[0] |= CTR_KBDDIS;
        break;
    case 0xae:
        dev->ram[0] &= ~CTR_KBDDIS;
        break;
    case 0xd0:
        i8042_output(dev, dev->out_port);
        break;
    default:
        log_debug("i8042: command %#x ignored", (unsigned)cmd);
        break;
    }
    return false;
}

/* A byte on the data port: the parameter of a pending command, else for the keyboard.
 * Returns true when it asserts the reset line. */
static bool i8042_data(struct i8042 *dev, uint8_t val)
{
    uint8_t cmd = dev->pending;

    dev->pending = 0;
    if (cmd >= 0x60 && cmd <= 0x7f) {
        dev->ram[cmd & 0x1f] = val;
        return false;
    }
    switch (cmd) {
    case 0xd1:
        dev->out_port = val | OUT_PORT_A20;
        return !(val & OUT_PORT_RESET);
    case 0xd2:
        i8042_output(dev, val);
        break;
    case 0xd3:
        /* Echoed without the aux-data bit, as if no aux port: see i8042.h. */
        i8042_output(dev, val);
        break;
    case 0xd4:
    default:
        log_debug("i8042: byte %#x for the %s dropped: none attached", (unsigned)val,
                  cmd == 0xd4 ? "mouse" : "keyboard");
        break;
    }
    return false;
}

static uint8_t i8042_status(const struct i8042 *dev)
{
    uint8_t st = STR_UNLOCK;
    if (dev->last_was_command)
        st |= STR_CMD;
    if (dev->ram[0] & CTR_SYS)
        st |= STR_SYS;
    if (dev->outbuf_full)
        st |= STR_OBF;
    return st;
}

static void i8042_io(void *owner, uint64_t offset, void *data, uint32_t size, bool is_write,
                     bool command_port)
{
    struct i8042 *dev = owner;
    uint8_t *bytes = data;
    bool reset = false;

    (void)offset;
    pthread_mutex_lock(&dev->lock);
    if (!is_write) {
        if (command_port) {
            bytes[0] = i8042_status(dev);
        } else {
            bytes[0] = dev->outbuf;
            dev->outbuf_full = false;
        }
    } else if (command_port) {
        dev->last_was_command = true;
        reset = i8042_command(dev, bytes[0]);
    } else {
        dev->last_was_command = false;
        reset = i8042_data(dev, bytes[0]);
    }
    pthread_mutex_unlock(&dev->lock);

    /* The controller's registers are 8 bits wide; a wider read sees nothing beyond. */
    if (!is_write && size > 1)
        memset(bytes + 1, 0xff, size - 1);
    /* Outside the lock: stopping the machine may wait for vCPUs that are about to enter
     * this device. */
    if (reset)
        machine_request_stop(&dev->mc, MACHINE_STOP_RESET, 0);
}

static void i8042_data_io(void *owner, uint64_t offset, void *data, uint32_t size, bool is_write)
{
    i8042_io(owner, offset, data, size, is_write, false);
}

static void i8042_command_io(void *owner, uint64_t offset, void *data, uint32_t size, bool is_write)
{
    i8042_io(owner, offset, data, size, is_write, true);
}

int i8042_init(struct i8042 *dev, struct bus *pio, const struct machine_control *mc)
{
    memset(dev, 0, sizeof(*dev));
    dev->pio = pio;
    dev->mc = *mc;
    dev->ram[0] = CTR_DEFAULT;
    dev->out_port = OUT_PORT_RESET | OUT_PORT_A20;

    int err = pthread_mutex_init(&dev->lock, NULL);
    if (err)
        return -err;
    err = bus_register(pio, I8042_DATA_PORT, 1, i8042_data_io, dev, "i8042 data");
    if (err)
        goto err_mutex;
    err = bus_register(pio, I8042_COMMAND_PORT, 1, i8042_command_io, dev, "i8042 command");
    if (err)
        goto err_data;
    return 0;

err_data:
    bus_unregister(pio, I8042_DATA_PORT, dev);
err_mutex:
    pthread_mutex_destroy(&dev->lock);
    return err;
}

void i8042_destroy(struct i8042 *dev)
{
    bus_unregister(dev->pio, I8042_COMMAND_PORT, dev);
    bus_unregister(dev->pio, I8042_DATA_PORT, dev);
    pthread_mutex_destroy(&dev->lock);
}
