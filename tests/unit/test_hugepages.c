/* Hugetlb-backed groups (--shm=NAME,hugepages=2M|1G): the pool arithmetic against a fake
 * sysfs tree, the joiner's checks of a group's backing, and a real group on this host:
 * created and mapped when the host has free 2M pages, refused with its numbers ("needs N
 * hugepages, M free") when it has too few. Both outcomes are real; which one runs depends
 * on the host, and the test says which. */
#include <linux/memfd.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/unit/support/ivshmem_client.h"
#include "tests/unit/support/text.h"
#include "vmm/broker/server.h"
#include "vmm/broker/status.h"
#include "vmm/hugepages.h"
#include "vmm/ivshmem_protocol.h"
#include "vmm/shm_group.h"

#define MB (1ull << 20)

struct fixture {
    char dir[256];     /* XDG_RUNTIME_DIR */
    char runtime[300]; /* its minivmm folder */
    char sysfs[300];   /* a fake /sys/kernel/mm/hugepages */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    test_tmpdir(f->dir, sizeof(f->dir), "hugepages-test");
    snprintf(f->runtime, sizeof(f->runtime), "%s/minivmm", f->dir);
    snprintf(f->sysfs, sizeof(f->sysfs), "%s/sysfs", f->dir);
    if (mkdir(f->sysfs, 0700) < 0)
        return -1;
    setenv("XDG_RUNTIME_DIR", f->dir, 1);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    /* Brokers leave when their last member has; as subreaper we collect them. */
    int64_t deadline = test_now_ms() + 3000;
    while (test_now_ms() < deadline) {
        pid_t r = waitpid(-1, NULL, WNOHANG);
        if (r < 0)
            break;
        if (r == 0)
            usleep(10000);
    }
    test_rmtree(f->dir);
    free(f);
    return 0;
}

static void write_file(const char *path, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void write_file(const char *path, const char *fmt, ...)
{
    FILE *file = fopen(path, "w");
    if (!file)
        fail_msg("fopen %s: %s", path, strerror(errno));
    va_list ap;
    va_start(ap, fmt);
    vfprintf(file, fmt, ap);
    va_end(ap);
    fclose(file);
}

/* A pool directory as the kernel lays it out. */
static void fake_pool(const char *root, unsigned int kb, unsigned int nr, unsigned int free_pages,
                      unsigned int resv, unsigned int overcommit, unsigned int surplus)
{
    char dir[512], path[600];
    snprintf(dir, sizeof(dir), "%s/hugepages-%ukB", root, kb);
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        fail_msg("mkdir %s: %s", dir, strerror(errno));
    const struct {
        const char *name;
        unsigned int value;
    } files[] = {{"nr_hugepages", nr},
                 {"free_hugepages", free_pages},
                 {"resv_hugepages", resv},
                 {"nr_overcommit_hugepages", overcommit},
                 {"surplus_hugepages", surplus}};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i].name);
        write_file(path, "%u\n", files[i].value);
    }
}

/* The host's free 2M pages as the broker counts them; false when it has no such pool. */
static bool host_available_2m(uint64_t *available)
{
    struct hugepage_pool pool;
    char why[400];
    if (hugepage_pool_read(HUGEPAGES_SYSFS, HUGEPAGE_2M, &pool, why, sizeof(why)) < 0) {
        print_message("no 2M hugepage pool on this host: %s\n", why);
        return false;
    }
    *available = hugepage_pool_available(&pool);
    return true;
}

/* ---- the pure parts ------------------------------------------------------------------------ */

static void test_sizes_and_memfd_flags(void **state)
{
    (void)state;
    assert_true(hugepage_size_valid(2 * MB));
    assert_true(hugepage_size_valid(1024 * MB));
    assert_false(hugepage_size_valid(0));
    assert_false(hugepage_size_valid(4096));
    assert_false(hugepage_size_valid(4 * MB));
    assert_int_equal(hugepage_memfd_flags(0), 0);
    assert_int_equal(hugepage_memfd_flags(2 * MB), MFD_HUGETLB | MFD_HUGE_2MB);
    assert_int_equal(hugepage_memfd_flags(1024 * MB), MFD_HUGETLB | MFD_HUGE_1GB);

    char text[48];
    hugepage_describe(0, text, sizeof(text));
    assert_string_equal(text, "ordinary pages");
    hugepage_describe(2 * MB, text, sizeof(text));
    assert_string_equal(text, "2M hugepages");

    /* A spec built by hand goes through the same limits as a parsed one. */
    struct shm_spec spec = {.name = "x", .size = 4 * MB, .vectors = 1, .hugepage_size = 4096};
    char why[256] = "";
    assert_int_equal(shm_spec_check(&spec, why, sizeof(why)), -EINVAL);
    assert_contains(why, "expected 2M or 1G");
    spec.hugepage_size = 2 * MB;
    spec.size = 1 * MB;
    assert_int_equal(shm_spec_check(&spec, why, sizeof(why)), -EINVAL);
    assert_contains(why, "not a multiple of the 2M hugepage size");
    spec.size = 2 * MB;
    assert_int_equal(shm_spec_check(&spec, why, sizeof(why)), 0);
}

