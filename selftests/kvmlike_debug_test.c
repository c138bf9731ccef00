// SPDX-License-Identifier: MIT
/*
 * kvmlike's debug interfaces (uapi/kvmlike_ext.h), seen through a guest:
 *
 *   KVMLIKE_WALK_GPA (VM fd)     the second-level leaf that maps a GPA:
 *                                level, permissions, host address, format,
 *                                accessed/dirty; ENOENT when nothing maps it
 *   KVMLIKE_GMEM_POISON (VM fd)  memory failure on a guest_memfd page: the
 *                                mapping goes, later guest accesses fail
 *                                with EHWPOISON and a memory-fault exit
 *
 * The real kernel has neither (it refuses the whole KVMLIKE_IO range), so
 * the program SKIPs when KVMLIKE_PROBE does not answer KVMLIKE_MAGIC.
 *
 * What the walk must show, as hardware EPT would:
 *   - a page of an ordinary anonymous slot the guest touched: a 4 KiB leaf
 *     (level 1) in EPT format (default VM), whose host address is exactly
 *     the slot's userspace_addr + the page's offset, marked accessed (and
 *     dirty once the guest wrote it); read|exec while the guest only read it
 *     (kvmlike maps the VMM's memory writable only once a write found it
 *     writable: it may be mapped read-only), read|write|exec once written;
 *     the raw entry says the same;
 *   - a page nobody touched, a GPA without a slot, a page of a deleted
 *     slot: ENOENT;
 *   - a KVM_MEM_READONLY slot's page: no write permission;
 *   - a guest_memfd MMAP|INIT_SHARED slot: the same host page on every
 *     touch until fallocate(PUNCH_HOLE) removes it (ENOENT); then guest and
 *     host both read zeros there;
 *   - a private page of a SW_PROTECTED VM (guest_memfd without MMAP): a
 *     host page outside every mapping the test has.
 *
 * The guest is vcpu_util's 32-bit routines guest (slot 0, normal anonymous
 * memory): READ and FILL, driven through their registers.
 *
 * Guest physical memory:
 *   0x00500  flat GDT     0x01000  routines     0x08000  top of the stack
 *   0x100000 slot 1 (TEST_PAGES pages: anonymous, or a guest_memfd)
 *   0x200000 slot 2 (one read-only page)
 *   0x500000 no slot
 */
#include "kvm_util.h"
#include "mem_util.h"
#include "vcpu_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define GUEST_MEM_SIZE 0x20000ul
#define TEST_GPA 0x100000ul
#define TEST_PAGES 4
#define TEST_SIZE (TEST_PAGES * PAGE_SIZE)
#define RO_GPA 0x200000ul
#define NO_SLOT_GPA 0x500000ul
#define GUEST_WORD 0x600dcafeu
#define PRIVATE KVM_MEMORY_ATTRIBUTE_PRIVATE
#define PUNCH (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)
#define PERM_RWX (KVMLIKE_PERM_READ | KVMLIKE_PERM_WRITE | KVMLIKE_PERM_EXEC)
#define PERM_RX (KVMLIKE_PERM_READ | KVMLIKE_PERM_EXEC)

/* EPT leaf bits (Intel SDM 29.3.2): R, W, X, accessed, dirty, address. */
#define EPT_RWX 0x7ull
#define EPT_ACCESSED (1ull << 8)
#define EPT_DIRTY (1ull << 9)
#define EPT_ADDR_MASK 0x000ffffffffff000ull

/* ================================================ the debug ioctls */

/* KVMLIKE_WALK_GPA of gpa into *w; the raw result (-1 with errno). */
static int walk(int vm, uint64_t gpa, struct kvmlike_walk_gpa *w)
{
	memset(w, 0, sizeof(*w));
	w->gpa = gpa;
	return ioctl(vm, KVMLIKE_WALK_GPA, w);
}

static void print_walk(const struct kvmlike_walk_gpa *w)
{
	ksft_print_msg("walk 0x%llx: level %u perm %#x host 0x%llx raw 0x%llx format %u flags %#x",
		       (unsigned long long)w->gpa, w->level, w->perm,
		       (unsigned long long)w->host, (unsigned long long)w->raw, w->format,
		       w->flags);
}

