// SPDX-License-Identifier: MIT
/*
 * KVM_SET_MEMORY_ATTRIBUTES (reference/conformance.md rules 35-36) on a
 * KVM_X86_SW_PROTECTED_VM, and what a default VM answers when the ioctl is
 * built in but the VM supports no attribute.
 *
 * The checks follow upstream's kvm_vm_ioctl_set_mem_attributes order:
 * flags, then attributes & ~supported, then size 0 / wrap, then alignment,
 * then "range already has these attributes" (a no-op success). There is no
 * query ioctl, so only the ioctl's own answers are observable here.
 *
 * Without SW_PROTECTED in KVM_CAP_VM_TYPES the whole program SKIPs (the 6.18
 * kernel these tests are checked against offers type 0 only).
 */
#include "kvm_util.h"
#include "mem_util.h"

#include <errno.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define SZ_4G (4ull << 30)
#define PRIVATE KVM_MEMORY_ATTRIBUTE_PRIVATE

static int sw_vm; /* a SW_PROTECTED VM, shared by the sections */

/* ------------------------------------------------------------ caps */

static void test_caps(void)
{
	KCHECK_EQ(kvm_check_cap(KVM_CAP_MEMORY_ATTRIBUTES), PRIVATE,
		  "B.4: system MEMORY_ATTRIBUTES = PRIVATE");
	KCHECK_EQ(vm_check_cap(sw_vm, KVM_CAP_MEMORY_ATTRIBUTES), PRIVATE,
		  "B.4: SW_PROTECTED VM MEMORY_ATTRIBUTES = PRIVATE");
}

/* --------------------------------------------------- flags, attrs */

/*
 * Each of the 64 bits of `field` ("flags" or "attributes") alone, except
 * the allowed ones, must be EINVAL: one result for the whole sweep.
 */
static void sweep_bits(bool flags_field, uint64_t allowed, uint64_t attrs, const char *what)
{
	int bad_bit = -1, r = 0, err = 0;
	for (int bit = 0; bit < 64; bit++) {
		uint64_t v = 1ull << bit;
		if (v & allowed)
			continue;
		r = flags_field ? __set_attributes(sw_vm, 0, PAGE_SIZE, attrs, v)
				: __set_attributes(sw_vm, 0, PAGE_SIZE, v, 0);
		err = errno;
		if (!(r == -1 && err == EINVAL)) {
			bad_bit = bit;
			break;
		}
	}
	if (bad_bit >= 0)
		ksft_print_msg("bit %d: got %s", bad_bit, strres(r, err));
	kvm_test(bad_bit < 0, "rule 35: %s -> EINVAL for each bit", what);
}

static void test_flags_and_bits(void)
{
	sweep_bits(true, 0, PRIVATE, "flags (attributes PRIVATE)");
	sweep_bits(true, 0, 0, "flags (attributes 0)");
	sweep_bits(false, PRIVATE, 0, "attributes other than PRIVATE");
	KCHECK_ERRNO(__set_attributes(sw_vm, 0, PAGE_SIZE, PRIVATE | 1, 0), EINVAL,
		     "rule 35: attributes PRIVATE|BIT(0) -> EINVAL");
	KCHECK_OK(__set_attributes(sw_vm, 0, PAGE_SIZE, PRIVATE, 0),
		  "rule 35: attributes PRIVATE on one page -> ok");
	KCHECK_OK(__set_attributes(sw_vm, 0, PAGE_SIZE, 0, 0),
		  "rule 35: attributes 0 on the same page -> ok");
}

/* ---------------------------------------------------- size, address */

struct range_case {
	const char *what;
	uint64_t address, size;
};

static const struct range_case bad_ranges[] = {
	{ "size 0", 0, 0 },
	{ "address 2^64-4K, size 2 pages (wraps)", ~0ull << 12, 2 * PAGE_SIZE },
	{ "address 2^64-4K, size 1 page (end wraps to 0)", ~0ull << 12, PAGE_SIZE },
	{ "address 1", 1, PAGE_SIZE },
	{ "address 4095", PAGE_SIZE - 1, PAGE_SIZE },
	{ "size 1", 0, 1 },
	{ "size 4095", 0, PAGE_SIZE - 1 },
	{ "size 4097", 0, PAGE_SIZE + 1 },
};
#define NR_BAD_RANGES (sizeof(bad_ranges) / sizeof(bad_ranges[0]))

static void test_bad_ranges(void)
{
	for (size_t i = 0; i < NR_BAD_RANGES; i++)
		KCHECK_ERRNO(__set_attributes(sw_vm, bad_ranges[i].address, bad_ranges[i].size,
					      PRIVATE, 0),
			     EINVAL, "rule 35: %s -> EINVAL", bad_ranges[i].what);
}

/* ------------------------------------------------ rule 36 semantics */

static void test_no_memslots_needed(void)
{
	/* The VM has no memslot at all yet. */
	KCHECK_OK(__set_attributes(sw_vm, SZ_4G, SZ_2M, PRIVATE, 0),
		  "rule 36: PRIVATE on [4G, 4G+2M) without any memslot -> ok");
	KCHECK_OK(__set_attributes(sw_vm, SZ_4G, SZ_2M, PRIVATE, 0),
		  "rule 36: same value again -> ok (no-op)");
	KCHECK_OK(__set_attributes(sw_vm, SZ_4G, SZ_2M, 0, 0), "rule 36: back to shared -> ok");
	KCHECK_OK(__set_attributes(sw_vm, SZ_4G, SZ_2M, 0, 0),
		  "rule 36: shared again -> ok (no-op)");
	KCHECK_OK(__set_attributes(sw_vm, 64 * SZ_4G, SZ_2M, 0, 0),
		  "rule 36: shared on a never-set range -> ok");
	/* attributes are indexed by GFN alone: no memslot, no MAXPHYADDR check */
	KCHECK_OK(__set_attributes(sw_vm, 1ull << 46, SZ_2M, PRIVATE, 0),
		  "rule 36: PRIVATE at GPA 2^46, far from any memslot -> ok");
}

