/* SPDX-License-Identifier: MIT */
/*
 * vCPU helpers for selftests whose guests are raw x86 bytes (real mode and
 * 32-bit flat protected mode without paging), so that the same payload runs
 * on the real KVM and on kvmlike.
 *
 * A vcpu_env is one VM with vCPU 0, its kvm_run mapping and one memslot
 * (slot 0) at GPA 0, backed by anonymous memory or by a guest_memfd created
 * MMAP|INIT_SHARED whose mapping is the slot's userspace_addr:
 *
 *   struct vcpu_env e;
 *   vcpu_env_create(&e, KVM_X86_DEFAULT_VM, GUEST_MEM_SIZE, GUEST_MEM_ANON);
 *   guest_load(&e, 0x1000, code, sizeof(code));
 *   vcpu_set_real_mode(e.vcpu, 0x1000, 0x8000);
 *   if (vcpu_run_expect(&e, KVM_EXIT_HLT)) ...
 *   vcpu_env_destroy(&e);
 *
 * Every KVM_RUN issued through these helpers has a watchdog: a guest that
 * never exits is interrupted by SIGALRM and KVM_RUN returns -1/EINTR instead
 * of hanging the test.
 *
 * As in kvm_util.h, __x returns the raw result (-1 with errno) and x asserts.
 */
#ifndef KVMLIKE_SELFTESTS_VCPU_UTIL_H
#define KVMLIKE_SELFTESTS_VCPU_UTIL_H

#include "kvm_util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Selectors of the flat GDT written by guest_put_flat_gdt(). */
#define FLAT_CODE32_SEL 0x08
#define FLAT_DATA32_SEL 0x10
#define FLAT_GDT_LIMIT (3 * 8 - 1)

#define X86_CR0_PE (1u << 0)
#define X86_CR0_ET (1u << 4)
#define X86_EFLAGS_FIXED 0x2u /* bit 1 always reads as 1 */

/* How long one KVM_RUN may take before the watchdog interrupts it. */
#define VCPU_RUN_WATCHDOG_MS 5000

enum guest_mem_kind {
	GUEST_MEM_ANON,        /* anonymous MAP_SHARED memory, plain slot */
	GUEST_MEM_GMEM_SHARED, /* guest_memfd MMAP|INIT_SHARED, KVM_MEM_GUEST_MEMFD slot */
};

struct vcpu_env {
	int vm;              /* VM fd */
	int vcpu;            /* vCPU 0 */
	struct kvm_run *run; /* vCPU 0's mapping, vcpu_mmap_size() bytes */
	uint8_t *mem;        /* host view of slot 0, GPA [0, mem_size) */
	size_t mem_size;
	int gmem;            /* guest_memfd behind slot 0, or -1 */
	enum guest_mem_kind kind;
};

/* "anonymous memory" or "guest_memfd MMAP|INIT_SHARED", for messages. */
const char *guest_mem_name(enum guest_mem_kind kind);
/* NULL when the VM type offers kind (a kvm_section-style skip reason otherwise). */
const char *guest_mem_unavailable(unsigned long vm_type, enum guest_mem_kind kind);
/* A kvm_section skip_reason: guest_mem_unavailable() of a default VM's GMEM_SHARED. */
const char *need_gmem_shared(void);

/* KVM_GET_VCPU_MMAP_SIZE, asserted to be a page multiple. */
size_t vcpu_mmap_size(void);
int __vcpu_create(int vm_fd, unsigned long id);
int vcpu_create(int vm_fd, unsigned long id);
/* MAP_SHARED mapping of the vCPU fd's first vcpu_mmap_size() bytes, asserted. */
struct kvm_run *vcpu_map_run(int vcpu_fd);
void vcpu_unmap_run(struct kvm_run *run);

/*
 * A VM of vm_type with vCPU 0 and slot 0 = GPA [0, mem_size) of the kind
 * given; the memory starts zeroed. Asserts every step.
 */
void vcpu_env_create(struct vcpu_env *e, unsigned long vm_type, size_t mem_size,
		     enum guest_mem_kind kind);
/* Unmaps and closes everything vcpu_env_create made (slot deleted first). */
void vcpu_env_destroy(struct vcpu_env *e);
/* Copies len bytes to guest physical address gpa of slot 0 (asserted in range). */
void guest_load(struct vcpu_env *e, uint64_t gpa, const void *bytes, size_t len);
/* Host pointer to GPA gpa of slot 0 (asserted in range). */
void *guest_ptr(struct vcpu_env *e, uint64_t gpa);

void vcpu_regs_get(int vcpu_fd, struct kvm_regs *regs);
void vcpu_regs_set(int vcpu_fd, const struct kvm_regs *regs);
void vcpu_sregs_get(int vcpu_fd, struct kvm_sregs *sregs);
void vcpu_sregs_set(int vcpu_fd, const struct kvm_sregs *sregs);

/*
 * Real mode at 0000:ip with every segment selector 0 (base 0, limit 0xffff),
 * SP = sp, the general registers 0 and RFLAGS 0x2. Other sregs are left as
 * they are (reset state: CR0 without PE).
 */
void vcpu_set_real_mode(int vcpu_fd, uint16_t ip, uint16_t sp);
/*
 * A GDT at gdt_gpa: null, flat 32-bit code (FLAT_CODE32_SEL: base 0, limit
 * 4 GiB, execute/read, D=1, G=1) and flat 32-bit data (FLAT_DATA32_SEL:
 * read/write, B=1, G=1).
 */
