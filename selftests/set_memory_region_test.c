// SPDX-License-Identifier: MIT
/*
 * KVM_SET_USER_MEMORY_REGION and KVM_SET_USER_MEMORY_REGION2 without guest
 * code: flag validation, alignment, slot ids and address spaces, delete,
 * modify (move / flags-only / immutable gmem slots), GPA overlap, guest_memfd
 * binding, and the slot limit.
 *
 * Rule ids are those of reference/conformance.md section A.4 (rules 21-32).
 * Where 6.18 and later kernels differ (rule 28: an overlapping guest_memfd
 * binding is EINVAL up to 7.1, EEXIST from 7.2) the 6.18 answer is asserted,
 * which is also kvmlike's default configuration.
 */
#include "kvm_util.h"
#include "mem_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define HVA_SIZE (64ul << 20)
#define KVM_MEM_MAX_NR_PAGES_X86 ((1ul << 31) - 1)
#define BIT(n) (1u << (n))

enum api { V1, V2 };
static const char *const api_name[] = { "v1", "v2" };

static int kvm_fd;
static char *mem; /* HVA_SIZE bytes of anonymous memory backing normal slots */
#define HVA(off) ((uint64_t)(uintptr_t)(mem + (off)))

/* A normal (non-gmem) slot through either ioctl; v2 passes guest_memfd -1. */
static int set_mem(enum api api, int vm, uint32_t slot, uint32_t flags, uint64_t gpa,
		   uint64_t size, uint64_t hva)
{
	if (api == V1)
		return __set_region(vm, slot, flags, gpa, size, hva);
	return __set_region2(vm, slot, flags, gpa, size, hva, -1, 0);
}

static bool readonly_mem(int vm) { return vm_check_cap(vm, KVM_CAP_READONLY_MEM) > 0; }

static unsigned long vm_type_for_flags(void)
{
	return kvm_has_vm_type(KVM_X86_SW_PROTECTED_VM) ? KVM_X86_SW_PROTECTED_VM
							 : KVM_X86_DEFAULT_VM;
}

/* An fd number that is certainly not open. */
static int unused_fd(void)
{
	int fd = kvm_lowest_free_fd() + 64;
	TEST_ASSERT(fcntl(fd, F_GETFD) == -1 && errno == EBADF, "fd %d unexpectedly open", fd);
	return fd;
}

/* ------------------------------------------------------ rule 29 flags */

/*
 * Every single flag bit through both ioctls (rule 29, 21, 22). v1 knows
 * only LOG_DIRTY_PAGES and READONLY (GUEST_MEMFD is v2-only, rule 22).
 * Through v2, GUEST_MEMFD alone is a valid flag, so with guest_memfd = -1
 * it gets as far as the bind and fails there with EBADF (rule 28).
 */
static void check_flag_bit(int vm, enum api api, unsigned int bit)
{
	uint32_t f = BIT(bit);
	bool valid = f == KVM_MEM_LOG_DIRTY_PAGES || (f == KVM_MEM_READONLY && readonly_mem(vm));
	int r = set_mem(api, vm, 0, f, 0, SZ_2M, HVA(0));
	int err = errno;

	if (valid) {
		kvm_test_ok(r, err, "rule 21: %s flags BIT(%u) valid -> ok", api_name[api], bit);
		if (r == 0)
			delete_slot(vm, 0);
	} else if (api == V2 && f == KVM_MEM_GUEST_MEMFD) {
		kvm_test_errno(r, err, EBADF, "rule 28: v2 flags GUEST_MEMFD, guest_memfd -1 -> "
					     "EBADF");
	} else {
		kvm_test_errno(r, err, EINVAL, "rule 29: %s flags BIT(%u) -> EINVAL", api_name[api],
			       bit);
		if (r == 0)
			delete_slot(vm, 0);
	}
}

static void test_flags(void)
{
	int vm = vm_create(vm_type_for_flags());
	for (unsigned int bit = 0; bit < 32; bit++) {
		check_flag_bit(vm, V1, bit);
		check_flag_bit(vm, V2, bit);
	}

	int gmem = gmem_create(vm, SZ_2M, 0);
	KCHECK_ERRNO(__set_region2(vm, 0, KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_GUEST_MEMFD, 0, SZ_2M,
				   0, gmem, 0),
		     EINVAL, "rule 29: v2 LOG_DIRTY_PAGES|GUEST_MEMFD -> EINVAL");
	KCHECK_ERRNO(__set_region2(vm, 0, KVM_MEM_READONLY | KVM_MEM_GUEST_MEMFD, 0, SZ_2M, 0,
				   gmem, 0),
		     EINVAL, "rule 29: v2 READONLY|GUEST_MEMFD -> EINVAL");
	if (KCHECK_OK(__set_region2(vm, 0, KVM_MEM_GUEST_MEMFD, 0, SZ_2M, 0, gmem, 0),
		      "rule 21: v2 GUEST_MEMFD alone -> ok"))
		delete_slot(vm, 0);
	close(gmem);
	close(vm);
}
#define NR_FLAGS_RESULTS (32 * 2 + 3)

