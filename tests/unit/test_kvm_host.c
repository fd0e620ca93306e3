/* Telling hardware KVM from paravirtual KVM (PVM) and from none, with fake /proc/cpuinfo
 * and /dev/kvm paths, and the advice printed when Linux cannot boot here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/unit/support/text.h"
#include "vmm/kvm_host.h"

/* Each test gets a directory with a fake device node (a plain file will do: only its
 * existence is probed) and room for cpuinfo files. */
struct fixture {
    char dir[256];
    char dev[300];
    char missing_dev[300];
    char cpuinfo[300];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    const char *tmp = getenv("TMPDIR");
    snprintf(f->dir, sizeof(f->dir), "%s/minivmm-kvm-host-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->dev, sizeof(f->dev), "%s/kvm", f->dir);
    snprintf(f->missing_dev, sizeof(f->missing_dev), "%s/no-such-kvm", f->dir);
    snprintf(f->cpuinfo, sizeof(f->cpuinfo), "%s/cpuinfo", f->dir);
    FILE *dev = fopen(f->dev, "w");
    if (!dev)
        return -1;
    fclose(dev);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    unlink(f->dev);
    unlink(f->cpuinfo);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void write_cpuinfo(struct fixture *f, const char *text)
{
    FILE *file = fopen(f->cpuinfo, "w");
    assert_non_null(file);
    assert_int_equal(fputs(text, file) >= 0, 1);
    assert_int_equal(fclose(file), 0);
}

/* Two processors, like the real file: the flags line sits among others. */
#define CPUINFO(vendor, flags)                                                                     \
    "processor\t: 0\n"                                                                             \
    "vendor_id\t: " vendor "\n"                                                                    \
    "model name\t: Test CPU\n"                                                                     \
    "fpu\t\t: yes\n"                                                                               \
    "flags\t\t: " flags "\n"                                                                       \
    "bugs\t\t: spectre_v1\n"                                                                       \
    "\n"                                                                                           \
    "processor\t: 1\n"                                                                             \
    "vendor_id\t: " vendor "\n"                                                                    \
    "flags\t\t: " flags "\n"                                                                       \
    "\n"

static void test_intel_hardware(void **state)
{
    struct fixture *f = *state;
    write_cpuinfo(f, CPUINFO("GenuineIntel", "fpu vme de pse tsc msr pae vmx smx est tm2 ssse3"));
    assert_int_equal(kvm_host_probe(f->dev, f->cpuinfo), KVM_HOST_HARDWARE);
}

static void test_amd_hardware(void **state)
{
    struct fixture *f = *state;
    write_cpuinfo(f, CPUINFO("AuthenticAMD", "fpu vme lahf_lm cmp_legacy svm extapic cr8_legacy"));
    assert_int_equal(kvm_host_probe(f->dev, f->cpuinfo), KVM_HOST_HARDWARE);
}

static void test_flag_at_line_ends(void **state)
{
    struct fixture *f = *state;
    /* First and last word of the line, the last one followed directly by the newline. */
    write_cpuinfo(f, "flags\t\t: fpu sse svm\n");
    assert_int_equal(kvm_host_probe(f->dev, f->cpuinfo), KVM_HOST_HARDWARE);
    write_cpuinfo(f, "flags\t: vmx fpu\n");
    assert_int_equal(kvm_host_probe(f->dev, f->cpuinfo), KVM_HOST_HARDWARE);
    /* No newline at the end of the file. */
    write_cpuinfo(f, "flags : fpu vmx");
    assert_int_equal(kvm_host_probe(f->dev, f->cpuinfo), KVM_HOST_HARDWARE);
}

static void test_pvm(void **state)
{
    struct fixture *f = *state;
    /* A guest with /dev/kvm from PVM: "hypervisor", but neither vmx nor svm. */
    write_cpuinfo(f, CPUINFO("GenuineIntel", "fpu vme de pse tsc msr pae hypervisor lahf_lm"));
    assert_int_equal(kvm_host_probe(f->dev, f->cpuinfo), KVM_HOST_PVM);
}

static void test_whole_words_only(void **state)
{
    struct fixture *f = *state;
    /* Words that merely contain the flags do not count. */
    write_cpuinfo(f, CPUINFO("AuthenticAMD", "fpu svmfoo xsvm vmxbar avmx sse"));
    assert_int_equal(kvm_host_probe(f->dev, f->cpuinfo), KVM_HOST_PVM);
    write_cpuinfo(f, "flags\t\t: fpu svm_lock vmx_ept sse\n");
    assert_int_equal(kvm_host_probe(f->dev, f->cpuinfo), KVM_HOST_PVM);
}

static void test_only_the_flags_line(void **state)
{
    struct fixture *f = *state;
    /* vmx and svm elsewhere in the file (a model name, the "vmx flags" line of newer
     * kernels) say nothing about the CPU's features. */
    write_cpuinfo(f, "processor\t: 0\n"
                     "model name\t: vmx svm\n"
                     "flags\t\t: fpu sse hypervisor\n"
                     "vmx flags\t: vnmi preemption_timer\n"
                     "bugs\t\t: svm\n");
    assert_int_equal(kvm_host_probe(f->dev, f->cpuinfo), KVM_HOST_PVM);
}

static void test_no_dev_kvm(void **state)
{
    struct fixture *f = *state;
    /* Without the device, whatever the CPU could do, there is no KVM. */
    write_cpuinfo(f, CPUINFO("GenuineIntel", "fpu vmx"));
    assert_int_equal(kvm_host_probe(f->missing_dev, f->cpuinfo), KVM_HOST_NONE);
    write_cpuinfo(f, CPUINFO("GenuineIntel", "fpu sse"));
    assert_int_equal(kvm_host_probe(f->missing_dev, f->cpuinfo), KVM_HOST_NONE);
    /* And a cpuinfo that cannot be read does not turn a missing device into a PVM. */
    unlink(f->cpuinfo);
    assert_int_equal(kvm_host_probe(f->missing_dev, f->cpuinfo), KVM_HOST_NONE);
}

static void test_probe_repeatable(void **state)
{
    struct fixture *f = *state;
    /* No state kept between probes (the parser tokenises in place). */
    write_cpuinfo(f, CPUINFO("GenuineIntel", "fpu vmx"));
    for (int i = 0; i < 3; i++)
        assert_int_equal(kvm_host_probe(f->dev, f->cpuinfo), KVM_HOST_HARDWARE);
    write_cpuinfo(f, CPUINFO("GenuineIntel", "fpu"));
    assert_int_equal(kvm_host_probe(f->dev, f->cpuinfo), KVM_HOST_PVM);
}

static void test_advice(void **state)
{
    (void)state;
    const char *none = kvm_host_advice(KVM_HOST_NONE);
    const char *pvm = kvm_host_advice(KVM_HOST_PVM);
    assert_contains(none, "tests/kvm-host/with-kvm.sh");
    assert_contains(none, "/dev/kvm");
    assert_contains(pvm, "tests/kvm-host/with-kvm.sh");
    assert_contains(pvm, "paravirtual");
    /* One line each, as the header promises. */
    assert_null(strchr(none, '\n'));
    assert_null(strchr(pvm, '\n'));
    /* Nothing to advise when the hardware is there. */
    const char *hardware = kvm_host_advice(KVM_HOST_HARDWARE);
    assert_non_null(hardware);
    assert_string_equal(hardware, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_intel_hardware, setup, teardown),
        cmocka_unit_test_setup_teardown(test_amd_hardware, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flag_at_line_ends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pvm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_whole_words_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_only_the_flags_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_dev_kvm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_probe_repeatable, setup, teardown),
        cmocka_unit_test(test_advice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
