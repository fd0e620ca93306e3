/*
 * shm_churn.h: the layout the churn test's guests keep in an ivshmem device's shared memory
 * (BAR2), shared by the Linux program guest-apps/shm-churn.c and the tiny guest
 * tests/kvm/guest/churn.c. Freestanding: <stdbool.h> and <stdint.h> only.
 *
 * Every peer ID owns one region (CHURN_REGION_STRIDE bytes at ID * stride) that only the
 * VM holding that ID writes, so VMs may die at any instruction without a lock to recover.
 * A region is a seqlock: the owner makes `lock` odd, writes nonce, seq, owner and the
 * payload, then makes `lock` even again (x86 keeps stores in order, so a compiler barrier
 * is all either side needs). A reader takes lock (even), reads, and takes lock again: the
 * same value means what it read is one whole message. An owner killed mid-write leaves
 * lock odd; the next owner of the ID starts from lock | 1, so an even lock never covers a
 * half-written message.
 *
 * The nonce is fresh per boot (never 0), seq counts a boot's messages from 1, and payload
 * word i is churn_word(nonce, seq, i): a reader can check every byte of any message with
 * no other state, and a restarted writer can never repeat an old message's bytes.
 *
 * The control block at CHURN_CONTROL_OFFSET holds the stop word: once it is
 * CHURN_STOP_MAGIC, every churn guest makes a last pass over the regions, reports and ends.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#define CHURN_MAX_PEERS      64
#define CHURN_REGION_STRIDE  0x4000u /* 16 KiB per peer ID: 1 MiB for all 64 */
#define CHURN_PAYLOAD_WORDS  512u    /* 4 KiB per message */
#define CHURN_PAYLOAD_BYTES  (CHURN_PAYLOAD_WORDS * 8u)
#define CHURN_CONTROL_OFFSET (CHURN_MAX_PEERS * CHURN_REGION_STRIDE)
#define CHURN_MIN_SHM        (CHURN_CONTROL_OFFSET + 4096u)
#define CHURN_STOP_MAGIC     0x504F545354534843ull /* "CHSTSTOP" */

struct churn_region {
    volatile uint64_t lock;  /* seqlock: odd while the owner writes */
    volatile uint64_t nonce; /* this boot of the owner; 0: never written */
    volatile uint64_t seq;   /* the owner's message count in this boot, from 1 */
    volatile uint64_t owner; /* the owner's peer ID: must equal the region's index */
    volatile uint64_t reserved[4];
    volatile uint64_t payload[CHURN_PAYLOAD_WORDS];
};

struct churn_control {
    volatile uint64_t stop; /* CHURN_STOP_MAGIC: end the run */
};

static inline struct churn_region *churn_region(void *shm, unsigned id)
{
    return (struct churn_region *)((uint8_t *)shm + (uint64_t)id * CHURN_REGION_STRIDE);
}

static inline struct churn_control *churn_control(void *shm)
{
    return (struct churn_control *)((uint8_t *)shm + CHURN_CONTROL_OFFSET);
}

static inline void churn_barrier(void)
{
    __asm__ volatile("" ::: "memory");
}

