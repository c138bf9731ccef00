// SPDX-License-Identifier: MIT
/*
 * The vCPU side of the ABI: KVM_CREATE_VCPU ids, the vCPU fd and its mmap
 * (kvm_run, the PIO page, SIGBUS past the end), KVM_GET/SET_REGS and SREGS
 * (reset state, round trips), KVM_RUN's own errors (argument, immediate_exit,
 * signals, rule 33: no memory at all), KVM_SET_NR_MMU_PAGES, vCPU ioctls from
 * a forked child, unknown ioctls, KVM_ENABLE_CAP(KVM_CAP_EXIT_HYPERCALL) and
 * bad argument pointers.
 *
 * Guests are a few bytes of real-mode code run from slot 0 (anonymous
 * memory). Rule ids: "C.x" = reference/kvm-uapi.md section C, "rule N" =
 * reference/conformance.md. Values marked "6.18" were read from the real
 * kernel these tests are checked against (kvm_pvm, which runs these guests
 * in KVM's instruction emulator).
 */
#include "kvm_util.h"
#include "mem_util.h"
#include "vcpu_util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define GUEST_MEM_SIZE 0x20000ul
#define CODE_GPA 0x1000
#define STACK_TOP 0x8000
#define X86_MAX_VCPU_IDS 4096 /* KVM_MAX_VCPU_IDS on x86 (6.18) */
#define MIN_MMU_PAGES 64      /* KVM_MIN_ALLOC_MMU_PAGES */

/*
 * Real-mode code at CODE_GPA (CS = 0, so IP = GPA). Entry points:
 *   ENTRY_HLT  stops at once
 *   ENTRY_OUT  sends 0xA5 to port 0x10, then stops
 *   ENTRY_IN   reads port 0x20 into AL, then stops
 *   ENTRY_SPIN loops on itself until a signal interrupts KVM_RUN
 */
#define ENTRY_HLT 0x1000
#define ENTRY_OUT 0x1001
#define ENTRY_IN 0x1006
#define ENTRY_SPIN 0x1009
#define AFTER_SPIN 0x100b
static const uint8_t guest_code[] = {
	0xF4,       /* 1000  hlt                   exit HLT, IP 0x1001 */
	0xB0, 0xA5, /* 1001  mov al, 0xa5 */
	0xE6, 0x10, /* 1003  out 0x10, al          exit IO: OUT, port 0x10, 1 byte */
	0xF4,       /* 1005  hlt */
	0xE4, 0x20, /* 1006  in al, 0x20           exit IO: IN, port 0x20, 1 byte */
	0xF4,       /* 1008  hlt                   exit HLT, IP 0x1009 */
	0xEB, 0xFE, /* 1009  jmp 0x1009            spins: no exit until a signal */
	0xF4,       /* 100b  hlt */
};

/* A default VM with vCPU 0, slot 0 and guest_code at CODE_GPA, real mode at ip. */
static void env_at(struct vcpu_env *e, uint16_t ip)
{
	vcpu_env_create(e, KVM_X86_DEFAULT_VM, GUEST_MEM_SIZE, GUEST_MEM_ANON);
	guest_load(e, CODE_GPA, guest_code, sizeof(guest_code));
	vcpu_set_real_mode(e->vcpu, ip, STACK_TOP);
}

static void set_rip(int vcpu, uint64_t rip)
{
	struct kvm_regs regs;
	vcpu_regs_get(vcpu, &regs);
	regs.rip = rip;
	vcpu_regs_set(vcpu, &regs);
}

/* ------------------------------------------------------ KVM_CREATE_VCPU */

static void test_create_vcpu(void)
{
	int vm = vm_create(KVM_X86_DEFAULT_VM);
	long max_id = vm_check_cap(vm, KVM_CAP_MAX_VCPU_ID);
	kvm_test_eq(max_id, errno, X86_MAX_VCPU_IDS, "C.1: VM CHECK_EXTENSION(MAX_VCPU_ID) = %d",
		    X86_MAX_VCPU_IDS);
	KCHECK_EQ(kvm_check_cap(KVM_CAP_MAX_VCPU_ID), X86_MAX_VCPU_IDS,
		  "C.1: system CHECK_EXTENSION(MAX_VCPU_ID) = %d", X86_MAX_VCPU_IDS);
	if (max_id <= 1)
		max_id = X86_MAX_VCPU_IDS; /* keeps the cases below meaningful after a failure */

	int fds[4];
	bool created = true;
	for (int id = 0; id < 4; id++) {
		fds[id] = __vcpu_create(vm, id);
		if (fds[id] < 0) {
			ksft_print_msg("id %d: %s", id, strres(fds[id], errno));
			created = false;
		}
	}
	kvm_test(created && fds[0] != fds[1] && fds[1] != fds[2] && fds[2] != fds[3],
		 "C.1: KVM_CREATE_VCPU ids 0..3 -> four distinct fds");

	int before = kvm_lowest_free_fd();
	KCHECK_ERRNO(__vcpu_create(vm, 0), EEXIST, "C.1: KVM_CREATE_VCPU id 0 again -> EEXIST");
	KCHECK_ERRNO(__vcpu_create(vm, 3), EEXIST, "C.1: KVM_CREATE_VCPU id 3 again -> EEXIST");
	KCHECK_ERRNO(__vcpu_create(vm, max_id), EINVAL,
		     "C.1: KVM_CREATE_VCPU id = MAX_VCPU_ID (%ld) -> EINVAL", max_id);
	KCHECK_ERRNO(__vcpu_create(vm, ~0ul), EINVAL, "C.1: KVM_CREATE_VCPU id 2^64-1 -> EINVAL");
	/* the id is an unsigned long: high bits are not truncated away */
	KCHECK_ERRNO(__vcpu_create(vm, (1ul << 32) | 5), EINVAL,
		     "C.1: KVM_CREATE_VCPU id 2^32+5 -> EINVAL (not id 5)");
	/* nothing leaked: the next vCPU gets the lowest free fd, its id 5 is not taken */
	int five = __vcpu_create(vm, 5);
	kvm_test(five >= 0 && five == before,
		 "C.1: the failed creates made no fd: id 5 then gets the lowest free fd "
		 "(%d, want %d)", five, before);
	int last = __vcpu_create(vm, max_id - 1);
	kvm_test_ok(last, errno, "C.1: KVM_CREATE_VCPU id MAX_VCPU_ID-1 (%ld) -> fd", max_id - 1);

	int fdfl = fcntl(fds[0], F_GETFD);
	kvm_test(fdfl >= 0 && (fdfl & FD_CLOEXEC), "C.1: vCPU fd is O_CLOEXEC (F_GETFD %#x)", fdfl);
	int fl = fcntl(fds[0], F_GETFL);
	kvm_test(fl >= 0 && (fl & O_ACCMODE) == O_RDWR, "C.1: vCPU fd is O_RDWR (F_GETFL %#x)", fl);

	for (int id = 0; id < 4; id++)
		if (fds[id] >= 0)
			close(fds[id]);
	/* a vCPU lives as long as its VM: closing its fd does not free the id */
	KCHECK_ERRNO(__vcpu_create(vm, 2), EEXIST,
		     "C.1: KVM_CREATE_VCPU id 2 after its fd was closed -> EEXIST");
	if (last >= 0)
		close(last);
	if (five >= 0)
		close(five);
	close(vm);
}
#define NR_CREATE_RESULTS 13

