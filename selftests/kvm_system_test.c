// SPDX-License-Identifier: MIT
/*
 * The /dev/kvm system fd and what a fresh VM fd answers about itself:
 * API version, capabilities at system and VM scope (per VM type),
 * KVM_GET_VCPU_MMAP_SIZE, KVM_GET_SUPPORTED_CPUID sizing, KVM_CREATE_VM
 * types, fd flags and the errno of ioctls a given fd does not know.
 *
 * Rule ids: "B.x" = reference/kvm-uapi.md section, "rule N" / "D" =
 * reference/conformance.md. Values marked "6.18" were read from the real
 * kernel these tests are checked against.
 */
#include "kvm_util.h"
#include "mem_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define KVM_API_VERSION_EXPECTED 12
#define X86_USER_MEM_SLOTS 32764 /* KVM_USER_MEM_SLOTS on x86 */
#define GMEM_FLAGS_ALL (GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED)
#define KNOWN_VM_TYPES 0x3fu /* DEFAULT, SW_PROTECTED, SEV, SEV_ES, SNP, TDX */

static int kvm_fd;

/* ---------------------------------------------------------------- API */

static void test_api_version(void)
{
	KCHECK_EQ(ioctl(kvm_fd, KVM_GET_API_VERSION, 0), KVM_API_VERSION_EXPECTED,
		  "B.1: KVM_GET_API_VERSION = 12");
	/* The argument is reserved: anything but 0 is rejected (6.18). */
	KCHECK_ERRNO(ioctl(kvm_fd, KVM_GET_API_VERSION, 1), EINVAL,
		     "B.1: KVM_GET_API_VERSION(arg 1) -> EINVAL");
}

/* ------------------------------------------------------ system caps */

enum cap_match { CAP_EQ, CAP_HAS_BIT0 };

struct cap_case {
	long cap;
	const char *name;
	enum cap_match match;
	long want;
};

static const struct cap_case system_caps[] = {
	{ KVM_CAP_USER_MEMORY, "USER_MEMORY", CAP_EQ, 1 },
	{ KVM_CAP_USER_MEMORY2, "USER_MEMORY2", CAP_EQ, 1 },
	{ KVM_CAP_NR_MEMSLOTS, "NR_MEMSLOTS", CAP_EQ, X86_USER_MEM_SLOTS },
	{ KVM_CAP_IMMEDIATE_EXIT, "IMMEDIATE_EXIT", CAP_EQ, 1 },
	{ KVM_CAP_GUEST_MEMFD, "GUEST_MEMFD", CAP_EQ, 1 },
	/* system scope reports every flag any VM type may get */
	{ KVM_CAP_GUEST_MEMFD_FLAGS, "GUEST_MEMFD_FLAGS", CAP_EQ, GMEM_FLAGS_ALL },
	{ KVM_CAP_VM_TYPES, "VM_TYPES", CAP_HAS_BIT0, 0 },
	{ KVM_CAP_CHECK_EXTENSION_VM, "CHECK_EXTENSION_VM", CAP_EQ, 1 },
	/* unknown capabilities answer 0, never an error */
	{ 9999, "unknown 9999", CAP_EQ, 0 },
	{ 0x7fffffff, "unknown 0x7fffffff", CAP_EQ, 0 },
	{ -1, "unknown -1", CAP_EQ, 0 },
	/* the argument is a long: high bits are not truncated away */
	{ (1L << 32) | KVM_CAP_USER_MEMORY, "(1<<32)|USER_MEMORY", CAP_EQ, 0 },
};
#define NR_SYSTEM_CAPS (sizeof(system_caps) / sizeof(system_caps[0]))

static void check_cap(int fd, const char *scope, const struct cap_case *c)
{
	long r = ioctl(fd, KVM_CHECK_EXTENSION, c->cap);
	int err = errno;
	if (c->match == CAP_HAS_BIT0)
		kvm_test(r > 0 && (r & 1) && !(r & ~(long)KNOWN_VM_TYPES),
			 "B.4: %s CHECK_EXTENSION(%s) has bit 0, known types only (got %s)",
			 scope, c->name, strres(r, err));
	else
		kvm_test_eq(r, err, c->want, "B.4: %s CHECK_EXTENSION(%s) = %ld", scope,
			    c->name, c->want);
}

