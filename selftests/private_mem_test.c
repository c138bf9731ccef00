// SPDX-License-Identifier: MIT
/*
 * Private memory of a KVM_X86_SW_PROTECTED_VM as a guest sees it:
 * memory-fault exits (reference/conformance.md rules 37-39), private and
 * shared contents, conversions requested by the guest with
 * KVM_HC_MAP_GPA_RANGE and done by the VMM (rules 40-42), the hypercall's
 * in-guest errors (reference/kvm-uapi.md C.6), and KVM_PRE_FAULT_MEMORY on a
 * default and a SW_PROTECTED VM (rules 44-45).
 *
 * Without SW_PROTECTED in KVM_CAP_VM_TYPES the whole program SKIPs (the
 * 6.18 kvm_pvm kernel these tests are checked against offers type 0 only,
 * so nothing here has a kernel oracle on these machines: the expectations
 * are upstream's). Sections SKIP on their own capability: memory attributes
 * (PRIVATE), KVM_CAP_MEMORY_FAULT_INFO, KVM_CAP_EXIT_HYPERCALL (bit 12),
 * KVM_CAP_PRE_FAULT_MEMORY.
 *
 * The guest is vcpu_util's 32-bit routines guest (slot 0, normal anonymous
 * memory), driven through its registers: READ loads [EBX] and sends it to
 * port 0x10, FILL is rep stosd, and this test's MAP issues the hypercall.
 * Registers and arguments are 32 bits wide outside long mode, so the test
 * memory sits at 1 MiB (upstream's conversion test uses 4 GiB).
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
#define TEST_GPA 0x100000ul /* slot 1: the memory made private */
#define TEST_PAGES 4
#define TEST_SIZE (TEST_PAGES * PAGE_SIZE)
#define TEST_GPA2 0x200000ul /* slot 2: an MMAP-capable guest_memfd, one page */
#define SZ_4G (4ull << 30)
#define PRIVATE KVM_MEMORY_ATTRIBUTE_PRIVATE
#define PRIVATE_FILL 0xaaaaaaaau
#define SHARED_FILL 0x5a5a5a5au

/* =================================================== the guest */

/*
 * MAP: hypercall EAX (12 = KVM_HC_MAP_GPA_RANGE) with EBX = GPA, ECX =
 * pages, EDX = attributes; reports its result (EAX) on port 0x12, then the
 * first dword of the range on port 0x13.
 */
#define MAP_GPA ROUTINES_FREE_GPA
static const uint8_t map_code[] = {
	0x0F, 0x01, 0xC1, /* 1020  vmcall               -> HYPERCALL (when enabled) */
	0xE7, 0x12,       /* 1023  out 0x12, eax        -> OUT port 0x12: the result */
	0x8B, 0x03,       /* 1025  mov eax, [ebx] */
	0xE7, 0x13,       /* 1027  out 0x13, eax        -> OUT port 0x13: what is there now */
	0xF4,             /* 1029  hlt                  -> HLT */
	0xEB, 0xFD,       /* 102a  jmp 0x1029 */
};

/*
 * A VM of vm_type with vCPU 0 and the routines guest in slot 0, MAP
 * included. Nothing at TEST_GPA yet.
 */
static void env_create(struct vcpu_env *e, unsigned long vm_type)
{
	vcpu_env_create_routines(e, vm_type, GUEST_MEM_SIZE);
	guest_load(e, MAP_GPA, map_code, sizeof(map_code));
}

static uint32_t pattern_word(size_t byte_offset)
{
	uint32_t w;
	uint8_t b[4];
	for (int i = 0; i < 4; i++)
		b[i] = pattern_byte(byte_offset + i);
	memcpy(&w, b, 4);
	return w;
}

/*
 * Slot 1 at TEST_GPA: a guest_memfd of TEST_SIZE (flags gmem_flags) bound
 * at offset 0, with `shared` (TEST_SIZE bytes, filled with the test
 * pattern) as its userspace_addr. Returns the guest_memfd.
 */
static int add_gmem_slot(struct vcpu_env *e, uint8_t *shared, uint64_t gmem_flags)
{
	int gmem = gmem_create(e->vm, TEST_SIZE, gmem_flags);
	fill_pattern(shared, TEST_SIZE);
	set_region2(e->vm, 1, KVM_MEM_GUEST_MEMFD, TEST_GPA, TEST_SIZE, (uintptr_t)shared, gmem, 0);
	return gmem;
}

