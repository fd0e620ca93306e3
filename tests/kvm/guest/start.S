/* Kernel-mode entry of the tiny guests. minivmm enters at _start in 64-bit mode at CPL0
 * with its own GDT (code 0x10, data 0x18), an identity map of 0-4 GiB without the U/S
 * bit and RSI = the zero page. Everything here runs in KVM's instruction emulator on a
 * paravirtual KVM, so it is kept to instructions that emulator has and to few of them. */

#define KERNEL_CS  0x10 /* the same selector minivmm's GDT uses, so CS needs no reload */
#define KERNEL_DS  0x18
#define USER_CS    0x23 /* 0x20 with RPL 3 */
#define USER_DS    0x2b
#define TSS_SEL    0x30
#define PTE_USER   0x07 /* present, writable, user */
#define PDE_LARGE  0x87 /* present, writable, user, 2 MiB page */
#define RFLAGS_USER 0x3202 /* IOPL=3, IF, reserved bit 1 */
#define CR0_MP     0x2
#define CR0_EM     0x4
#define CR4_OSFXSR_OSXMMEXCPT 0x600

    .section .text.entry, "ax"
    .globl _start
    .code64
_start:
    cli
    lea kernel_stack_top(%rip), %rsp
    mov %rsi, %rdi
    call kernel_setup
    lgdt gdt_pointer(%rip)
    mov $KERNEL_DS, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %ax, %fs
    mov %ax, %gs
    lidt idt_pointer(%rip)
    mov $TSS_SEL, %ax
    ltr %ax
    lea pml4(%rip), %rax
    mov %rax, %cr3
    /* SSE for the user-mode work loops. */
    mov %cr0, %rax
    and $~CR0_EM, %rax
    or $CR0_MP, %rax
    mov %rax, %cr0
    mov %cr4, %rax
    or $CR4_OSFXSR_OSXMMEXCPT, %rax
    mov %rax, %cr4
    pushq $USER_DS
    lea user_stack_top(%rip), %rax
    push %rax
    pushq $RFLAGS_USER
    pushq $USER_CS
    lea user_start(%rip), %rax
    push %rax
    iretq

user_start:
    call tiny_user_start
    ud2

/* Exceptions: push the vector (and a zero where the CPU pushes no error code), then
 * report from C. They never return: a fault in a test guest is a failed test. */
    .macro exception_stub vector, has_error
exception_\vector:
    .if \has_error == 0
    pushq $0
    .endif
    pushq $\vector
    jmp exception_common
    .endm

    .irp v, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31
    exception_stub \v, 0
    .endr
    .irp v, 8,10,11,12,13,14,17,21,29,30
    exception_stub \v, 1
    .endr

exception_common:
    mov (%rsp), %rdi      /* vector */
    mov 8(%rsp), %rsi     /* error code */
    mov 16(%rsp), %rdx    /* RIP of the fault */
    mov 24(%rsp), %rcx    /* CS: tells user from kernel */
    and $-16, %rsp
    call exception_report
    ud2

/* End of interrupt through the x2APIC EOI MSR (0x80b), keeping the interrupted code's
 * registers. */
.macro x2apic_eoi
    push %rax
    push %rcx
    push %rdx
    mov $0x80b, %ecx
    xor %eax, %eax
    xor %edx, %edx
    wrmsr
    pop %rdx
    pop %rcx
    pop %rax
.endm

/* The MSI-X vector: count, acknowledge (x2APIC EOI MSR), return to the interrupted code. */
    .globl irq_stub
irq_stub:
    incq tiny_irq_count(%rip)
    x2apic_eoi
    iretq

    .globl spurious_stub
spurious_stub:
    iretq

/* The one-shot APIC timer that bounds tiny_idle(): acknowledge and return. */
    .globl timer_stub
timer_stub:
    x2apic_eoi
    iretq

/* tiny_idle()'s gate (int $0x80 from user mode, EDI = timer count): user mode cannot hlt,
 * and spinning would take a whole host CPU per idle guest. Arms the one-shot x2APIC timer,
 * then halts with interrupts on; sti's one-instruction shadow means an interrupt pending
 * since the gate cleared IF still ends the hlt, so no wake-up is lost. Any interrupt
 * (a doorbell's, the timer's) returns to user mode with the timer stopped. */
    .globl idle_stub
idle_stub:
    push %rax
    push %rcx
    push %rdx
    mov $0x838, %ecx      /* x2APIC timer initial count: writing it starts the count */
    mov %edi, %eax
    xor %edx, %edx
    wrmsr
    sti
    hlt
    cli
    mov $0x838, %ecx
    xor %eax, %eax
    xor %edx, %edx
    wrmsr                 /* a count of 0 stops a timer that has not fired */
    pop %rdx
    pop %rcx
    pop %rax
    iretq

    .section .rodata
    .balign 8
    .globl exception_stubs
exception_stubs:
    .irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad exception_\v
    .endr

/* The note that tells minivmm this ELF is a freestanding guest, not a Linux kernel: it may
 * run on a KVM that cannot boot Linux (vmm/kernel_image.h, KERNEL_NOTE_FREESTANDING). */
    .section .note.minivmm, "a"
    .balign 4
    .long 8          /* name size, "minivmm" and its NUL */
    .long 4          /* descriptor size */
    .long 1          /* type: freestanding guest */
    .asciz "minivmm"
    .balign 4
    .long 1
    .balign 4

    .data
    .balign 16
    .globl gdt
gdt:
    .quad 0
    .quad 0
    .quad 0x00af9b000000ffff /* 0x10 kernel code, 64-bit */
    .quad 0x00cf93000000ffff /* 0x18 kernel data */
    .quad 0x00affb000000ffff /* 0x20 user code, 64-bit, DPL 3 */
    .quad 0x00cff3000000ffff /* 0x28 user data, DPL 3 */
    .globl gdt_tss
gdt_tss:
    .quad 0                  /* 0x30 TSS, 16 bytes: kernel_setup fills in its base */
    .quad 0
gdt_end:

    .balign 16
gdt_pointer:
    .word gdt_end - gdt - 1
    .quad gdt
idt_pointer:
    .word 256 * 16 - 1
    .quad idt

/* Page tables: 0-4 GiB (RAM, the 32-bit PCI window, the APICs) and 256-257 GiB (the 64-bit
 * PCI window: ivshmem's BAR2), all with 2 MiB pages that user code may touch. */
    .balign 4096
pml4:
    .quad pdpt + PTE_USER
    .fill 511, 8, 0
pdpt:
    .quad pd_low + PTE_USER
    .quad pd_low + 0x1000 + PTE_USER
    .quad pd_low + 0x2000 + PTE_USER
    .quad pd_low + 0x3000 + PTE_USER
    .fill 252, 8, 0
    .quad pd_pci64 + PTE_USER /* entry 256: 256 GiB */
    .fill 255, 8, 0
pd_low:
    .set address, 0
    .rept 2048
    .quad address + PDE_LARGE
    .set address, address + 0x200000
    .endr
pd_pci64:
    .set address, 0x4000000000
    .rept 512
    .quad address + PDE_LARGE
    .set address, address + 0x200000
    .endr

    .bss
    .balign 4096
    .globl idt
idt:
    .skip 256 * 16
    .globl tss
tss:
    .skip 104
    .balign 16
    .skip 16384
    .globl kernel_stack_top
kernel_stack_top:
    .skip 65536
user_stack_top:
