/* Hugetlb pages behind a group's memory (--shm=NAME,hugepages=2M|1G): the sizes a group may
 * ask for, how many pages the host can still hand out, and what backs a memfd another
 * process gave us. The broker checks the host before it creates the memfd, so a shortage is
 * a start error with numbers in it; a joiner checks the memfd it received. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HUGEPAGE_2M (2ull << 20)
#define HUGEPAGE_1G (1ull << 30)
/* Where the kernel counts each hugepage size's pool. */
#define HUGEPAGES_SYSFS "/sys/kernel/mm/hugepages"

/* 2M and 1G: the sizes x86-64 pages come in. */
bool hugepage_size_valid(uint64_t page_size);

/* memfd_create() flags that ask for hugetlb pages of page_size (MFD_HUGETLB with
 * MFD_HUGE_2MB or MFD_HUGE_1GB); 0 for ordinary pages. */
unsigned int hugepage_memfd_flags(uint64_t page_size);

/* The pool of one hugepage size, as sysfs_root/hugepages-<KB>kB/ counts it. */
struct hugepage_pool {
    uint64_t nr;         /* nr_hugepages: the persistent pool */
    uint64_t free;       /* free_hugepages: not in any file or mapping */
    uint64_t resv;       /* resv_hugepages: free, but promised to a mapping already */
    uint64_t overcommit; /* nr_overcommit_hugepages: surplus pages the kernel may add */
    uint64_t surplus;    /* surplus_hugepages: of those, already added */
};

/* Reads the pool of page_size under sysfs_root (HUGEPAGES_SYSFS outside tests). Returns 0,
 * or -errno with a sentence in why (-ENOENT: the host has no pool of that size). */
int hugepage_pool_read(const char *sysfs_root, uint64_t page_size, struct hugepage_pool *pool,
                       char *why, size_t why_len);

/* How many pages a new file can still get: the free ones nobody was promised, plus the
 * surplus pages overcommit still allows (the kernel's own reservation arithmetic). */
uint64_t hugepage_pool_available(const struct hugepage_pool *pool);

/* Whether size bytes of page_size pages can be had now. Returns 0, or -ENOMEM with a
 * sentence in why that says "needs N hugepages of SIZE ..., M free" and how to reserve
 * more, or -errno from hugepage_pool_read(). The memfd's fallocate() is the real test: this
 * only puts numbers in the refusal. */
int hugepages_check(const char *sysfs_root, uint64_t page_size, uint64_t size, char *why,
                    size_t why_len);

/* The page size behind fd: *page_size = 0 for ordinary memory (shmem, tmpfs), else the
 * hugetlbfs page size (statfs f_bsize). Returns 0 or -errno with a sentence in why. */
int memfd_page_size(int fd, uint64_t *page_size, char *why, size_t why_len);

/* "2M hugepages" or "4K pages", for messages about a group's backing. */
void hugepage_describe(uint64_t page_size, char *text, size_t len);

/* The option as --shm, minivmm-broker, --shm-list and the status messages write it:
 * "<separator>hugepages=2M" for a hugetlb group, "" for ordinary pages. */
void hugepage_option(uint64_t page_size, char separator, char *text, size_t len);