/* ---------------------------------------------------------- vCPU mmap */

static uint8_t *touch_base;

static void touch_page3(void *arg)
{
	(void)arg;
	(void)*(volatile uint8_t *)(touch_base + 3 * PAGE_SIZE);
}

static void touch_page2(void *arg)
{
	(void)arg;
	(void)*(volatile uint8_t *)(touch_base + 2 * PAGE_SIZE);
}

static void test_vcpu_mmap(void)
{
	struct vcpu_env e;
	env_at(&e, ENTRY_HLT);
	size_t size = vcpu_mmap_size();
	/* kvm_run, the PIO data page and the coalesced-MMIO ring (6.18 x86) */
	kvm_test(size == 3 * PAGE_SIZE, "C.3: KVM_GET_VCPU_MMAP_SIZE = 12288 (3 pages), got %zu",
		 size);

	struct kvm_run *run = e.run;
	kvm_test(run->request_interrupt_window == 0 && run->immediate_exit == 0 &&
			 run->exit_reason == KVM_EXIT_UNKNOWN,
		 "C.3: a new vCPU's kvm_run reads zero (exit_reason %u)", run->exit_reason);

	/* a second mapping of the same fd is the same memory */
	struct kvm_run *run2 = vcpu_map_run(e.vcpu);
	run2->request_interrupt_window = 0x5a;
	bool same = run->request_interrupt_window == 0x5a;
	run->cr8 = 0x1234;
	same = same && run2->cr8 == 0x1234;
	run2->request_interrupt_window = 0;
	run->cr8 = 0;
	kvm_test(same, "C.3: two mappings of the vCPU fd see each other's writes");

	bool hlt = vcpu_run_expect(&e, KVM_EXIT_HLT);
	kvm_test(hlt && run2->exit_reason == KVM_EXIT_HLT,
		 "C.3: KVM_RUN's exit_reason is seen through every mapping");

	set_rip(e.vcpu, ENTRY_HLT);
	run2->immediate_exit = 1;
	int r = __vcpu_run(e.vcpu);
	int err = errno;
	run2->immediate_exit = 0;
	kvm_test(r == -1 && err == EINTR && vcpu_rip(e.vcpu) == ENTRY_HLT,
		 "C.3: immediate_exit written by the host is seen by KVM_RUN (EINTR, guest not "
		 "run)");
	vcpu_unmap_run(run2);

	/* PIO data lives in page 1 of the mapping */
	set_rip(e.vcpu, ENTRY_OUT);
	bool out = vcpu_run_expect(&e, KVM_EXIT_IO) && io_exit_is(run, KVM_EXIT_IO_OUT, 0x10, 1);
	kvm_test(out && run->io.data_offset == PAGE_SIZE && ((uint8_t *)run)[PAGE_SIZE] == 0xa5,
		 "C.3: OUT data at io.data_offset = 0x1000 (the PIO page), got 0x%llx",
		 (unsigned long long)run->io.data_offset);

	touch_base = mmap(NULL, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, e.vcpu, 0);
	kvm_test(touch_base != MAP_FAILED, "C.3: mmap of 4 pages of the vCPU fd succeeds");
	if (touch_base != MAP_FAILED) {
		int sig = run_expect_signal(touch_page3, NULL);
		kvm_test(sig == SIGBUS,
			 "C.3: touching page 3 of the vCPU mapping -> SIGBUS (got %s)",
			 sig ? strsignal(sig) : "no signal");
		sig = run_expect_signal(touch_page2, NULL);
		kvm_test(sig == 0, "C.3: touching page 2 (coalesced-MMIO ring) is fine (got %s)",
			 sig ? strsignal(sig) : "no signal");
		munmap(touch_base, 4 * PAGE_SIZE);
	} else {
		kvm_test_skip("C.3: page 3 SIGBUS: no mapping");
		kvm_test_skip("C.3: page 2: no mapping");
	}
	vcpu_env_destroy(&e);
}
#define NR_MMAP_RESULTS 9

/* --------------------------------------------------- registers: reset */

/* s_bit: 1 for a code/data segment, 0 for a system one (TSS, LDT) */
static bool seg_is(const char *name, const struct kvm_segment *s, uint16_t sel, uint64_t base,
		   uint32_t limit, uint8_t type, uint8_t s_bit)
{
	/*
	 * The accessed bit of code/data types differs between vendors at
	 * reset (VMX reports it set, SVM's init_seg leaves it clear), so it
	 * is not compared for code/data segments.
	 */
	uint8_t mask = s_bit ? 0xe : 0xf;
	bool ok = s->selector == sel && s->base == base && s->limit == limit &&
		  (s->type & mask) == (type & mask) && s->present && s->s == s_bit && s->dpl == 0 &&
		  !s->db && !s->l && !s->g && !s->unusable;
	if (!ok)
		ksft_print_msg("%s: selector %#x base %#llx limit %#x type %#x present %u s %u "
			       "dpl %u db %u l %u g %u unusable %u", name, s->selector,
			       (unsigned long long)s->base, s->limit, s->type, s->present, s->s,
			       s->dpl, s->db, s->l, s->g, s->unusable);
	return ok;
}

static void test_reset_state(void)
{
	int vm = vm_create(KVM_X86_DEFAULT_VM);
	int v0 = vcpu_create(vm, 0), v1 = vcpu_create(vm, 1);
	struct kvm_regs regs;
	struct kvm_sregs sr;

	vcpu_regs_get(v0, &regs);
	bool gprs_zero = regs.rax == 0 && regs.rbx == 0 && regs.rcx == 0 && regs.rsi == 0 &&
			 regs.rdi == 0 && regs.rsp == 0 && regs.rbp == 0 && regs.r8 == 0 &&
			 regs.r9 == 0 && regs.r10 == 0 && regs.r11 == 0 && regs.r12 == 0 &&
			 regs.r13 == 0 && regs.r14 == 0 && regs.r15 == 0;
	kvm_test(regs.rip == 0xfff0 && regs.rflags == X86_EFLAGS_FIXED,
		 "C.2: reset RIP = 0xfff0, RFLAGS = 0x2 (got 0x%llx, 0x%llx)",
		 (unsigned long long)regs.rip, (unsigned long long)regs.rflags);
	kvm_test(regs.rdx == 0x600 && gprs_zero,
		 "C.2: reset RDX = 0x600 (family 6, no CPUID set), other GPRs 0 (RDX 0x%llx)",
		 (unsigned long long)regs.rdx);

	vcpu_sregs_get(v0, &sr);
	kvm_test(seg_is("cs", &sr.cs, 0xf000, 0xffff0000, 0xffff, 0xb, 1),
		 "C.2: reset CS = f000, base 0xffff0000, limit 0xffff, code");
	bool data = seg_is("ds", &sr.ds, 0, 0, 0xffff, 0x3, 1) &&
		    seg_is("es", &sr.es, 0, 0, 0xffff, 0x3, 1) &&
		    seg_is("fs", &sr.fs, 0, 0, 0xffff, 0x3, 1) &&
		    seg_is("gs", &sr.gs, 0, 0, 0xffff, 0x3, 1) &&
		    seg_is("ss", &sr.ss, 0, 0, 0xffff, 0x3, 1);
	kvm_test(data, "C.2: reset DS/ES/FS/GS/SS = 0, base 0, limit 0xffff, read/write data");
	/* TR is a busy TSS: 32-bit (0xb) on VMX, 16-bit (0x3) on SVM */
	bool tr = sr.tr.selector == 0 && sr.tr.base == 0 && sr.tr.limit == 0xffff &&
		  (sr.tr.type & 0x7) == 0x3 && sr.tr.present && !sr.tr.s;
	bool ldt = seg_is("ldt", &sr.ldt, 0, 0, 0xffff, 0x2, 0);
	kvm_test(tr && ldt, "C.2: reset TR = busy TSS, LDT = LDT type, both base 0 limit 0xffff "
			    "(TR type %#x)", sr.tr.type);
	kvm_test(sr.gdt.base == 0 && sr.gdt.limit == 0xffff && sr.idt.base == 0 &&
			 sr.idt.limit == 0xffff,
		 "C.2: reset GDTR = IDTR = base 0, limit 0xffff");
	kvm_test(sr.cr0 == 0x60000010 && sr.cr2 == 0 && sr.cr3 == 0 && sr.cr4 == 0 &&
			 sr.cr8 == 0 && sr.efer == 0,
		 "C.2: reset CR0 = 0x60000010 (CD|NW|ET), CR2/CR3/CR4/CR8 = 0, EFER = 0 "
		 "(CR0 0x%llx)", (unsigned long long)sr.cr0);
	kvm_test(bytes_are((const uint8_t *)sr.interrupt_bitmap, sizeof(sr.interrupt_bitmap), 0),
		 "C.2: reset interrupt_bitmap is empty");
	kvm_test(sr.apic_base == 0xfee00900, "C.2: vCPU 0 APIC base = 0xfee00900 (enabled, BSP), "
					     "got 0x%llx", (unsigned long long)sr.apic_base);
	vcpu_sregs_get(v1, &sr);
	kvm_test(sr.apic_base == 0xfee00800, "C.2: vCPU 1 APIC base = 0xfee00800 (enabled, not "
					     "BSP), got 0x%llx", (unsigned long long)sr.apic_base);
	close(v1);
	close(v0);
	close(vm);
}
#define NR_RESET_RESULTS 10

/* --------------------------------------------- registers: round trips */

/* True when the n bytes at a and b are equal; otherwise prints the first difference. */
static bool same_bytes(const void *a, const void *b, size_t n)
{
	const uint8_t *x = a, *y = b;
	for (size_t i = 0; i < n; i++)
		if (x[i] != y[i]) {
			ksft_print_msg("byte %zu differs: 0x%02x, then 0x%02x", i, x[i], y[i]);
			return false;
		}
	return true;
}

static void test_regs_round_trip(void)
{
	int vm = vm_create(KVM_X86_DEFAULT_VM);
	int vcpu = vcpu_create(vm, 0);
	struct kvm_regs set, got;
	uint64_t *words = (uint64_t *)&set;

	for (size_t i = 0; i < sizeof(set) / sizeof(uint64_t); i++)
		words[i] = 0x0101010101010101ull * (i + 1); /* rax 0x0101..., rbx 0x0202..., ... */
	set.rip = 0x1234;
	set.rflags = 0xcd7; /* OF DF SF ZF AF PF CF + the fixed bit 1 */
	vcpu_regs_set(vcpu, &set);
	vcpu_regs_get(vcpu, &got);
	kvm_test(same_bytes(&set, &got, sizeof(set)),
		 "C.2: KVM_SET_REGS then KVM_GET_REGS gives back all 18 values");

	set.rflags = 0;
	vcpu_regs_set(vcpu, &set);
	vcpu_regs_get(vcpu, &got);
	kvm_test(got.rflags == X86_EFLAGS_FIXED,
		 "C.2: KVM_SET_REGS RFLAGS 0 reads back 0x2 (bit 1 forced), got 0x%llx",
		 (unsigned long long)got.rflags);

	/* a protected-mode state with every field not at its reset value */
	struct kvm_sregs sr, sr2;
	vcpu_set_protected_mode(vcpu, 0x1000, 0x8000, 0x500);
	vcpu_sregs_get(vcpu, &sr);
	sr.cr2 = 0x12345678;
	sr.cr3 = 0x5000;
	sr.idt.base = 0x600;
	sr.idt.limit = 0x7f;
	sr.fs.base = 0xabc000;
	sr.gs.base = 0x100000;
	KCHECK_OK(ioctl(vcpu, KVM_SET_SREGS, &sr), "C.2: KVM_SET_SREGS of a protected-mode state");
	vcpu_sregs_get(vcpu, &sr2);
	kvm_test(same_bytes(&sr, &sr2, sizeof(sr)),
		 "C.2: KVM_GET_SREGS gives back exactly what KVM_SET_SREGS set");
	kvm_test(sr2.cs.db && sr2.cs.g && sr2.cs.limit == 0xffffffff && (sr2.cr0 & X86_CR0_PE),
		 "C.2: 32-bit flat CS (D, G, limit 4G) and CR0.PE read back");

	/* CR0.PG without CR0.PE is architecturally invalid: refused, state kept */
	struct kvm_sregs bad = sr;
	bad.cr0 = 0x80000000u | X86_CR0_ET;
	KCHECK_ERRNO(ioctl(vcpu, KVM_SET_SREGS, &bad), EINVAL,
		     "C.2: KVM_SET_SREGS CR0.PG without CR0.PE -> EINVAL");
	vcpu_sregs_get(vcpu, &sr2);
	kvm_test(same_bytes(&sr, &sr2, sizeof(sr)),
		 "C.2: the refused KVM_SET_SREGS changed nothing");
	close(vcpu);
	close(vm);
}
#define NR_ROUND_TRIP_RESULTS 7

/* ------------------------------------------------------------ KVM_RUN */

static void test_run_errors(void)
{
	struct vcpu_env e;
	env_at(&e, ENTRY_HLT);
	struct kvm_run *run = e.run;

	KCHECK_ERRNO(ioctl(e.vcpu, KVM_RUN, 1ul), EINVAL, "C.4: KVM_RUN(arg 1) -> EINVAL");
	bool untouched = vcpu_rip(e.vcpu) == ENTRY_HLT;
	bool ran = untouched && vcpu_run_expect(&e, KVM_EXIT_HLT);
	kvm_test(ran && vcpu_rip(e.vcpu) == ENTRY_HLT + 1,
		 "C.4: KVM_RUN(arg 1) did not run the guest; KVM_RUN(0) then does (HLT)");
	set_rip(e.vcpu, ENTRY_HLT);

	/* immediate_exit: EINTR at once, exit_reason not written (6.18) */
	run->exit_reason = 0xabcd;
	run->immediate_exit = 1;
	int r = __vcpu_run(e.vcpu);
	int err = errno;
	kvm_test(r == -1 && err == EINTR && run->exit_reason == 0xabcd &&
			 vcpu_rip(e.vcpu) == ENTRY_HLT,
		 "C.4: immediate_exit -> EINTR, guest not run, exit_reason untouched (%s, "
		 "exit %#x)",
		 strres(r, err), run->exit_reason);
	run->immediate_exit = 0;

	/* immediate_exit completes a pending IN without running guest code */
	set_rip(e.vcpu, ENTRY_IN);
	bool in = vcpu_run_expect(&e, KVM_EXIT_IO) && io_exit_is(run, KVM_EXIT_IO_IN, 0x20, 1);
	*(uint8_t *)io_data(run) = 0x77;
	run->immediate_exit = 1;
	r = __vcpu_run(e.vcpu);
	err = errno;
	run->immediate_exit = 0;
	struct kvm_regs regs;
	vcpu_regs_get(e.vcpu, &regs);
	kvm_test(in && r == -1 && err == EINTR && (regs.rax & 0xff) == 0x77 &&
			 regs.rip == ENTRY_IN + 2 && run->exit_reason == KVM_EXIT_IO,
		 "C.4: immediate_exit after an IN exit -> EINTR, AL = 0x77, IP past the IN, "
		 "exit_reason still IO (AL 0x%llx, IP 0x%llx)",
		 (unsigned long long)(regs.rax & 0xff), (unsigned long long)regs.rip);
	kvm_test(vcpu_run_expect(&e, KVM_EXIT_HLT) && vcpu_rip(e.vcpu) == ENTRY_IN + 3,
		 "C.4: the next KVM_RUN continues at the HLT after the IN");

	/* a signal interrupts a guest that never exits */
	set_rip(e.vcpu, ENTRY_SPIN);
	r = __vcpu_run_timed(e.vcpu, 50);
	err = errno;
	kvm_test(r == -1 && err == EINTR && run->exit_reason == KVM_EXIT_INTR,
		 "C.4: timer signal during `jmp $` -> EINTR, exit_reason KVM_EXIT_INTR (%s, %s)",
		 strres(r, err), exit_reason_str(run->exit_reason));
	kvm_test(vcpu_rip(e.vcpu) == ENTRY_SPIN, "C.4: after EINTR the IP is still on the loop");
	r = __vcpu_run_timed(e.vcpu, 20);
	err = errno;
	kvm_test(r == -1 && err == EINTR && run->exit_reason == KVM_EXIT_INTR,
		 "C.4: re-entering the loop: interrupted again (%s)", strres(r, err));
	set_rip(e.vcpu, AFTER_SPIN);
	kvm_test(vcpu_run_expect(&e, KVM_EXIT_HLT) && vcpu_rip(e.vcpu) == AFTER_SPIN + 1,
		 "C.4: the interrupted vCPU runs on (HLT)");
	vcpu_env_destroy(&e);
}
#define NR_RUN_ERROR_RESULTS 9

