/* BAR2 shared memory between two VMs: the writer (tiny.role=0) streams tiny.bytes through a
 * ring of 64 KiB chunks in BAR2, the reader (tiny.role=1) checks every 8-byte word. Plain
 * loads and stores on both sides, no exits: the ring's head and tail are polled. */
#include "ivshmem.h"

#define CHUNK_SIZE  ((uint64_t)64 << 10)
#define CHUNK_WORDS (CHUNK_SIZE / 8)
#define TIMEOUT_S   60

static inline uint64_t pattern(uint64_t chunk, uint64_t word)
{
    return ((chunk << 32) | word) * 0x9E3779B97F4A7C15ull;
}

static inline void compiler_barrier(void)
{
    __asm__ volatile("" ::: "memory");
}

int tiny_main(void)
{
    uint64_t role = tiny_param("role", 0);
    uint64_t bytes = tiny_param("bytes", 64ull << 20);
    uint64_t tsc_hz = tiny_tsc_hz();
    if (tsc_hz == 0)
        tiny_fail("the PIT (channel 2, port 0x61) did not count: no TSC calibration");
    struct ivshmem dev;
    ivshmem_find(&dev);
    if (dev.shm_size < PAIR_DATA_OFFSET + 2 * CHUNK_SIZE)
        tiny_fail("BAR2 of %lu bytes is too small for a ring of 64 KiB chunks", dev.shm_size);
    uint64_t slots = (dev.shm_size - PAIR_DATA_OFFSET) / CHUNK_SIZE;
    uint64_t chunks = bytes / CHUNK_SIZE;
    struct pair_control *control = (struct pair_control *)dev.shm;
    uint64_t *ring = (uint64_t *)(dev.shm + PAIR_DATA_OFFSET);

    tiny_printf("shm: peer %u, role %s, BAR2 0x%lx, %lu chunks through %lu slots\n", dev.own_id,
                role ? "reader" : "writer", dev.shm, chunks, slots);
    pair_meet(&dev, (unsigned)role, tsc_hz, TIMEOUT_S);
    uint64_t deadline = rdtsc() + TIMEOUT_S * tsc_hz;
    uint64_t start = rdtsc(), bad = 0, first_bad = ~0ull;
    for (uint64_t c = 0; c < chunks; c++) {
        uint64_t *slot = ring + (c % slots) * CHUNK_WORDS;
        if (role == 0) {
            while (c - control->tail[0] >= slots)
                if (rdtsc() > deadline)
                    tiny_fail("reader stopped at chunk %lu", control->tail[0]);
            compiler_barrier();
            for (uint64_t w = 0; w < CHUNK_WORDS; w++)
                slot[w] = pattern(c, w);
            compiler_barrier(); /* x86 keeps stores in order: data before head */
            control->head[0] = c + 1;
        } else {
            while (control->head[0] <= c)
                if (rdtsc() > deadline)
                    tiny_fail("writer stopped at chunk %lu", control->head[0]);
            compiler_barrier();
            for (uint64_t w = 0; w < CHUNK_WORDS; w++) {
                if (slot[w] != pattern(c, w)) {
                    bad++;
                    if (first_bad == ~0ull)
                        first_bad = c * CHUNK_SIZE + w * 8;
                }
            }
            compiler_barrier();
            control->tail[0] = c + 1;
        }
    }
    if (role == 0)
        while (control->tail[0] < chunks)
            if (rdtsc() > deadline)
                tiny_fail("reader stopped at chunk %lu of %lu", control->tail[0], chunks);
    uint64_t ns = tiny_ticks_to_ns(rdtsc() - start, tsc_hz);
    if (bad)
        tiny_fail("%lu of %lu words wrong, the first at byte %lu", bad, chunks * CHUNK_WORDS,
                  first_bad);
    tiny_printf("RESULT shm role=%lu bytes=%lu ns=%lu verified=%lu\n", role, chunks * CHUNK_SIZE,
                ns, role ? chunks * CHUNK_SIZE : 0);
    return TINY_EXIT_PASS;
}
