/* The command-line parser: defaults, every option, sizes, and that each mistake is
 * refused with a message that names it. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tests/unit/support/text.h"
#include "vmm/cli.h"
#include "vmm/size.h"

#define ARGC(argv) ((int)(sizeof(argv) / sizeof((argv)[0])) - 1)

/* One parse with out and err captured. */
struct parse {
    enum cli_result result;
    struct vm_config config;
    struct capture out;
    struct capture err;
};

static void parse_run(struct parse *p, int argc, char **argv)
{
    capture_open(&p->out);
    capture_open(&p->err);
    /* Garbage first: the parser must set every field itself. */
    memset(&p->config, 0xA5, sizeof(p->config));
    p->result = cli_parse(argc, argv, &p->config, p->out.file, p->err.file);
    capture_text(&p->out);
    capture_text(&p->err);
}

static void parse_done(struct parse *p)
{
    capture_close(&p->out);
    capture_close(&p->err);
}

/* Parses a command line that must be refused; err must name what is wrong. */
static void expect_error(int argc, char **argv, const char *mention1, const char *mention2)
{
    struct parse p;
    parse_run(&p, argc, argv);
    assert_int_equal(p.result, CLI_ERROR);
    assert_string_equal(p.out.text, "");
    assert_contains(p.err.text, "error");
    assert_contains(p.err.text, mention1);
    if (mention2)
        assert_contains(p.err.text, mention2);
    /* One line, so it reads as one message. */
    assert_non_null(strchr(p.err.text, '\n'));
    assert_int_equal(strchr(p.err.text, '\n') - p.err.text + 1, (long)strlen(p.err.text));
    parse_done(&p);
}

static void test_defaults(void **state)
{
    (void)state;
    char *argv[] = {"minivmm", NULL};
    struct parse p;
    parse_run(&p, ARGC(argv), argv);
    assert_int_equal(p.result, CLI_RUN);
    assert_null(p.config.kernel_path);
    assert_null(p.config.initrd_path);
    assert_null(p.config.append);
    assert_int_equal(p.config.mem_size, 256ull << 20);
    assert_int_equal(p.config.mem_size, CLI_DEFAULT_MEM);
    assert_int_equal(p.config.cpus, 1);
    assert_false(p.config.verbose);
    assert_string_equal(p.out.text, "");
    assert_string_equal(p.err.text, "");
    parse_done(&p);
}

static void test_long_options(void **state)
{
    (void)state;
    /* Both "--opt=value" and "--opt value" forms. */
    char *argv[] = {"minivmm",  "--kernel=/tmp/vmlinux",
                    "--initrd", "/tmp/initrd.cpio",
                    "--append", "console=ttyS0 quiet",
                    "--mem=1G", "--cpus",
                    "4",        "--verbose",
                    NULL};
    struct parse p;
    parse_run(&p, ARGC(argv), argv);
    assert_int_equal(p.result, CLI_RUN);
    assert_string_equal(p.config.kernel_path, "/tmp/vmlinux");
    assert_string_equal(p.config.initrd_path, "/tmp/initrd.cpio");
    assert_string_equal(p.config.append, "console=ttyS0 quiet");
    assert_int_equal(p.config.mem_size, 1ull << 30);
    assert_int_equal(p.config.cpus, 4);
    assert_true(p.config.verbose);
    assert_string_equal(p.err.text, "");
    parse_done(&p);

    char *argv2[] = {"minivmm", "--kernel", "k",         "--initrd=i", "--append=a b",
                     "--mem",   "64M",      "--cpus=64", NULL};
    parse_run(&p, ARGC(argv2), argv2);
    assert_int_equal(p.result, CLI_RUN);
    assert_string_equal(p.config.kernel_path, "k");
    assert_string_equal(p.config.initrd_path, "i");
    assert_string_equal(p.config.append, "a b");
    assert_int_equal(p.config.mem_size, 64ull << 20);
    assert_int_equal(p.config.cpus, CLI_MAX_CPUS);
    assert_false(p.config.verbose);
    parse_done(&p);
}

static void test_short_options(void **state)
{
    (void)state;
    /* Separate and attached values, and a group of flags. */
    char *argv[] = {"minivmm", "-k", "bzImage", "-iinitrd.img", "-p", "init=/bin/sh",
                    "-m2G",    "-c", "2",       "-v",           NULL};
    struct parse p;
    parse_run(&p, ARGC(argv), argv);
    assert_int_equal(p.result, CLI_RUN);
    assert_string_equal(p.config.kernel_path, "bzImage");
    assert_string_equal(p.config.initrd_path, "initrd.img");
    assert_string_equal(p.config.append, "init=/bin/sh");
    assert_int_equal(p.config.mem_size, 2ull << 30);
    assert_int_equal(p.config.cpus, 2);
    assert_true(p.config.verbose);
    assert_string_equal(p.err.text, "");
    parse_done(&p);

    char *argv2[] = {"minivmm", "-vkbz", "-m", "16M", NULL};
    parse_run(&p, ARGC(argv2), argv2);
    assert_int_equal(p.result, CLI_RUN);
    assert_true(p.config.verbose);
    assert_string_equal(p.config.kernel_path, "bz");
    /* The minimum itself is allowed. */
    assert_int_equal(p.config.mem_size, CLI_MIN_MEM);
    parse_done(&p);
}