/*
 * Rule 33 (upstream test_zero_memory_regions): no memslot at all, the vCPU
 * at its reset state fetches from 0xfffffff0, KVM's emulator cannot read
 * the instruction: KVM_EXIT_INTERNAL_ERROR, suberror EMULATION.
 */
static void test_no_memory(void)
{
	int vm = vm_create(KVM_X86_DEFAULT_VM);
	int vcpu = vcpu_create(vm, 0);
	struct kvm_run *run = vcpu_map_run(vcpu);
	KCHECK_OK(ioctl(vm, KVM_SET_NR_MMU_PAGES, MIN_MMU_PAGES),
		  "rule 33: KVM_SET_NR_MMU_PAGES(64) on a VM without memory -> 0");
	int r = __vcpu_run(vcpu);
	int err = errno;
	kvm_test(r == 0 && run->exit_reason == KVM_EXIT_INTERNAL_ERROR,
		 "rule 33: KVM_RUN without any memslot -> 0, KVM_EXIT_INTERNAL_ERROR (%s, %s)",
		 strres(r, err), exit_reason_str(run->exit_reason));
	kvm_test(run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION,
		 "rule 33: suberror KVM_INTERNAL_ERROR_EMULATION (got %u)", run->internal.suberror);
	vcpu_unmap_run(run);
	close(vcpu);
	close(vm);
}
#define NR_NO_MEMORY_RESULTS 3

static void test_nr_mmu_pages(void)
{
	int vm = vm_create(KVM_X86_DEFAULT_VM);
	KCHECK_ERRNO(ioctl(vm, KVM_SET_NR_MMU_PAGES, 0ul), EINVAL,
		     "C.1: SET_NR_MMU_PAGES(0) -> EINVAL");
	KCHECK_ERRNO(ioctl(vm, KVM_SET_NR_MMU_PAGES, 1ul), EINVAL,
		     "C.1: SET_NR_MMU_PAGES(1) -> EINVAL");
	KCHECK_ERRNO(ioctl(vm, KVM_SET_NR_MMU_PAGES, 63ul), EINVAL,
		     "C.1: SET_NR_MMU_PAGES(63) -> EINVAL (minimum 64)");
	KCHECK_EQ(ioctl(vm, KVM_SET_NR_MMU_PAGES, 64ul), 0, "C.1: SET_NR_MMU_PAGES(64) -> 0");
	KCHECK_EQ(ioctl(vm, KVM_SET_NR_MMU_PAGES, 1024ul), 0, "C.1: SET_NR_MMU_PAGES(1024) -> 0");
	int vcpu = vcpu_create(vm, 0);
	KCHECK_ERRNO(ioctl(vcpu, KVM_SET_NR_MMU_PAGES, 64ul), EINVAL,
		     "C.1: SET_NR_MMU_PAGES on the vCPU fd -> EINVAL");
	close(vcpu);
	close(vm);
}
#define NR_MMU_PAGES_RESULTS 6

/* ------------------------------------------------------ forked child */

struct child_ioctl {
	const char *name;
	bool on_vm; /* else on the vCPU fd */
	unsigned long nr;
	bool pointer_arg;
	unsigned long int_arg;
};

static const struct child_ioctl child_ioctls[] = {
	{ "KVM_RUN", false, KVM_RUN, false, 0 },
	{ "KVM_GET_REGS", false, KVM_GET_REGS, true, 0 },
	{ "KVM_SET_REGS", false, KVM_SET_REGS, true, 0 },
	{ "KVM_GET_SREGS", false, KVM_GET_SREGS, true, 0 },
	{ "KVM_SET_SREGS", false, KVM_SET_SREGS, true, 0 },
	{ "unknown vCPU ioctl _IO(KVMIO, 0xff)", false, _IO(KVMIO, 0xff), false, 0 },
	{ "KVM_CREATE_VCPU(1) on the VM fd", true, KVM_CREATE_VCPU, false, 1 },
};
#define NR_CHILD_IOCTLS ARRAY_SIZE(child_ioctls)

static struct vcpu_env fork_env;
/* the parent's vCPU state, read before the fork: valid arguments for the child */
static struct kvm_regs fork_regs;
static struct kvm_sregs fork_sregs;

/* Runs in the child: each ioctl's errno (0 if it succeeded) goes to the parent. */
static void child_ioctls_fn(int sock, void *arg)
{
	(void)arg;
	int errs[NR_CHILD_IOCTLS];
	for (size_t i = 0; i < NR_CHILD_IOCTLS; i++) {
		const struct child_ioctl *c = &child_ioctls[i];
		bool regs = c->nr == KVM_GET_REGS || c->nr == KVM_SET_REGS;
		void *ptr = regs ? (void *)&fork_regs : (void *)&fork_sregs;
		long r = ioctl(c->on_vm ? fork_env.vm : fork_env.vcpu, c->nr,
			       c->pointer_arg ? (unsigned long)(uintptr_t)ptr : c->int_arg);
		errs[i] = r < 0 ? errno : 0;
	}
	if (write(sock, errs, sizeof(errs)) != (ssize_t)sizeof(errs))
		_exit(1);
}