/* ============================================ capability gates */

static long sw_vm_cap(long cap) { return vm_type_cap(KVM_X86_SW_PROTECTED_VM, cap); }

static const char *need_fault_info(void)
{
	if (kvm_check_cap(KVM_CAP_MEMORY_FAULT_INFO) <= 0)
		return "KVM_CAP_MEMORY_FAULT_INFO not offered";
	return need_sw_private();
}

static const char *need_hypercall_offered(void)
{
	if (!(sw_vm_cap(KVM_CAP_EXIT_HYPERCALL) & (1l << KVM_HC_MAP_GPA_RANGE)))
		return "KVM_CAP_EXIT_HYPERCALL does not offer KVM_HC_MAP_GPA_RANGE";
	return NULL;
}

static const char *need_hypercall_exit(void)
{
	const char *why = need_hypercall_offered();
	return why ? why : need_sw_private();
}

/* ================================== rules 37-39: memory-fault exits */

/*
 * KVM_RUN returned r/err for a private access to the page at gpa: it must
 * be -1/EFAULT with exit 39 describing [gpa, gpa + 4K) as private. Three
 * results.
 */
static void check_private_fault(struct vcpu_env *e, int r, int err, uint64_t gpa,
				const char *rule)
{
	const struct kvm_run_memory_fault *mf = kvm_run_mem_fault(e->run);
	kvm_test_errno(r, err, EFAULT, "%s: KVM_RUN -> -1/EFAULT", rule);
	kvm_test(r == -1 && e->run->exit_reason == KVM_EXIT_MEMORY_FAULT,
		 "%s: exit_reason KVM_EXIT_MEMORY_FAULT (39), got %s", rule,
		 exit_reason_str(e->run->exit_reason));
	kvm_test(r == -1 && mf->flags == KVM_MEMORY_EXIT_FLAG_PRIVATE && mf->gpa == gpa &&
			 mf->size == PAGE_SIZE,
		 "%s: memory_fault flags PRIVATE, gpa 0x%llx, size 4096 (got flags 0x%llx gpa "
		 "0x%llx size 0x%llx)", rule, (unsigned long long)gpa,
		 (unsigned long long)mf->flags, (unsigned long long)mf->gpa,
		 (unsigned long long)mf->size);
}

/*
 * Rule 37: PRIVATE on a GPA whose slot is an ordinary one. The VMM's answer
 * to the exit (convert back to shared) lets the same access complete.
 */
static void test_private_normal_slot(void)
{
	struct vcpu_env e;
	env_create(&e, KVM_X86_SW_PROTECTED_VM);
	uint8_t *mem = map_anon(TEST_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED);
	fill_pattern(mem, TEST_SIZE);
	set_region2(e.vm, 1, 0, TEST_GPA, TEST_SIZE, (uintptr_t)mem, -1, 0);
	const uint64_t page = TEST_GPA + PAGE_SIZE, addr = page + 8;

	kvm_test(guest_read_is(&e, addr, pattern_word(PAGE_SIZE + 8)),
		 "rule 37: a shared read from a normal slot of a SW_PROTECTED VM sees host memory");
	KCHECK_OK(__set_attributes(e.vm, page, PAGE_SIZE, PRIVATE, 0),
		  "rule 37: KVM_SET_MEMORY_ATTRIBUTES(PRIVATE) on one page of the normal slot");
	guest_call(&e, ROUTINE_READ_GPA, (struct guest_args){ .ebx = (uint32_t)addr });
	int r = __vcpu_run(e.vcpu);
	int err = errno;
	check_private_fault(&e, r, err, page, "rule 37");

	KCHECK_OK(__set_attributes(e.vm, page, PAGE_SIZE, 0, 0),
		  "rule 37: the VMM converts the page back to shared");
	uint32_t v = 0;
	bool done = vcpu_run_expect_out32(&e, ROUTINE_READ_PORT, &v) &&
		    vcpu_run_expect(&e, KVM_EXIT_HLT);
	kvm_test(done && v == pattern_word(PAGE_SIZE + 8),
		 "rule 37: re-entering completes the same read from host memory (0x%08x)", v);

	delete_slot(e.vm, 1);
	munmap(mem, TEST_SIZE);
	vcpu_env_destroy(&e);
}
#define NR_RULE37_RESULTS 7

/*
 * Rules 38 and 39: the guest reads a private page of a guest_memfd slot,
 * stops, and loops back to read again after the VMM deleted the slot
 * (rule 38) or closed the only fd of the guest_memfd (rule 39).
 */
static void private_gone(bool close_file)
{
	const char *rule = close_file ? "rule 39" : "rule 38";
	struct vcpu_env e;
	env_create(&e, KVM_X86_SW_PROTECTED_VM);
	uint8_t *shared = map_anon(TEST_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED);
	int gmem = add_gmem_slot(&e, shared, 0);
	const uint64_t page = TEST_GPA + 2 * PAGE_SIZE;
	TEST_ASSERT(__set_attributes(e.vm, TEST_GPA, TEST_SIZE, PRIVATE, 0) == 0,
		    "KVM_SET_MEMORY_ATTRIBUTES(PRIVATE)");

	kvm_test(guest_read_is(&e, page + 0x10, 0),
		 "%s: the guest reads its private page (a fresh guest_memfd page reads 0)", rule);
	/* one of the two goes now, the other after the check */
	if (close_file)
		close(gmem);
	else
		delete_slot(e.vm, 1);
	int r = __vcpu_run(e.vcpu); /* the loop reads the page again */
	int err = errno;
	check_private_fault(&e, r, err, page, rule);

	if (close_file)
		delete_slot(e.vm, 1);
	else
		close(gmem);
	munmap(shared, TEST_SIZE);
	vcpu_env_destroy(&e);
}
#define NR_GONE_RESULTS 4

static void test_slot_deleted(void) { private_gone(false); }
static void test_file_closed(void) { private_gone(true); }

/* ============================== private and shared contents (rule 42) */

static uint8_t *sigbus_target;

static void touch_target(void *arg)
{
	(void)arg;
	(void)*(volatile uint8_t *)sigbus_target;
}

static void test_private_contents(void)
{
	struct vcpu_env e;
	env_create(&e, KVM_X86_SW_PROTECTED_VM);
	uint8_t *shared = map_anon(TEST_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED);
	int gmem = add_gmem_slot(&e, shared, 0);
	TEST_ASSERT(__set_attributes(e.vm, TEST_GPA, TEST_SIZE, PRIVATE, 0) == 0,
		    "KVM_SET_MEMORY_ATTRIBUTES(PRIVATE)");

	bool wrote = guest_fill(&e, TEST_GPA, TEST_SIZE / 4, PRIVATE_FILL);
	kvm_test(wrote, "rule 42: the guest writes 16 KiB of private memory (rep stosd, HLT)");
	kvm_test(wrote && is_pattern(shared, TEST_SIZE),
		 "rule 42: the slot's userspace_addr memory does not show the private writes");
	kvm_test(guest_read_is(&e, TEST_GPA + TEST_SIZE - 4, PRIVATE_FILL),
		 "rule 42: the guest reads its private data back");
	void *m = mmap(NULL, TEST_SIZE, PROT_READ, MAP_SHARED, gmem, 0);
	int err = errno;
	kvm_test_errno(m == MAP_FAILED ? -1 : 0, err, ENODEV,
		       "rule 42: no host mapping of the private memory (mmap of the guest_memfd "
		       "without MMAP -> ENODEV)");
	if (m != MAP_FAILED)
		munmap(m, TEST_SIZE);

	/* an MMAP-capable guest_memfd (no INIT_SHARED on this VM type): mapping it shows nothing */
	if (!(vm_gmem_flags(e.vm) & GUEST_MEMFD_FLAG_MMAP)) {
		kvm_test_skip("rule 42: SW_PROTECTED VM offers no GUEST_MEMFD_FLAG_MMAP");
	} else {
		uint8_t *shared2 = map_anon(PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED);
		int gmem2 = gmem_create(e.vm, PAGE_SIZE, GUEST_MEMFD_FLAG_MMAP);
		set_region2(e.vm, 2, KVM_MEM_GUEST_MEMFD, TEST_GPA2, PAGE_SIZE, (uintptr_t)shared2,
			    gmem2, 0);
		TEST_ASSERT(__set_attributes(e.vm, TEST_GPA2, PAGE_SIZE, PRIVATE, 0) == 0,
			    "KVM_SET_MEMORY_ATTRIBUTES(PRIVATE) on slot 2");
		bool wrote2 = guest_fill(&e, TEST_GPA2, PAGE_SIZE / 4, PRIVATE_FILL);
		sigbus_target = map_shared(gmem2, PAGE_SIZE);
		int sig = sigbus_target ? run_expect_signal(touch_target, NULL) : -1;
		kvm_test(wrote2 && sig == SIGBUS,
			 "rule 42: after a private write, touching the MMAP guest_memfd's "
			 "mapping -> SIGBUS (got %s)", sig > 0 ? strsignal(sig) : "no signal");
		if (sigbus_target)
			munmap(sigbus_target, PAGE_SIZE);
		delete_slot(e.vm, 2);
		close(gmem2);
		munmap(shared2, PAGE_SIZE);
	}

	delete_slot(e.vm, 1);
	close(gmem);
	munmap(shared, TEST_SIZE);
	vcpu_env_destroy(&e);
}
#define NR_CONTENTS_RESULTS 5

/* ============================== conversions (rules 40-42, C.6) */

static bool pattern_at(const uint8_t *base, size_t off, size_t len)
{
	for (size_t i = off; i < off + len; i++)
		if (base[i] != pattern_byte(i)) {
			ksft_print_msg("host byte 0x%zx is 0x%02x, want 0x%02x", i, base[i],
				       pattern_byte(i));
			return false;
		}
	return true;
}

/* Starts MAP with these arguments and runs to the first exit (raw KVM_RUN result). */
static int map_start(struct vcpu_env *e, uint32_t gpa, uint32_t npages, uint32_t attrs)
{
	guest_call(e, MAP_GPA, (struct guest_args){ .eax = KVM_HC_MAP_GPA_RANGE, .ebx = gpa,
					       .ecx = npages, .edx = attrs });
	return __vcpu_run(e->vcpu);
}

/* The exit is KVM_EXIT_HYPERCALL for MAP_GPA_RANGE(gpa, npages, attrs) from 32-bit code. */
static bool hypercall_exit_is(const struct kvm_run *run, int r, uint64_t gpa, uint64_t npages,
			      uint64_t attrs)
{
	bool ok = r == 0 && run->exit_reason == KVM_EXIT_HYPERCALL &&
		  run->hypercall.nr == KVM_HC_MAP_GPA_RANGE && run->hypercall.args[0] == gpa &&
		  run->hypercall.args[1] == npages && run->hypercall.args[2] == attrs &&
		  !(vcpu_hypercall_flags(run) & KVM_EXIT_HYPERCALL_LONG_MODE);
	if (!ok)
		ksft_print_msg("KVM_RUN %d, %s: nr %llu args 0x%llx 0x%llx 0x%llx flags 0x%llx", r,
			       exit_reason_str(run->exit_reason),
			       (unsigned long long)run->hypercall.nr,
			       (unsigned long long)run->hypercall.args[0],
			       (unsigned long long)run->hypercall.args[1],
			       (unsigned long long)run->hypercall.args[2],
			       (unsigned long long)vcpu_hypercall_flags(run));
	return ok;
}

/* After the hypercall completes: OUT 0x12 (EAX), OUT 0x13 (the dword at EBX), HLT. */
static bool map_finish(struct vcpu_env *e, uint32_t *ret, uint32_t *first)
{
	return vcpu_run_expect_out32(e, 0x12, ret) && vcpu_run_expect_out32(e, 0x13, first) &&
	       vcpu_run_expect(e, KVM_EXIT_HLT);
}

/*
 * The VMM's side of rule 41: the range of slot 1 leaves guest_memfd
 * (PUNCH_HOLE|KEEP_SIZE) when it goes shared, is allocated (KEEP_SIZE) when
 * it goes private; then the attributes, and hypercall.ret = 0.
 */
static bool vmm_convert(struct vcpu_env *e, int gmem, uint64_t gpa, uint64_t npages,
			bool to_private)
{
	off_t off = (off_t)(gpa - TEST_GPA), len = (off_t)(npages * PAGE_SIZE);
	int mode = to_private ? FALLOC_FL_KEEP_SIZE : FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	bool ok = fallocate_is(gmem, mode, off, len, 0);
	int r = __set_attributes(e->vm, gpa, (uint64_t)len, to_private ? PRIVATE : 0, 0);
	if (r)
		ksft_print_msg("KVM_SET_MEMORY_ATTRIBUTES: %s", strres(r, errno));
	e->run->hypercall.ret = 0;
	return ok && r == 0;
}