/* The walk of gpa succeeds; prints what happened otherwise. */
static bool walk_ok(int vm, uint64_t gpa, struct kvmlike_walk_gpa *w)
{
	errno = 0;
	int r = walk(vm, gpa, w);
	if (r != 0) {
		ksft_print_msg("KVMLIKE_WALK_GPA(0x%llx): %s", (unsigned long long)gpa,
			       strres(r, errno));
		return false;
	}
	print_walk(w);
	return true;
}

static int poison(int vm, int fd, uint64_t offset)
{
	struct kvmlike_gmem_poison p = { .fd = (uint32_t)fd, .offset = offset };
	return ioctl(vm, KVMLIKE_GMEM_POISON, &p);
}

/* ======================================= an ordinary anonymous slot */

/*
 * A leaf of a 4 KiB page of ordinary memory: level 1, EPT, permissions perm,
 * host exactly hva. Prints the difference otherwise.
 */
static bool leaf_is(const struct kvmlike_walk_gpa *w, uint32_t perm, uint64_t hva)
{
	bool ok = w->level == 1 && w->format == KVMLIKE_TDP_EPT && w->perm == perm &&
		  w->host == hva;
	if (!ok)
		ksft_print_msg("want level 1, format EPT (%u), perm %#x, host 0x%llx",
			       KVMLIKE_TDP_EPT, perm, (unsigned long long)hva);
	return ok;
}

/* The raw EPT entry agrees with the decoded fields. */
static bool raw_agrees(const struct kvmlike_walk_gpa *w)
{
	uint64_t raw = w->raw;
	uint32_t perm = (uint32_t)(raw & EPT_RWX); /* R=1, W=2, X=4: KVMLIKE_PERM_* */
	uint32_t flags = ((raw & EPT_ACCESSED) ? KVMLIKE_LEAF_ACCESSED : 0) |
			 ((raw & EPT_DIRTY) ? KVMLIKE_LEAF_DIRTY : 0);
	bool ok = (raw & EPT_ADDR_MASK) == w->host && perm == w->perm && flags == w->flags;
	if (!ok)
		ksft_print_msg("raw 0x%llx decodes to host 0x%llx perm %#x flags %#x",
			       (unsigned long long)raw, (unsigned long long)(raw & EPT_ADDR_MASK),
			       perm, flags);
	return ok;
}

static bool flags_are(const struct kvmlike_walk_gpa *w, uint32_t want)
{
	if (w->flags != want)
		ksft_print_msg("flags %#x, want %#x", w->flags, want);
	return w->flags == want;
}