/* ------------------------------------------------- rule 23 alignment */

struct region_case {
	const char *what;
	uint64_t gpa, size, hva;
	int want; /* 0 = success */
};

static void run_region_cases(int vm, enum api api, const struct region_case *c, size_t n,
			     const char *rule)
{
	for (size_t i = 0; i < n; i++) {
		int r = set_mem(api, vm, 0, 0, c[i].gpa, c[i].size, c[i].hva);
		int err = errno;
		if (c[i].want)
			kvm_test_errno(r, err, c[i].want, "%s: %s %s -> %s", rule, api_name[api],
				       c[i].what, strerrorname_np(c[i].want));
		else
			kvm_test_ok(r, err, "%s: %s %s -> ok", rule, api_name[api], c[i].what);
		if (r == 0)
			delete_slot(vm, 0);
	}
}

static void test_alignment(void)
{
	const struct region_case cases[] = {
		{ "baseline gpa 0, 1 page", 0, PAGE_SIZE, HVA(0), 0 },
		{ "userspace_addr 0 (normal slot)", 0, SZ_2M, 0, 0 },
		{ "memory_size 4095", 0, PAGE_SIZE - 1, HVA(0), EINVAL },
		{ "memory_size 4097", 0, PAGE_SIZE + 1, HVA(0), EINVAL },
		{ "memory_size 2M+2048", 0, SZ_2M + 2048, HVA(0), EINVAL },
		{ "guest_phys_addr 1", 1, PAGE_SIZE, HVA(0), EINVAL },
		{ "guest_phys_addr 2048", 2048, PAGE_SIZE, HVA(0), EINVAL },
		{ "userspace_addr +1", 0, PAGE_SIZE, HVA(1), EINVAL },
		{ "userspace_addr +2048", 0, PAGE_SIZE, HVA(2048), EINVAL },
		{ "userspace_addr kernel half", 0, PAGE_SIZE, 0xffff800000000000ull, EINVAL },
		{ "userspace_addr last page of 2^64", 0, PAGE_SIZE, ~0ull << 12, EINVAL },
		{ "userspace_addr tagged (bit 56)", 0, PAGE_SIZE, (1ull << 56) | HVA(0), EINVAL },
	};
	int vm = vm_create(KVM_X86_DEFAULT_VM);
	size_t n = sizeof(cases) / sizeof(cases[0]);
	run_region_cases(vm, V1, cases, n, "rule 23");
	run_region_cases(vm, V2, cases, n, "rule 23");
	close(vm);
}
#define NR_ALIGN_RESULTS (12 * 2)

/* ------------------------------------------------ rule 24 ids, ranges */

struct slot_case {
	const char *what;
	uint32_t slot;
	uint64_t gpa, size, hva;
	int want;
};

static void run_slot_cases(int vm, enum api api, const struct slot_case *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int r = set_mem(api, vm, c[i].slot, 0, c[i].gpa, c[i].size, c[i].hva);
		int err = errno;
		if (c[i].want)
			kvm_test_errno(r, err, c[i].want, "rule 24: %s %s -> %s", api_name[api],
				       c[i].what, strerrorname_np(c[i].want));
		else
			kvm_test_ok(r, err, "rule 24: %s %s -> ok", api_name[api], c[i].what);
		if (r == 0)
			delete_slot(vm, c[i].slot);
	}
}