static void test_forked_child(void)
{
	env_at(&fork_env, ENTRY_HLT);
	vcpu_regs_get(fork_env.vcpu, &fork_regs);
	vcpu_sregs_get(fork_env.vcpu, &fork_sregs);
	int sock;
	int errs[NR_CHILD_IOCTLS];
	pid_t pid = kvm_fork_connected(child_ioctls_fn, NULL, &sock);
	bool got = read(sock, errs, sizeof(errs)) == (ssize_t)sizeof(errs);
	bool ok = kvm_child_ok(pid) && got;
	close(sock);
	for (size_t i = 0; i < NR_CHILD_IOCTLS; i++) {
		if (ok && errs[i] != EIO)
			ksft_print_msg("%s: got %s", child_ioctls[i].name,
				       errs[i] ? strerrorname_np(errs[i]) : "success");
		kvm_test(ok && errs[i] == EIO, "C.4: %s from a forked child -> EIO",
			 child_ioctls[i].name);
	}
	kvm_test(vcpu_run_expect(&fork_env, KVM_EXIT_HLT),
		 "C.4: the parent still runs the vCPU after the child's attempts");
	vcpu_env_destroy(&fork_env);
}
#define NR_FORK_RESULTS (NR_CHILD_IOCTLS + 1)

/* --------------------------------------------------- unknown ioctls */

/*
 * What the vCPU fd does not handle: generic code passes it to the x86
 * handler, which answers EINVAL (6.18) for foreign numbers, for system and
 * VM ioctls and for a known number encoded with a wrong size.
 */
static const struct ioctl_case not_vcpu_ioctls[] = {
	IOCTL_CASES_FOREIGN,
	IOCTL_CASES_SYSTEM,
	{ KVM_CHECK_EXTENSION, "KVM_CHECK_EXTENSION (system/VM ioctl)" },
	{ KVM_CREATE_VCPU, "KVM_CREATE_VCPU (VM ioctl)" },
	{ KVM_SET_USER_MEMORY_REGION, "KVM_SET_USER_MEMORY_REGION (VM ioctl)" },
	{ KVM_CREATE_GUEST_MEMFD, "KVM_CREATE_GUEST_MEMFD (VM ioctl)" },
	{ KVM_SET_MEMORY_ATTRIBUTES, "KVM_SET_MEMORY_ATTRIBUTES (VM ioctl)" },
	{ _IOR(KVMIO, 0x81, int), "_IOR(KVMIO, 0x81, int) (GET_REGS, wrong size)" },
	{ _IOW(KVMIO, 0x80, int), "_IOW(KVMIO, 0x80, int) (KVM_RUN, wrong direction/size)" },
};
#define NR_NOT_VCPU ARRAY_SIZE(not_vcpu_ioctls)

static void test_unknown_ioctls(void)
{
	struct vcpu_env e;
	env_at(&e, ENTRY_HLT);
	static uint8_t buf[4096]; /* a harmless argument for the pointer-taking numbers */
	for (size_t i = 0; i < NR_NOT_VCPU; i++) {
		memset(buf, 0, sizeof(buf));
		KCHECK_ERRNO(ioctl(e.vcpu, not_vcpu_ioctls[i].nr, buf), EINVAL,
			     "C.1: vCPU fd %s -> EINVAL", not_vcpu_ioctls[i].name);
	}
	KCHECK_ERRNO(ioctl(e.vm, KVM_RUN, 0ul), ENOTTY, "C.1: KVM_RUN on the VM fd -> ENOTTY");
	KCHECK_ERRNO(ioctl(e.vm, KVM_GET_REGS, buf), ENOTTY,
		     "C.1: KVM_GET_REGS on the VM fd -> ENOTTY");
	kvm_test(vcpu_run_expect(&e, KVM_EXIT_HLT) && vcpu_rip(e.vcpu) == ENTRY_HLT + 1,
		 "C.1: the vCPU still runs after the unknown ioctls");
	vcpu_env_destroy(&e);
}
#define NR_UNKNOWN_RESULTS (NR_NOT_VCPU + 3)

/* ------------------------------------------ KVM_CAP_EXIT_HYPERCALL */

static long hypercall_mask;

static const char *need_exit_hypercall(void)
{
	return hypercall_mask > 0 ? NULL : "KVM_CAP_EXIT_HYPERCALL reports no hypercall";
}

/*
 * The VM reports the hypercalls it can forward to userspace (x86: only
 * KVM_HC_MAP_GPA_RANGE, 0x1000); enabling takes any subset of that mask.
 */
