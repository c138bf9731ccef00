// SPDX-License-Identifier: MIT
/*
 * Guest exits seen by the VMM, with guests written as raw x86 bytes: HLT,
 * port I/O (OUT/IN, imm8 and DX, 8/16/32 bits), MMIO to a GPA without a
 * memslot (writes and reads, completed by the VMM), guest RAM seen from the
 * host and the other way round, the switch from real mode to 32-bit
 * protected mode, exceptions handled by the guest, a triple fault, a
 * KVM_MEM_READONLY slot, and a slot whose memory the VMM unmaps between runs,
 * write-protects, or replaces again and again while a vCPU thread stores to
 * it.
 *
 * Each program runs from slot 0 backed by anonymous memory and, in its own
 * section, by a guest_memfd created MMAP|INIT_SHARED (the slot's
 * userspace_addr is the guest_memfd's own mapping).
 *
 * Guest physical memory (slot 0 = [0, 128 KiB)):
 *   0x00000  real-mode IVT           0x00500  flat GDT (3 entries)
 *   0x00600  protected-mode IDT      0x01000  code
 *   0x08000  top of the stack        0x10000  64 KiB the guest fills
 *   0x30000  real-mode MMIO (no slot)      0x40000  read-only slot (1 page)
 *   0x50000  slot 1 whose memory is unmapped (1 page)
 *   0xd0000000  protected-mode MMIO (no slot)
 *
 * The real kernel here (kvm_pvm) runs these guests in KVM's instruction
 * emulator, whose protected mode has neither INT n nor IRET (em_int and
 * em_iret handle real mode only): so protected-mode exception tests raise
 * #DE (div by 0) and the handler returns with pop/popf/jmp, and the triple
 * fault comes from #DE with an IDT limit of 0. On hardware KVM the same
 * bytes behave the same. Which RIP an I/O or MMIO exit reports differs
 * between the emulator (past an OUT or an MMIO write, on an IN or an MMIO
 * read) and hardware fast paths, so RIP is checked only at HLT exits.
 *
 * Rule ids: "C.x" = reference/kvm-uapi.md section C.
 */
#include "kvm_util.h"
#include "mem_util.h"
#include "vcpu_util.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define GUEST_MEM_SIZE 0x20000ul
#define GDT_GPA 0x500
#define CODE_GPA 0x1000
#define STACK_TOP 0x8000
#define RAM_GPA 0x10000ul /* the 64 KiB the guest fills with rep stosd */
#define RAM_SIZE 0x10000ul
#define RAM_FILL 0xdeadbeefu
#define COPY_SRC 0x11000ul /* host-written page the guest copies ... */
#define COPY_DST 0x13000ul /* ... to here with rep movsd */
#define LAST_DWORD 0x1fffcul
#define LAST_DWORD_VALUE 0x600df00du
#define RM_MMIO 0x30000ul
#define PM_MMIO 0xd0000000ul
#define RO_GPA 0x40000ul
#define X86_EFLAGS_RF (1u << 16)

/* ================================================== guest programs */

/*
 * Real mode, entered at 0000:1000. "->" marks the exits the VMM sees.
 * I/O: results of IN land in BL, CX, ESI; MMIO reads in BL, DI, EBP.
 */
static const uint8_t rm_io_code[] = {
	0xF4,                               /* 1000  hlt                    -> HLT */
	0xB0, 0x5A,                         /* 1001  mov al, 0x5a */
	0xE6, 0x10,                         /* 1003  out 0x10, al           -> OUT imm8, 1 byte */
	0xBA, 0x34, 0x12,                   /* 1005  mov dx, 0x1234 */
	0xB8, 0xCD, 0xAB,                   /* 1008  mov ax, 0xabcd */
	0xEF,                               /* 100b  out dx, ax             -> OUT DX, 2 bytes */
	0x66, 0xB8, 0x78, 0x56, 0x34, 0x12, /* 100c  mov eax, 0x12345678 */
	0x66, 0xEF,                         /* 1012  out dx, eax            -> OUT DX, 4 bytes */
	0xEE,                               /* 1014  out dx, al             -> OUT DX, 1 byte */
	0xE4, 0x20,                         /* 1015  in al, 0x20            -> IN imm8, 1 byte */
	0x88, 0xC3,                         /* 1017  mov bl, al */
	0xED,                               /* 1019  in ax, dx              -> IN DX, 2 bytes */
	0x89, 0xC1,                         /* 101a  mov cx, ax */
	0x66, 0xED,                         /* 101c  in eax, dx             -> IN DX, 4 bytes */
	0x66, 0x89, 0xC6,                   /* 101e  mov esi, eax */
	0xF4,                               /* 1021  hlt                    -> HLT */
	0xB8, 0x00, 0x30,                   /* 1022  mov ax, 0x3000 */
	0x8E, 0xD8,                         /* 1025  mov ds, ax             DS base 0x30000 */
	0xC7, 0x06, 0x10, 0x00, 0xEF, 0xBE, /* 1027  mov word [0x10], 0xbeef       -> MMIO write */
	0x66, 0xC7, 0x06, 0x20, 0x00,       /* 102d  mov dword [0x20], 0x12345678  -> MMIO write */
	0x78, 0x56, 0x34, 0x12,
	0xC6, 0x06, 0x31, 0x00, 0x99,       /* 1036  mov byte [0x31], 0x99        -> MMIO write */
	0x8A, 0x1E, 0x40, 0x00,             /* 103b  mov bl, [0x40]                -> MMIO read */
	0x8B, 0x3E, 0x42, 0x00,             /* 103f  mov di, [0x42]                -> MMIO read */
	0x66, 0x8B, 0x2E, 0x44, 0x00,       /* 1043  mov ebp, [0x44]               -> MMIO read */
	0xF4,                               /* 1048  hlt                    -> HLT */
	0xEB, 0xFD,                         /* 1049  jmp 0x1048 */
};

/*
 * Real mode, entered at 0000:1000: fills GPA [0x10000, 0x20000) with
 * 0xdeadbeef, stops, then copies the page at 0x11000 to 0x13000 and loads
 * the dword at 0x1fffc into EBX: both written by the host meanwhile.
 */
static const uint8_t rm_ram_code[] = {
	0xB8, 0x00, 0x10,                   /* 1000  mov ax, 0x1000 */
	0x8E, 0xC0,                         /* 1003  mov es, ax             ES base 0x10000 */
	0x8E, 0xD8,                         /* 1005  mov ds, ax             DS base 0x10000 */
	0x31, 0xFF,                         /* 1007  xor di, di */
	0x66, 0xB8, 0xEF, 0xBE, 0xAD, 0xDE, /* 1009  mov eax, 0xdeadbeef */
	0xB9, 0x00, 0x40,                   /* 100f  mov cx, 0x4000         16384 dwords = 64 KiB */
	0xFC,                               /* 1012  cld */
	0x66, 0xF3, 0xAB,                   /* 1013  rep stosd              DI wraps to 0 */
	0xF4,                               /* 1016  hlt                    -> HLT */
	0xBE, 0x00, 0x10,                   /* 1017  mov si, 0x1000         GPA 0x11000 */
	0xBF, 0x00, 0x30,                   /* 101a  mov di, 0x3000         GPA 0x13000 */
	0xB9, 0x00, 0x04,                   /* 101d  mov cx, 0x400          1024 dwords = 4 KiB */
	0x66, 0xF3, 0xA5,                   /* 1020  rep movsd */
	0x66, 0x8B, 0x1E, 0xFC, 0xFF,       /* 1023  mov ebx, [0xfffc]      GPA 0x1fffc */
	0xF4,                               /* 1028  hlt                    -> HLT */
	0xEB, 0xFD,                         /* 1029  jmp 0x1028 */
};
#define RM_RAM_HLT1 0x1017 /* RIP after each hlt */
#define RM_RAM_HLT2 0x1029