static void test_system_caps(void)
{
	for (size_t i = 0; i < NR_SYSTEM_CAPS; i++)
		check_cap(kvm_fd, "system", &system_caps[i]);
}

/*
 * KVM_CAP_MEMORY_ATTRIBUTES at system scope is every attribute the build
 * supports: PRIVATE when KVM_SET_MEMORY_ATTRIBUTES is built in, 0 when it
 * is not; and the ioctl exists iff the cap is non-zero (6.18 builds both
 * from CONFIG_KVM_GENERIC_MEMORY_ATTRIBUTES).
 */
static void test_memory_attributes_cap(void)
{
	long attrs = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MEMORY_ATTRIBUTES);
	kvm_test(attrs == 0 || attrs == KVM_MEMORY_ATTRIBUTE_PRIVATE,
		 "B.4: system CHECK_EXTENSION(MEMORY_ATTRIBUTES) is 0 or PRIVATE (got %ld)",
		 attrs);

	int vm = vm_create(KVM_X86_DEFAULT_VM);
	if (attrs == 0)
		KCHECK_ERRNO(__set_attributes(vm, 0, PAGE_SIZE, KVM_MEMORY_ATTRIBUTE_PRIVATE, 0),
			     ENOTTY, "B.4: MEMORY_ATTRIBUTES 0 -> KVM_SET_MEMORY_ATTRIBUTES "
				     "not built: ENOTTY");
	else
		KCHECK_ERRNO(__set_attributes(vm, 0, PAGE_SIZE, KVM_MEMORY_ATTRIBUTE_PRIVATE, 0),
			     EINVAL, "rule 35: default VM supports no attribute: PRIVATE -> "
				     "EINVAL");
	close(vm);

	if (!kvm_has_vm_type(KVM_X86_SW_PROTECTED_VM))
		kvm_test_skip("B.4: SW_PROTECTED not offered, no attribute requirement");
	else
		kvm_test_eq(attrs, 0, KVM_MEMORY_ATTRIBUTE_PRIVATE,
			    "B.4: SW_PROTECTED offered -> system MEMORY_ATTRIBUTES = PRIVATE");
}

/* --------------------------------------------------- vCPU mmap size */

static void test_vcpu_mmap_size(void)
{
	long r = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	int err = errno;
	/* kvm_run page plus arch pages; 12288 on 6.18 x86 (PIO + coalesced MMIO) */
	if (!kvm_test(r >= (long)PAGE_SIZE && r % PAGE_SIZE == 0,
		      "C.1: KVM_GET_VCPU_MMAP_SIZE >= 4096, page multiple"))
		ksft_print_msg("got %s", strres(r, err));
	KCHECK_ERRNO(ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 1), EINVAL,
		     "C.1: KVM_GET_VCPU_MMAP_SIZE(arg 1) -> EINVAL");
}

/* ------------------------------------------------ supported CPUID */

static struct kvm_cpuid2 *cpuid_alloc(unsigned int nent)
{
	size_t sz = sizeof(struct kvm_cpuid2) + nent * sizeof(struct kvm_cpuid_entry2);
	struct kvm_cpuid2 *c = malloc(sz);
	TEST_ASSERT(c, "malloc");
	memset(c, 0xa5, sz); /* a pattern the kernel never writes back by accident */
	c->nent = nent;
	c->padding = 0;
	return c;
}

static bool entries_untouched(const struct kvm_cpuid2 *c, unsigned int n)
{
	return bytes_are((const uint8_t *)c->entries, n * sizeof(struct kvm_cpuid_entry2), 0xa5);
}

static bool has_leaf(const struct kvm_cpuid2 *c, uint32_t fn)
{
	for (unsigned int i = 0; i < c->nent; i++)
		if (c->entries[i].function == fn)
			return true;
	return false;
}

/* Number of entries the system reports, asserted to be sane. */
static unsigned int cpuid_count(void)
{
	struct kvm_cpuid2 *c = cpuid_alloc(KVM_MAX_CPUID_ENTRIES);
	int r = ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c);
	TEST_ASSERT(r == 0, "KVM_GET_SUPPORTED_CPUID with 256 entries");
	unsigned int n = c->nent;
	free(c);
	return n;
}

/* A too-small nent fails with E2BIG and leaves nent and the array alone. */
static void check_cpuid_too_small(unsigned int nent, unsigned int n)
{
	struct kvm_cpuid2 *c = cpuid_alloc(nent);
	long r = ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c);
	int err = errno;
	bool pass = r == -1 && err == E2BIG && c->nent == nent && entries_untouched(c, nent);
	if (!pass)
		ksft_print_msg("got %s, nent %u", strres(r, err), c->nent);
	kvm_test(pass, "C.1: GET_SUPPORTED_CPUID nent %u (< %u) -> E2BIG, nent and entries "
		       "unchanged", nent, n);
	free(c);
}

static void check_cpuid_fits(unsigned int nent, unsigned int n)
{
	struct kvm_cpuid2 *c = cpuid_alloc(nent);
	long r = ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c);
	int err = errno;
	bool pass = r == 0 && c->nent == n && has_leaf(c, 0) && has_leaf(c, 0x80000008);
	if (!pass)
		ksft_print_msg("got %s, nent %u", strres(r, err), c->nent);
	kvm_test(pass, "C.1: GET_SUPPORTED_CPUID nent %u -> 0, nent = %u, has leaves 0 and "
		       "0x80000008", nent, n);
	free(c);
}

static void test_supported_cpuid(void)
{
	unsigned int n = cpuid_count();
	kvm_test(n > 0 && n <= KVM_MAX_CPUID_ENTRIES, "C.1: GET_SUPPORTED_CPUID reports 1..256 "
		 "entries (got %u)", n);
	if (n < 2)
		n = 2; /* keeps the cases below meaningful even after a failure */

	check_cpuid_too_small(0, n);
	check_cpuid_too_small(1, n);
	check_cpuid_too_small(n - 1, n);
	check_cpuid_fits(n, n);
	/* more than KVM_MAX_CPUID_ENTRIES is clamped, not rejected */
	check_cpuid_fits(1000, n);

	/* padding is not checked */
	struct kvm_cpuid2 *c = cpuid_alloc(n);
	c->padding = 0x5a5a;
	KCHECK_EQ(ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c), 0,
		  "C.1: GET_SUPPORTED_CPUID ignores kvm_cpuid2.padding");
	free(c);
}

/* --------------------------------------------------------- VM types */

static void test_create_vm_types(void)
{
	long types = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_VM_TYPES);
	if (types <= 0)
		types = 1; /* no VM_TYPES cap: only the default type */

	for (unsigned long t = 0; t < 32; t++) {
		long fd = ioctl(kvm_fd, KVM_CREATE_VM, t);
		int err = errno;
		if (types & (1L << t))
			kvm_test_ok(fd, err, "rule 6: KVM_CREATE_VM(%lu) offered -> fd", t);
		else
			kvm_test_errno(fd, err, EINVAL,
				       "B.6: KVM_CREATE_VM(%lu) not in VM_TYPES -> EINVAL", t);
		if (fd >= 0)
			close(fd);
	}

	static const unsigned long garbage[] = { 32, 0x100, 1ul << 32, 0x80000000ul, ~0ul };
	for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
		long fd = ioctl(kvm_fd, KVM_CREATE_VM, garbage[i]);
		int err = errno;
		kvm_test_errno(fd, err, EINVAL, "B.6: KVM_CREATE_VM(%#lx) -> EINVAL", garbage[i]);
		if (fd >= 0)
			close(fd);
	}
}
#define NR_CREATE_VM_RESULTS (32 + 5)