static void test_exit_hypercall(void)
{
	int vm = vm_create(KVM_X86_DEFAULT_VM);
	long mask = vm_check_cap(vm, KVM_CAP_EXIT_HYPERCALL);
	kvm_test(mask == hypercall_mask, "C.6: VM and system CHECK_EXTENSION(EXIT_HYPERCALL) agree "
					 "(0x%lx, 0x%lx)", mask, hypercall_mask);
	kvm_test(mask == (1l << KVM_HC_MAP_GPA_RANGE),
		 "C.6: EXIT_HYPERCALL mask = 1 << KVM_HC_MAP_GPA_RANGE (0x1000), got 0x%lx", mask);
	KCHECK_OK(__enable_cap(vm, KVM_CAP_EXIT_HYPERCALL, 0, (uint64_t)mask),
		  "C.6: KVM_ENABLE_CAP(EXIT_HYPERCALL, the reported mask) -> 0");
	KCHECK_OK(__enable_cap(vm, KVM_CAP_EXIT_HYPERCALL, 0, 0),
		  "C.6: KVM_ENABLE_CAP(EXIT_HYPERCALL, 0) -> 0");

	int bad_bit = -1, r = 0, err = 0;
	for (int bit = 0; bit < 64 && bad_bit < 0; bit++) {
		if ((uint64_t)mask & (1ull << bit))
			continue;
		r = __enable_cap(vm, KVM_CAP_EXIT_HYPERCALL, 0, 1ull << bit);
		err = errno;
		if (!(r == -1 && err == EINVAL))
			bad_bit = bit;
	}
	if (bad_bit >= 0)
		ksft_print_msg("bit %d: got %s", bad_bit, strres(r, err));
	kvm_test(bad_bit < 0, "C.6: KVM_ENABLE_CAP(EXIT_HYPERCALL) with any bit outside the mask "
			      "-> EINVAL");
	KCHECK_ERRNO(__enable_cap(vm, KVM_CAP_EXIT_HYPERCALL, 1, (uint64_t)mask), EINVAL,
		     "C.6: KVM_ENABLE_CAP(EXIT_HYPERCALL) flags 1 -> EINVAL");

	int vcpu = vcpu_create(vm, 0);
	KCHECK_ERRNO(__enable_cap(vcpu, KVM_CAP_EXIT_HYPERCALL, 0, (uint64_t)mask), EINVAL,
		     "C.6: KVM_ENABLE_CAP(EXIT_HYPERCALL) on the vCPU fd -> EINVAL");
	KCHECK_OK(__enable_cap(vm, KVM_CAP_EXIT_HYPERCALL, 0, (uint64_t)mask),
		  "C.6: KVM_ENABLE_CAP(EXIT_HYPERCALL) after KVM_CREATE_VCPU -> 0");
	KCHECK_ERRNO(__enable_cap(vcpu, 9999, 0, 0), EINVAL,
		     "C.1: vCPU KVM_ENABLE_CAP of an unknown capability -> EINVAL");
	close(vcpu);
	close(vm);
}
#define NR_EXIT_HYPERCALL_RESULTS 9

/* ------------------------------------------------- argument pointers */

enum vcpu_ptr_op { OP_GET_REGS, OP_SET_REGS, OP_GET_SREGS, OP_SET_SREGS, OP_ENABLE_CAP };

struct vcpu_ptr_ioctl {
	const char *name;
	unsigned long nr;
	size_t size;
	enum vcpu_ptr_op op;
};

static const struct vcpu_ptr_ioctl vcpu_ptr_ioctls[] = {
	{ "KVM_GET_REGS", KVM_GET_REGS, sizeof(struct kvm_regs), OP_GET_REGS },
	{ "KVM_SET_REGS", KVM_SET_REGS, sizeof(struct kvm_regs), OP_SET_REGS },
	{ "KVM_GET_SREGS", KVM_GET_SREGS, sizeof(struct kvm_sregs), OP_GET_SREGS },
	{ "KVM_SET_SREGS", KVM_SET_SREGS, sizeof(struct kvm_sregs), OP_SET_SREGS },
	{ "KVM_ENABLE_CAP (vCPU)", KVM_ENABLE_CAP, sizeof(struct kvm_enable_cap), OP_ENABLE_CAP },
};

static struct vcpu_env ptr_env;
static struct kvm_regs ptr_regs;   /* the vCPU's state before each table */
static struct kvm_sregs ptr_sregs;

static bool state_unchanged(void)
{
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	vcpu_regs_get(ptr_env.vcpu, &regs);
	vcpu_sregs_get(ptr_env.vcpu, &sregs);
	bool same = !memcmp(&regs, &ptr_regs, sizeof(regs)) &&
		    !memcmp(&sregs, &ptr_sregs, sizeof(sregs));
	if (!same)
		ksft_print_msg("vCPU state changed (RIP 0x%llx, CR2 0x%llx)",
			       (unsigned long long)regs.rip, (unsigned long long)sregs.cr2);
	return same;
}

/*
 * A valid argument: GETs get a buffer; SETs get the current state with one
 * visible change (RAX, CR2), so that a partial copy would show.
 */
static void fill_ptr_arg(const struct vcpu_ptr_ioctl *io, void *buf)
{
	memset(buf, 0, io->size);
	if (io->op == OP_SET_REGS) {
		struct kvm_regs *r = buf;
		*r = ptr_regs;
		r->rax = 0x5555aaaa5555aaaaull;
	} else if (io->op == OP_SET_SREGS) {
		struct kvm_sregs *s = buf;
		*s = ptr_sregs;
		s->cr2 = 0xcafe0000;
	} else if (io->op == OP_ENABLE_CAP) {
		struct kvm_enable_cap *c = buf;
		c->cap = 9999; /* valid pointer, unknown capability: EINVAL */
	}
}

/* The result of a well-placed argument: copies for GETs, the change for SETs. */
static bool valid_result(const struct vcpu_ptr_ioctl *io, long r, int err, const void *arg,
			 const void *tmpl)
{
	switch (io->op) {
	case OP_GET_REGS:
		return r == 0 && !memcmp(arg, &ptr_regs, io->size);
	case OP_GET_SREGS:
		return r == 0 && !memcmp(arg, &ptr_sregs, io->size);
	case OP_SET_REGS: {
		struct kvm_regs now;
		vcpu_regs_get(ptr_env.vcpu, &now);
		bool ok = r == 0 && !memcmp(&now, tmpl, sizeof(now));
		vcpu_regs_set(ptr_env.vcpu, &ptr_regs);
		return ok;
	}
	case OP_SET_SREGS: {
		struct kvm_sregs now;
		vcpu_sregs_get(ptr_env.vcpu, &now);
		bool ok = r == 0 && !memcmp(&now, tmpl, sizeof(now));
		vcpu_sregs_set(ptr_env.vcpu, &ptr_sregs);
		return ok;
	}
	case OP_ENABLE_CAP:
		return r == -1 && err == EINVAL;
	}
	return false;
}

static bool copies_back(const struct vcpu_ptr_ioctl *io)
{
	return io->op == OP_GET_REGS || io->op == OP_GET_SREGS;
}