/* MAP with arguments KVM refuses by itself: no exit, the error in EAX. */
static bool map_refused(struct vcpu_env *e, uint32_t gpa, uint32_t npages, uint32_t want)
{
	guest_call(e, MAP_GPA, (struct guest_args){ .eax = KVM_HC_MAP_GPA_RANGE, .ebx = gpa,
					       .ecx = npages, .edx = KVM_MAP_GPA_RANGE_ENCRYPTED });
	uint32_t ret = 0, first;
	bool ok = map_finish(e, &ret, &first);
	if (ok && ret != want)
		ksft_print_msg("EAX 0x%08x, want 0x%08x", ret, want);
	return ok && ret == want;
}

static void test_conversions(void)
{
	struct vcpu_env e;
	env_create(&e, KVM_X86_SW_PROTECTED_VM);
	KCHECK_OK(__enable_cap(e.vm, KVM_CAP_EXIT_HYPERCALL, 0, 1ull << KVM_HC_MAP_GPA_RANGE),
		  "rule 40: KVM_ENABLE_CAP(EXIT_HYPERCALL, 1 << KVM_HC_MAP_GPA_RANGE)");
	uint8_t *shared = map_anon(TEST_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED);
	int gmem = add_gmem_slot(&e, shared, 0);
	TEST_ASSERT(__set_attributes(e.vm, TEST_GPA, TEST_SIZE, PRIVATE, 0) == 0,
		    "KVM_SET_MEMORY_ATTRIBUTES(PRIVATE)");
	TEST_ASSERT(fallocate(gmem, FALLOC_FL_KEEP_SIZE, 0, TEST_SIZE) == 0, "fallocate");
	kvm_test(guest_fill(&e, TEST_GPA, TEST_SIZE / 4, PRIVATE_FILL),
		 "rule 40: the guest fills its 4 private pages");

	/* pages 0-1 to shared */
	int r = map_start(&e, TEST_GPA, 2, KVM_MAP_GPA_RANGE_DECRYPTED);
	bool exited = hypercall_exit_is(e.run, r, TEST_GPA, 2, KVM_MAP_GPA_RANGE_DECRYPTED);
	kvm_test(exited, "rule 41: MAP_GPA_RANGE(0x100000, 2, shared) -> KVM_EXIT_HYPERCALL nr 12, "
			 "args gpa/2/0, flags without LONG_MODE");
	bool converted = exited && vmm_convert(&e, gmem, TEST_GPA, 2, false);
	kvm_test(converted, "rule 41: VMM: fallocate(PUNCH_HOLE|KEEP_SIZE) + attributes 0, "
			    "hypercall.ret = 0");
	uint32_t ret = ~0u, first = 0;
	bool finished = converted && map_finish(&e, &ret, &first);
	kvm_test(finished && ret == 0, "C.6: the guest gets hypercall.ret 0 in EAX (0x%08x)", ret);
	kvm_test(finished && first == pattern_word(0),
		 "rule 42: after going shared the guest reads the host's data (0x%08x)", first);

	kvm_test(finished && guest_fill(&e, TEST_GPA, PAGE_SIZE / 4, SHARED_FILL) &&
			 dwords_are(shared, PAGE_SIZE, SHARED_FILL),
		 "rule 42: the guest's writes to the shared page land in the host's memory");
	kvm_test(guest_read_is(&e, TEST_GPA + 2 * PAGE_SIZE, PRIVATE_FILL) &&
			 pattern_at(shared, 2 * PAGE_SIZE, 2 * PAGE_SIZE),
		 "rule 42: pages 2-3, still private, keep the guest's data and never reach the "
		 "host's memory");

	/* pages 0-1 back to private */
	r = map_start(&e, TEST_GPA, 2, KVM_MAP_GPA_RANGE_ENCRYPTED);
	exited = hypercall_exit_is(e.run, r, TEST_GPA, 2, KVM_MAP_GPA_RANGE_ENCRYPTED);
	kvm_test(exited, "rule 41: MAP_GPA_RANGE(0x100000, 2, private) -> KVM_EXIT_HYPERCALL, "
			 "args[2] = ENC_STAT(1) = 0x10");
	converted = exited && vmm_convert(&e, gmem, TEST_GPA, 2, true);
	ret = ~0u;
	first = ~0u;
	finished = converted && map_finish(&e, &ret, &first);
	kvm_test(finished && ret == 0 && first == 0,
		 "rule 42: private again after a punch: the pages read zero (EAX 0x%08x, read "
		 "0x%08x)", ret, first);
	kvm_test(finished && dwords_are(shared, PAGE_SIZE, SHARED_FILL),
		 "rule 42: the shared copy stays in the host's memory after going private");

	/* a VMM answer other than 0 reaches the guest, truncated to 32 bits */
	r = map_start(&e, TEST_GPA + 3 * PAGE_SIZE, 1, KVM_MAP_GPA_RANGE_ENCRYPTED);
	exited = hypercall_exit_is(e.run, r, TEST_GPA + 3 * PAGE_SIZE, 1,
				   KVM_MAP_GPA_RANGE_ENCRYPTED);
	e.run->hypercall.ret = 0x1234567800000016ull;
	ret = 0;
	finished = exited && map_finish(&e, &ret, &first);
	kvm_test(finished && ret == 0x16 && first == PRIVATE_FILL,
		 "C.6: hypercall.ret 0x1234567800000016 -> EAX 0x16 outside long mode (0x%08x), "
		 "nothing converted", ret);

	/* arguments KVM refuses itself: -KVM_EINVAL in EAX, no exit */
	kvm_test(map_refused(&e, TEST_GPA + 1, 1, (uint32_t)-KVM_EINVAL),
		 "C.6: MAP_GPA_RANGE with an unaligned GPA -> EAX = -KVM_EINVAL (-22), no exit");
	kvm_test(map_refused(&e, TEST_GPA, 0, (uint32_t)-KVM_EINVAL),
		 "C.6: MAP_GPA_RANGE of 0 pages -> EAX = -KVM_EINVAL (-22), no exit");

	delete_slot(e.vm, 1);
	close(gmem);
	munmap(shared, TEST_SIZE);
	vcpu_env_destroy(&e);
}
#define NR_CONVERSION_RESULTS 14

