#include "vmm/boot_msrs.h"

#include <string.h>

void boot_msrs_fill(struct boot_msrs *msrs)
{
    memset(msrs, 0, sizeof(*msrs));
    msrs->nmsrs = BOOT_MSR_COUNT;
    msrs->entries[0].index = MSR_IA32_MTRR_DEF_TYPE;
    msrs->entries[0].data = MSR_IA32_MTRR_DEF_TYPE_ENABLE | MTRR_TYPE_WRITE_BACK;
    msrs->entries[1].index = MSR_IA32_MISC_ENABLE;
    msrs->entries[1].data = MSR_IA32_MISC_ENABLE_FAST_STRING;
}