/*
 * Entered in real mode at 0000:1000: loads the flat GDT at 0x500, sets
 * CR0.PE, far-jumps to 32-bit code (CS 0x08), loads DS/ES/SS with 0x10 and
 * then does what rm_io_code and rm_ram_code do, with 32-bit operands and
 * MMIO at 0xd0000000.
 */
static const uint8_t pm_code[] = {
	0xFA,                               /* 1000  cli */
	0x0F, 0x01, 0x16, 0xA6, 0x10,       /* 1001  lgdt [0x10a6]          GDTR = 0x500/0x17 */
	0x0F, 0x20, 0xC0,                   /* 1006  mov eax, cr0 */
	0x66, 0x83, 0xC8, 0x01,             /* 1009  or eax, 1              CR0.PE */
	0x0F, 0x22, 0xC0,                   /* 100d  mov cr0, eax */
	0x66, 0xEA, 0x18, 0x10, 0x00, 0x00, /* 1010  jmp dword 0x08:0x1018  32-bit code from here */
	0x08, 0x00,
	0xB8, 0x10, 0x00, 0x00, 0x00,       /* 1018  mov eax, 0x10 */
	0x8E, 0xD8,                         /* 101d  mov ds, eax */
	0x8E, 0xC0,                         /* 101f  mov es, eax */
	0x8E, 0xD0,                         /* 1021  mov ss, eax */
	0xBC, 0x00, 0x80, 0x00, 0x00,       /* 1023  mov esp, 0x8000 */
	0xF4,                               /* 1028  hlt                    -> HLT */
	0xB0, 0x5A,                         /* 1029  mov al, 0x5a */
	0xE6, 0x10,                         /* 102b  out 0x10, al           -> OUT imm8, 1 byte */
	0x66, 0xBA, 0x34, 0x12,             /* 102d  mov dx, 0x1234 */
	0x66, 0xB8, 0xCD, 0xAB,             /* 1031  mov ax, 0xabcd */
	0x66, 0xEF,                         /* 1035  out dx, ax             -> OUT DX, 2 bytes */
	0xB8, 0x78, 0x56, 0x34, 0x12,       /* 1037  mov eax, 0x12345678 */
	0xEF,                               /* 103c  out dx, eax            -> OUT DX, 4 bytes */
	0xEE,                               /* 103d  out dx, al             -> OUT DX, 1 byte */
	0xE4, 0x20,                         /* 103e  in al, 0x20            -> IN imm8, 1 byte */
	0x88, 0xC3,                         /* 1040  mov bl, al */
	0x66, 0xED,                         /* 1042  in ax, dx              -> IN DX, 2 bytes */
	0x66, 0x89, 0xC1,                   /* 1044  mov cx, ax */
	0xED,                               /* 1047  in eax, dx             -> IN DX, 4 bytes */
	0x89, 0xC6,                         /* 1048  mov esi, eax */
	0xF4,                               /* 104a  hlt                    -> HLT */
	0x66, 0xC7, 0x05, 0x10, 0x00, 0x00, /* 104b  mov word [0xd0000010], 0xbeef */
	0xD0, 0xEF, 0xBE,                   /*                              -> MMIO write */
	0xC7, 0x05, 0x20, 0x00, 0x00, 0xD0, /* 1054  mov dword [0xd0000020], 0x12345678 */
	0x78, 0x56, 0x34, 0x12,             /*                              -> MMIO write */
	0xC6, 0x05, 0x31, 0x00, 0x00, 0xD0, /* 105e  mov byte [0xd0000031], 0x99 */
	0x99,                               /*                              -> MMIO write */
	0x8A, 0x1D, 0x40, 0x00, 0x00, 0xD0, /* 1065  mov bl, [0xd0000040]   -> MMIO read */
	0x66, 0x8B, 0x3D, 0x42, 0x00, 0x00, /* 106b  mov di, [0xd0000042] */
	0xD0,                               /*                              -> MMIO read */
	0x8B, 0x2D, 0x44, 0x00, 0x00, 0xD0, /* 1072  mov ebp, [0xd0000044]  -> MMIO read */
	0xF4,                               /* 1078  hlt                    -> HLT */
	0xBF, 0x00, 0x00, 0x01, 0x00,       /* 1079  mov edi, 0x10000 */
	0xB8, 0xEF, 0xBE, 0xAD, 0xDE,       /* 107e  mov eax, 0xdeadbeef */
	0xB9, 0x00, 0x40, 0x00, 0x00,       /* 1083  mov ecx, 0x4000        64 KiB */
	0xFC,                               /* 1088  cld */
	0xF3, 0xAB,                         /* 1089  rep stosd */
	0xF4,                               /* 108b  hlt                    -> HLT */
	0xBE, 0x00, 0x10, 0x01, 0x00,       /* 108c  mov esi, 0x11000 */
	0xBF, 0x00, 0x30, 0x01, 0x00,       /* 1091  mov edi, 0x13000 */
	0xB9, 0x00, 0x04, 0x00, 0x00,       /* 1096  mov ecx, 0x400         4 KiB */
	0xF3, 0xA5,                         /* 109b  rep movsd */
	0x8B, 0x1D, 0xFC, 0xFF, 0x01, 0x00, /* 109d  mov ebx, [0x1fffc] */
	0xF4,                               /* 10a3  hlt                    -> HLT */
	0xEB, 0xFD,                         /* 10a4  jmp 0x10a3 */
	0x17, 0x00,                         /* 10a6  GDT pseudo-descriptor: limit 0x17 */
	0x00, 0x05, 0x00, 0x00,             /* 10a8                         base 0x500 */
};
#define PM_HLT_SWITCHED 0x1029
#define PM_HLT_IN 0x104b
#define PM_HLT_MMIO 0x1079
#define PM_HLT_RAM1 0x108c
#define PM_HLT_RAM2 0x10a4

/*
 * Real mode, entered at 0000:1000: installs IVT entries 3 (int3) and 0
 * (#DE), then takes both. The int3 handler returns with the IP pushed
 * (a trap: the next instruction); the #DE handler adds 2 to the pushed IP
 * (a fault: the faulting div) to skip it. Handlers leave what they found
 * on the stack in BX (IP), SI (CS), DI (FLAGS).
 */
static const uint8_t rm_exc_code[] = {
	0xC7, 0x06, 0x0C, 0x00, 0x28, 0x10, /* 1000  mov word [0x0c], 0x1028   IVT[3].ip: int3 */
	0xC7, 0x06, 0x0E, 0x00, 0x00, 0x00, /* 1006  mov word [0x0e], 0        IVT[3].cs */
	0xC7, 0x06, 0x00, 0x00, 0x34, 0x10, /* 100c  mov word [0x00], 0x1034   IVT[0].ip: #DE */
	0xC7, 0x06, 0x02, 0x00, 0x00, 0x00, /* 1012  mov word [0x02], 0        IVT[0].cs */
	0x31, 0xDB,                         /* 1018  xor bx, bx                FLAGS = ZF|PF */
	0xCC,                               /* 101a  int3 */
	0xF4,                               /* 101b  hlt                    -> HLT */
	0xB8, 0x07, 0x00,                   /* 101c  mov ax, 7 */
	0x31, 0xD2,                         /* 101f  xor dx, dx */
	0x31, 0xC9,                         /* 1021  xor cx, cx */
	0xF7, 0xF1,                         /* 1023  div cx                    #DE */
	0xF4,                               /* 1025  hlt                    -> HLT */
	0xEB, 0xFD,                         /* 1026  jmp 0x1025 */
	/* int3 handler */
	0x89, 0xE5,                         /* 1028  mov bp, sp */
	0x8B, 0x5E, 0x00,                   /* 102a  mov bx, [bp]              pushed IP */
	0x8B, 0x76, 0x02,                   /* 102d  mov si, [bp+2]            pushed CS */
	0x8B, 0x7E, 0x04,                   /* 1030  mov di, [bp+4]            pushed FLAGS */
	0xCF,                               /* 1033  iret */
	/* #DE handler */
	0x89, 0xE5,                         /* 1034  mov bp, sp */
	0x8B, 0x5E, 0x00,                   /* 1036  mov bx, [bp]              pushed IP */
	0x83, 0x46, 0x00, 0x02,             /* 1039  add word [bp], 2          skip the div */
	0xCF,                               /* 103d  iret */
};

/*
 * 32-bit protected mode (flat, from vcpu_set_protected_mode), entered at
 * 0x1000: writes IDT gate 0 (#DE -> 0x08:0x102b, 32-bit interrupt gate),
 * loads IDTR = 0x600/7 and divides by zero. The handler keeps the pushed
 * EIP, CS and EFLAGS in EBX, EDI, EBP and returns past the div by hand.
 */
static const uint8_t pm_exc_code[] = {
	0xC7, 0x05, 0x00, 0x06, 0x00, 0x00, /* 1000  mov dword [0x600], 0x0008102b  gate 0 low */
	0x2B, 0x10, 0x08, 0x00,
	0xC7, 0x05, 0x04, 0x06, 0x00, 0x00, /* 100a  mov dword [0x604], 0x00008e00  gate 0 high */
	0x00, 0x8E, 0x00, 0x00,
	0x0F, 0x01, 0x1D, 0x40, 0x10, 0x00, /* 1014  lidt [0x1040] */
	0x00,
	0x31, 0xDB,                         /* 101b  xor ebx, ebx */
	0xB8, 0x07, 0x00, 0x00, 0x00,       /* 101d  mov eax, 7 */
	0x31, 0xD2,                         /* 1022  xor edx, edx */
	0x31, 0xC9,                         /* 1024  xor ecx, ecx              EFLAGS = ZF|PF */
	0xF7, 0xF1,                         /* 1026  div ecx                   #DE */
	0xF4,                               /* 1028  hlt                    -> HLT */
	0xEB, 0xFD,                         /* 1029  jmp 0x1028 */
	/* #DE handler */
	0x8B, 0x1C, 0x24,                   /* 102b  mov ebx, [esp]            pushed EIP */
	0x8B, 0x7C, 0x24, 0x04,             /* 102e  mov edi, [esp+4]          pushed CS */
	0x8B, 0x6C, 0x24, 0x08,             /* 1032  mov ebp, [esp+8]          pushed EFLAGS */
	0x58,                               /* 1036  pop eax */
	0x83, 0xC0, 0x02,                   /* 1037  add eax, 2                past the div */
	0x83, 0xC4, 0x04,                   /* 103a  add esp, 4                drop CS */
	0x9D,                               /* 103d  popfd */
	0xFF, 0xE0,                         /* 103e  jmp eax                   back to 0x1028 */
	0x07, 0x00,                         /* 1040  IDT pseudo-descriptor: limit 7 */
	0x00, 0x06, 0x00, 0x00,             /* 1042                         base 0x600 */
};

/*
 * 32-bit protected mode, entered at 0x1000: an IDT of limit 0 makes #DE
 * undeliverable: #DE -> #GP -> #DF -> triple fault (shutdown).
 */
static const uint8_t pm_triple_code[] = {
	0x0F, 0x01, 0x1D, 0x0E, 0x10, 0x00, /* 1000  lidt [0x100e] */
	0x00,
	0x31, 0xC9,                         /* 1007  xor ecx, ecx */
	0xF7, 0xF1,                         /* 1009  div ecx                -> SHUTDOWN */
	0xF4,                               /* 100b  hlt                       (not reached) */
	0xEB, 0xFD,                         /* 100c  jmp 0x100b */
	0x00, 0x00,                         /* 100e  IDT pseudo-descriptor: limit 0 */
	0x00, 0x06, 0x00, 0x00,             /* 1010                         base 0x600 */
};

/*
 * Real mode, entered at 0000:1000, with the read-only slot at 0x40000:
 * reads its first dword, writes its second, reads the second back.
 */
static const uint8_t rm_ro_code[] = {
	0xB8, 0x00, 0x40,                   /* 1000  mov ax, 0x4000 */
	0x8E, 0xD8,                         /* 1003  mov ds, ax             DS base 0x40000 */
	0x66, 0xA1, 0x00, 0x00,             /* 1005  mov eax, [0]           plain read, no exit */
	0x66, 0xC7, 0x06, 0x04, 0x00,       /* 1009  mov dword [4], 0x11223344  -> MMIO write */
	0x44, 0x33, 0x22, 0x11,
	0x66, 0x8B, 0x0E, 0x04, 0x00,       /* 1012  mov ecx, [4] */
	0xF4,                               /* 1017  hlt                    -> HLT */
	0xEB, 0xFD,                         /* 1018  jmp 0x1017 */
};

/* ====================================================== exit steps */

enum step_kind { STEP_HLT, STEP_OUT, STEP_IN, STEP_MMIO_WRITE, STEP_MMIO_READ };

/* kvm_regs as an array of u64: the index of each register */
enum { R_RAX, R_RBX, R_RCX, R_RDX, R_RSI, R_RDI, R_RSP, R_RBP, R_RIP = 16, R_RFLAGS };
static const char *const reg_names[] = {
	[R_RAX] = "RAX", [R_RBX] = "RBX", [R_RCX] = "RCX", [R_RDX] = "RDX",
	[R_RSI] = "RSI", [R_RDI] = "RDI", [R_RSP] = "RSP", [R_RBP] = "RBP",
	[R_RIP] = "RIP", [R_RFLAGS] = "RFLAGS",
};

/* (reg & mask) == value; mask 0 = no check */
struct reg_check {
	int reg;
	uint64_t mask, value;
};

/*
 * One exit the guest is expected to make. For OUT and MMIO writes `value`
 * is what the guest sends; for IN and MMIO reads it is what the VMM
 * answers. For HLT, `where` is the RIP after the hlt and `regs` what the
 * guest computed up to there.
 */
struct exit_step {
	const char *what;
	enum step_kind kind;
	uint64_t where; /* port, GPA, or RIP after the hlt */
	uint8_t size;   /* bytes */
	uint64_t value;
	struct reg_check regs[3];
};

static bool regs_match(int vcpu, const struct reg_check *checks, size_t n)
{
	struct kvm_regs regs;
	vcpu_regs_get(vcpu, &regs);
	const uint64_t *r = (const uint64_t *)&regs;
	bool ok = true;
	for (size_t i = 0; i < n; i++) {
		const struct reg_check *c = &checks[i];
		if (!c->mask || (r[c->reg] & c->mask) == c->value)
			continue;
		ksft_print_msg("%s = 0x%llx, want 0x%llx under mask 0x%llx", reg_names[c->reg],
			       (unsigned long long)r[c->reg], (unsigned long long)c->value,
			       (unsigned long long)c->mask);
		ok = false;
	}
	return ok;
}

/* Runs to the next exit and checks it against s; answers IN and MMIO reads. */
static bool run_step(struct vcpu_env *e, const struct exit_step *s)
{
	struct kvm_run *run = e->run;
	switch (s->kind) {
	case STEP_HLT:
		return vcpu_run_expect(e, KVM_EXIT_HLT) && vcpu_rip_is(e->vcpu, s->where) &&
		       regs_match(e->vcpu, s->regs, 3);
	case STEP_OUT:
		if (!vcpu_run_expect(e, KVM_EXIT_IO) ||
		    !io_exit_is(run, KVM_EXIT_IO_OUT, (uint16_t)s->where, s->size))
			return false;
		if (io_value(run) != s->value)
			ksft_print_msg("OUT data 0x%x, want 0x%llx", io_value(run),
				       (unsigned long long)s->value);
		return io_value(run) == s->value;
	case STEP_IN:
		if (!vcpu_run_expect(e, KVM_EXIT_IO) ||
		    !io_exit_is(run, KVM_EXIT_IO_IN, (uint16_t)s->where, s->size))
			return false;
		memcpy(io_data(run), &s->value, s->size);
		return true;
	case STEP_MMIO_WRITE:
		if (!vcpu_run_expect(e, KVM_EXIT_MMIO) ||
		    !mmio_exit_is(run, s->where, s->size, true))
			return false;
		if (mmio_value(run) != s->value)
			ksft_print_msg("MMIO data 0x%llx, want 0x%llx",
				       (unsigned long long)mmio_value(run),
				       (unsigned long long)s->value);
		return mmio_value(run) == s->value;
	case STEP_MMIO_READ:
		if (!vcpu_run_expect(e, KVM_EXIT_MMIO) ||
		    !mmio_exit_is(run, s->where, s->size, false))
			return false;
		memcpy(run->mmio.data, &s->value, s->size);
		return true;
	}
	return false;
}

/*
 * One result per step. After a step fails the rest are reported as
 * failures without running the guest again (it is somewhere unknown); with
 * runnable false, all of them are.
 */
static bool run_steps(struct vcpu_env *e, const struct exit_step *steps, size_t n,
		      const char *mode, bool runnable)
{
	bool ok = runnable;
	for (size_t i = 0; i < n; i++) {
		if (ok)
			ok = run_step(e, &steps[i]);
		else
			ksft_print_msg("not run: an earlier step failed");
		kvm_test(ok, "C.4: %s, %s: %s", mode, guest_mem_name(e->kind), steps[i].what);
	}
	return ok;
}

#define MASK8 0xffull
#define MASK16 0xffffull
#define MASK32 0xffffffffull

/*
 * The port I/O part of rm_io_code and pm_code (same ports, sizes and
 * values); the final HLT is at hlt_rip.
 */
#define IO_STEPS(hlt_rip)                                                                     \
	{ "OUT imm8 (port 0x10), 1 byte 0x5a", STEP_OUT, 0x10, 1, 0x5a, { { 0 } } },             \
	{ "OUT DX (port 0x1234), 2 bytes 0xabcd", STEP_OUT, 0x1234, 2, 0xabcd, { { 0 } } },      \
	{ "OUT DX, 4 bytes 0x12345678", STEP_OUT, 0x1234, 4, 0x12345678, { { 0 } } },            \
	{ "OUT DX, 1 byte 0x78", STEP_OUT, 0x1234, 1, 0x78, { { 0 } } },                          \
	{ "IN imm8 (port 0x20), 1 byte", STEP_IN, 0x20, 1, 0xa5, { { 0 } } },                    \
	{ "IN DX (port 0x1234), 2 bytes", STEP_IN, 0x1234, 2, 0xbeef, { { 0 } } },               \
	{ "IN DX, 4 bytes", STEP_IN, 0x1234, 4, 0xcafef00d, { { 0 } } },                          \
	{ "HLT: the VMM's IN data landed in AL, AX, EAX (-> BL, CX, ESI)", STEP_HLT, hlt_rip, 0,  \
	  0,                                                                                      \
	  { { R_RBX, MASK8, 0xa5 }, { R_RCX, MASK16, 0xbeef }, { R_RSI, MASK32, 0xcafef00d } } }

/* The MMIO part: writes to base+0x10/0x20/0x31, reads from base+0x40/0x42/0x44. */
#define MMIO_STEPS(base, hlt_rip)                                                             \
	{ "MMIO write, 2 bytes 0xbeef", STEP_MMIO_WRITE, (base) + 0x10, 2, 0xbeef, { { 0 } } },   \
	{ "MMIO write, 4 bytes 0x12345678", STEP_MMIO_WRITE, (base) + 0x20, 4, 0x12345678,      \
	  { { 0 } } },                                                                            \
	{ "MMIO write, 1 byte 0x99 (odd GPA)", STEP_MMIO_WRITE, (base) + 0x31, 1, 0x99,          \
	  { { 0 } } },                                                                            \
	{ "MMIO read, 1 byte", STEP_MMIO_READ, (base) + 0x40, 1, 0x42, { { 0 } } },               \
	{ "MMIO read, 2 bytes", STEP_MMIO_READ, (base) + 0x42, 2, 0x8765, { { 0 } } },            \
	{ "MMIO read, 4 bytes", STEP_MMIO_READ, (base) + 0x44, 4, 0x13579bdf, { { 0 } } },        \
	{ "HLT: the VMM's MMIO read data landed in BL, DI, EBP", STEP_HLT, hlt_rip, 0, 0,        \
	  { { R_RBX, MASK8, 0x42 }, { R_RDI, MASK16, 0x8765 }, { R_RBP, MASK32, 0x13579bdf } } }

static const struct exit_step rm_io_steps[] = {
	{ "HLT exits with IP after the hlt", STEP_HLT, 0x1001, 0, 0, { { 0 } } },
	IO_STEPS(0x1022),
	MMIO_STEPS(RM_MMIO, 0x1049),
};
#define NR_RM_IO_STEPS ARRAY_SIZE(rm_io_steps)

static const struct exit_step pm_io_steps[] = {
	IO_STEPS(PM_HLT_IN),
	MMIO_STEPS(PM_MMIO, PM_HLT_MMIO),
};
#define NR_PM_IO_STEPS ARRAY_SIZE(pm_io_steps)

/* ===================================================== the programs */