/* Without KVM_ENABLE_CAP(EXIT_HYPERCALL) the guest gets -KVM_ENOSYS and the VMM no exit. */
static void test_hypercall_not_enabled(void)
{
	struct vcpu_env e;
	env_create(&e, KVM_X86_SW_PROTECTED_VM);
	kvm_test(map_refused(&e, 0x10000, 1, (uint32_t)-KVM_ENOSYS),
		 "C.6: MAP_GPA_RANGE without KVM_CAP_EXIT_HYPERCALL -> EAX = -KVM_ENOSYS (-1000), "
		 "no exit");
	vcpu_env_destroy(&e);
}

/* ======================================== pre-fault (rules 44-45) */

#define PF_GPA SZ_4G
#define PF_SIZE (SZ_2M + PAGE_SIZE) /* upstream's TEST_SIZE: 2 MiB and one page */

struct pf_env {
	struct vcpu_env e;
	uint8_t *mem;
	int gmem;
	const char *name; /* "default VM", "SW_PROTECTED VM, shared", ... */
};

/*
 * A VM of vm_type whose slot 1 covers [PF_GPA, PF_GPA + PF_SIZE): ordinary
 * memory, or (private) a guest_memfd slot with the PRIVATE attribute.
 * vCPU 0 exists and never runs.
 */
static void pf_env_create(struct pf_env *p, unsigned long vm_type, bool private)
{
	env_create(&p->e, vm_type);
	if (vm_type == KVM_X86_DEFAULT_VM)
		p->name = "default VM";
	else
		p->name = private ? "SW_PROTECTED VM, private" : "SW_PROTECTED VM, shared";
	p->mem = map_anon(PF_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE);
	p->gmem = -1;
	if (!private) {
		set_region2(p->e.vm, 1, 0, PF_GPA, PF_SIZE, (uintptr_t)p->mem, -1, 0);
		return;
	}
	p->gmem = gmem_create(p->e.vm, PF_SIZE, 0);
	set_region2(p->e.vm, 1, KVM_MEM_GUEST_MEMFD, PF_GPA, PF_SIZE, (uintptr_t)p->mem, p->gmem,
		    0);
	TEST_ASSERT(__set_attributes(p->e.vm, PF_GPA, PF_SIZE, PRIVATE, 0) == 0,
		    "KVM_SET_MEMORY_ATTRIBUTES(PRIVATE) over the pre-fault slot");
}

