/* The C half of the kernel-mode set-up, run once before the switch to user mode, and the
 * exception report. Built with -mgeneral-regs-only: it runs in KVM's instruction emulator
 * on a paravirtual KVM, where SSE instructions may be missing. */
#include "tiny.h"

#define KERNEL_CS          0x10
#define GATE_INTERRUPT     0x8E /* present, DPL 0, 64-bit interrupt gate */
#define GATE_USER          0xEE /* the same, callable from user mode (DPL 3) */
#define TSS_AVAILABLE      0x89 /* present, 64-bit TSS (available) */
#define TSS_LIMIT          103
#define TSS_RSP0_OFFSET    4
#define TSS_IOMAP_OFFSET   102
#define MSR_APIC_BASE      0x1B
#define APIC_BASE_EXTD     (1ull << 10)
#define APIC_BASE_ENABLE   (1ull << 11)
#define MSR_X2APIC_TPR     0x808
#define MSR_X2APIC_SVR     0x80F
#define MSR_X2APIC_LVT_TMR 0x832
#define MSR_X2APIC_TMR_DIV 0x83E
#define TIMER_DIVIDE_BY_1  0xB
#define SVR_ENABLE         0x100
#define SPURIOUS_VECTOR    0xFF
#define CPUID_1_ECX_X2APIC (1u << 21)

extern uint64_t gdt_tss[2];
extern uint8_t idt[256 * 16];
extern uint8_t tss[104];
extern uint8_t kernel_stack_top[];
extern const uint64_t exception_stubs[32];
void irq_stub(void);
void spurious_stub(void);
void timer_stub(void);
void idle_stub(void);

volatile uint64_t tiny_irq_count;
bool tiny_x2apic_enabled;
const char *tiny_cmdline;

static void set_gate_type(unsigned vector, uint64_t handler, uint64_t type)
{
    uint64_t *gate = (uint64_t *)(idt + vector * 16);
    gate[0] = (handler & 0xFFFF) | ((uint64_t)KERNEL_CS << 16) | (type << 40) |
              (((handler >> 16) & 0xFFFF) << 48);
    gate[1] = handler >> 32;
}

static void set_gate(unsigned vector, uint64_t handler)
{
    set_gate_type(vector, handler, GATE_INTERRUPT);
}

static uint64_t rdmsr(uint32_t msr)
{
    uint32_t lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return ((uint64_t)hi << 32) | lo;
}

static void wrmsr(uint32_t msr, uint64_t value)
{
    __asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)value), "d"((uint32_t)(value >> 32)));
}

/* KVM puts the x2APIC bit in the CPUID minivmm sets; on a PVM host CPUID is the host's. */
static void enable_x2apic(void)
{
    uint32_t eax = 1, ebx, ecx = 0, edx;
    __asm__ volatile("cpuid" : "+a"(eax), "=b"(ebx), "+c"(ecx), "=d"(edx));
    if (!(ecx & CPUID_1_ECX_X2APIC))
        return;
    wrmsr(MSR_APIC_BASE, rdmsr(MSR_APIC_BASE) | APIC_BASE_ENABLE | APIC_BASE_EXTD);
    wrmsr(MSR_X2APIC_TPR, 0);
    wrmsr(MSR_X2APIC_SVR, SVR_ENABLE | SPURIOUS_VECTOR);
    /* One-shot, unmasked; nothing counts until tiny_idle() writes an initial count. */
    wrmsr(MSR_X2APIC_TMR_DIV, TIMER_DIVIDE_BY_1);
    wrmsr(MSR_X2APIC_LVT_TMR, TINY_TIMER_VECTOR);
    tiny_x2apic_enabled = true;
}

void kernel_setup(const uint8_t *zero_page)
{
    uint64_t base = (uint64_t)tss;
    gdt_tss[0] = TSS_LIMIT | ((base & 0xFFFFFF) << 16) | ((uint64_t)TSS_AVAILABLE << 40) |
                 (((base >> 24) & 0xFF) << 56);
    gdt_tss[1] = base >> 32;
    *(uint64_t *)(tss + TSS_RSP0_OFFSET) = (uint64_t)kernel_stack_top;
    /* An I/O map base past the limit: no bitmap, IOPL=3 alone grants the ports. */
    *(uint16_t *)(tss + TSS_IOMAP_OFFSET) = TSS_LIMIT + 1;

    for (unsigned v = 0; v < 32; v++)
        set_gate(v, exception_stubs[v]);
    set_gate(TINY_IRQ_VECTOR, (uint64_t)irq_stub);
    set_gate(SPURIOUS_VECTOR, (uint64_t)spurious_stub);
    set_gate(TINY_TIMER_VECTOR, (uint64_t)timer_stub);
    set_gate_type(TINY_IDLE_VECTOR, (uint64_t)idle_stub, GATE_USER);

    /* The boot protocol's cmd_line_ptr, at 0x228 in the zero page. */
    tiny_cmdline = (const char *)(uint64_t) * (const uint32_t *)(zero_page + 0x228);
    enable_x2apic();
}

void exception_report(uint64_t vector, uint64_t error, uint64_t rip, uint64_t cs)
{
    uint64_t cr2;
    __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
    tiny_printf("FAIL: exception %lu (error 0x%lx) at rip 0x%lx in %s mode, cr2 0x%lx\n", vector,
                error, rip, (cs & 3) ? "user" : "kernel", cr2);
    outb(DEBUG_EXIT_PORT, TINY_EXIT_EXCEPTION);
    for (;;)
        __asm__ volatile("hlt");
}