static void test_later_option_wins(void **state)
{
    (void)state;
    char *argv[] = {"minivmm", "-m", "32M", "--mem=48M", "-c", "3", "--cpus=5", NULL};
    struct parse p;
    parse_run(&p, ARGC(argv), argv);
    assert_int_equal(p.result, CLI_RUN);
    assert_int_equal(p.config.mem_size, 48ull << 20);
    assert_int_equal(p.config.cpus, 5);
    parse_done(&p);
}

static void test_parse_size_accepts(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        uint64_t value;
    } cases[] = {
        {"0", 0},
        {"512", 512},
        {"512K", 512ull << 10},
        {"512k", 512ull << 10},
        {"4KiB", 4ull << 10},
        {"4kib", 4ull << 10},
        {"4KB", 4ull << 10},
        {"256M", 256ull << 20},
        {"256MiB", 256ull << 20},
        {"256m", 256ull << 20},
        {"2G", 2ull << 30},
        {"2GiB", 2ull << 30},
        {"2g", 2ull << 30},
        {"1T", 1ull << 40},
        {"18446744073709551615", UINT64_MAX},
        {"17179869183G", 17179869183ull << 30}, /* the largest G that fits */
        {"16777215T", 16777215ull << 40},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t size = 12345;
        int ret = parse_size(cases[i].text, &size);
        if (ret != 0 || size != cases[i].value)
            fail_msg("parse_size(\"%s\") = %d, %llu; expected 0, %llu", cases[i].text, ret,
                     (unsigned long long)size, (unsigned long long)cases[i].value);
    }
}

static void test_parse_size_rejects(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int ret;
    } cases[] = {
        {"", -EINVAL},
        {"abc", -EINVAL},
        {"12Q", -EINVAL},
        {"-1", -EINVAL},
        {"+1", -EINVAL},
        {" 1", -EINVAL},
        {"M", -EINVAL},
        {"12KX", -EINVAL},
        {"12Kb2", -EINVAL},
        {"12 M", -EINVAL},
        {"12MM", -EINVAL},
        {"0x10", -EINVAL},
        {"1.5G", -EINVAL},
        {"99999999999G", -ERANGE},
        {"17179869184G", -ERANGE}, /* exactly 2^64 */
        {"16777216T", -ERANGE},
        {"18446744073709551616", -ERANGE},
        {"99999999999999999999999", -ERANGE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t size = 12345;
        int ret = parse_size(cases[i].text, &size);
        if (ret != cases[i].ret || size != 12345)
            fail_msg("parse_size(\"%s\") = %d, size %llu; expected %d and size untouched",
                     cases[i].text, ret, (unsigned long long)size, cases[i].ret);
    }
    uint64_t size = 0;
    assert_int_equal(parse_size(NULL, &size), -EINVAL);
}

static void test_mem_rejected(void **state)
{
    (void)state;
    char *not_size[] = {"minivmm", "--mem=abc", NULL};
    expect_error(ARGC(not_size), not_size, "--mem 'abc'", "not a size");
    char *bad_suffix[] = {"minivmm", "-m", "12Q", NULL};
    expect_error(ARGC(bad_suffix), bad_suffix, "'12Q'", "not a size");
    char *negative[] = {"minivmm", "--mem=-1", NULL};
    expect_error(ARGC(negative), negative, "'-1'", "not a size");
    char *overflow[] = {"minivmm", "--mem", "99999999999G", NULL};
    expect_error(ARGC(overflow), overflow, "'99999999999G'", "out of range");
    char *small[] = {"minivmm", "--mem=8M", NULL};
    expect_error(ARGC(small), small, "'8M'", "out of range");
    /* The message tells the user what the minimum is. */
    char *just_below[] = {"minivmm", "--mem=16383K", NULL};
    expect_error(ARGC(just_below), just_below, "'16383K'", "16");
    char *zero[] = {"minivmm", "-m0", NULL};
    expect_error(ARGC(zero), zero, "'0'", "out of range");
}

