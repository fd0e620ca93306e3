/* What names a shared-memory group and its shape: the limits every party enforces (the
 * option parser, the broker, the client), and the --shm=NAME[,size=SIZE][,vectors=N]
 * [,hugepages=2M|1G][,portio=on] text that minivmm and minivmm-broker both read. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHM_NAME_MAX        64
#define SHM_MIN_SIZE        (4ull << 10)
#define SHM_MAX_SIZE        (16ull << 30)
#define SHM_MAX_VECTORS     64
#define SHM_MAX_PEERS       64
#define SHM_DEFAULT_SIZE    (4ull << 20)
#define SHM_DEFAULT_VECTORS 2

struct shm_spec {
    char name[SHM_NAME_MAX + 1];
    uint64_t size;        /* a power of two, SHM_MIN_SIZE..SHM_MAX_SIZE */
    unsigned int vectors; /* 0..SHM_MAX_VECTORS; 0: memory only */
    /* 0: ordinary pages; else the hugetlb page size backing the memory (hugepages.h),
     * which size is a multiple of. Every member of a group has the same. */
    uint64_t hugepage_size;
    bool sandbox; /* a broker this join starts sandboxes itself (default true) */
    bool portio;  /* portio=on: also join the group's port I/O channel */
};

/* NAME: 1..SHM_NAME_MAX characters of [A-Za-z0-9._-], not starting with '.'. */
bool shm_name_valid(const char *name);

/* Parses "NAME[,size=SIZE][,vectors=N][,hugepages=2M|1G][,portio=on|off]" (keys in any
 * order, each at most once; SIZE as parse_size() reads it). Defaults: SHM_DEFAULT_SIZE,
 * SHM_DEFAULT_VECTORS, ordinary pages, portio off, sandbox on. Returns 0, or -EINVAL with a
 * sentence in why that names the mistake (the caller adds "--shm '...': " in front). */
int shm_spec_parse(const char *text, struct shm_spec *spec, char *why, size_t why_len);

/* Checks a spec built by other means against the limits. Returns 0 or -EINVAL with a
 * sentence in why. */
int shm_spec_check(const struct shm_spec *spec, char *why, size_t why_len);