static void env_real_mode(struct vcpu_env *e, enum guest_mem_kind kind, const uint8_t *code,
			  size_t len)
{
	vcpu_env_create(e, KVM_X86_DEFAULT_VM, GUEST_MEM_SIZE, kind);
	guest_load(e, CODE_GPA, code, len);
	vcpu_set_real_mode(e->vcpu, CODE_GPA, STACK_TOP);
}

/*
 * env_real_mode on anonymous memory, plus slot 1: one page of anonymous memory
 * of its own (mmap flags map_flags) at gpa with slot flags. Returns the page.
 */
static uint8_t *env_with_page_slot(struct vcpu_env *e, const uint8_t *code, size_t len,
				   uint32_t flags, uint64_t gpa, int map_flags)
{
	env_real_mode(e, GUEST_MEM_ANON, code, len);
	uint8_t *page = map_anon(PAGE_SIZE, PROT_READ | PROT_WRITE, map_flags);
	set_region2(e->vm, 1, flags, gpa, PAGE_SIZE, (uintptr_t)page, -1, 0);
	return page;
}

static void env_with_page_slot_destroy(struct vcpu_env *e, uint8_t *page)
{
	delete_slot(e->vm, 1);
	munmap(page, PAGE_SIZE);
	vcpu_env_destroy(e);
}

static void env_protected_mode(struct vcpu_env *e, enum guest_mem_kind kind,
			       const uint8_t *code, size_t len)
{
	vcpu_env_create(e, KVM_X86_DEFAULT_VM, GUEST_MEM_SIZE, kind);
	guest_load(e, CODE_GPA, code, len);
	guest_put_flat_gdt(e, GDT_GPA);
	vcpu_set_protected_mode(e->vcpu, CODE_GPA, STACK_TOP, GDT_GPA);
}

static void real_mode_io(enum guest_mem_kind kind)
{
	struct vcpu_env e;
	env_real_mode(&e, kind, rm_io_code, sizeof(rm_io_code));
	run_steps(&e, rm_io_steps, NR_RM_IO_STEPS, "real mode", true);
	vcpu_env_destroy(&e);
}
#define NR_RM_IO_RESULTS NR_RM_IO_STEPS

/* ------------------------------------------------------------ RAM */

/*
 * After the guest's rep stosd (stopped at hlt_rip): the host sees the 64
 * KiB it wrote and nothing before them. Then the host writes the page the
 * guest copies and the last dword it loads; after the next HLT the copy
 * and EBX must show them. Five results.
 */
static void check_ram(struct vcpu_env *e, const char *mode, uint64_t hlt1, uint64_t hlt2,
		      const struct reg_check *after_fill)
{
	const char *mem = guest_mem_name(e->kind);
	bool stopped = vcpu_run_expect(e, KVM_EXIT_HLT) && vcpu_rip_is(e->vcpu, hlt1);
	kvm_test(stopped && regs_match(e->vcpu, after_fill, 2),
		 "C.4: %s, %s: rep stosd over 64 KiB ran to its end (count 0, index past the end)",
		 mode, mem);

	bool filled = dwords_are(guest_ptr(e, RAM_GPA), RAM_SIZE, RAM_FILL);
	uint32_t before = *(const uint32_t *)guest_ptr(e, RAM_GPA - 4);
	kvm_test(stopped && filled && before == 0,
		 "C.4: %s, %s: the host mapping shows the guest's 64 KiB of 0xdeadbeef, and "
		 "nothing below them", mode, mem);

	fill_pattern(guest_ptr(e, COPY_SRC), PAGE_SIZE);
	*(uint32_t *)guest_ptr(e, LAST_DWORD) = LAST_DWORD_VALUE;
	const struct reg_check ebx = { R_RBX, MASK32, LAST_DWORD_VALUE };
	bool second = stopped && vcpu_run_expect(e, KVM_EXIT_HLT) && vcpu_rip_is(e->vcpu, hlt2);
	kvm_test(second, "C.4: %s, %s: rep movsd of a host-written page ran (HLT)", mode, mem);
	kvm_test(second && is_pattern(guest_ptr(e, COPY_DST), PAGE_SIZE),
		 "C.4: %s, %s: the guest read the host's page (its copy matches)", mode, mem);
	kvm_test(second && regs_match(e->vcpu, &ebx, 1),
		 "C.4: %s, %s: the guest loaded the host's dword at 0x1fffc", mode, mem);
}
#define NR_RAM_RESULTS 5

static void real_mode_ram(enum guest_mem_kind kind)
{
	struct vcpu_env e;
	env_real_mode(&e, kind, rm_ram_code, sizeof(rm_ram_code));
	/* 16-bit addressing: DI wraps from 0xfffc + 4 to 0, the upper half of EDI stays 0 */
	const struct reg_check after_fill[2] = { { R_RCX, MASK32, 0 }, { R_RDI, MASK32, 0 } };
	check_ram(&e, "real mode", RM_RAM_HLT1, RM_RAM_HLT2, after_fill);
	vcpu_env_destroy(&e);
}

/* ------------------------------------------------ protected mode */

static bool seg_flat(const struct kvm_segment *s, uint16_t sel)
{
	return s->selector == sel && s->base == 0 && s->limit == 0xffffffff && s->present &&
	       s->db && s->g && s->s;
}

static void protected_mode(enum guest_mem_kind kind)
{
	struct vcpu_env e;
	env_real_mode(&e, kind, pm_code, sizeof(pm_code));
	guest_put_flat_gdt(&e, GDT_GPA);
	const char *mem = guest_mem_name(kind);

	bool hlt = vcpu_run_expect(&e, KVM_EXIT_HLT) && vcpu_rip_is(e.vcpu, PM_HLT_SWITCHED);
	struct kvm_sregs sr;
	vcpu_sregs_get(e.vcpu, &sr);
	bool pm = (sr.cr0 & X86_CR0_PE) && seg_flat(&sr.cs, FLAT_CODE32_SEL) &&
		  (sr.cs.type & 0x8) && seg_flat(&sr.ds, FLAT_DATA32_SEL) &&
		  seg_flat(&sr.es, FLAT_DATA32_SEL) && seg_flat(&sr.ss, FLAT_DATA32_SEL) &&
		  sr.gdt.base == GDT_GPA && sr.gdt.limit == FLAT_GDT_LIMIT;
	if (hlt && !pm)
		ksft_print_msg("CR0 0x%llx CS %#x base %#llx limit %#x db %u g %u; DS %#x; GDTR "
			       "0x%llx/%#x", (unsigned long long)sr.cr0, sr.cs.selector,
			       (unsigned long long)sr.cs.base, sr.cs.limit, sr.cs.db, sr.cs.g,
			       sr.ds.selector, (unsigned long long)sr.gdt.base, sr.gdt.limit);
	kvm_test(hlt && pm, "C.4: real -> protected mode (lgdt, CR0.PE, far jmp), %s: HLT in "
			    "32-bit code, CS 0x08 and DS/ES/SS 0x10 flat 4 GiB, GDTR 0x500/0x17",
		 mem);

	bool ok = run_steps(&e, pm_io_steps, NR_PM_IO_STEPS, "protected mode", hlt && pm);
	if (!ok) {
		for (int i = 0; i < NR_RAM_RESULTS; i++)
			kvm_test(false, "C.4: protected mode, %s: RAM check %d (not run: an "
					"earlier step failed)", mem, i + 1);
	} else {
		const struct reg_check after_fill[2] = { { R_RCX, MASK32, 0 },
							 { R_RDI, MASK32, RAM_GPA + RAM_SIZE } };
		check_ram(&e, "protected mode", PM_HLT_RAM1, PM_HLT_RAM2, after_fill);
	}
	vcpu_env_destroy(&e);
}
#define NR_PM_RESULTS (1 + NR_PM_IO_STEPS + NR_RAM_RESULTS)