static void test_ids_and_ranges(void)
{
	int vm = vm_create(KVM_X86_DEFAULT_VM);
	uint32_t nslots = (uint32_t)vm_check_cap(vm, KVM_CAP_NR_MEMSLOTS);
	uint32_t nas = (uint32_t)vm_nr_address_spaces(vm);
	ksft_print_msg("NR_MEMSLOTS %u, address spaces %u (MULTI_ADDRESS_SPACE %d)", nslots, nas,
		       vm_check_cap(vm, KVM_CAP_MULTI_ADDRESS_SPACE));
	TEST_ASSERT(nslots > 0 && nas > 0 && nas <= 2, "NR_MEMSLOTS / address spaces");

	char last_as[48], past_as[48], del_as[48];
	snprintf(last_as, sizeof(last_as), "as_id %u (last address space)", nas - 1);
	snprintf(past_as, sizeof(past_as), "as_id %u (= number of address spaces)", nas);
	snprintf(del_as, sizeof(del_as), "delete in as_id %u", nas);

	const struct slot_case cases[] = {
		{ "id NR_MEMSLOTS-1", nslots - 1, 0, PAGE_SIZE, HVA(0), 0 },
		{ "id NR_MEMSLOTS", nslots, 0, PAGE_SIZE, HVA(0), EINVAL },
		{ "id 0x7fff", 0x7fff, 0, PAGE_SIZE, HVA(0), EINVAL },
		{ "id 0xffff", 0xffff, 0, PAGE_SIZE, HVA(0), EINVAL },
		{ last_as, (nas - 1) << 16, 0, PAGE_SIZE, HVA(0), 0 },
		{ past_as, nas << 16, 0, PAGE_SIZE, HVA(0), EINVAL },
		/* x86 has at most 2 (SMM); kvm_pvm on 6.18 reports one */
		{ "as_id 2", 2u << 16, 0, PAGE_SIZE, HVA(0), EINVAL },
		{ "as_id 0xffff", 0xffffu << 16, 0, PAGE_SIZE, HVA(0), EINVAL },
		{ del_as, nas << 16, 0, 0, 0, EINVAL },
		{ "gpa 2^64-4K + 2 pages (wraps)", 0, ~0ull << 12, 2 * PAGE_SIZE, HVA(0), EINVAL },
		{ "gpa 2^64-4K + 1 page (end wraps to 0)", 0, ~0ull << 12, PAGE_SIZE, HVA(0),
		  EINVAL },
		{ "2^31 pages (> KVM_MEM_MAX_NR_PAGES)", 0, 0,
		  (KVM_MEM_MAX_NR_PAGES_X86 + 1) * PAGE_SIZE, 0, EINVAL },
		/* x86 refuses slots ending above the largest guest frame (MAXPHYADDR <= 52) */
		{ "gpa 2^52 (beyond MAXPHYADDR)", 0, 1ull << 52, PAGE_SIZE, HVA(0), EINVAL },
	};
	size_t n = sizeof(cases) / sizeof(cases[0]);
	run_slot_cases(vm, V1, cases, n);
	run_slot_cases(vm, V2, cases, n);
	close(vm);
}
#define NR_ID_RESULTS (13 * 2)

/* ---------------------------------------------------- rule 25 delete */

static void test_delete(void)
{
	int vm = vm_create(KVM_X86_DEFAULT_VM);

	KCHECK_ERRNO(__set_region(vm, 3, 0, 0, 0, 0), EINVAL,
		     "rule 25: v1 delete of a slot never created -> EINVAL");
	KCHECK_ERRNO(__set_region2(vm, 3, 0, 0, 0, 0, -1, 0), EINVAL,
		     "rule 25: v2 delete of a slot never created -> EINVAL");

	/* The checks before the delete path still apply to a delete. */
	set_region2(vm, 3, 0, 0, SZ_2M, HVA(0), -1, 0);
	KCHECK_ERRNO(__set_region(vm, 3, BIT(5), 0, 0, 0), EINVAL,
		     "rule 25: delete with unknown flag BIT(5) -> EINVAL (flags first)");
	KCHECK_ERRNO(__set_region(vm, 3, 0, 1, 0, 0), EINVAL,
		     "rule 25: delete with gpa 1 -> EINVAL (alignment before delete)");
	KCHECK_ERRNO(__set_region(vm, 3, 0, 0, 0, HVA(1)), EINVAL,
		     "rule 25: delete with userspace_addr +1 -> EINVAL");
	/* Otherwise gpa, userspace_addr and valid flags of a delete are ignored. */
	KCHECK_OK(__set_region(vm, 3, KVM_MEM_LOG_DIRTY_PAGES, 12345 * PAGE_SIZE, 0, HVA(SZ_2M)),
		  "rule 25: delete with other gpa/hva/flags -> ok");
	KCHECK_ERRNO(__set_region(vm, 3, 0, 0, 0, 0), EINVAL,
		     "rule 25: second delete -> EINVAL");

	/* v2: guest_memfd is ignored, but a GUEST_MEMFD offset is still checked. */
	set_region2(vm, 4, 0, 0, SZ_2M, HVA(0), -1, 0);
	KCHECK_ERRNO(__set_region2(vm, 4, KVM_MEM_GUEST_MEMFD, 0, 0, 0, -1, 1), EINVAL,
		     "rule 23: v2 delete with GUEST_MEMFD and offset 1 -> EINVAL");
	KCHECK_OK(__set_region2(vm, 4, KVM_MEM_GUEST_MEMFD, 0, 0, 0, -1, 0),
		  "rule 25: v2 delete with GUEST_MEMFD, guest_memfd -1 -> ok");
	KCHECK_ERRNO(__set_region2(vm, 4, 0, 0, 0, 0, -1, 0), EINVAL,
		     "rule 25: v2 second delete -> EINVAL");
	close(vm);
}
#define NR_DELETE_RESULTS 10

