#include "vmm/long_mode.h"

#include <errno.h>
#include <string.h>

#include "vmm/layout.h"

#define X86_CR0_PE          (1ull << 0)
#define X86_CR0_ET          (1ull << 4)
#define X86_CR0_PG          (1ull << 31)
#define X86_CR4_PAE         (1ull << 5)
#define X86_EFER_LME        (1ull << 8)
#define X86_EFER_LMA        (1ull << 10)
#define PTE_PRESENT         (1ull << 0)
#define PTE_WRITE           (1ull << 1)
#define PTE_LARGE           (1ull << 7)
#define X86_RFLAGS_RESERVED (1ull << 1)

#define SEG_TYPE_CODE_EXEC_READ  0xB /* accessed */
#define SEG_TYPE_DATA_READ_WRITE 0x3 /* accessed */
#define SEG_TYPE_TSS_BUSY        0xB
#define SEG_TYPE_LDT             0x2
#define GDT_ENTRIES              5

/* Packs a descriptor from its fields (Intel SDM vol. 3, 3.4.5). */
static uint64_t gdt_entry(const struct kvm_segment *seg)
{
    uint64_t limit = seg->g ? seg->limit >> 12 : seg->limit;
    return (limit & 0xFFFFull) | ((uint64_t)(seg->base & 0xFFFFFF) << 16) |
           ((uint64_t)seg->type << 40) | ((uint64_t)seg->s << 44) | ((uint64_t)seg->dpl << 45) |
           ((uint64_t)seg->present << 47) | (((limit >> 16) & 0xFull) << 48) |
           ((uint64_t)seg->avl << 52) | ((uint64_t)seg->l << 53) | ((uint64_t)seg->db << 54) |
           ((uint64_t)seg->g << 55) | ((uint64_t)((seg->base >> 24) & 0xFF) << 56);
}

static struct kvm_segment boot_code_segment(void)
{
    return (struct kvm_segment){.base = 0,
                                .limit = 0xFFFFFFFF,
                                .selector = BOOT_CS_SELECTOR,
                                .type = SEG_TYPE_CODE_EXEC_READ,
                                .present = 1,
                                .s = 1,
                                .l = 1,
                                .g = 1};
}

static struct kvm_segment boot_data_segment(void)
{
    return (struct kvm_segment){.base = 0,
                                .limit = 0xFFFFFFFF,
                                .selector = BOOT_DS_SELECTOR,
                                .type = SEG_TYPE_DATA_READ_WRITE,
                                .present = 1,
                                .s = 1,
                                .db = 1,
                                .g = 1};
}

/* VM entry insists on a usable task register even though the kernel loads its own. */
static struct kvm_segment boot_tss_segment(void)
{
    return (struct kvm_segment){.base = 0,
                                .limit = 0x67,
                                .selector = BOOT_TSS_SELECTOR,
                                .type = SEG_TYPE_TSS_BUSY,
                                .present = 1};
}

int long_mode_write_tables(struct guest_ram *ram)
{
    uint64_t *gdt = guest_ram_ptr(ram, LAYOUT_GDT, GDT_ENTRIES * sizeof(uint64_t));
    uint64_t *pml4 = guest_ram_ptr(ram, LAYOUT_PML4, 4096);
    uint64_t *pdpt = guest_ram_ptr(ram, LAYOUT_PDPT, 4096);
    uint64_t *pd = guest_ram_ptr(ram, LAYOUT_PD, 4 * 4096);
    if (!gdt || !pml4 || !pdpt || !pd)
        return -EINVAL;

    struct kvm_segment code = boot_code_segment(), data = boot_data_segment();
    struct kvm_segment tss = boot_tss_segment();
    gdt[0] = 0;
    gdt[1] = 0;
    gdt[BOOT_CS_SELECTOR / 8] = gdt_entry(&code);
    gdt[BOOT_DS_SELECTOR / 8] = gdt_entry(&data);
    gdt[BOOT_TSS_SELECTOR / 8] = gdt_entry(&tss);

    /* Identity map 0-4 GiB with 2 MiB pages: the kernel, zero page, command line and
     * initrd all lie below 4 GiB, and the kernel builds its own tables at once. */
    memset(pml4, 0, 4096);
    memset(pdpt, 0, 4096);
    pml4[0] = LAYOUT_PDPT | PTE_PRESENT | PTE_WRITE;
    for (uint64_t i = 0; i < 4; i++)
        pdpt[i] = (LAYOUT_PD + i * 4096) | PTE_PRESENT | PTE_WRITE;
    for (uint64_t i = 0; i < 4 * 512; i++)
        pd[i] = (i << 21) | PTE_PRESENT | PTE_WRITE | PTE_LARGE;
    return 0;
}

void long_mode_set_sregs(struct kvm_sregs *sregs)
{
    struct kvm_segment data = boot_data_segment();
    sregs->cs = boot_code_segment();
    sregs->ds = sregs->es = sregs->fs = sregs->gs = sregs->ss = data;
    sregs->tr = boot_tss_segment();
    sregs->ldt = (struct kvm_segment){.type = SEG_TYPE_LDT, .present = 1, .limit = 0xFFFF};
    sregs->gdt.base = LAYOUT_GDT;
    sregs->gdt.limit = GDT_ENTRIES * sizeof(uint64_t) - 1;
    sregs->idt.base = 0;
    sregs->idt.limit = 0;
    sregs->cr0 = X86_CR0_PE | X86_CR0_ET | X86_CR0_PG;
    sregs->cr3 = LAYOUT_PML4;
    sregs->cr4 = X86_CR4_PAE;
    sregs->efer = X86_EFER_LME | X86_EFER_LMA;
}

void long_mode_set_regs(struct kvm_regs *regs, uint64_t entry, uint64_t zero_page)
{
    memset(regs, 0, sizeof(*regs));
    regs->rflags = X86_RFLAGS_RESERVED;
    regs->rip = entry;
    regs->rsi = zero_page;
    regs->rsp = LAYOUT_BOOT_STACK;
}