/* ----------------------------------------------------- exceptions */

static void exceptions(enum guest_mem_kind kind)
{
	const char *mem = guest_mem_name(kind);
	struct vcpu_env e;
	env_real_mode(&e, kind, rm_exc_code, sizeof(rm_exc_code));
	/* the int3 handler saw IP 0x101b (after int3), CS 0, FLAGS ZF|PF; iret restored SP */
	const struct reg_check int3[3] = { { R_RBX, MASK16, 0x101b },
					   { R_RSI, MASK16, 0 },
					   { R_RDI, MASK16, 0x0046 } };
	bool hlt = vcpu_run_expect(&e, KVM_EXIT_HLT) && vcpu_rip_is(e.vcpu, 0x101c);
	const struct reg_check after[2] = { { R_RSP, MASK16, STACK_TOP },
					    { R_RFLAGS, MASK32, 0x46 } };
	kvm_test(hlt && regs_match(e.vcpu, int3, 3) && regs_match(e.vcpu, after, 2),
		 "C.4: real mode, %s: int3 through the IVT: handler got IP after int3, CS, FLAGS; "
		 "iret back to the next instruction", mem);
	/* the #DE handler saw the div's own IP (a fault); the div did not execute */
	const struct reg_check de[3] = { { R_RBX, MASK16, 0x1023 },
					 { R_RAX, MASK16, 7 },
					 { R_RSP, MASK16, STACK_TOP } };
	kvm_test(hlt && vcpu_run_expect(&e, KVM_EXIT_HLT) && vcpu_rip_is(e.vcpu, 0x1026) &&
			 regs_match(e.vcpu, de, 3),
		 "C.4: real mode, %s: div by 0 -> #DE through the IVT with the div's IP; handler "
		 "skips it", mem);
	vcpu_env_destroy(&e);

	env_protected_mode(&e, kind, pm_exc_code, sizeof(pm_exc_code));
	/*
	 * EFLAGS as pushed: ZF|PF|bit 1 and RF (bit 16), which the CPU sets in
	 * the image of a fault-class exception (KVM does the same when it
	 * injects one). popfd clears RF again; EAX holds the return address.
	 */
	const struct reg_check pm_de[3] = { { R_RBX, MASK32, 0x1026 },
					    { R_RDI, MASK16, FLAT_CODE32_SEL },
					    { R_RBP, MASK32, X86_EFLAGS_RF | 0x46 } };
	const struct reg_check pm_after[3] = { { R_RSP, MASK32, STACK_TOP },
					       { R_RAX, MASK32, 0x1028 },
					       { R_RFLAGS, MASK32, 0x46 } };
	kvm_test(vcpu_run_expect(&e, KVM_EXIT_HLT) && vcpu_rip_is(e.vcpu, 0x1029) &&
			 regs_match(e.vcpu, pm_de, 3) && regs_match(e.vcpu, pm_after, 3),
		 "C.4: protected mode, %s: div by 0 -> #DE through the IDT (gate 0x08:0x102b) with "
		 "EIP of the div, CS 0x08, EFLAGS|RF; handler returns past it", mem);
	vcpu_env_destroy(&e);

	env_protected_mode(&e, kind, pm_triple_code, sizeof(pm_triple_code));
	kvm_test(vcpu_run_expect(&e, KVM_EXIT_SHUTDOWN),
		 "C.4: protected mode, %s: #DE with an IDT of limit 0 -> triple fault -> "
		 "KVM_EXIT_SHUTDOWN", mem);
	vcpu_env_destroy(&e);
}
#define NR_EXCEPTION_RESULTS 4

/* -------------------------------------------------- read-only slot */

static const char *need_readonly_mem(void)
{
	return kvm_check_cap(KVM_CAP_READONLY_MEM) > 0 ? NULL : "KVM_CAP_READONLY_MEM not offered";
}

/*
 * A KVM_MEM_READONLY slot: reads are plain memory reads, writes leave the
 * slot unchanged and reach the VMM as MMIO writes (6.18).
 */
static void test_readonly_slot(void)
{
	struct vcpu_env e;
	uint8_t *rom = env_with_page_slot(&e, rm_ro_code, sizeof(rm_ro_code), KVM_MEM_READONLY,
					  RO_GPA, MAP_SHARED);
	fill_pattern(rom, PAGE_SIZE);

	uint32_t word0, word1;
	memcpy(&word0, rom, 4);
	memcpy(&word1, rom + 4, 4);
	const struct exit_step write = { "a write to the read-only slot -> MMIO write exit "
					 "(GPA 0x40004, 4 bytes 0x11223344)",
					 STEP_MMIO_WRITE, RO_GPA + 4, 4, 0x11223344, { { 0 } } };
	const struct exit_step hlt = { "HLT: EAX = the slot's dword 0 (read without exit), ECX = "
				       "its dword 1 (the write did not land)",
				       STEP_HLT, 0x1018, 0, 0,
				       { { R_RAX, MASK32, word0 }, { R_RCX, MASK32, word1 } } };
	bool ok = run_steps(&e, &write, 1, "KVM_MEM_READONLY slot", true);
	ok = run_steps(&e, &hlt, 1, "KVM_MEM_READONLY slot", ok);
	kvm_test(ok && is_pattern(rom, PAGE_SIZE),
		 "C.3: after the guest's write the read-only slot's host memory is unchanged");

	env_with_page_slot_destroy(&e, rom);
}
#define NR_READONLY_RESULTS 3

/*
 * Real mode, entered at 0000:1000, with slot 1 (one page at UNMAP_GPA) in
 * anonymous memory of its own: a store there, HLT; the VMM unmaps that
 * memory; the next store; HLT.
 */
static const uint8_t rm_unmap_code[] = {
	0xB8, 0x00, 0x50,                   /* 1000  mov ax, 0x5000 */
	0x8E, 0xD8,                         /* 1003  mov ds, ax             DS base 0x50000 */
	0xC6, 0x06, 0x00, 0x00, 0x11,       /* 1005  mov byte [0], 0x11 */
	0xF4,                               /* 100a  hlt                    -> HLT */
	0xC6, 0x06, 0x01, 0x00, 0x22,       /* 100b  mov byte [1], 0x22     memory gone -> exit */
	0xF4,                               /* 1010  hlt                    -> HLT */
	0xEB, 0xFD,                         /* 1011  jmp 0x1010 */
};
#define UNMAP_GPA 0x50000ul
#define RM_UNMAP_HLT1 0x100b
#define RM_UNMAP_HLT2 0x1011

/* How KVM_RUN reported the guest's store of 0x22 to UNMAP_GPA + 1. */
enum store_report { STORE_NOT_REPORTED, STORE_FAULT_EXIT, STORE_MMIO_EXIT };