/* ---------------------------------------------------- rule 26 modify */

static void test_modify(enum api api)
{
	int vm = vm_create(KVM_X86_DEFAULT_VM);
	const char *a = api_name[api];
	uint32_t ro = KVM_MEM_READONLY;

	KCHECK_OK(set_mem(api, vm, 0, 0, 0, SZ_2M, HVA(0)), "rule 26: %s create slot 0", a);
	KCHECK_OK(set_mem(api, vm, 0, 0, 0, SZ_2M, HVA(0)), "rule 26: %s identical -> 0", a);
	KCHECK_OK(set_mem(api, vm, 0, KVM_MEM_LOG_DIRTY_PAGES, 0, SZ_2M, HVA(0)),
		  "rule 26: %s flags-only LOG_DIRTY_PAGES on -> 0", a);
	KCHECK_OK(set_mem(api, vm, 0, 0, 0, SZ_2M, HVA(0)),
		  "rule 26: %s flags-only LOG_DIRTY_PAGES off -> 0", a);
	KCHECK_ERRNO(set_mem(api, vm, 0, ro, 0, SZ_2M, HVA(0)), EINVAL,
		     "rule 26: %s READONLY toggled -> EINVAL", a);
	KCHECK_ERRNO(set_mem(api, vm, 0, 0, 0, SZ_2M, HVA(SZ_2M)), EINVAL,
		     "rule 26: %s other userspace_addr -> EINVAL", a);
	KCHECK_ERRNO(set_mem(api, vm, 0, 0, 0, SZ_4M, HVA(0)), EINVAL,
		     "rule 26: %s more pages -> EINVAL", a);
	KCHECK_ERRNO(set_mem(api, vm, 0, 0, 0, SZ_1M, HVA(0)), EINVAL,
		     "rule 26: %s fewer pages -> EINVAL", a);
	KCHECK_OK(set_mem(api, vm, 0, 0, SZ_4M, SZ_2M, HVA(0)),
		  "rule 26: %s move to gpa 4M -> 0", a);
	KCHECK_OK(set_mem(api, vm, 1, 0, 0, SZ_2M, HVA(SZ_2M)),
		  "rule 26: %s old range is free after the move -> ok", a);
	KCHECK_ERRNO(set_mem(api, vm, 0, 0, 0, SZ_2M, HVA(0)), EEXIST,
		     "rule 27: %s move onto another slot -> EEXIST", a);
	KCHECK_ERRNO(set_mem(api, vm, 0, 0, SZ_1M, SZ_2M, HVA(0)), EEXIST,
		     "rule 27: %s move partly onto another slot -> EEXIST", a);
	KCHECK_OK(set_mem(api, vm, 0, KVM_MEM_LOG_DIRTY_PAGES, 8 * SZ_1M, SZ_2M, HVA(0)),
		  "rule 26: %s move and flags change together -> 0", a);
	close(vm);
}
#define NR_MODIFY_RESULTS 13

static void test_modify_v1(void) { test_modify(V1); }
static void test_modify_v2(void) { test_modify(V2); }

/* --------------------------------------------------- rule 27 overlap */