static void test_anon_slot(void)
{
	struct vcpu_env e;
	vcpu_env_create_routines(&e, KVM_X86_DEFAULT_VM, GUEST_MEM_SIZE);
	uint8_t *mem = map_anon(TEST_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED);
	fill_pattern(mem, TEST_SIZE);
	set_region2(e.vm, 1, 0, TEST_GPA, TEST_SIZE, (uintptr_t)mem, -1, 0);
	const uint64_t read_page = TEST_GPA + PAGE_SIZE, write_page = TEST_GPA + 2 * PAGE_SIZE;
	const uint64_t untouched = TEST_GPA + 3 * PAGE_SIZE;
	struct kvmlike_walk_gpa w;

	uint32_t v = 0;
	bool ran = guest_read(&e, read_page + 8, &v) && v == *(uint32_t *)(mem + PAGE_SIZE + 8);
	kvm_test(ran, "the guest reads page 1 of an anonymous slot (its host bytes)");
	bool walked = ran && walk_ok(e.vm, read_page, &w);
	kvm_test(walked && leaf_is(&w, PERM_RX, (uintptr_t)mem + PAGE_SIZE),
		 "KVMLIKE_WALK_GPA of the read page: level 1, EPT, read|exec, host == "
		 "userspace_addr + 0x1000");
	kvm_test(walked && flags_are(&w, KVMLIKE_LEAF_ACCESSED),
		 "... flags ACCESSED, not DIRTY (the guest only read it)");
	kvm_test(walked && raw_agrees(&w),
		 "... the raw EPT entry has that address, R|X bits and A/D bits");

	ran = guest_fill(&e, write_page + 4, 1, GUEST_WORD) &&
	      *(uint32_t *)(mem + 2 * PAGE_SIZE + 4) == GUEST_WORD;
	kvm_test(ran, "the guest writes page 2 (the host sees the dword)");
	walked = ran && walk_ok(e.vm, write_page, &w);
	kvm_test(walked && leaf_is(&w, PERM_RWX, (uintptr_t)mem + 2 * PAGE_SIZE) &&
			 flags_are(&w, KVMLIKE_LEAF_ACCESSED | KVMLIKE_LEAF_DIRTY) &&
			 raw_agrees(&w),
		 "KVMLIKE_WALK_GPA of the written page: host == userspace_addr + 0x2000, flags "
		 "ACCESSED|DIRTY");

	KCHECK_ERRNO(walk(e.vm, untouched, &w), ENOENT,
		     "KVMLIKE_WALK_GPA of a page of the slot the guest never touched -> ENOENT");
	KCHECK_ERRNO(walk(e.vm, NO_SLOT_GPA, &w), ENOENT,
		     "KVMLIKE_WALK_GPA of a GPA without a memslot -> ENOENT");

	/* a read-only slot */
	uint8_t *rom = map_anon(PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED);
	fill_pattern(rom, PAGE_SIZE);
	set_region2(e.vm, 2, KVM_MEM_READONLY, RO_GPA, PAGE_SIZE, (uintptr_t)rom, -1, 0);
	ran = guest_read(&e, RO_GPA, &v) && v == *(uint32_t *)rom;
	kvm_test(ran, "the guest reads the KVM_MEM_READONLY slot's page");
	walked = ran && walk_ok(e.vm, RO_GPA, &w);
	bool ro = walked && (w.perm & KVMLIKE_PERM_READ) && !(w.perm & KVMLIKE_PERM_WRITE) &&
		  w.host == (uintptr_t)rom && w.level == 1;
	kvm_test(ro, "KVMLIKE_WALK_GPA of the read-only slot's page: readable, not writable, host "
		     "== its userspace_addr");
	delete_slot(e.vm, 2);
	munmap(rom, PAGE_SIZE);

	/* deleting the slot removes its mappings */
	delete_slot(e.vm, 1);
	KCHECK_ERRNO(walk(e.vm, read_page, &w), ENOENT,
		     "KVMLIKE_WALK_GPA of the read page after its slot was deleted -> ENOENT");
	KCHECK_ERRNO(walk(e.vm, write_page, &w), ENOENT,
		     "KVMLIKE_WALK_GPA of the written page after its slot was deleted -> ENOENT");

	munmap(mem, TEST_SIZE);
	vcpu_env_destroy(&e);
}
#define NR_ANON_RESULTS (4 + 2 + 2 + 2 + 2)

/* ============================== a guest_memfd MMAP|INIT_SHARED slot */