/*
 * Runs the vCPU into a store of 0x22 to UNMAP_GPA + 1 whose memory is gone or
 * read-only. Either the fault path refuses the page (TDP KVM, kvmlike):
 * -1/EFAULT with a memory-fault exit, the store not done; or KVM's
 * instruction emulator (the kernel here) cannot reach the memory and hands
 * the store to the VMM as an MMIO write, done.
 */
static enum store_report run_into_lost_store(struct vcpu_env *e, const char **got)
{
	static char buf[96];
	errno = 0;
	int r = __vcpu_run(e->vcpu);
	int err = errno;
	const struct kvm_run_memory_fault *mf = kvm_run_mem_fault(e->run);
	snprintf(buf, sizeof(buf), "%d/%s, %s", r, r ? strerror(err) : "0",
		 exit_reason_str(e->run->exit_reason));
	*got = buf;
	if (r == -1 && err == EFAULT && e->run->exit_reason == KVM_EXIT_MEMORY_FAULT &&
	    mf->gpa == UNMAP_GPA && mf->size == PAGE_SIZE && mf->flags == 0)
		return STORE_FAULT_EXIT;
	if (r == 0 && e->run->exit_reason == KVM_EXIT_MMIO && e->run->mmio.phys_addr == UNMAP_GPA + 1 &&
	    e->run->mmio.len == 1 && e->run->mmio.is_write && e->run->mmio.data[0] == 0x22)
		return STORE_MMIO_EXIT;
	vcpu_print_exit(e->vcpu, e->run);
	return STORE_NOT_REPORTED;
}

/*
 * The VMM unmaps the memory behind a slot the guest has used, without
 * deleting the slot (a VMM bug KVM survives: its MMU notifier takes the
 * mapping down). The guest's next access must not reach the old memory nor
 * take the VMM down; KVM reports it. After the VMM maps new memory at the same
 * address, the guest goes on and its store lands there.
 */
static void test_unmapped_slot_memory(void)
{
	struct vcpu_env e;
	uint8_t *page = env_with_page_slot(&e, rm_unmap_code, sizeof(rm_unmap_code), 0, UNMAP_GPA,
					   MAP_PRIVATE);

	const struct exit_step hlt1 = { "HLT after the guest's first store to slot 1", STEP_HLT,
					RM_UNMAP_HLT1, 0, 0, { { 0 } } };
	bool ok = run_steps(&e, &hlt1, 1, "unmapped slot memory", true);
	kvm_test(ok && page[0] == 0x11, "the store reached the slot's memory (host sees 0x11)");

	TEST_ASSERT(munmap(page, PAGE_SIZE) == 0, "munmap slot 1's memory");
	const char *got;
	enum store_report how = run_into_lost_store(&e, &got);
	bool fault_exit = how == STORE_FAULT_EXIT;
	kvm_test(how != STORE_NOT_REPORTED,
		 "the store to the unmapped memory is reported, not done there: -1/EFAULT with "
		 "KVM_EXIT_MEMORY_FAULT (GPA 0x50000, 4096, flags 0) or an MMIO write of 0x22 to "
		 "0x50001 (got %s)", got);

	TEST_ASSERT(mmap(page, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
			 -1, 0) == page, "map new memory at the slot's address");
	const struct exit_step hlt2 = { "HLT after the store, once new memory is mapped", STEP_HLT,
					RM_UNMAP_HLT2, 0, 0, { { 0 } } };
	ok = run_steps(&e, &hlt2, 1, "unmapped slot memory", true);
	/* After a memory-fault exit the store runs again, into the new memory. */
	uint8_t want = fault_exit ? 0x22 : 0;
	kvm_test(ok && page[1] == want && page[0] == 0,
		 "the new memory holds what the guest stored after it was mapped (byte 1 = 0x%02x) "
		 "and nothing of the old (byte 0 = 0)", want);

	env_with_page_slot_destroy(&e, page);
}
#define NR_UNMAP_RESULTS 5

/*
 * Real mode, entered at 0000:1000, slot 1 at UNMAP_GPA: a store, HLT; the
 * VMM makes the memory read-only; a load, HLT; a store; HLT once the VMM
 * made it writable again.
 */
static const uint8_t rm_protect_code[] = {
	0xB8, 0x00, 0x50,                   /* 1000  mov ax, 0x5000 */
	0x8E, 0xD8,                         /* 1003  mov ds, ax             DS base 0x50000 */
	0xC6, 0x06, 0x00, 0x00, 0x11,       /* 1005  mov byte [0], 0x11 */
	0xF4,                               /* 100a  hlt                    -> HLT */
	0x8A, 0x1E, 0x02, 0x00,             /* 100b  mov bl, [2]            read-only now: fine */
	0xF4,                               /* 100f  hlt                    -> HLT */
	0xC6, 0x06, 0x01, 0x00, 0x22,       /* 1010  mov byte [1], 0x22     read-only -> exit */
	0xF4,                               /* 1015  hlt                    -> HLT */
	0xEB, 0xFD,                         /* 1016  jmp 0x1015 */
};

/*
 * The VMM write-protects a slot's memory (mprotect) after the guest wrote it,
 * without KVM_MEM_READONLY: reads go on, a store is reported and not done
 * (KVM maps a page writable only while the host's mapping is); once the
 * memory is writable again the store goes through (or was handed to the VMM
 * as an MMIO write by the kernel's emulator).
 */
static void test_protected_slot_memory(void)
{
	struct vcpu_env e;
	uint8_t *page = env_with_page_slot(&e, rm_protect_code, sizeof(rm_protect_code), 0,
					   UNMAP_GPA, MAP_PRIVATE);
	page[2] = 0x5a;

	const struct exit_step hlt1 = { "HLT after the guest's store to writable slot memory",
					STEP_HLT, 0x100b, 0, 0, { { 0 } } };
	bool ok = run_steps(&e, &hlt1, 1, "write-protected slot memory", true);
	kvm_test(ok && page[0] == 0x11, "the store reached the slot's memory (host sees 0x11)");

	TEST_ASSERT(mprotect(page, PAGE_SIZE, PROT_READ) == 0, "mprotect(PROT_READ)");
	const struct exit_step hlt2 = { "HLT after a load from the write-protected memory: BL = "
					"its byte 2 (0x5a)", STEP_HLT, 0x1010, 0, 0,
					{ { R_RBX, 0xff, 0x5a } } };
	ok = run_steps(&e, &hlt2, 1, "write-protected slot memory", ok);

	const char *got;
	enum store_report how = run_into_lost_store(&e, &got);
	bool fault_exit = how == STORE_FAULT_EXIT;
	kvm_test(ok && how != STORE_NOT_REPORTED && page[1] == 0,
		 "a store to the write-protected memory is reported, not done: -1/EFAULT with "
		 "KVM_EXIT_MEMORY_FAULT (GPA 0x50000) or an MMIO write of 0x22 to 0x50001 (got %s)", got);

	TEST_ASSERT(mprotect(page, PAGE_SIZE, PROT_READ | PROT_WRITE) == 0, "mprotect(RW)");
	const struct exit_step hlt3 = { "HLT once the memory is writable again", STEP_HLT, 0x1016,
					0, 0, { { 0 } } };
	ok = run_steps(&e, &hlt3, 1, "write-protected slot memory", ok);
	uint8_t want = fault_exit ? 0x22 : 0;
	kvm_test(ok && page[1] == want,
		 "after a memory-fault exit the store runs again and lands (byte 1 = 0x%02x)", want);

	env_with_page_slot_destroy(&e, page);
}
#define NR_PROTECT_RESULTS 6