static void pf_env_destroy(struct pf_env *p)
{
	delete_slot(p->e.vm, 1);
	if (p->gmem >= 0)
		close(p->gmem);
	munmap(p->mem, PF_SIZE);
	vcpu_env_destroy(&p->e);
}

/*
 * Rule 45's loop: KVM_PRE_FAULT_MEMORY until the range is done or a call
 * fails other than with EINTR. Each call must either succeed having shrunk
 * the range (gpa advanced by as much) or fail leaving it alone.
 */
static void check_pre_fault(struct pf_env *p, uint64_t off, uint64_t size, uint64_t want_left,
			    int want_errno, const char *what)
{
	struct kvm_pre_fault_memory pf;
	memset(&pf, 0, sizeof(pf));
	pf.gpa = PF_GPA + off;
	pf.size = size;
	bool consistent = true;
	int r = 0, err = 0;
	for (int calls = 0; calls < 10000; calls++) {
		uint64_t prev_gpa = pf.gpa, prev_size = pf.size;
		errno = 0;
		r = ioctl(p->e.vcpu, KVM_PRE_FAULT_MEMORY, &pf);
		err = errno;
		bool shrank = pf.size < prev_size && pf.gpa == prev_gpa + (prev_size - pf.size);
		bool kept = pf.size == prev_size && pf.gpa == prev_gpa;
		if (r == 0 ? !shrank : !kept) {
			ksft_print_msg("call %d: %s, gpa 0x%llx -> 0x%llx, size 0x%llx -> 0x%llx",
				       calls, strres(r, err), (unsigned long long)prev_gpa,
				       (unsigned long long)pf.gpa, (unsigned long long)prev_size,
				       (unsigned long long)pf.size);
			consistent = false;
		}
		if (!(r == 0 && pf.size) && !(r == -1 && err == EINTR))
			break;
	}
	bool result = want_errno ? r == -1 && err == want_errno : r == 0;
	if (!result || pf.size != want_left)
		ksft_print_msg("last call %s, 0x%llx bytes left", strres(r, err),
			       (unsigned long long)pf.size);
	kvm_test(consistent && result && pf.size == want_left,
		 "rule 45: %s: %s -> %s with 0x%llx bytes left, each call shrinks or keeps the "
		 "range", p->name, what,
		 want_errno ? strerrorname_np(want_errno) : "0", (unsigned long long)want_left);
}

static void pre_fault_sequence(unsigned long vm_type, bool private)
{
	struct pf_env p;
	pf_env_create(&p, vm_type, private);
	check_pre_fault(&p, 0, SZ_2M, 0, 0, "[0, 2M) of the slot");
	check_pre_fault(&p, SZ_2M, 2 * PAGE_SIZE, PAGE_SIZE, ENOENT,
			"[2M, 2M+8K): last page of the slot, then no memslot");
	check_pre_fault(&p, PF_SIZE, PAGE_SIZE, PAGE_SIZE, ENOENT, "[2M+4K, 2M+8K): no memslot");
	pf_env_destroy(&p);
}
#define NR_PRE_FAULT_SEQUENCE 3

/* Rule 44: what is refused before anything is mapped, leaving the struct alone. */
static void check_pre_fault_refused(int vcpu, uint64_t gpa, uint64_t size, uint64_t flags,
				    int want, const char *what)
{
	struct kvm_pre_fault_memory pf;
	memset(&pf, 0, sizeof(pf));
	pf.gpa = gpa;
	pf.size = size;
	pf.flags = flags;
	struct kvm_pre_fault_memory before = pf;
	errno = 0;
	long r = ioctl(vcpu, KVM_PRE_FAULT_MEMORY, &pf);
	int err = errno;
	bool refused = expect_errno(r, err, want);
	kvm_test(refused && !memcmp(&pf, &before, sizeof(pf)),
		 "rule 44: KVM_PRE_FAULT_MEMORY %s -> %s, struct unchanged", what,
		 strerrorname_np(want));
}

