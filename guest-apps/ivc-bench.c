/*
 * ivc-bench: libivc between two VMs, measured and verified. Both VMs run it with the same
 * options; the one with the lower ID leads. For each channel, both directions:
 *   - transfers of each --size, in messages of the channel's chunk size, every byte
 *     checked by the receiver (each message carries its stream offset and a pattern
 *     seeded per transfer); throughput from the sender's start to the receiver's answer;
 *   - --count round trips of --msg bytes (echoed back): p50, p99, mean;
 *   - --count messages of --msg bytes streamed one way: messages per second;
 *   - the sender's per-layer time from libivc's IVC_TIMING counters: library (ring work
 *     and copies), doorbell system call, blocked waiting for the peer, presence reads.
 *
 * Usage: ivc-bench [--channel shm-poll|shm-irq|portio]... [--size BYTES]...
 *                  [--portio-size BYTES]... [--count N] [--msg BYTES] [--peer ID]
 *                  [--peers P] [--device DEV] [--timeout S] [--vmm NAME]
 * Defaults: both shared-memory channels (shm-irq only where the ivshmem_guest driver is
 * bound; portio, the port I/O channel of --shm=NAME,portio=on, only when asked for),
 * sizes 4K 2M 1G, count 10000, msg 64, peer = the other present peer (minivmm; give
 * --peer on QEMU), peers = libivc's default, timeout 60 s for any one step, vmm =
 * "minivmm" where the device has minivmm's extension, else "qemu". --portio-size gives
 * the portio channel sizes of its own (every byte there costs VM exits), else it takes
 * --size's. --device names the ivshmem device, or the portio one for portio. Options
 * repeat instead of taking lists because the guest image's minivmm.run= separates words
 * with commas.
 *
 * Output: progress lines, then the rows this VM measured (as the sender) as CSV between
 *   --- ivc-bench csv begin ---
 *   channel,vmm,peer_vmm,direction,size_bytes,metric,value,unit
 *   --- ivc-bench csv end ---
 * where direction is "<sender ID>to<receiver ID>", then the same rows as a table, and
 * "ivc-bench: OK" (exit 0) or "ivc-bench: FAIL reason" (exit 1); 2 for usage errors.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ivc_bench.h"

static int usage(void)
{
    fprintf(stderr, "usage: ivc-bench [--channel shm-poll|shm-irq|portio]... [--size BYTES]... "
                    "[--portio-size BYTES]... [--count N] [--msg BYTES] [--peer ID] [--peers P] "
                    "[--device DEV] [--timeout S] [--vmm NAME]\n");
    return 2;
}

int main(int argc, char **argv)
{
    static const char *const channel_names[] = {"shm-poll", "shm-irq", "portio", NULL};
    static struct bench b = {.count = 10000, .msg = 64, .peer_opt = -1, .timeout_ms = 60000};
    int status = 0;

    if (ivc_bench_parse_args(&b, argc, argv, 1, channel_names))
        return usage();
    bool all_channels = !b.n_channels;
    if (all_channels) {
        b.channels[b.n_channels++] = "shm-poll";
        b.channels[b.n_channels++] = "shm-irq";
    }
    if (ivc_bench_prepare(&b)) {
        ivc_bench_fail("malloc", -ENOMEM);
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    for (int i = 0; i < b.n_channels && status == 0; i++) {
        bool irq = strcmp(b.channels[i], "shm-irq") == 0;
        bool portio = strcmp(b.channels[i], "portio") == 0;
        struct ivc_ctx_opts opts = {.backend = portio ? IVC_PORTIO
                                               : irq  ? IVC_SHM_IRQ
                                                      : IVC_SHM_POLL,
                                    .device = b.device,
                                    .peers = b.peers,
                                    .self_id = -1,
                                    .flags = IVC_TIMING};
        struct ivc_ctx *ctx;
        int err = ivc_ctx_open(&ctx, &opts);
        if (err == -ENODEV && irq && all_channels) {
            printf("ivc-bench: shm-irq skipped: no ivshmem_guest driver here\n");
            continue;
        }
        if (err) {
            status = ivc_bench_fail(b.channels[i], err);
            break;
        }
        status = ivc_bench_channel(&b, ctx, b.channels[i]);
        ivc_ctx_close(ctx);
    }
    return ivc_bench_finish(&b, status);
}