static void test_cpus_rejected(void **state)
{
    (void)state;
    char *zero[] = {"minivmm", "--cpus=0", NULL};
    expect_error(ARGC(zero), zero, "--cpus '0'", "1 to 64");
    char *too_many[] = {"minivmm", "-c", "65", NULL};
    expect_error(ARGC(too_many), too_many, "'65'", "1 to 64");
    char *trailing[] = {"minivmm", "--cpus", "2x", NULL};
    expect_error(ARGC(trailing), trailing, "'2x'", NULL);
    char *empty[] = {"minivmm", "--cpus=", NULL};
    expect_error(ARGC(empty), empty, "--cpus ''", NULL);
    char *negative[] = {"minivmm", "--cpus=-2", NULL};
    expect_error(ARGC(negative), negative, "'-2'", NULL);
    char *huge[] = {"minivmm", "--cpus=4294967297", NULL};
    expect_error(ARGC(huge), huge, "'4294967297'", NULL);
}

static void test_unknown_option(void **state)
{
    (void)state;
    char *long_opt[] = {"minivmm", "--frobnicate", NULL};
    expect_error(ARGC(long_opt), long_opt, "unknown option", "--frobnicate");
    char *short_opt[] = {"minivmm", "-x", NULL};
    expect_error(ARGC(short_opt), short_opt, "unknown option", "-x");
    char *after_good[] = {"minivmm", "-c", "2", "--nope=3", NULL};
    expect_error(ARGC(after_good), after_good, "unknown option", "--nope");
}

static void test_missing_value(void **state)
{
    (void)state;
    char *mem[] = {"minivmm", "--mem", NULL};
    expect_error(ARGC(mem), mem, "'--mem'", "needs a value");
    char *kernel[] = {"minivmm", "-v", "-k", NULL};
    expect_error(ARGC(kernel), kernel, "'-k'", "needs a value");
    char *cpus[] = {"minivmm", "--cpus", NULL};
    expect_error(ARGC(cpus), cpus, "'--cpus'", "needs a value");
}

static void test_stray_argument(void **state)
{
    (void)state;
    char *stray[] = {"minivmm", "bzImage", NULL};
    expect_error(ARGC(stray), stray, "unexpected argument", "'bzImage'");
    /* getopt moves non-options to the end; the stray one is still reported. */
    char *between[] = {"minivmm", "-c", "2", "extra", "--mem=64M", NULL};
    expect_error(ARGC(between), between, "unexpected argument", "'extra'");
    char *after_dashes[] = {"minivmm", "--", "--mem=64M", NULL};
    expect_error(ARGC(after_dashes), after_dashes, "unexpected argument", "'--mem=64M'");
}

static void test_help(void **state)
{
    (void)state;
    char *long_help[] = {"minivmm", "--help", NULL};
    char *short_help[] = {"minivmm", "-c", "2", "-h", "bogus-argument-never-reached", NULL};
    char **argvs[] = {long_help, short_help};
    int argcs[] = {ARGC(long_help), ARGC(short_help)};
    for (int i = 0; i < 2; i++) {
        struct parse p;
        parse_run(&p, argcs[i], argvs[i]);
        assert_int_equal(p.result, CLI_EXIT_OK);
        assert_contains(p.out.text, "Usage: minivmm");
        /* Every option is documented. */
        assert_contains(p.out.text, "--kernel");
        assert_contains(p.out.text, "--initrd");
        assert_contains(p.out.text, "--append");
        assert_contains(p.out.text, "--mem");
        assert_contains(p.out.text, "--cpus");
        assert_contains(p.out.text, "--verbose");
        assert_contains(p.out.text, "--version");
        assert_contains(p.out.text, "1-64");
        assert_string_equal(p.err.text, "");
        parse_done(&p);
    }
}

static void test_shm_portio(void **state)
{
    (void)state;
    char *on[] = {"minivmm", "--shm=a,portio=on", "-s", "b,vectors=0", NULL};
    struct parse p;
    parse_run(&p, ARGC(on), on);
    assert_int_equal(p.result, CLI_RUN);
    assert_int_equal(p.config.shm_count, 2);
    assert_true(p.config.shm[0].portio);
    assert_false(p.config.shm[1].portio);
    parse_done(&p);

    char *bad[] = {"minivmm", "--shm=a,portio=maybe", NULL};
    expect_error(ARGC(bad), bad, "--shm 'a,portio=maybe'", "on or off");

    char *help[] = {"minivmm", "--help", NULL};
    parse_run(&p, ARGC(help), help);
    assert_contains(p.out.text, "portio=on");
    assert_contains(p.out.text, "1af4:10f0");
    parse_done(&p);
}

static void test_version(void **state)
{
    (void)state;
    char *long_version[] = {"minivmm", "--version", NULL};
    char *short_version[] = {"minivmm", "-V", NULL};
    char **argvs[] = {long_version, short_version};
    for (int i = 0; i < 2; i++) {
        struct parse p;
        parse_run(&p, 2, argvs[i]);
        assert_int_equal(p.result, CLI_EXIT_OK);
        assert_string_equal(p.out.text, "minivmm " MINIVMM_VERSION "\n");
        assert_string_equal(p.err.text, "");
        parse_done(&p);
    }
}