static void test_pool_arithmetic(void **state)
{
    struct fixture *f = *state;
    char why[512] = "";
    /* 8 free, 3 of them promised to mappings already: 5 for a new group. */
    fake_pool(f->sysfs, 2048, 10, 8, 3, 0, 0);
    struct hugepage_pool pool;
    assert_int_equal(hugepage_pool_read(f->sysfs, 2 * MB, &pool, why, sizeof(why)), 0);
    assert_int_equal(pool.nr, 10);
    assert_int_equal(pool.free, 8);
    assert_int_equal(pool.resv, 3);
    assert_int_equal(hugepage_pool_available(&pool), 5);
    assert_int_equal(hugepages_check(f->sysfs, 2 * MB, 8 * MB, why, sizeof(why)), 0);
    assert_int_equal(hugepages_check(f->sysfs, 2 * MB, 16 * MB, why, sizeof(why)), -ENOMEM);
    assert_contains(why, "16M of memory needs 8 hugepages of 2M, 5 free");
    assert_contains(why, "free_hugepages 8, resv_hugepages 3");
    /* The pool must grow by the 3 missing pages. */
    char expected[600];
    snprintf(expected, sizeof(expected), "echo 13 > %s/hugepages-2048kB/nr_hugepages", f->sysfs);
    assert_contains(why, expected);

    /* Overcommit lets the kernel add surplus pages: 4 allowed, 1 taken, 3 more. */
    fake_pool(f->sysfs, 2048, 10, 8, 3, 4, 1);
    assert_int_equal(hugepage_pool_read(f->sysfs, 2 * MB, &pool, why, sizeof(why)), 0);
    assert_int_equal(hugepage_pool_available(&pool), 8);
    assert_int_equal(hugepages_check(f->sysfs, 2 * MB, 16 * MB, why, sizeof(why)), 0);

    /* More promised than free never wraps around. */
    fake_pool(f->sysfs, 2048, 2, 1, 2, 0, 0);
    assert_int_equal(hugepages_check(f->sysfs, 2 * MB, 2 * MB, why, sizeof(why)), -ENOMEM);
    assert_contains(why, "needs 1 hugepages of 2M, 0 free");

    /* A size the host has no pool for. */
    assert_int_equal(hugepages_check(f->sysfs, 1024 * MB, 1024 * MB, why, sizeof(why)), -ENOENT);
    assert_contains(why, "this host has no 1G hugepages");
    assert_contains(why, "hugepages-1048576kB");

    /* A counter that is not a number. */
    char path[600];
    snprintf(path, sizeof(path), "%s/hugepages-2048kB/resv_hugepages", f->sysfs);
    write_file(path, "lots\n");
    assert_int_equal(hugepages_check(f->sysfs, 2 * MB, 2 * MB, why, sizeof(why)), -EBADMSG);
    assert_contains(why, "resv_hugepages holds 'lots");
}

/* ---- what a joiner checks ------------------------------------------------------------------ */