static void run_vcpu_ptr_table(const struct vcpu_ptr_ioctl *io)
{
	uint8_t tmpl[sizeof(struct kvm_sregs)];
	fill_ptr_arg(io, tmpl);
	int before = kvm_lowest_free_fd();

	for (int k = 0; k < NR_PTR_KINDS; k++) {
		bool valid = ptr_kind_valid(k, copies_back(io));
		struct placed pl = place_arg(k, tmpl, io->size);
		errno = 0;
		long r = ioctl(ptr_env.vcpu, io->nr, pl.arg);
		int err = errno;
		if (valid) {
			bool ok = valid_result(io, r, err, pl.arg, tmpl);
			if (!ok)
				ksft_print_msg("got %s", strres(r, err));
			kvm_test(ok, "C.1: %s with %s -> %s", io->name, ptr_kind_name[k],
				 io->op == OP_ENABLE_CAP ? "EINVAL (unknown cap)" : "works");
		} else {
			bool efault = expect_errno(r, err, EFAULT);
			kvm_test(efault && state_unchanged(),
				 "C.1: %s with %s -> EFAULT, vCPU state unchanged", io->name,
				 ptr_kind_name[k]);
		}
		release_arg(&pl);
	}
	kvm_test(state_unchanged() && kvm_lowest_free_fd() == before &&
			 vcpu_run_expect(&ptr_env, KVM_EXIT_HLT),
		 "C.1: %s: the vCPU still runs after the bad pointers, no fd leaked", io->name);
	/* back to the state the next table starts from */
	vcpu_regs_set(ptr_env.vcpu, &ptr_regs);
}
#define NR_PTR_TABLE_RESULTS (NR_PTR_KINDS + 1)

static void ptr_table(enum vcpu_ptr_op op)
{
	env_at(&ptr_env, ENTRY_HLT);
	vcpu_regs_get(ptr_env.vcpu, &ptr_regs);
	vcpu_sregs_get(ptr_env.vcpu, &ptr_sregs);
	run_vcpu_ptr_table(&vcpu_ptr_ioctls[op]);
	vcpu_env_destroy(&ptr_env);
}

static void test_ptr_get_regs(void) { ptr_table(OP_GET_REGS); }
static void test_ptr_set_regs(void) { ptr_table(OP_SET_REGS); }
static void test_ptr_get_sregs(void) { ptr_table(OP_GET_SREGS); }
static void test_ptr_set_sregs(void) { ptr_table(OP_SET_SREGS); }
static void test_ptr_enable_cap(void) { ptr_table(OP_ENABLE_CAP); }

/* ------------------------------------------ pre-fault when not offered */

static const char *need_no_pre_fault(void)
{
	return kvm_check_cap(KVM_CAP_PRE_FAULT_MEMORY) > 0
		       ? "KVM_CAP_PRE_FAULT_MEMORY offered (private_mem_test checks rules 44-45)"
		       : NULL;
}

/*
 * Without KVM_CAP_PRE_FAULT_MEMORY (x86: no TDP, as on this kvm_pvm host)
 * a well-formed request fails with EOPNOTSUPP and leaves the struct alone.
 */
static void test_pre_fault_not_offered(void)
{
	struct vcpu_env e;
	env_at(&e, ENTRY_HLT);
	struct kvm_pre_fault_memory p;
	memset(&p, 0, sizeof(p));
	p.gpa = 0;
	p.size = PAGE_SIZE;
	long r = ioctl(e.vcpu, KVM_PRE_FAULT_MEMORY, &p);
	int err = errno;
	kvm_test(expect_errno(r, err, EOPNOTSUPP) && p.gpa == 0 && p.size == PAGE_SIZE,
		 "rule 44: PRE_FAULT_MEMORY not offered -> EOPNOTSUPP, struct unchanged");
	vcpu_env_destroy(&e);
}

/* ------------------------------------------------------------ main */

static const struct kvm_section sections[] = {
	{ "create vcpu", NR_CREATE_RESULTS, NULL, test_create_vcpu },
	{ "vcpu mmap", NR_MMAP_RESULTS, NULL, test_vcpu_mmap },
	{ "reset state", NR_RESET_RESULTS, NULL, test_reset_state },
	{ "register round trips", NR_ROUND_TRIP_RESULTS, NULL, test_regs_round_trip },
	{ "KVM_RUN errors and signals", NR_RUN_ERROR_RESULTS, NULL, test_run_errors },
	{ "rule 33: no memory", NR_NO_MEMORY_RESULTS, NULL, test_no_memory },
	{ "SET_NR_MMU_PAGES", NR_MMU_PAGES_RESULTS, NULL, test_nr_mmu_pages },
	{ "forked child", NR_FORK_RESULTS, NULL, test_forked_child },
	{ "unknown ioctls", NR_UNKNOWN_RESULTS, NULL, test_unknown_ioctls },
	{ "EXIT_HYPERCALL", NR_EXIT_HYPERCALL_RESULTS, need_exit_hypercall, test_exit_hypercall },
	{ "GET_REGS pointers", NR_PTR_TABLE_RESULTS, NULL, test_ptr_get_regs },
	{ "SET_REGS pointers", NR_PTR_TABLE_RESULTS, NULL, test_ptr_set_regs },
	{ "GET_SREGS pointers", NR_PTR_TABLE_RESULTS, NULL, test_ptr_get_sregs },
	{ "SET_SREGS pointers", NR_PTR_TABLE_RESULTS, NULL, test_ptr_set_sregs },
	{ "ENABLE_CAP pointers", NR_PTR_TABLE_RESULTS, NULL, test_ptr_enable_cap },
	{ "pre-fault not offered", 1, need_no_pre_fault, test_pre_fault_not_offered },
	{ "leaks", 1, NULL, kvm_test_live_objects },
};

int main(void)
{
	ksft_print_header();
	kvm_require_dev();
	hypercall_mask = kvm_check_cap(KVM_CAP_EXIT_HYPERCALL);
	return kvm_sections_main(sections, ARRAY_SIZE(sections));
}