void guest_put_flat_gdt(struct vcpu_env *e, uint64_t gdt_gpa);
/*
 * 32-bit flat protected mode, paging off: CS = FLAT_CODE32_SEL, the data
 * segments FLAT_DATA32_SEL (caches as guest_put_flat_gdt describes them),
 * GDTR = gdt_gpa / FLAT_GDT_LIMIT, CR0 = PE|ET, CR4 = 0, EFER = 0,
 * EIP = eip, ESP = esp, the other general registers 0, EFLAGS 0x2.
 */
void vcpu_set_protected_mode(int vcpu_fd, uint32_t eip, uint32_t esp, uint64_t gdt_gpa);

/*
 * KVM_RUN (argument 0) under the watchdog: SIGALRM after ms milliseconds
 * (0 = no timer) makes a guest that is still running return -1/EINTR.
 * Raw result, errno preserved.
 */
int __vcpu_run_timed(int vcpu_fd, unsigned int ms);
/* __vcpu_run_timed with VCPU_RUN_WATCHDOG_MS. */
int __vcpu_run(int vcpu_fd);

/* The KVM_EXIT_* name of reason ("KVM_EXIT_HLT"), or "exit <n>". Static buffer. */
const char *exit_reason_str(uint32_t reason);
/* Prints an exit's details (reason, RIP, io/mmio/internal fields) as a diagnostic. */
void vcpu_print_exit(int vcpu_fd, const struct kvm_run *run);

/*
 * KVM_RUN must return 0 with exit_reason want; otherwise prints what
 * happened and returns false.
 */
bool vcpu_run_expect(struct vcpu_env *e, uint32_t want);

/* The current RIP (KVM_GET_REGS). */
uint64_t vcpu_rip(int vcpu_fd);
/* vcpu_rip() == want; prints the RIP otherwise. */
bool vcpu_rip_is(int vcpu_fd, uint64_t want);

/*
 * The last exit was KVM_EXIT_IO with these fields (count 1) and a data_offset
 * inside the vCPU mapping; prints the difference otherwise.
 */
bool io_exit_is(const struct kvm_run *run, uint8_t direction, uint16_t port, uint8_t size);
/* The I/O data area of the last KVM_EXIT_IO (run + io.data_offset). */
void *io_data(struct kvm_run *run);
/* The I/O data as a little-endian value of io.size bytes. */
uint32_t io_value(struct kvm_run *run);
/* KVM_RUN's next exit is an OUT of 4 bytes to port; its data in *val. */
bool vcpu_run_expect_out32(struct vcpu_env *e, uint16_t port, uint32_t *val);

/* Registers a guest routine is called with (vcpu_call). */
struct guest_args {
	uint32_t eax, ebx, ecx, edx, edi;
};
/*
 * Points the vCPU at a routine at eip: those registers, ESP = esp, RFLAGS
 * reset. Only for a vCPU stopped at a HLT (or not run yet): no exit is left
 * to complete.
 */
void vcpu_call(int vcpu_fd, uint32_t eip, uint32_t esp, struct guest_args args);
/* got == want for a dword the guest read at gpa; prints both otherwise. */
bool guest_word_is(uint32_t got, uint64_t gpa, uint32_t want);

/*
 * A guest of routines the test calls through registers, in 32-bit flat
 * protected mode: vcpu_env_create_routines() makes a vcpu_env on anonymous
 * memory (mem_size bytes from GPA 0) with the flat GDT at ROUTINES_GDT_GPA,
 * ESP = ROUTINES_STACK_TOP and these routines in slot 0:
 *
 *   READ (ROUTINE_READ_GPA)  EAX = [EBX]; OUT of EAX to ROUTINE_READ_PORT;
 *                            HLT; run on past the HLT, it reads again
 *   FILL (ROUTINE_FILL_GPA)  rep stosd (ECX dwords of EAX at EDI); HLT
 *
 * [ROUTINES_FREE_GPA, ROUTINES_STACK_TOP) is left for a test's own routines.
 * Addresses outside long mode are 32 bits wide.
 */
#define ROUTINES_GDT_GPA 0x500
#define ROUTINE_READ_GPA 0x1000
#define ROUTINE_FILL_GPA 0x1010
#define ROUTINES_FREE_GPA 0x1020
#define ROUTINES_STACK_TOP 0x8000
#define ROUTINE_READ_PORT 0x10

void vcpu_env_create_routines(struct vcpu_env *e, unsigned long vm_type, size_t mem_size);
/* vcpu_call of the routine at eip with ESP = ROUTINES_STACK_TOP. */
void guest_call(struct vcpu_env *e, uint32_t eip, struct guest_args args);
/* The guest reads the dword at gpa into *val (READ, up to its HLT); false with a diagnostic. */
bool guest_read(struct vcpu_env *e, uint64_t gpa, uint32_t *val);
/* guest_read() gives want; prints what it gave otherwise. */
bool guest_read_is(struct vcpu_env *e, uint64_t gpa, uint32_t want);
/* The guest writes n dwords of value from gpa (FILL, up to its HLT). */
bool guest_fill(struct vcpu_env *e, uint64_t gpa, uint32_t n, uint32_t value);

/*
 * The last exit was KVM_EXIT_MMIO at phys_addr gpa with len bytes and the
 * direction given; prints the difference otherwise.
 */
bool mmio_exit_is(const struct kvm_run *run, uint64_t gpa, uint32_t len, bool is_write);
/* mmio.data[0..len) as a little-endian value. */
uint64_t mmio_value(const struct kvm_run *run);

/*
 * hypercall.flags of a KVM_EXIT_HYPERCALL (bit 0 KVM_EXIT_HYPERCALL_LONG_MODE):
 * the u64 at offset 96 that Debian's 6.1 header still calls longmode + pad.
 */
uint64_t vcpu_hypercall_flags(const struct kvm_run *run);

#endif