static void test_parse_twice(void **state)
{
    (void)state;
    /* The first parse stops in the middle of a group of short options ("-hv" returns at
     * h), leaving getopt pointing into it; the next parse must start afresh. */
    char *first[] = {"minivmm", "-c", "7", "-hv", NULL};
    struct parse p;
    parse_run(&p, ARGC(first), first);
    assert_int_equal(p.result, CLI_EXIT_OK);
    parse_done(&p);

    char *second[] = {"minivmm", "-c", "3", "-m", "32M", NULL};
    parse_run(&p, ARGC(second), second);
    assert_int_equal(p.result, CLI_RUN);
    assert_int_equal(p.config.cpus, 3);
    assert_int_equal(p.config.mem_size, 32ull << 20);
    assert_false(p.config.verbose);
    parse_done(&p);

    /* An error mid-way must not poison the next parse either. */
    char *bad[] = {"minivmm", "--cpus=0", "-v", NULL};
    expect_error(ARGC(bad), bad, "--cpus", NULL);
    char *third[] = {"minivmm", "-v", NULL};
    parse_run(&p, ARGC(third), third);
    assert_int_equal(p.result, CLI_RUN);
    assert_true(p.config.verbose);
    assert_int_equal(p.config.cpus, 1);
    assert_int_equal(p.config.mem_size, CLI_DEFAULT_MEM);
    parse_done(&p);

    /* And the same argv twice gives the same answer (getopt permutes it in place). */
    char *twice[] = {"minivmm", "stray", "-v", NULL};
    expect_error(ARGC(twice), twice, "'stray'", NULL);
    expect_error(ARGC(twice), twice, "'stray'", NULL);
}

static void test_sandbox_option(void **state)
{
    (void)state;
    char *on[] = {"minivmm", "--shm=a", NULL};
    struct parse p;
    parse_run(&p, ARGC(on), on);
    assert_int_equal(p.result, CLI_RUN);
    assert_true(p.config.sandbox);
    assert_true(p.config.shm[0].sandbox);
    parse_done(&p);

    /* Off for the VMM and for any broker it starts, wherever the option stands. */
    char *off[] = {"minivmm", "--shm=a", "--no-sandbox", "--shm=b", NULL};
    parse_run(&p, ARGC(off), off);
    assert_int_equal(p.result, CLI_RUN);
    assert_false(p.config.sandbox);
    assert_false(p.config.shm[0].sandbox);
    assert_false(p.config.shm[1].sandbox);
    parse_done(&p);

    char *help[] = {"minivmm", "--help", NULL};
    parse_run(&p, ARGC(help), help);
    assert_contains(p.out.text, "--no-sandbox");
    assert_contains(p.out.text, "72 sandbox denied a system call");
    assert_contains(p.out.text, "75 --shm group full");
    parse_done(&p);
}

static void test_stats_option(void **state)
{
    (void)state;
    char *off[] = {"minivmm", NULL};
    struct parse p;
    parse_run(&p, ARGC(off), off);
    assert_false(p.config.stats);
    parse_done(&p);

    char *on[] = {"minivmm", "--stats", "--cpus=2", NULL};
    parse_run(&p, ARGC(on), on);
    assert_int_equal(p.result, CLI_RUN);
    assert_true(p.config.stats);
    assert_int_equal(p.config.cpus, 2);
    parse_done(&p);

    /* A flag: a value is a mistake, not a file name silently ignored. */
    char *value[] = {"minivmm", "--stats=out.txt", NULL};
    expect_error(ARGC(value), value, "--stats", NULL);

    char *help[] = {"minivmm", "--help", NULL};
    parse_run(&p, ARGC(help), help);
    assert_contains(p.out.text, "--stats");
    assert_contains(p.out.text, "SIGUSR1");
    assert_contains(p.out.text, "minivmm-stats:");
    parse_done(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_sandbox_option),
        cmocka_unit_test(test_stats_option),
        cmocka_unit_test(test_long_options),
        cmocka_unit_test(test_short_options),
        cmocka_unit_test(test_later_option_wins),
        cmocka_unit_test(test_parse_size_accepts),
        cmocka_unit_test(test_parse_size_rejects),
        cmocka_unit_test(test_mem_rejected),
        cmocka_unit_test(test_cpus_rejected),
        cmocka_unit_test(test_unknown_option),
        cmocka_unit_test(test_missing_value),
        cmocka_unit_test(test_stray_argument),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_shm_portio), /* the --shm key of the port I/O channel */
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_parse_twice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