/* splitmix64's finaliser over (nonce, seq, index): every word of every message differs. */
static inline uint64_t churn_word(uint64_t nonce, uint64_t seq, uint64_t index)
{
    uint64_t z = nonce + seq * 0x9E3779B97F4A7C15ull + index * 0xD1B54A32D192ED03ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A boot's nonce from a clock reading and the peer ID; never 0 (0 means unwritten). */
static inline uint64_t churn_nonce(uint64_t clock, unsigned id)
{
    uint64_t nonce = churn_word(clock, id, 0x6368726eull);
    return nonce ? nonce : 1;
}

/* Publishes message seq (>= 1) of this boot into the own region. */
static inline void churn_publish(struct churn_region *r, unsigned own_id, uint64_t nonce,
                                 uint64_t seq)
{
    uint64_t lock = r->lock | 1;
    r->lock = lock;
    churn_barrier();
    r->nonce = nonce;
    r->seq = seq;
    r->owner = own_id;
    for (uint64_t i = 0; i < CHURN_PAYLOAD_WORDS; i++)
        r->payload[i] = churn_word(nonce, seq, i);
    churn_barrier();
    r->lock = lock + 1;
}

/* What a reader knows of one peer ID: the last message it verified there. */
struct churn_seen {
    uint64_t nonce;
    uint64_t seq;
};

enum churn_read {
    CHURN_READ_NOTHING_NEW, /* never written, or the message already verified */
    CHURN_READ_TORN,        /* the owner was writing: try again later, not an error */
    CHURN_READ_NEW,         /* a new message of a known boot, every byte verified */
    CHURN_READ_NEW_BOOT,    /* the first verified message of a new boot of the ID */
    CHURN_READ_MISMATCH,    /* a whole message (seqlock held) that is wrong: *bad says how */
};

/* Where a mismatch was found, for the report. */
struct churn_bad {
    uint64_t nonce, seq, owner, word, expected, found;
};

/* Reads region id once with the seqlock and verifies a new message in place: the check is
 * only believed when lock did not move across it, so no copy is needed. */
static inline enum churn_read churn_read(const struct churn_region *r, unsigned id,
                                         struct churn_seen *seen, struct churn_bad *bad)
{
    uint64_t lock = r->lock;
    if (lock & 1)
        return CHURN_READ_TORN;
    churn_barrier();
    uint64_t nonce = r->nonce, seq = r->seq, owner = r->owner;
    if (nonce == 0 || (nonce == seen->nonce && seq == seen->seq)) {
        churn_barrier();
        return r->lock == lock ? CHURN_READ_NOTHING_NEW : CHURN_READ_TORN;
    }
    uint64_t word = CHURN_PAYLOAD_WORDS, expected = 0, found = 0;
    if (owner != id || seq == 0 || (nonce == seen->nonce && seq < seen->seq)) {
        word = 0; /* a wrong header: reported with word 0's values */
        expected = churn_word(nonce, seq, 0);
        found = r->payload[0];
    } else {
        for (uint64_t i = 0; i < CHURN_PAYLOAD_WORDS; i++) {
            uint64_t want = churn_word(nonce, seq, i), got = r->payload[i];
            if (got != want) {
                word = i;
                expected = want;
                found = got;
                break;
            }
        }
    }
    churn_barrier();
    if (r->lock != lock)
        return CHURN_READ_TORN;
    if (word != CHURN_PAYLOAD_WORDS) {
        *bad = (struct churn_bad){nonce, seq, owner, word, expected, found};
        return CHURN_READ_MISMATCH;
    }
    bool new_boot = nonce != seen->nonce;
    seen->nonce = nonce;
    seen->seq = seq;
    return new_boot ? CHURN_READ_NEW_BOOT : CHURN_READ_NEW;
}

/* What a reader verified so far, over every peer ID. */
struct churn_reader {
    struct churn_seen seen[CHURN_MAX_PEERS];
    uint64_t messages, boots, torn;
};

/* Reads the region of every peer in present but own_id once. Returns -1 at the first
 * mismatch (its peer ID in *bad_id, what was wrong in *bad), else 0. */
static inline int churn_scan(void *shm, unsigned own_id, uint64_t present, struct churn_reader *r,
                             unsigned *bad_id, struct churn_bad *bad)
{
    for (unsigned id = 0; id < CHURN_MAX_PEERS; id++) {
        if (id == own_id || !(present & (1ull << id)))
            continue;
        switch (churn_read(churn_region(shm, id), id, &r->seen[id], bad)) {
        case CHURN_READ_NOTHING_NEW:
            break;
        case CHURN_READ_TORN:
            r->torn++;
            break;
        case CHURN_READ_NEW_BOOT:
            r->boots++;
            /* fall through */
        case CHURN_READ_NEW:
            r->messages++;
            break;
        case CHURN_READ_MISMATCH:
            *bad_id = id;
            return -1;
        }
    }
    return 0;
}