static void test_gmem_shared(void)
{
	struct vcpu_env e;
	vcpu_env_create_routines(&e, KVM_X86_DEFAULT_VM, GUEST_MEM_SIZE);
	int gmem = gmem_create(e.vm, TEST_SIZE, GMEM_FLAGS_SHARED);
	uint8_t *host = map_shared(gmem, TEST_SIZE);
	TEST_ASSERT(host, "mmap of the guest_memfd");
	set_region2(e.vm, 1, KVM_MEM_GUEST_MEMFD, TEST_GPA, TEST_SIZE, (uintptr_t)host, gmem, 0);
	const uint64_t page = TEST_GPA + PAGE_SIZE;
	struct kvmlike_walk_gpa w1, w2;

	bool ran = guest_fill(&e, page + 8, 1, GUEST_WORD);
	bool walked = ran && walk_ok(e.vm, page, &w1);
	kvm_test(walked && w1.level == 1 && (w1.perm & KVMLIKE_PERM_WRITE) &&
			 *(uint32_t *)(host + PAGE_SIZE + 8) == GUEST_WORD,
		 "guest_memfd slot: the guest writes page 1 (the host mapping sees it); the walk "
		 "finds a writable 4 KiB leaf");
	/*
	 * Deleting and re-creating the slot zaps the leaf but keeps the file's
	 * page: the second touch faults it in again, to the same host page.
	 */
	delete_slot(e.vm, 1);
	bool zapped = walk(e.vm, page, &w2) == -1 && errno == ENOENT;
	set_region2(e.vm, 1, KVM_MEM_GUEST_MEMFD, TEST_GPA, TEST_SIZE, (uintptr_t)host, gmem, 0);
	ran = ran && guest_read_is(&e, page + 8, GUEST_WORD);
	walked = walked && ran && walk_ok(e.vm, page, &w2);
	if (walked && w2.host != w1.host)
		ksft_print_msg("host 0x%llx at the first touch, 0x%llx at the second",
			       (unsigned long long)w1.host, (unsigned long long)w2.host);
	kvm_test(zapped && walked && w2.host == w1.host,
		 "guest_memfd slot: slot deleted (walk -> ENOENT) and re-created; the guest reads "
		 "its dword again and the walk gives the same host page");

	bool punched = fallocate_is(gmem, PUNCH, PAGE_SIZE, PAGE_SIZE, 0);
	kvm_test(punched, "guest_memfd slot: fallocate(PUNCH_HOLE|KEEP_SIZE) of page 1 -> ok");
	KCHECK_ERRNO(walk(e.vm, page, &w2), ENOENT,
		     "guest_memfd slot: KVMLIKE_WALK_GPA of the punched page -> ENOENT");
	kvm_test(ran && punched && guest_read_is(&e, page + 8, 0),
		 "guest_memfd slot: the guest reads 0 from the punched page");
	kvm_test(punched && bytes_are(host + PAGE_SIZE, PAGE_SIZE, 0),
		 "guest_memfd slot: the host mapping reads 0 there too");

	delete_slot(e.vm, 1);
	munmap(host, TEST_SIZE);
	close(gmem);
	vcpu_env_destroy(&e);
}
#define NR_GMEM_RESULTS 6

/* =================================== a private page, and poison */

/* p lies in [a, a + alen). */
static bool inside(uint64_t p, uint64_t a, uint64_t alen) { return p >= a && p < a + alen; }