/*
 * Real mode, entered at 0000:1000: stores an incrementing byte to slot 1
 * (UNMAP_GPA) forever.
 */
static const uint8_t rm_store_loop[] = {
	0xB8, 0x00, 0x50,                   /* 1000  mov ax, 0x5000 */
	0x8E, 0xD8,                         /* 1003  mov ds, ax             DS base 0x50000 */
	0xA2, 0x00, 0x00,                   /* 1005  mov [0], al */
	0xFE, 0xC0,                         /* 1008  inc al */
	0xEB, 0xF9,                         /* 100a  jmp 0x1005 */
};

#define RACE_MS 1000

struct race_vcpu {
	struct vcpu_env *e;
	volatile int stop;
	unsigned long runs, fault_exits, mmio_exits, unexpected;
};

static void race_kick(int sig) { (void)sig; }

/* Runs the guest until stopped; classifies every return of KVM_RUN. */
static void *race_vcpu_thread(void *arg)
{
	struct race_vcpu *v = arg;
	while (!v->stop) {
		int r = ioctl(v->e->vcpu, KVM_RUN, 0);
		int err = errno;
		v->runs++;
		if (r == -1 && err == EINTR)
			continue;
		if (r == -1 && err == EFAULT && v->e->run->exit_reason == KVM_EXIT_MEMORY_FAULT &&
		    kvm_run_mem_fault(v->e->run)->gpa == UNMAP_GPA)
			v->fault_exits++;
		else if (r == 0 && v->e->run->exit_reason == KVM_EXIT_MMIO &&
			 v->e->run->mmio.phys_addr == UNMAP_GPA && v->e->run->mmio.is_write)
			v->mmio_exits++;
		else if (v->unexpected++ == 0)
			vcpu_print_exit(v->e->vcpu, v->e->run);
	}
	return NULL;
}

/*
 * The VMM takes a slot's memory away and gives it back again and again while
 * a vCPU thread keeps storing to it: no store reaches memory that is gone
 * (the process survives), each access in a gap is reported as above, and once
 * the memory stays the guest's stores land in it. The memory is replaced with
 * MAP_FIXED by an inaccessible mapping and back, never unmapped: a free
 * address could be taken meanwhile by another thread's mmap (an allocator's),
 * which the next MAP_FIXED would then destroy.
 */
static void test_unmap_race(void)
{
	struct vcpu_env e;
	uint8_t *page = env_with_page_slot(&e, rm_store_loop, sizeof(rm_store_loop), 0, UNMAP_GPA,
					   MAP_PRIVATE);

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = race_kick; /* no SA_RESTART: KVM_RUN returns EINTR */
	TEST_ASSERT(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction(SIGUSR1)");
	struct race_vcpu v = { .e = &e };
	pthread_t t;
	TEST_ASSERT(pthread_create(&t, NULL, race_vcpu_thread, &v) == 0, "pthread_create");

	unsigned long remaps = 0;
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	do {
		TEST_ASSERT(mmap(page, PAGE_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
				 -1, 0) == page, "replace slot 1's memory by an inaccessible mapping");
		usleep(50);
		TEST_ASSERT(mmap(page, PAGE_SIZE, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == page, "new memory");
		usleep(50);
		remaps++;
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 < RACE_MS);

	/* The memory stays now: the guest's stores must show up in it. */
	memset(page, 0, PAGE_SIZE);
	bool landed = false;
	for (int i = 0; i < 2000 && !landed; i++) {
		landed = ((volatile uint8_t *)page)[0] != 0;
		usleep(1000);
	}
	/* A KVM_RUN in progress returns EINTR on the signal, one about to start
	 * at once because of immediate_exit. */
	v.stop = 1;
	e.run->immediate_exit = 1;
	TEST_ASSERT(pthread_kill(t, SIGUSR1) == 0, "signal the vCPU thread");
	TEST_ASSERT(pthread_join(t, NULL) == 0, "join the vCPU thread");
	e.run->immediate_exit = 0;
	ksft_print_msg("%lu remaps; %lu KVM_RUN returns: %lu memory-fault, %lu MMIO, %lu unexpected",
		       remaps, v.runs, v.fault_exits, v.mmio_exits, v.unexpected);
	kvm_test(v.unexpected == 0,
		 "slot memory taken away and given back %lu times while the guest stores to it: every "
		 "KVM_RUN return is EINTR, a memory-fault exit or an MMIO write at GPA 0x50000", remaps);
	kvm_test(landed, "once the memory stays mapped, the guest's stores land in it");

	env_with_page_slot_destroy(&e, page);
}
#define NR_UNMAP_RACE_RESULTS 2

/* ============================================================ main */

static void test_rm_io_anon(void) { real_mode_io(GUEST_MEM_ANON); }
static void test_rm_io_gmem(void) { real_mode_io(GUEST_MEM_GMEM_SHARED); }
static void test_rm_ram_anon(void) { real_mode_ram(GUEST_MEM_ANON); }
static void test_rm_ram_gmem(void) { real_mode_ram(GUEST_MEM_GMEM_SHARED); }
static void test_pm_anon(void) { protected_mode(GUEST_MEM_ANON); }
static void test_pm_gmem(void) { protected_mode(GUEST_MEM_GMEM_SHARED); }
static void test_exc_anon(void) { exceptions(GUEST_MEM_ANON); }
static void test_exc_gmem(void) { exceptions(GUEST_MEM_GMEM_SHARED); }

static const struct kvm_section sections[] = {
	{ "real mode I/O and MMIO, anonymous", NR_RM_IO_RESULTS, NULL, test_rm_io_anon },
	{ "real mode I/O and MMIO, guest_memfd", NR_RM_IO_RESULTS, need_gmem_shared,
	  test_rm_io_gmem },
	{ "real mode RAM, anonymous", NR_RAM_RESULTS, NULL, test_rm_ram_anon },
	{ "real mode RAM, guest_memfd", NR_RAM_RESULTS, need_gmem_shared, test_rm_ram_gmem },
	{ "protected mode, anonymous", NR_PM_RESULTS, NULL, test_pm_anon },
	{ "protected mode, guest_memfd", NR_PM_RESULTS, need_gmem_shared, test_pm_gmem },
	{ "exceptions, anonymous", NR_EXCEPTION_RESULTS, NULL, test_exc_anon },
	{ "exceptions, guest_memfd", NR_EXCEPTION_RESULTS, need_gmem_shared, test_exc_gmem },
	{ "read-only slot", NR_READONLY_RESULTS, need_readonly_mem, test_readonly_slot },
	{ "slot memory unmapped by the VMM", NR_UNMAP_RESULTS, NULL, test_unmapped_slot_memory },
	{ "slot memory write-protected by the VMM", NR_PROTECT_RESULTS, NULL,
	  test_protected_slot_memory },
	{ "slot memory replaced while the guest runs", NR_UNMAP_RACE_RESULTS, NULL, test_unmap_race },
	{ "leaks", 1, NULL, kvm_test_live_objects },
};

int main(void)
{
	ksft_print_header();
	kvm_require_dev();
	return kvm_sections_main(sections, ARRAY_SIZE(sections));
}