static void test_overlap(void)
{
	int vm = vm_create(KVM_X86_DEFAULT_VM);
	int nas = vm_nr_address_spaces(vm);
	set_region2(vm, 0, 0, 8 * SZ_1M, SZ_2M, HVA(0), -1, 0); /* [8M, 10M) */

	const struct slot_case cases[] = {
		{ "same range", 1, 8 * SZ_1M, SZ_2M, HVA(SZ_4M), EEXIST },
		{ "starts inside", 1, 9 * SZ_1M, SZ_2M, HVA(SZ_4M), EEXIST },
		{ "ends inside", 1, 7 * SZ_1M, SZ_2M, HVA(SZ_4M), EEXIST },
		{ "contains it", 1, 6 * SZ_1M, 3 * SZ_2M, HVA(SZ_4M), EEXIST },
		{ "inside it, one page", 1, 8 * SZ_1M + PAGE_SIZE, PAGE_SIZE, HVA(SZ_4M), EEXIST },
		{ "adjacent below", 1, 6 * SZ_1M, SZ_2M, HVA(SZ_4M), 0 },
		{ "adjacent above", 1, 10 * SZ_1M, SZ_2M, HVA(SZ_4M), 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct slot_case *c = &cases[i];
		int r = __set_region(vm, c->slot, 0, c->gpa, c->size, c->hva);
		int err = errno;
		if (c->want)
			kvm_test_errno(r, err, c->want, "rule 27: GPA %s -> EEXIST", c->what);
		else
			kvm_test_ok(r, err, "rule 27: GPA %s -> ok", c->what);
		if (r == 0)
			delete_slot(vm, c->slot);
	}

	if (nas > 1) {
		uint32_t slot = 1u << 16;
		if (KCHECK_OK(__set_region(vm, slot, 0, 8 * SZ_1M, SZ_2M, HVA(SZ_4M)),
			      "rule 27: same GPA in address space 1 -> ok"))
			delete_slot(vm, slot);
	} else {
		kvm_test_skip("rule 27: one address space, no cross-space overlap to check");
	}

	/* The overlap check comes before the bind (rule 32 relies on it). */
	KCHECK_ERRNO(__set_region2(vm, 1, KVM_MEM_GUEST_MEMFD, 9 * SZ_1M, SZ_2M, 0, -1, 0),
		     EEXIST, "rule 27: overlapping GUEST_MEMFD slot with guest_memfd -1 -> EEXIST");
	KCHECK_ERRNO(__set_region2(vm, 1, KVM_MEM_GUEST_MEMFD, 16 * SZ_1M, SZ_2M, 0, -1, 0),
		     EBADF, "rule 28: same on a free range -> EBADF");
	close(vm);
}
#define NR_OVERLAP_RESULTS (7 + 1 + 2)

/* ------------------------------------------------------ rule 28 bind */

static int bind(int vm, uint32_t slot, uint64_t gpa, uint64_t size, int gmem, uint64_t off)
{
	return __set_region2(vm, slot, KVM_MEM_GUEST_MEMFD, gpa, size, 0, gmem, off);
}

/* Offsets 1..4095 (rule 28, 31): each must be EINVAL; one result. */
static void check_unaligned_offsets(int vm, uint32_t slot, uint64_t gpa, int gmem,
				    const char *rule)
{
	uint64_t bad = 0;
	int r = 0, err = 0;
	for (uint64_t off = 1; off < PAGE_SIZE; off++) {
		r = bind(vm, slot, gpa, SZ_2M, gmem, off);
		err = errno;
		if (!(r == -1 && err == EINVAL)) {
			bad = off;
			break;
		}
	}
	if (bad) {
		ksft_print_msg("offset %llu: got %s", (unsigned long long)bad, strres(r, err));
		if (r == 0)
			delete_slot(vm, slot);
	}
	kvm_test(!bad, "%s: guest_memfd_offset 1..4095 -> EINVAL each", rule);
}

struct bind_case {
	const char *what;
	int *fd;
	uint64_t size, off, hva;
	uint32_t extra_flags;
	int want;
};

static int bcase_kvm, bcase_vm, bcase_memfd, bcase_null, bcase_other_gmem, bcase_gmem,
	bcase_badfd, bcase_minus1 = -1;

static void test_bind_errors(void)
{
	int vm = vm_create(KVM_X86_DEFAULT_VM);
	int vm2 = vm_create(KVM_X86_DEFAULT_VM);
	bcase_gmem = gmem_create(vm, SZ_4M, 0);
	bcase_other_gmem = gmem_create(vm2, SZ_4M, 0);
	bcase_kvm = kvm_fd;
	bcase_vm = vm;
	bcase_memfd = memfd_create("not-gmem", 0);
	TEST_ASSERT(bcase_memfd >= 0 && ftruncate(bcase_memfd, SZ_4M) == 0, "memfd");
	bcase_null = open("/dev/null", O_RDWR);
	TEST_ASSERT(bcase_null >= 0, "open /dev/null");
	bcase_badfd = unused_fd();

	const struct bind_case cases[] = {
		{ "guest_memfd -1", &bcase_minus1, SZ_2M, 0, 0, 0, EBADF },
		{ "guest_memfd not open", &bcase_badfd, SZ_2M, 0, 0, 0, EBADF },
		{ "guest_memfd = /dev/kvm fd", &bcase_kvm, SZ_2M, 0, 0, 0, EINVAL },
		{ "guest_memfd = VM fd", &bcase_vm, SZ_2M, 0, 0, 0, EINVAL },
		{ "guest_memfd = memfd_create fd", &bcase_memfd, SZ_2M, 0, 0, 0, EINVAL },
		{ "guest_memfd = /dev/null fd", &bcase_null, SZ_2M, 0, 0, 0, EINVAL },
		{ "gmem of another VM", &bcase_other_gmem, SZ_2M, 0, 0, 0, EINVAL },
		{ "offset = file size", &bcase_gmem, SZ_2M, SZ_4M, 0, 0, EINVAL },
		{ "offset + size > file size", &bcase_gmem, SZ_2M, 3 * SZ_1M, 0, 0, EINVAL },
		{ "size > file size", &bcase_gmem, 2 * SZ_4M, 0, 0, 0, EINVAL },
		{ "offset 2^63 (negative loff_t)", &bcase_gmem, SZ_2M, 1ull << 63, 0, 0, EINVAL },
		{ "offset 2^64-4K (offset + size wraps)", &bcase_gmem, SZ_2M, ~0ull << 12, 0, 0,
		  EINVAL },
		{ "userspace_addr +1", &bcase_gmem, SZ_2M, 0, HVA(1), 0, EINVAL },
		{ "flags GUEST_MEMFD|BIT(3)", &bcase_gmem, SZ_2M, 0, 0, BIT(3), EINVAL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct bind_case *c = &cases[i];
		int r = __set_region2(vm, 0, KVM_MEM_GUEST_MEMFD | c->extra_flags, 0, c->size,
				      c->hva, *c->fd, c->off);
		int err = errno;
		kvm_test_errno(r, err, c->want, "rule 28: bind %s -> %s", c->what,
			       strerrorname_np(c->want));
		if (r == 0)
			delete_slot(vm, 0);
	}
	check_unaligned_offsets(vm, 0, 0, bcase_gmem, "rule 28");
	/* The other VM's gmem is fine for that VM. */
	if (KCHECK_OK(bind(vm2, 0, 0, SZ_2M, bcase_other_gmem, 0),
		      "rule 28: the other VM binds its own gmem -> ok"))
		delete_slot(vm2, 0);

	close(bcase_null);
	close(bcase_memfd);
	close(bcase_other_gmem);
	close(bcase_gmem);
	close(vm2);
	close(vm);
}
#define NR_BIND_ERROR_RESULTS (14 + 1 + 1)

/*
 * Bindings of one file must not overlap (rule 28: EINVAL on 6.18), gmem
 * slots are immutable (rule 26) and deleting one frees its range.
 */
static void test_bind_ranges(void)
{
	int vm = vm_create(KVM_X86_DEFAULT_VM);
	int gmem = gmem_create(vm, SZ_4M, 0);
	const uint64_t gpa = 8 * SZ_1M;

	KCHECK_OK(bind(vm, 0, 0, SZ_2M, gmem, 0),
		  "rule 23: bind [0, 2M) with userspace_addr 0 -> ok");
	KCHECK_ERRNO(bind(vm, 1, gpa, SZ_2M, gmem, 0), EINVAL,
		     "rule 28: second slot on the same gmem range -> EINVAL (6.18)");
	KCHECK_ERRNO(bind(vm, 1, gpa, SZ_2M, gmem, SZ_1M), EINVAL,
		     "rule 28: second slot overlapping half of it -> EINVAL (6.18)");
	KCHECK_ERRNO(bind(vm, 1, gpa, SZ_2M, gmem, SZ_2M - PAGE_SIZE), EINVAL,
		     "rule 28: second slot overlapping one page -> EINVAL (6.18)");
	KCHECK_OK(bind(vm, 1, gpa, SZ_2M, gmem, SZ_2M),
		  "rule 28b: adjacent range [2M, 4M) of the same file -> ok");

	KCHECK_ERRNO(bind(vm, 0, 0, SZ_2M, gmem, 0), EINVAL,
		     "rule 26: gmem slot re-set identically -> EINVAL (immutable)");
	KCHECK_ERRNO(__set_region2(vm, 0, 0, 0, SZ_2M, 0, gmem, 0), EINVAL,
		     "rule 26: gmem slot without GUEST_MEMFD flag -> EINVAL");
	KCHECK_ERRNO(__set_region2(vm, 0, KVM_MEM_LOG_DIRTY_PAGES, 0, SZ_2M, 0, -1, 0), EINVAL,
		     "rule 26: gmem slot flags-only LOG_DIRTY_PAGES -> EINVAL");
	KCHECK_ERRNO(bind(vm, 0, 32 * SZ_1M, SZ_2M, gmem, 0), EINVAL,
		     "rule 26: gmem slot moved -> EINVAL");

	KCHECK_OK(__set_region2(vm, 0, 0, 0, 0, 0, -1, 0), "rule 25: delete gmem slot -> ok");
	KCHECK_OK(bind(vm, 2, 32 * SZ_1M, SZ_2M, gmem, 0),
		  "rule 28b: deleted slot's gmem range can be bound again -> ok");
	/* a live gmem slot 0 would answer EINVAL (immutable); a free id reaches the bind */
	KCHECK_ERRNO(bind(vm, 0, 0, SZ_2M, -1, 0), EBADF,
		     "rule 25: deleted slot id is free again (bind with -1 -> EBADF)");
	close(gmem);
	close(vm);
}
#define NR_BIND_RANGE_RESULTS 12

/* ------------------------------------------- rules 31 and 32 per type */

static void rule31(unsigned long type)
{
	const uint32_t slot = 10;
	const uint64_t gpa = 0xc0000000ull;
	int vm = vm_create(type);
	int vm2 = vm_create(type);
	int memfd = memfd_create("not-gmem", 0);
	TEST_ASSERT(memfd >= 0 && ftruncate(memfd, SZ_2M) == 0, "memfd");

	KCHECK_ERRNO(bind(vm, slot, gpa, SZ_2M, kvm_fd, 0), EINVAL,
		     "rule 31: type %lu guest_memfd = /dev/kvm fd -> EINVAL", type);
	KCHECK_ERRNO(bind(vm, slot, gpa, SZ_2M, vm, 0), EINVAL,
		     "rule 31: type %lu guest_memfd = VM fd -> EINVAL", type);
	KCHECK_ERRNO(bind(vm, slot, gpa, SZ_2M, memfd, 0), EINVAL,
		     "rule 31: type %lu guest_memfd = memfd -> EINVAL", type);
	close(memfd);

	int gmem2 = gmem_create(vm2, SZ_2M, 0);
	KCHECK_ERRNO(bind(vm, slot, gpa, SZ_2M, gmem2, 0), EINVAL,
		     "rule 31: type %lu gmem of VM2 -> EINVAL", type);
	KCHECK_OK(bind(vm2, slot, gpa, SZ_2M, gmem2, 0),
		  "rule 31: type %lu same gmem on VM2 -> ok", type);
	int c1 = close(gmem2), c2 = close(vm2);
	kvm_test(c1 == 0 && c2 == 0, "rule 31: type %lu close gmem (bound), then VM2 -> ok",
		 type);

	int gmem = gmem_create(vm, SZ_2M, 0);
	char rule[32];
	snprintf(rule, sizeof(rule), "rule 31: type %lu", type);
	check_unaligned_offsets(vm, slot, gpa, gmem, rule);
	KCHECK_OK(bind(vm, slot, gpa, SZ_2M, gmem, 0), "rule 31: type %lu offset 0 -> ok", type);
	c1 = close(gmem);
	c2 = close(vm);
	kvm_test(c1 == 0 && c2 == 0, "rule 31: type %lu close gmem with slot bound, then VM -> ok",
		 type);
}
#define NR_RULE31_RESULTS 9

static void rule32(unsigned long type)
{
	const uint64_t gpa10 = 0xc0000000ull, gpa11 = 0x180000000ull;
	int vm = vm_create(type);
	/* 5 x 2M so that offset 6M is refused for the overlap, not for EOF */
	int gmem = gmem_create(vm, 5 * SZ_2M, 0);

	KCHECK_OK(bind(vm, 10, gpa10, SZ_4M, gmem, 0), "rule 32: type %lu slot 10 off 0 -> ok",
		  type);
	KCHECK_OK(bind(vm, 11, gpa11, SZ_4M, gmem, SZ_4M),
		  "rule 32: type %lu slot 11 off 4M -> ok", type);
	KCHECK_OK(__set_region2(vm, 10, 0, 0, 0, 0, -1, 0),
		  "rule 32: type %lu delete slot 10 -> ok", type);
	KCHECK_ERRNO(bind(vm, 10, gpa10, SZ_4M, gmem, SZ_2M), EINVAL,
		     "rule 32: type %lu slot 10 off 2M overlaps slot 11 -> EINVAL (6.18)", type);
	KCHECK_ERRNO(bind(vm, 10, gpa10, SZ_4M, gmem, 6 * SZ_1M), EINVAL,
		     "rule 32: type %lu slot 10 off 6M overlaps slot 11 -> EINVAL (6.18)", type);
	KCHECK_ERRNO(bind(vm, 10, gpa11 - SZ_2M, SZ_4M, gmem, 0), EEXIST,
		     "rule 32: type %lu GPA overlap below slot 11 -> EEXIST", type);
	KCHECK_ERRNO(bind(vm, 10, gpa11 + SZ_2M, SZ_4M, gmem, 0), EEXIST,
		     "rule 32: type %lu GPA overlap inside slot 11 -> EEXIST", type);
	KCHECK_OK(bind(vm, 10, gpa10, SZ_4M, gmem, 0),
		  "rule 32: type %lu slot 10 back at off 0 -> ok", type);
	close(gmem);
	close(vm);
}
#define NR_RULE32_RESULTS 8

static void rule31_default(void) { rule31(KVM_X86_DEFAULT_VM); }
static void rule31_sw(void) { rule31(KVM_X86_SW_PROTECTED_VM); }
static void rule32_default(void) { rule32(KVM_X86_DEFAULT_VM); }
static void rule32_sw(void) { rule32(KVM_X86_SW_PROTECTED_VM); }

/* ------------------------------------------------- rule 30 max slots */

static void test_max_slots(void)
{
	int vm = vm_create(KVM_X86_DEFAULT_VM);
	long n = vm_check_cap(vm, KVM_CAP_NR_MEMSLOTS);
	TEST_ASSERT(n > 0, "KVM_CAP_NR_MEMSLOTS");
	/* one reservation, never touched: costs address space only */
	size_t len = (size_t)n * SZ_2M;
	char *m = map_anon(len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE);

	long slot;
	int r = 0, err = 0;
	for (slot = 0; slot < n; slot++) {
		r = __set_region(vm, (uint32_t)slot, 0, (uint64_t)slot * SZ_2M, SZ_2M,
				 (uint64_t)(uintptr_t)(m + slot * SZ_2M));
		err = errno;
		if (r)
			break;
	}
	if (slot < n)
		ksft_print_msg("slot %ld: got %s", slot, strres(r, err));
	kvm_test(slot == n, "rule 30: all %ld slots (2M each) -> ok", n);
	KCHECK_ERRNO(__set_region(vm, (uint32_t)n, 0, (uint64_t)n * SZ_2M, SZ_2M,
				  (uint64_t)(uintptr_t)m),
		     EINVAL, "rule 30: slot %ld -> EINVAL", n);
	close(vm);
	munmap(m, len);
}
#define NR_MAX_RESULTS 2

/* ------------------------------------------------------------ main */

static void test_leaks(void) { kvm_test_no_leaks("set_memory_region_test end"); }

static const struct kvm_section sections[] = {
	{ "flags", NR_FLAGS_RESULTS, NULL, test_flags },
	{ "alignment", NR_ALIGN_RESULTS, NULL, test_alignment },
	{ "ids and ranges", NR_ID_RESULTS, NULL, test_ids_and_ranges },
	{ "delete", NR_DELETE_RESULTS, NULL, test_delete },
	{ "modify v1", NR_MODIFY_RESULTS, NULL, test_modify_v1 },
	{ "modify v2", NR_MODIFY_RESULTS, NULL, test_modify_v2 },
	{ "overlap", NR_OVERLAP_RESULTS, NULL, test_overlap },
	{ "bind errors", NR_BIND_ERROR_RESULTS, NULL, test_bind_errors },
	{ "bind ranges", NR_BIND_RANGE_RESULTS, NULL, test_bind_ranges },
	{ "rule 31 default VM", NR_RULE31_RESULTS, NULL, rule31_default },
	{ "rule 31 SW_PROTECTED VM", NR_RULE31_RESULTS, need_sw_protected, rule31_sw },
	{ "rule 32 default VM", NR_RULE32_RESULTS, NULL, rule32_default },
	{ "rule 32 SW_PROTECTED VM", NR_RULE32_RESULTS, need_sw_protected, rule32_sw },
	{ "max slots", NR_MAX_RESULTS, NULL, test_max_slots },
	{ "leaks", 1, NULL, test_leaks },
};

int main(void)
{
	ksft_print_header();
	kvm_fd = kvm_open();
	TEST_REQUIRE(kvm_check_cap(KVM_CAP_USER_MEMORY2) > 0);
	TEST_REQUIRE(kvm_check_cap(KVM_CAP_GUEST_MEMFD) > 0);
	ksft_print_msg("backend: %s", kvm_backend_name());

	mem = map_anon(HVA_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE);

	kvm_run_sections(sections, sizeof(sections) / sizeof(sections[0]));

	munmap(mem, HVA_SIZE);
	close(kvm_fd);
	return ksft_finished();
}