static void test_pre_fault_default(void)
{
	pre_fault_sequence(KVM_X86_DEFAULT_VM, false);

	struct pf_env p;
	pf_env_create(&p, KVM_X86_DEFAULT_VM, false);
	int vcpu = p.e.vcpu;
	check_pre_fault_refused(vcpu, PF_GPA, PAGE_SIZE, 1, EINVAL, "flags 1");
	check_pre_fault_refused(vcpu, PF_GPA + 1, PAGE_SIZE, 0, EINVAL, "unaligned gpa");
	check_pre_fault_refused(vcpu, PF_GPA, PAGE_SIZE - 1, 0, EINVAL, "unaligned size");
	check_pre_fault_refused(vcpu, PF_GPA, 0, 0, EINVAL, "size 0");
	check_pre_fault_refused(vcpu, ~0ull << 12, 2 * PAGE_SIZE, 0, EINVAL,
				"gpa 2^64-4K, size 8K (wraps)");
	check_pre_fault_refused(vcpu, ~0ull << 12, PAGE_SIZE, 0, EINVAL,
				"gpa 2^64-4K, size 4K (end wraps to 0)");
	check_pre_fault_refused(vcpu, PF_GPA + 16 * SZ_1M, PAGE_SIZE, 0, ENOENT,
				"gpa without a memslot");
	KCHECK_ERRNO(ioctl(vcpu, KVM_PRE_FAULT_MEMORY, NULL), EFAULT,
		     "rule 44: KVM_PRE_FAULT_MEMORY(NULL) -> EFAULT");
	pf_env_destroy(&p);
}
#define NR_PRE_FAULT_DEFAULT (NR_PRE_FAULT_SEQUENCE + 8)

static void test_pre_fault_sw_shared(void)
{
	pre_fault_sequence(KVM_X86_SW_PROTECTED_VM, false);
}

static void test_pre_fault_sw_private(void)
{
	pre_fault_sequence(KVM_X86_SW_PROTECTED_VM, true);
}

static const char *need_pre_fault_default(void)
{
	return vm_type_cap(KVM_X86_DEFAULT_VM, KVM_CAP_PRE_FAULT_MEMORY) > 0
		       ? NULL
		       : "default VM: KVM_CAP_PRE_FAULT_MEMORY not offered";
}

static const char *need_pre_fault_sw(void)
{
	return sw_vm_cap(KVM_CAP_PRE_FAULT_MEMORY) > 0
		       ? NULL
		       : "SW_PROTECTED VM: KVM_CAP_PRE_FAULT_MEMORY not offered";
}

static const char *need_pre_fault_sw_private(void)
{
	const char *why = need_pre_fault_sw();
	return why ? why : need_sw_private();
}

/* ============================================================ main */

static const struct kvm_section sections[] = {
	{ "rule 37: PRIVATE on a normal slot", NR_RULE37_RESULTS, need_fault_info,
	  test_private_normal_slot },
	{ "rule 38: gmem slot deleted", NR_GONE_RESULTS, need_fault_info, test_slot_deleted },
	{ "rule 39: gmem file closed", NR_GONE_RESULTS, need_fault_info, test_file_closed },
	{ "private contents", NR_CONTENTS_RESULTS, need_sw_private, test_private_contents },
	{ "conversions", NR_CONVERSION_RESULTS, need_hypercall_exit, test_conversions },
	{ "hypercall not enabled", 1, need_hypercall_offered, test_hypercall_not_enabled },
	{ "pre-fault, default VM", NR_PRE_FAULT_DEFAULT, need_pre_fault_default,
	  test_pre_fault_default },
	{ "pre-fault, SW_PROTECTED shared", NR_PRE_FAULT_SEQUENCE, need_pre_fault_sw,
	  test_pre_fault_sw_shared },
	{ "pre-fault, SW_PROTECTED private", NR_PRE_FAULT_SEQUENCE, need_pre_fault_sw_private,
	  test_pre_fault_sw_private },
	{ "leaks", 1, NULL, kvm_test_live_objects },
};

int main(void)
{
	ksft_print_header();
	kvm_require_dev();
	if (!kvm_has_vm_type(KVM_X86_SW_PROTECTED_VM))
		ksft_exit_skip("KVM_X86_SW_PROTECTED_VM not in KVM_CAP_VM_TYPES (private memory, "
			       "rules 37-45, needs it)");
	return kvm_sections_main(sections, ARRAY_SIZE(sections));
}