static void test_private_poison(void)
{
	struct vcpu_env e;
	vcpu_env_create_routines(&e, KVM_X86_SW_PROTECTED_VM, GUEST_MEM_SIZE);
	uint8_t *shared = map_anon(TEST_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED);
	fill_pattern(shared, TEST_SIZE);
	int gmem = gmem_create(e.vm, TEST_SIZE, 0);
	set_region2(e.vm, 1, KVM_MEM_GUEST_MEMFD, TEST_GPA, TEST_SIZE, (uintptr_t)shared, gmem, 0);
	TEST_ASSERT(__set_attributes(e.vm, TEST_GPA, TEST_SIZE, PRIVATE, 0) == 0,
		    "KVM_SET_MEMORY_ATTRIBUTES(PRIVATE)");
	const uint64_t page = TEST_GPA + PAGE_SIZE;
	struct kvmlike_walk_gpa w;

	bool ran = guest_fill(&e, page + 8, 1, GUEST_WORD);
	kvm_test(ran && guest_read_is(&e, page + 8, GUEST_WORD) && is_pattern(shared, TEST_SIZE),
		 "private page: the guest writes and reads back its dword; the slot's "
		 "userspace_addr memory is untouched");
	bool walked = ran && walk_ok(e.vm, page, &w);
	struct {
		const char *what;
		uint64_t start, len;
	} mine[] = {
		{ "slot 0's memory", (uintptr_t)e.mem, e.mem_size },
		{ "slot 1's userspace_addr memory", (uintptr_t)shared, TEST_SIZE },
		{ "the kvm_run mapping", (uintptr_t)e.run, vcpu_mmap_size() },
	};
	bool outside = walked && w.level == 1 && w.host != 0;
	for (size_t i = 0; walked && i < ARRAY_SIZE(mine); i++)
		if (inside(w.host, mine[i].start, mine[i].len)) {
			ksft_print_msg("host 0x%llx is inside %s", (unsigned long long)w.host,
				       mine[i].what);
			outside = false;
		}
	kvm_test(outside, "private page: KVMLIKE_WALK_GPA gives a 4 KiB leaf whose host page is "
			  "outside every mapping of the test");

	KCHECK_OK(poison(e.vm, gmem, PAGE_SIZE),
		  "KVMLIKE_GMEM_POISON of the private page (offset 0x1000) -> ok");
	KCHECK_ERRNO(walk(e.vm, page, &w), ENOENT,
		     "KVMLIKE_WALK_GPA of the poisoned page -> ENOENT (mapping zapped)");
	guest_call(&e, ROUTINE_READ_GPA, (struct guest_args){ .ebx = (uint32_t)(page + 8) });
	int r = __vcpu_run(e.vcpu);
	int err = errno;
	const struct kvm_run_memory_fault *mf = kvm_run_mem_fault(e.run);
	kvm_test_errno(r, err, EHWPOISON, "the guest's next access -> KVM_RUN -1/EHWPOISON");
	kvm_test(r == -1 && e.run->exit_reason == KVM_EXIT_MEMORY_FAULT,
		 "... exit_reason KVM_EXIT_MEMORY_FAULT (got %s)",
		 exit_reason_str(e.run->exit_reason));
	kvm_test(r == -1 && mf->flags == KVM_MEMORY_EXIT_FLAG_PRIVATE && mf->gpa == page &&
			 mf->size == PAGE_SIZE,
		 "... memory_fault flags PRIVATE, gpa 0x%llx, size 4096 (got flags 0x%llx gpa "
		 "0x%llx size 0x%llx)", (unsigned long long)page, (unsigned long long)mf->flags,
		 (unsigned long long)mf->gpa, (unsigned long long)mf->size);

	KCHECK_ERRNO(poison(e.vm, gmem, 3 * PAGE_SIZE), ENOENT,
		     "KVMLIKE_GMEM_POISON of a page never allocated -> ENOENT");
	KCHECK_ERRNO(poison(e.vm, kvm_lowest_free_fd(), 0), EBADF,
		     "KVMLIKE_GMEM_POISON with an fd that is not open -> EBADF");
	KCHECK_ERRNO(poison(e.vm, gmem, PAGE_SIZE + 8), EINVAL,
		     "KVMLIKE_GMEM_POISON at an offset that is not page-aligned -> EINVAL");
	KCHECK_ERRNO(poison(e.vm, gmem, TEST_SIZE), EINVAL,
		     "KVMLIKE_GMEM_POISON at the file's size -> EINVAL");

	delete_slot(e.vm, 1);
	close(gmem);
	munmap(shared, TEST_SIZE);
	vcpu_env_destroy(&e);
}
#define NR_PRIVATE_RESULTS (2 + 2 + 3 + 4)

/* ============================================================ main */

static const struct kvm_section sections[] = {
	{ "anonymous slot", NR_ANON_RESULTS, NULL, test_anon_slot },
	{ "guest_memfd MMAP|INIT_SHARED slot", NR_GMEM_RESULTS, need_gmem_shared,
	  test_gmem_shared },
	{ "private page and poison", NR_PRIVATE_RESULTS, need_sw_private, test_private_poison },
	{ "leaks", 1, NULL, kvm_test_live_objects },
};

int main(void)
{
	ksft_print_header();
	if (!kvm_is_kvmlike())
		ksft_exit_skip("KVMLIKE_PROBE does not answer KVMLIKE_MAGIC: kvmlike's debug "
			       "ioctls exist only under kvmlike");
	return kvm_sections_main(sections, ARRAY_SIZE(sections));
}