static void test_mixed_ranges(void)
{
	KCHECK_OK(__set_attributes(sw_vm, 0, 4 * SZ_1M, PRIVATE, 0),
		  "rule 36: PRIVATE on [0, 4M) -> ok");
	KCHECK_OK(__set_attributes(sw_vm, SZ_1M, SZ_1M, 0, 0),
		  "rule 36: shared hole [1M, 2M) inside it -> ok");
	KCHECK_OK(__set_attributes(sw_vm, 0, 4 * SZ_1M, PRIVATE, 0),
		  "rule 36: PRIVATE over the mixed range [0, 4M) -> ok");
	KCHECK_OK(__set_attributes(sw_vm, 0, 4 * SZ_1M, 0, 0),
		  "rule 36: shared over [0, 4M) -> ok");
}

/*
 * Attributes live beside the memslots: a range covering a normal slot, a
 * gmem slot and a hole can be converted, and the slots can be deleted and
 * re-created while the attributes are set.
 */
static void test_with_memslots(void)
{
	char *mem = map_anon(SZ_2M, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE);
	uint64_t hva = (uint64_t)(uintptr_t)mem;
	int gmem = gmem_create(sw_vm, SZ_2M, 0);
	const uint64_t base = 16 * SZ_1M;

	set_region2(sw_vm, 1, 0, base, SZ_2M, hva, -1, 0);
	set_region2(sw_vm, 2, KVM_MEM_GUEST_MEMFD, base + SZ_2M, SZ_2M, hva, gmem, 0);

	KCHECK_OK(__set_attributes(sw_vm, base - SZ_2M, 4 * SZ_2M, PRIVATE, 0),
		  "rule 36: PRIVATE over hole + normal slot + gmem slot + hole -> ok");
	KCHECK_OK(__set_region2(sw_vm, 2, 0, 0, 0, 0, -1, 0),
		  "rule 36: delete gmem slot with PRIVATE attributes -> ok");
	KCHECK_OK(__set_region2(sw_vm, 2, KVM_MEM_GUEST_MEMFD, base + SZ_2M, SZ_2M, hva, gmem, 0),
		  "rule 36: re-create it over the PRIVATE range -> ok");
	KCHECK_OK(__set_attributes(sw_vm, base - SZ_2M, 4 * SZ_2M, 0, 0),
		  "rule 36: shared over the same range -> ok");

	__set_region2(sw_vm, 2, 0, 0, 0, 0, -1, 0);
	__set_region2(sw_vm, 1, 0, 0, 0, 0, -1, 0);
	close(gmem);
	munmap(mem, SZ_2M);
}

/* ------------------------------------------------------ default VM */

/*
 * A default VM supports no attribute (kvm_supported_mem_attributes = 0):
 * any non-zero attribute is EINVAL, while attributes 0 on a valid range
 * passes every check and is a no-op success.
 */
static void test_default_vm(void)
{
	int vm = vm_create(KVM_X86_DEFAULT_VM);
	KCHECK_EQ(vm_check_cap(vm, KVM_CAP_MEMORY_ATTRIBUTES), 0,
		  "B.4: default VM MEMORY_ATTRIBUTES = 0");
	KCHECK_ERRNO(__set_attributes(vm, 0, PAGE_SIZE, PRIVATE, 0), EINVAL,
		     "rule 35: default VM attributes PRIVATE -> EINVAL");
	KCHECK_OK(__set_attributes(vm, 0, PAGE_SIZE, 0, 0),
		  "rule 35: default VM attributes 0 on a valid range -> ok (no-op)");
	KCHECK_ERRNO(__set_attributes(vm, 0, PAGE_SIZE, 0, 1), EINVAL,
		     "rule 35: default VM flags 1 -> EINVAL");
	KCHECK_ERRNO(__set_attributes(vm, 0, 0, 0, 0), EINVAL,
		     "rule 35: default VM size 0 -> EINVAL");
	KCHECK_ERRNO(__set_attributes(vm, 1, PAGE_SIZE, 0, 0), EINVAL,
		     "rule 35: default VM address 1 -> EINVAL");
	close(vm);
}

/* ------------------------------------------------------------ main */

static void test_leaks(void)
{
	close(sw_vm);
	sw_vm = -1;
	kvm_test_no_leaks("memory_attributes_test end");
}

static const struct kvm_section sections[] = {
	{ "caps", 2, NULL, test_caps },
	{ "flags and attribute bits", 6, NULL, test_flags_and_bits },
	{ "bad ranges", NR_BAD_RANGES, NULL, test_bad_ranges },
	{ "no memslots needed", 6, NULL, test_no_memslots_needed },
	{ "mixed ranges", 4, NULL, test_mixed_ranges },
	{ "with memslots", 4, NULL, test_with_memslots },
	{ "default VM", 6, NULL, test_default_vm },
	{ "leaks", 1, NULL, test_leaks },
};

int main(void)
{
	ksft_print_header();
	kvm_require_dev();
	if (!kvm_has_vm_type(KVM_X86_SW_PROTECTED_VM))
		ksft_exit_skip("KVM_X86_SW_PROTECTED_VM not in KVM_CAP_VM_TYPES (rules 35-36 "
			       "need a VM with private memory)");
	sw_vm = vm_create(KVM_X86_SW_PROTECTED_VM);
	return kvm_sections_main(sections, ARRAY_SIZE(sections));
}