static void test_vm_fd_flags(void)
{
	int vm = vm_create(KVM_X86_DEFAULT_VM);
	int fdfl = fcntl(vm, F_GETFD);
	kvm_test(fdfl >= 0 && (fdfl & FD_CLOEXEC), "D: VM fd is O_CLOEXEC (F_GETFD %#x)", fdfl);
	int fl = fcntl(vm, F_GETFL);
	kvm_test(fl >= 0 && (fl & O_ACCMODE) == O_RDWR, "D: VM fd is O_RDWR (F_GETFL %#x)", fl);
	close(vm);
}

static void test_gmem_on_system_fd(void)
{
	struct kvm_create_guest_memfd args = { .size = PAGE_SIZE };
	int before = kvm_lowest_free_fd();
	long r = ioctl(kvm_fd, KVM_CREATE_GUEST_MEMFD, &args);
	int err = errno;
	kvm_test_errno(r, err, EINVAL, "D: KVM_CREATE_GUEST_MEMFD on /dev/kvm -> EINVAL");
	if (r >= 0)
		close(r);
	kvm_test(kvm_lowest_free_fd() == before, "D: failed KVM_CREATE_GUEST_MEMFD creates no fd");
}

/* ----------------------------------------------- per VM-type caps */

/* What every VM type answers on its own fd, whatever it is. */
static const struct cap_case vm_common_caps[] = {
	{ KVM_CAP_USER_MEMORY2, "USER_MEMORY2", CAP_EQ, 1 },
	{ KVM_CAP_NR_MEMSLOTS, "NR_MEMSLOTS", CAP_EQ, X86_USER_MEM_SLOTS },
	{ KVM_CAP_GUEST_MEMFD, "GUEST_MEMFD", CAP_EQ, 1 },
	{ KVM_CAP_CHECK_EXTENSION_VM, "CHECK_EXTENSION_VM", CAP_EQ, 1 },
	{ KVM_CAP_VM_TYPES, "VM_TYPES", CAP_HAS_BIT0, 0 },
	{ 9999, "unknown 9999", CAP_EQ, 0 },
};
#define NR_VM_COMMON_CAPS (sizeof(vm_common_caps) / sizeof(vm_common_caps[0]))

/*
 * Default VM: no private-memory tracking, so gmem can be mmap'ed and start
 * shared (MMAP|INIT_SHARED) and no attribute is supported.
 */
static const struct cap_case vm_default_caps[] = {
	{ KVM_CAP_GUEST_MEMFD_FLAGS, "GUEST_MEMFD_FLAGS", CAP_EQ, GMEM_FLAGS_ALL },
	{ KVM_CAP_MEMORY_ATTRIBUTES, "MEMORY_ATTRIBUTES", CAP_EQ, 0 },
};

/* SW_PROTECTED: private memory tracking, so MMAP only and PRIVATE attribute. */
static const struct cap_case vm_sw_caps[] = {
	{ KVM_CAP_GUEST_MEMFD_FLAGS, "GUEST_MEMFD_FLAGS", CAP_EQ, GUEST_MEMFD_FLAG_MMAP },
	{ KVM_CAP_MEMORY_ATTRIBUTES, "MEMORY_ATTRIBUTES", CAP_EQ, KVM_MEMORY_ATTRIBUTE_PRIVATE },
};
#define NR_VM_TYPE_CAPS 2

static void check_vm_caps(unsigned long type, const char *name, const struct cap_case *own)
{
	int vm = vm_create(type);
	char scope[64];
	snprintf(scope, sizeof(scope), "%s VM", name);
	for (size_t i = 0; i < NR_VM_COMMON_CAPS; i++)
		check_cap(vm, scope, &vm_common_caps[i]);
	for (size_t i = 0; i < NR_VM_TYPE_CAPS; i++)
		check_cap(vm, scope, &own[i]);
	close(vm);
}

static void test_default_vm_caps(void)
{
	check_vm_caps(KVM_X86_DEFAULT_VM, "default", vm_default_caps);
}

static void test_sw_protected_vm_caps(void)
{
	check_vm_caps(KVM_X86_SW_PROTECTED_VM, "SW_PROTECTED", vm_sw_caps);
}