/* A sealed memfd of size bytes, hugetlb-backed with page_size (or -1 when that fails). */
static int sealed_memfd(uint64_t size, uint64_t page_size)
{
    int fd =
        memfd_create("test", MFD_CLOEXEC | MFD_ALLOW_SEALING | hugepage_memfd_flags(page_size));
    if (fd < 0)
        return -1;
    if (ftruncate(fd, (off_t)size) < 0 || (page_size && fallocate(fd, 0, 0, (off_t)size) < 0) ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Plays a broker that sends memfd in the burst of a memory-only group; returns what
 * shm_group_join_socket() says of it for spec_text. */
static int join_with_memfd(int memfd, const char *spec_text, char *why, size_t why_len)
{
    struct shm_spec spec;
    assert_int_equal(shm_spec_parse(spec_text, &spec, why, why_len), 0);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(ivproto_send(sv[1], IVPROTO_VERSION, -1), 0);
    assert_int_equal(ivproto_send(sv[1], 0, -1), 0);
    assert_int_equal(ivproto_send(sv[1], IVPROTO_SHM_ID, memfd), 0);
    struct shm_group g;
    int ret = shm_group_join_socket(&g, &spec, sv[0], why, why_len);
    if (ret == 0)
        shm_group_leave(&g);
    close(sv[1]);
    return ret;
}

static void test_joiner_checks_the_memfd_backing(void **state)
{
    (void)state;
    char why[512] = "";
    int fd = sealed_memfd(2 * MB, 0);
    assert_true(fd >= 0);
    uint64_t page_size = 1;
    assert_int_equal(memfd_page_size(fd, &page_size, why, sizeof(why)), 0);
    assert_int_equal(page_size, 0);
    assert_int_equal(join_with_memfd(fd, "x,size=2M,vectors=0", why, sizeof(why)), 0);
    assert_int_equal(join_with_memfd(fd, "x,size=2M,vectors=0,hugepages=2M", why, sizeof(why)),
                     -EEXIST);
    assert_contains(why, "the memory of group 'x' is backed by ordinary pages, but 2M hugepages "
                         "were asked for");
    close(fd);

    /* The other way round needs one free 2M page. */
    uint64_t available = 0;
    if (!host_available_2m(&available) || available < 1) {
        print_message("no free 2M hugepage: the hugetlb memfd half is not run\n");
        return;
    }
    fd = sealed_memfd(2 * MB, 2 * MB);
    assert_true(fd >= 0);
    assert_int_equal(memfd_page_size(fd, &page_size, why, sizeof(why)), 0);
    assert_int_equal(page_size, 2 * MB);
    assert_int_equal(join_with_memfd(fd, "x,size=2M,vectors=0,hugepages=2M", why, sizeof(why)), 0);
    assert_int_equal(join_with_memfd(fd, "x,size=2M,vectors=0", why, sizeof(why)), -EEXIST);
    assert_contains(why, "is backed by 2M hugepages, but ordinary pages were asked for");
    close(fd);
}

/* Joins spec_text in this process. Returns the join's result. */
static int join(struct shm_group *g, const char *spec_text, char *why, size_t why_len)
{
    struct shm_spec spec;
    assert_int_equal(shm_spec_parse(spec_text, &spec, why, why_len), 0);
    return shm_group_join(g, &spec, why, why_len);
}

static void test_joiner_with_another_backing_is_refused(void **state)
{
    struct fixture *f = *state;
    char why[512] = "";
    struct shm_group a, b;
    if (join(&a, "grp,size=4M,vectors=0", why, sizeof(why)) < 0)
        fail_msg("join: %s", why);
    assert_int_equal(join(&b, "grp,size=4M,vectors=0,hugepages=2M", why, sizeof(why)), -EEXIST);
    assert_contains(why, "'grp' already exists with size=4M vectors=0 (ordinary pages)");
    assert_contains(why, "but size=4M vectors=0 hugepages=2M was asked for");

    /* The reverse, with no hugepages needed on this host: the group's status file rewritten
     * as a hugetlb group's broker writes it (the broker rewrites it only on a change). */
    char path[400], tmp[420];
    snprintf(path, sizeof(path), "%s/grp.group", f->runtime);
    snprintf(tmp, sizeof(tmp), "%s.test", path);
    struct broker_status *st = calloc(1, sizeof(*st));
    assert_non_null(st);
    assert_int_equal(broker_status_read(path, st), 0);
    assert_int_equal(st->hugepage_size, 0);
    st->hugepage_size = 2 * MB;
    assert_int_equal(broker_status_write(path, tmp, st, why, sizeof(why)), 0);
    free(st);
    assert_int_equal(join(&b, "grp,size=4M,vectors=0", why, sizeof(why)), -EEXIST);
    assert_contains(why, "already exists with size=4M vectors=0 hugepages=2M (broker pid");
    assert_contains(why, "but size=4M vectors=0 (ordinary pages) was asked for");
    shm_group_leave(&a);
}

/* ---- a real group on this host ------------------------------------------------------------- */

static void test_real_group_or_refusal(void **state)
{
    struct fixture *f = *state;
    uint64_t available = 0;
    if (!host_available_2m(&available))
        skip();
    print_message("this host has %" PRIu64 " 2M hugepages for a new group\n", available);
    char why[768] = "", text[128];
    struct shm_group g;

    /* Refused: one more page than the host has, rounded up to a power of two. */
    uint64_t pages = 1;
    while (pages <= available)
        pages *= 2;
    if (pages * 2 * MB <= SHM_MAX_SIZE) {
        snprintf(text, sizeof(text), "short,size=%" PRIu64 "M,vectors=0,hugepages=2M", pages * 2);
        assert_int_equal(join(&g, text, why, sizeof(why)), -ENOMEM);
        char expected[160];
        snprintf(expected, sizeof(expected), "needs %" PRIu64 " hugepages of 2M, %" PRIu64 " free",
                 pages, available);
        assert_contains(why, expected);
        assert_contains(why, "could not start");
        print_message("refused as expected: %s\n", why);
    }

    if (available < 1) {
        print_message("no free 2M hugepage: a real hugetlb group is not created "
                      "(echo 2 > /proc/sys/vm/nr_hugepages to run that half)\n");
        return;
    }
    if (join(&g, "huge,size=2M,vectors=0,hugepages=2M", why, sizeof(why)) < 0)
        fail_msg("join: %s", why);
    uint64_t page_size = 0;
    assert_int_equal(memfd_page_size(g.mem_fd, &page_size, why, sizeof(why)), 0);
    assert_int_equal(page_size, 2 * MB);
    memset(g.mem, 0x5a, 2 * MB);
    assert_int_equal(((unsigned char *)g.mem)[2 * MB - 1], 0x5a);

    char path[400];
    snprintf(path, sizeof(path), "%s/huge.group", f->runtime);
    struct broker_status *st = calloc(1, sizeof(*st));
    assert_non_null(st);
    assert_int_equal(broker_status_read(path, st), 0);
    assert_int_equal(st->hugepage_size, 2 * MB);
    free(st);
    struct capture out;
    capture_open(&out);
    assert_int_equal(broker_status_list(out.file), 1);
    assert_contains(capture_text(&out), "huge size=2M vectors=0 hugepages=2M broker_pid=");
    capture_close(&out);
    shm_group_leave(&g);
}

/* The free-page check only puts numbers in the refusal: with a pool that claims plenty but
 * a host that has none, fallocate still refuses at start, before anyone maps a page. */
static void test_fallocate_refuses_what_the_pool_lacks(void **state)
{
    struct fixture *f = *state;
    uint64_t available = 0;
    if (!host_available_2m(&available))
        skip();
    if (available > 0) {
        print_message("this host has free 2M hugepages: no shortage to provoke\n");
        return;
    }
    fake_pool(f->sysfs, 2048, 100, 100, 0, 0, 0);
    char sock_path[400], why[400];
    assert_int_equal(mkdir(f->runtime, 0700), 0);
    snprintf(sock_path, sizeof(sock_path), "%s/fake.sock", f->runtime);
    int listen_fd = broker_listen(sock_path, why, sizeof(why));
    assert_true(listen_fd >= 0);
    int ready[2];
    assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
    struct broker_options opts = {
        .first_client_timeout_ms = 0,
        .ready_fd = ready[1],
        .lock_fd = -1,
        .stop_fd = -1,
        .hugepage_size = 2 * MB,
        .hugepages_sysfs = f->sysfs,
    };
    int ret = broker_run_opts(listen_fd, f->runtime, "fake", 4 * MB, 0, &opts);
    assert_true(ret == -ENOSPC || ret == -ENOMEM);
    char line[512] = "";
    ssize_t n = read(ready[0], line, sizeof(line) - 1);
    close(ready[0]);
    assert_true(n > 0);
    assert_contains(line, "error ");
    assert_contains(line, "fallocate memfd minivmm-shm:fake 4194304 bytes of 2M hugepages");
    assert_contains(line, "the pool looked big enough");
}

int main(void)
{
    /* Brokers that joins start leave their parent; as subreaper we can still collect them. */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) {
        perror("prctl PR_SET_CHILD_SUBREAPER");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes_and_memfd_flags),
        cmocka_unit_test_setup_teardown(test_pool_arithmetic, setup, teardown),
        cmocka_unit_test(test_joiner_checks_the_memfd_backing),
        cmocka_unit_test_setup_teardown(test_joiner_with_another_backing_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_real_group_or_refusal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fallocate_refuses_what_the_pool_lacks, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