/* ----------------------------------------------- unknown ioctls */

/*
 * Numbers /dev/kvm does not handle: the system fd falls through to the
 * arch handler, which answers EINVAL (6.18), for foreign numbers as well
 * as for VM and vCPU ioctls and for a known number with a wrong size.
 */
static const struct ioctl_case not_system_ioctls[] = {
	IOCTL_CASES_FOREIGN,
	{ KVM_RUN, "KVM_RUN (vCPU ioctl)" },
	{ KVM_CREATE_VCPU, "KVM_CREATE_VCPU (VM ioctl)" },
	{ KVM_SET_USER_MEMORY_REGION, "KVM_SET_USER_MEMORY_REGION (VM ioctl)" },
	{ _IOW(KVMIO, 0x46, int), "_IOW(KVMIO, 0x46, int) (wrong size)" },
};
#define NR_NOT_SYSTEM ARRAY_SIZE(not_system_ioctls)

/* The VM fd answers ENOTTY for what neither generic nor arch code knows. */
static const struct ioctl_case not_vm_ioctls[] = {
	IOCTL_CASES_FOREIGN,
	IOCTL_CASES_SYSTEM,
	{ KVM_GET_SUPPORTED_CPUID, "KVM_GET_SUPPORTED_CPUID (system ioctl)" },
	{ KVM_RUN, "KVM_RUN (vCPU ioctl)" },
	{ _IOW(KVMIO, 0x46, int), "_IOW(KVMIO, 0x46, int) (wrong size)" },
};
#define NR_NOT_VM ARRAY_SIZE(not_vm_ioctls)

static void test_unknown_ioctls(void)
{
	for (size_t i = 0; i < NR_NOT_SYSTEM; i++)
		KCHECK_ERRNO(ioctl(kvm_fd, not_system_ioctls[i].nr, 0), EINVAL,
			     "D: /dev/kvm %s -> EINVAL", not_system_ioctls[i].name);

	int vm = vm_create(KVM_X86_DEFAULT_VM);
	for (size_t i = 0; i < NR_NOT_VM; i++)
		KCHECK_ERRNO(ioctl(vm, not_vm_ioctls[i].nr, 0), ENOTTY,
			     "D: VM fd %s -> ENOTTY", not_vm_ioctls[i].name);
	close(vm);
}

/* ------------------------------------------------------------ main */

static void test_leaks(void) { kvm_test_no_leaks("kvm_system_test end"); }

static const struct kvm_section sections[] = {
	{ "api version", 2, NULL, test_api_version },
	{ "system caps", NR_SYSTEM_CAPS, NULL, test_system_caps },
	{ "memory attributes cap", 3, NULL, test_memory_attributes_cap },
	{ "vcpu mmap size", 2, NULL, test_vcpu_mmap_size },
	{ "supported cpuid", 7, NULL, test_supported_cpuid },
	{ "create vm types", NR_CREATE_VM_RESULTS, NULL, test_create_vm_types },
	{ "vm fd flags", 2, NULL, test_vm_fd_flags },
	{ "gmem on /dev/kvm", 2, NULL, test_gmem_on_system_fd },
	{ "default VM caps", NR_VM_COMMON_CAPS + NR_VM_TYPE_CAPS, NULL, test_default_vm_caps },
	{ "SW_PROTECTED VM caps", NR_VM_COMMON_CAPS + NR_VM_TYPE_CAPS, need_sw_protected,
	  test_sw_protected_vm_caps },
	{ "unknown ioctls", NR_NOT_SYSTEM + NR_NOT_VM, NULL, test_unknown_ioctls },
	{ "leaks", 1, NULL, test_leaks },
};

int main(void)
{
	ksft_print_header();
	kvm_fd = kvm_open();
	ksft_print_msg("backend: %s", kvm_backend_name());
	kvm_run_sections(sections, sizeof(sections) / sizeof(sections[0]));
	close(kvm_fd);
	return ksft_finished();
}
