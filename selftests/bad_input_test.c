// SPDX-License-Identifier: MIT
/*
 * Invalid input to every ioctl of the system/VM/memslot/attribute surface:
 * argument pointers that are NULL, unmapped, PROT_NONE or straddle into an
 * unmapped page (EFAULT), pointers that are merely odd or read-only (valid),
 * single flag bits, bad sizes and offsets, and fds of the wrong kind.
 * After each table the objects must still work and nothing may have leaked:
 * no fd was allocated by a failed call, and under kvmlike the number of live
 * objects is unchanged (the leak oracle), and zero at the end.
 *
 * Rule ids: "rule N" / "D" = reference/conformance.md, "B.x" / "C.1" =
 * reference/kvm-uapi.md. Expected errnos are those of the 6.18 kernel.
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

static int kvm_fd, vm_fd, attr_vm_fd = -1;
static char *slot_mem; /* backs the normal slots created here */
static unsigned int cpuid_n;

/* Object-count snapshot: fds and (under kvmlike) live objects. */
struct snapshot {
	int lowest_fd;
	long live;
};

static struct snapshot snap(void)
{
	return (struct snapshot){ kvm_lowest_free_fd(), kvmlike_live_objects(false) };
}

static bool same_snapshot(struct snapshot a, const char *what)
{
	struct snapshot b = snap();
	if (a.lowest_fd != b.lowest_fd || a.live != b.live)
		ksft_print_msg("%s: lowest free fd %d -> %d, live objects %ld -> %ld", what,
			       a.lowest_fd, b.lowest_fd, a.live, b.live);
	return a.lowest_fd == b.lowest_fd && a.live == b.live;
}

/* -------------------------------------- ioctls taking a struct pointer */

struct struct_ioctl {
	const char *name;
	const char *rule;
	int *fd;
	unsigned long nr;
	size_t size;
	bool copies_back;                       /* writes the struct back: read-only -> EFAULT */
	void (*fill)(void *buf);                /* a valid argument */
	bool (*after_success)(long ret, void *arg); /* undo and check the result */
	bool (*still_works)(void);               /* after the table */
};

static void fill_cgm(void *buf)
{
	struct kvm_create_guest_memfd *c = buf;
	memset(c, 0, sizeof(*c));
	c->size = PAGE_SIZE;
}

static bool undo_cgm(long ret, void *arg)
{
	(void)arg;
	return close((int)ret) == 0;
}

static bool cgm_works(void)
{
	int fd = __gmem_create(vm_fd, PAGE_SIZE, 0);
	return fd >= 0 && close(fd) == 0;
}

static void fill_region(void *buf)
{
	struct kvm_userspace_memory_region *r = buf;
	memset(r, 0, sizeof(*r));
	r->memory_size = PAGE_SIZE;
	r->userspace_addr = (uint64_t)(uintptr_t)slot_mem;
}

static void fill_region2(void *buf)
{
	struct kvm_userspace_memory_region2 *r = buf;
	memset(r, 0, sizeof(*r));
	r->memory_size = PAGE_SIZE;
	r->userspace_addr = (uint64_t)(uintptr_t)slot_mem;
	r->guest_memfd = (uint32_t)-1;
}

static bool delete_slot0(void) { return __set_region2(vm_fd, 0, 0, 0, 0, 0, -1, 0) == 0; }

static bool undo_region(long ret, void *arg)
{
	(void)arg;
	return ret == 0 && delete_slot0();
}

/* Slot 0 was not left behind by any failure, and can be created and deleted. */
static bool region_works(void)
{
	bool absent = __set_region2(vm_fd, 0, 0, 0, 0, 0, -1, 0) == -1 && errno == EINVAL;
	return absent && __set_region(vm_fd, 0, 0, 0, PAGE_SIZE, (uintptr_t)slot_mem) == 0 &&
	       delete_slot0();
}

static uint64_t attr_value(void)
{
	/* PRIVATE where a VM supports it, else 0 (a valid no-op on any VM) */
	return vm_check_cap(attr_vm_fd, KVM_CAP_MEMORY_ATTRIBUTES) > 0
		       ? KVM_MEMORY_ATTRIBUTE_PRIVATE
		       : 0;
}

static void fill_attr(void *buf)
{
	struct kvm_memory_attributes *a = buf;
	memset(a, 0, sizeof(*a));
	a->size = PAGE_SIZE;
	a->attributes = attr_value();
}

static bool undo_attr(long ret, void *arg)
{
	(void)arg;
	return ret == 0 && __set_attributes(attr_vm_fd, 0, PAGE_SIZE, 0, 0) == 0;
}

static bool attr_works(void)
{
	return __set_attributes(attr_vm_fd, 0, PAGE_SIZE, attr_value(), 0) == 0 &&
	       __set_attributes(attr_vm_fd, 0, PAGE_SIZE, 0, 0) == 0;
}

static void fill_cpuid(void *buf)
{
	struct kvm_cpuid2 *c = buf;
	memset(c, 0, sizeof(*c) + cpuid_n * sizeof(struct kvm_cpuid_entry2));
	c->nent = cpuid_n;
}

static bool check_cpuid(long ret, void *arg)
{
	uint32_t nent; /* arg may be deliberately misaligned: copy, do not dereference */
	memcpy(&nent, arg, sizeof(nent));
	return ret == 0 && nent == cpuid_n;
}

static bool cpuid_works(void)
{
	size_t len = sizeof(struct kvm_cpuid2) + cpuid_n * sizeof(struct kvm_cpuid_entry2);
	struct kvm_cpuid2 *c = calloc(1, len);
	TEST_ASSERT(c, "calloc");
	c->nent = cpuid_n;
	bool ok = ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0 && c->nent == cpuid_n;
	free(c);
	return ok;
}

static struct struct_ioctl struct_ioctls[] = {
	{ "KVM_CREATE_GUEST_MEMFD", "D", &vm_fd, KVM_CREATE_GUEST_MEMFD,
	  sizeof(struct kvm_create_guest_memfd), false, fill_cgm, undo_cgm, cgm_works },
	{ "KVM_SET_USER_MEMORY_REGION", "rule 22", &vm_fd, KVM_SET_USER_MEMORY_REGION,
	  sizeof(struct kvm_userspace_memory_region), false, fill_region, undo_region,
	  region_works },
	{ "KVM_SET_USER_MEMORY_REGION2", "rule 23", &vm_fd, KVM_SET_USER_MEMORY_REGION2,
	  sizeof(struct kvm_userspace_memory_region2), false, fill_region2, undo_region,
	  region_works },
	{ "KVM_GET_SUPPORTED_CPUID", "C.1", &kvm_fd, KVM_GET_SUPPORTED_CPUID, 0 /* set in main */,
	  true, fill_cpuid, check_cpuid, cpuid_works },
	{ "KVM_SET_MEMORY_ATTRIBUTES", "rule 35", &attr_vm_fd, KVM_SET_MEMORY_ATTRIBUTES,
	  sizeof(struct kvm_memory_attributes), false, fill_attr, undo_attr, attr_works },
};
enum { IO_CGM, IO_REGION, IO_REGION2, IO_CPUID, IO_ATTR };

static void run_pointer_table(const struct struct_ioctl *io)
{
	unsigned char *tmpl = calloc(1, io->size);
	TEST_ASSERT(tmpl, "calloc");
	io->fill(tmpl);
	struct snapshot before = snap();

	for (int k = 0; k < NR_PTR_KINDS; k++) {
		struct placed pl = place_arg(k, tmpl, io->size);
		long r = ioctl(*io->fd, io->nr, pl.arg);
		int err = errno;
		if (!ptr_kind_valid(k, io->copies_back)) {
			kvm_test_errno(r, err, EFAULT, "%s: %s with %s -> EFAULT", io->rule, io->name,
				       ptr_kind_name[k]);
			if (r >= 0)
				io->after_success(r, pl.arg);
		} else {
			bool ok = r >= 0 && io->after_success(r, pl.arg);
			if (!ok)
				ksft_print_msg("got %s", strres(r, err));
			kvm_test(ok, "%s: %s with %s -> valid", io->rule, io->name, ptr_kind_name[k]);
		}
		release_arg(&pl);
	}
	kvm_test(io->still_works() && same_snapshot(before, io->name),
		 "%s: %s still works after bad pointers, no fd/object leaked", io->rule, io->name);
	free(tmpl);
}
#define NR_POINTER_RESULTS (NR_PTR_KINDS + 1)

static void test_ptr_cgm(void) { run_pointer_table(&struct_ioctls[IO_CGM]); }
static void test_ptr_region(void) { run_pointer_table(&struct_ioctls[IO_REGION]); }
static void test_ptr_region2(void) { run_pointer_table(&struct_ioctls[IO_REGION2]); }
static void test_ptr_cpuid(void) { run_pointer_table(&struct_ioctls[IO_CPUID]); }
static void test_ptr_attr(void) { run_pointer_table(&struct_ioctls[IO_ATTR]); }

static const char *need_attributes(void)
{
	return attr_vm_fd >= 0 ? NULL : "KVM_SET_MEMORY_ATTRIBUTES not built (CAP 0)";
}

/* ----------------------------------------- GET_SUPPORTED_CPUID sizing */

/*
 * Checks happen in this order (6.18): nent < 1 or too small -> E2BIG before
 * the entry array is touched; entries are written before the header, so a
 * read-only header still fails with EFAULT; nent above 256 is clamped.
 */
static struct kvm_cpuid2 *cpuid_at_guard(size_t entries_mapped, uint32_t nent, void **map,
					 size_t *map_len)
{
	size_t len = sizeof(struct kvm_cpuid2) + entries_mapped * sizeof(struct kvm_cpuid_entry2);
	struct kvm_cpuid2 *c = kvm_guarded_alloc(len);
	memset(c, 0, len);
	c->nent = nent;
	*map = c;
	*map_len = len;
	return c;
}

static void check_cpuid_case(const char *what, size_t mapped, uint32_t nent, int want_err,
			     uint32_t want_nent)
{
	void *map;
	size_t len;
	struct kvm_cpuid2 *c = cpuid_at_guard(mapped, nent, &map, &len);
	long r = ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c);
	int err = errno;
	bool pass = (want_err ? (r == -1 && err == want_err) : r == 0) && c->nent == want_nent;
	if (!pass)
		ksft_print_msg("got %s, nent %u", strres(r, err), c->nent);
	kvm_test(pass, "C.1: GET_SUPPORTED_CPUID %s -> %s, nent %u", what,
		 want_err ? strerrorname_np(want_err) : "0", want_nent);
	kvm_guarded_free(map, len);
}

static void test_cpuid_sizing(void)
{
	unsigned int n = cpuid_n;
	check_cpuid_case("header only, nent 0", 0, 0, E2BIG, 0);
	check_cpuid_case("header only, nent n-1 (E2BIG before entries)", 0, n - 1, E2BIG, n - 1);
	check_cpuid_case("header only, nent n (entries unmapped)", 0, n, EFAULT, n);
	check_cpuid_case("n entries mapped, nent 1000 (clamped, n written)", n, 1000, 0, n);
	check_cpuid_case("n-1 entries mapped, nent 1000", n - 1, 1000, EFAULT, 1000);
	check_cpuid_case("n-1 entries mapped, nent n-1", n - 1, n - 1, E2BIG, n - 1);

	/* header read-only, entries writable: the header write-back faults */
	size_t len = sizeof(struct kvm_cpuid2) + n * sizeof(struct kvm_cpuid_entry2);
	char *m = map_anon(page_round(len) + PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	struct kvm_cpuid2 *c = (struct kvm_cpuid2 *)(m + PAGE_SIZE - sizeof(*c));
	c->nent = n;
	TEST_ASSERT(mprotect(m, PAGE_SIZE, PROT_READ) == 0, "mprotect");
	long r = ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c);
	int err = errno;
	kvm_test(r == -1 && err == EFAULT && c->nent == n,
		 "C.1: GET_SUPPORTED_CPUID read-only header -> EFAULT, nent unchanged");
	munmap(m, page_round(len) + PAGE_SIZE);
}
#define NR_CPUID_SIZING 7

/* ----------------------------------------- KVM_CREATE_GUEST_MEMFD args */

/* Each of the 64 flag bits alone: supported bits create, others EINVAL (rule 1). */
static void sweep_gmem_flags(int vm, const char *vm_name)
{
	uint64_t supported = (uint64_t)vm_check_cap(vm, KVM_CAP_GUEST_MEMFD_FLAGS);
	int bad_bit = -1, r = 0, err = 0;
	struct snapshot before = snap();

	for (int bit = 0; bit < 64; bit++) {
		uint64_t f = 1ull << bit;
		r = __gmem_create(vm, PAGE_SIZE, f);
		err = errno;
		bool ok = (f & supported) ? r >= 0 : (r == -1 && err == EINVAL);
		if (r >= 0)
			close(r);
		if (!ok && bad_bit < 0) {
			bad_bit = bit;
			ksft_print_msg("bit %d: got %s (supported %#llx)", bit, strres(r, err),
				       (unsigned long long)supported);
		}
	}
	kvm_test(bad_bit < 0 && same_snapshot(before, "gmem flags"),
		 "rule 1: %s gmem flags: supported bits -> fd, others -> EINVAL, no leak", vm_name);
}

static void test_gmem_flags_default(void) { sweep_gmem_flags(vm_fd, "default VM"); }

static void test_gmem_flags_sw(void)
{
	int vm = vm_create(KVM_X86_SW_PROTECTED_VM);
	sweep_gmem_flags(vm, "SW_PROTECTED VM");
	close(vm);
}

static const struct {
	const char *what;
	uint64_t size;
} bad_gmem_sizes[] = {
	{ "0", 0 },
	{ "1", 1 },
	{ "4095", PAGE_SIZE - 1 },
	{ "4097", PAGE_SIZE + 1 },
	{ "2M-1", SZ_2M - 1 },
	{ "2^63 (negative loff_t)", 1ull << 63 },
	{ "2^64-4K (negative loff_t)", ~0ull << 12 },
	{ "2^64-1", ~0ull },
};
#define NR_BAD_GMEM_SIZES (sizeof(bad_gmem_sizes) / sizeof(bad_gmem_sizes[0]))

static void test_gmem_sizes(void)
{
	struct snapshot before = snap();
	for (size_t i = 0; i < NR_BAD_GMEM_SIZES; i++) {
		int r = __gmem_create(vm_fd, bad_gmem_sizes[i].size, 0);
		int err = errno;
		kvm_test_errno(r, err, EINVAL, "rule 2: KVM_CREATE_GUEST_MEMFD size %s -> EINVAL",
			       bad_gmem_sizes[i].what);
		if (r >= 0)
			close(r);
	}
	struct kvm_create_guest_memfd args = { .size = PAGE_SIZE,
					       .reserved = { 1, 2, 3, 4, 5, ~0ull } };
	int fd = ioctl(vm_fd, KVM_CREATE_GUEST_MEMFD, &args);
	int err = errno;
	kvm_test_ok(fd, err, "rule 3: KVM_CREATE_GUEST_MEMFD reserved[] not checked -> fd");
	if (fd >= 0)
		close(fd);
	kvm_test(cgm_works() && same_snapshot(before, "gmem sizes"),
		 "rule 2: gmem creation still works after bad sizes, nothing leaked");
}
#define NR_GMEM_SIZE_RESULTS (NR_BAD_GMEM_SIZES + 2)

/* -------------------------------------------- memslot flags / offsets */

/* Each unknown flag bit through v1 and v2 (rule 29): EINVAL, no slot created. */
static void test_region_flags(void)
{
	struct snapshot before = snap();
	int bad = -1, r = 0, err = 0;
	for (int bit = 3; bit < 32 && bad < 0; bit++) {
		uint32_t f = 1u << bit;
		r = __set_region(vm_fd, 0, f, 0, PAGE_SIZE, (uintptr_t)slot_mem);
		err = errno;
		if (!(r == -1 && err == EINVAL))
			bad = bit;
		r = __set_region2(vm_fd, 0, f, 0, PAGE_SIZE, (uintptr_t)slot_mem, -1, 0);
		err = errno;
		if (bad < 0 && !(r == -1 && err == EINVAL))
			bad = bit + 32;
	}
	if (bad >= 0)
		ksft_print_msg("%s bit %d: got %s", bad >= 32 ? "v2" : "v1", bad % 32,
			       strres(r, err));
	kvm_test(bad < 0 && region_works() && same_snapshot(before, "region flags"),
		 "rule 29: v1/v2 flag bits 3..31 -> EINVAL, slot 0 never created, no leak");
}

/* Bad guest_memfd offsets and sizes (rules 23, 28): EINVAL, nothing bound. */
static void test_bind_offsets(void)
{
	int gmem = gmem_create(vm_fd, SZ_2M, 0);
	struct snapshot before = snap();
	static const struct {
		uint64_t size, off;
	} bad[] = {
		{ PAGE_SIZE, 1 },	   { PAGE_SIZE, PAGE_SIZE - 1 }, { PAGE_SIZE - 1, 0 },
		{ PAGE_SIZE, SZ_2M },	   { SZ_2M, PAGE_SIZE },	 { 2 * SZ_2M, 0 },
		{ PAGE_SIZE, 1ull << 63 }, { PAGE_SIZE, ~0ull << 12 },
	};
	int failed = -1, r = 0, err = 0;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]) && failed < 0; i++) {
		r = __set_region2(vm_fd, 0, KVM_MEM_GUEST_MEMFD, 0, bad[i].size, 0, gmem, bad[i].off);
		err = errno;
		if (!(r == -1 && err == EINVAL))
			failed = (int)i;
	}
	if (failed >= 0)
		ksft_print_msg("case %d: got %s", failed, strres(r, err));
	/* the whole file is still unbound: a slot over all of it binds */
	bool whole = __set_region2(vm_fd, 0, KVM_MEM_GUEST_MEMFD, 0, SZ_2M, 0, gmem, 0) == 0;
	if (whole)
		delete_slot0();
	kvm_test(failed < 0 && whole && same_snapshot(before, "bind offsets"),
		 "rule 28: bad gmem offsets/sizes -> EINVAL, nothing bound, no leak");
	close(gmem);
}

/* Each unknown attribute and flag bit (rule 35): EINVAL. */
static void test_attr_bits(void)
{
	uint64_t supported = (uint64_t)vm_check_cap(attr_vm_fd, KVM_CAP_MEMORY_ATTRIBUTES);
	int bad = -1, r = 0, err = 0;
	for (int bit = 0; bit < 64 && bad < 0; bit++) {
		uint64_t v = 1ull << bit;
		if (!(v & supported)) {
			r = __set_attributes(attr_vm_fd, 0, PAGE_SIZE, v, 0);
			err = errno;
			if (!(r == -1 && err == EINVAL))
				bad = bit;
		}
		r = __set_attributes(attr_vm_fd, 0, PAGE_SIZE, 0, v);
		err = errno;
		if (bad < 0 && !(r == -1 && err == EINVAL))
			bad = bit + 64;
	}
	if (bad >= 0)
		ksft_print_msg("%s bit %d: got %s", bad >= 64 ? "flags" : "attributes", bad % 64,
			       strres(r, err));
	kvm_test(bad < 0 && attr_works(),
		 "rule 35: unknown attribute bits and any flag bit -> EINVAL, still works");
}

/* ----------------------------------------------- integer arguments */

static void test_integer_args(void)
{
	int local;
	long as_ptr = (long)(uintptr_t)&local;
	struct snapshot before = snap();

	KCHECK_EQ(ioctl(kvm_fd, KVM_CHECK_EXTENSION, as_ptr), 0,
		  "B.4: /dev/kvm CHECK_EXTENSION(a pointer value) = 0");
	KCHECK_EQ(ioctl(vm_fd, KVM_CHECK_EXTENSION, as_ptr), 0,
		  "B.4: VM CHECK_EXTENSION(a pointer value) = 0");
	long r = ioctl(kvm_fd, KVM_CREATE_VM, as_ptr);
	int err = errno;
	kvm_test_errno(r, err, EINVAL, "B.6: KVM_CREATE_VM(a pointer value) -> EINVAL");
	if (r >= 0)
		close(r);
	KCHECK_ERRNO(ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, as_ptr), EINVAL,
		     "C.1: KVM_GET_VCPU_MMAP_SIZE(a pointer value) -> EINVAL");
	KCHECK_ERRNO(ioctl(kvm_fd, KVM_GET_API_VERSION, as_ptr), EINVAL,
		     "B.1: KVM_GET_API_VERSION(a pointer value) -> EINVAL");
	r = ioctl(kvm_fd, KVM_CREATE_VM, 0);
	kvm_test(r >= 0 && close(r) == 0 && same_snapshot(before, "integer args"),
		 "B.6: KVM_CREATE_VM(0) still works, nothing leaked");
}
#define NR_INTEGER_RESULTS 6

/* -------------------------------------------------- wrong fd kinds */

enum fd_kind { F_KVM, F_VM, F_GMEM, F_MEMFD, F_NULL, F_CLOSED, F_MINUS1, NR_FD_KINDS };
static const char *const fd_kind_name[] = { "/dev/kvm", "VM", "gmem", "memfd",
					    "/dev/null", "closed fd", "-1" };
static int kind_fd[NR_FD_KINDS];

struct fd_ioctl {
	const char *name;
	unsigned long nr;
	bool pointer_arg; /* else the integer argument 0 */
	int want[NR_FD_KINDS]; /* errno; 0 = not tested here (the valid fd) */
};

/*
 * /dev/kvm answers EINVAL for VM ioctls, the VM fd ENOTTY for system
 * ioctls, any other file ENOTTY, a bad fd EBADF (6.18).
 */
static const struct fd_ioctl fd_ioctls[] = {
	{ "KVM_CREATE_VM", KVM_CREATE_VM, false, { 0, ENOTTY, ENOTTY, ENOTTY, ENOTTY, EBADF, EBADF } },
	{ "KVM_GET_API_VERSION", KVM_GET_API_VERSION, false,
	  { 0, ENOTTY, ENOTTY, ENOTTY, ENOTTY, EBADF, EBADF } },
	{ "KVM_GET_VCPU_MMAP_SIZE", KVM_GET_VCPU_MMAP_SIZE, false,
	  { 0, ENOTTY, ENOTTY, ENOTTY, ENOTTY, EBADF, EBADF } },
	{ "KVM_GET_SUPPORTED_CPUID", KVM_GET_SUPPORTED_CPUID, true,
	  { 0, ENOTTY, ENOTTY, ENOTTY, ENOTTY, EBADF, EBADF } },
	{ "KVM_CHECK_EXTENSION", KVM_CHECK_EXTENSION, false,
	  { 0, 0, ENOTTY, ENOTTY, ENOTTY, EBADF, EBADF } },
	{ "KVM_CREATE_GUEST_MEMFD", KVM_CREATE_GUEST_MEMFD, true,
	  { EINVAL, 0, ENOTTY, ENOTTY, ENOTTY, EBADF, EBADF } },
	{ "KVM_SET_USER_MEMORY_REGION", KVM_SET_USER_MEMORY_REGION, true,
	  { EINVAL, 0, ENOTTY, ENOTTY, ENOTTY, EBADF, EBADF } },
	{ "KVM_SET_USER_MEMORY_REGION2", KVM_SET_USER_MEMORY_REGION2, true,
	  { EINVAL, 0, ENOTTY, ENOTTY, ENOTTY, EBADF, EBADF } },
};
#define NR_FD_IOCTLS (sizeof(fd_ioctls) / sizeof(fd_ioctls[0]))

/* A valid argument for any of the pointer ioctls above: big enough, zeroed
 * except what makes each valid (size for gmem, nent for CPUID). */
static void *fd_ioctl_arg(const struct fd_ioctl *io)
{
	static union {
		struct kvm_create_guest_memfd cgm;
		struct kvm_userspace_memory_region2 r2;
		unsigned char cpuid[sizeof(struct kvm_cpuid2) +
				    KVM_MAX_CPUID_ENTRIES * sizeof(struct kvm_cpuid_entry2)];
	} arg;
	memset(&arg, 0, sizeof(arg));
	if (io->nr == KVM_CREATE_GUEST_MEMFD)
		arg.cgm.size = PAGE_SIZE;
	else if (io->nr == KVM_GET_SUPPORTED_CPUID)
		((struct kvm_cpuid2 *)arg.cpuid)->nent = KVM_MAX_CPUID_ENTRIES;
	else if (io->nr == KVM_SET_USER_MEMORY_REGION || io->nr == KVM_SET_USER_MEMORY_REGION2) {
		arg.r2.memory_size = PAGE_SIZE;
		arg.r2.userspace_addr = (uintptr_t)slot_mem;
		arg.r2.guest_memfd = (uint32_t)-1;
	}
	return &arg;
}

static void test_wrong_fds(void)
{
	kind_fd[F_KVM] = kvm_fd;
	kind_fd[F_VM] = vm_fd;
	kind_fd[F_GMEM] = gmem_create(vm_fd, PAGE_SIZE, 0);
	kind_fd[F_MEMFD] = memfd_create("not-kvm", 0);
	kind_fd[F_NULL] = open("/dev/null", O_RDWR);
	TEST_ASSERT(kind_fd[F_MEMFD] >= 0 && kind_fd[F_NULL] >= 0, "memfd, /dev/null");
	kind_fd[F_CLOSED] = kvm_lowest_free_fd() + 64;
	TEST_ASSERT(fcntl(kind_fd[F_CLOSED], F_GETFD) == -1, "fd unexpectedly open");
	kind_fd[F_MINUS1] = -1;
	struct snapshot before = snap();

	for (size_t i = 0; i < NR_FD_IOCTLS; i++) {
		const struct fd_ioctl *io = &fd_ioctls[i];
		bool pass = true;
		for (int k = 0; k < NR_FD_KINDS; k++) {
			if (!io->want[k])
				continue;
			long r = ioctl(kind_fd[k], io->nr, io->pointer_arg ? fd_ioctl_arg(io) : 0);
			int err = errno;
			if (r >= 0 && (io->nr == KVM_CREATE_VM || io->nr == KVM_CREATE_GUEST_MEMFD))
				close(r);
			if (!(r == -1 && err == io->want[k])) {
				ksft_print_msg("%s on %s: got %s, want %s", io->name, fd_kind_name[k],
					       strres(r, err), strerrorname_np(io->want[k]));
				pass = false;
			}
		}
		kvm_test(pass, "D: %s on the wrong kinds of fd -> EINVAL/ENOTTY/EBADF", io->name);
	}
	kvm_test(region_works() && cgm_works() && same_snapshot(before, "wrong fds"),
		 "D: VM still works after wrong-fd ioctls, nothing leaked");
	close(kind_fd[F_GMEM]);
	close(kind_fd[F_MEMFD]);
	close(kind_fd[F_NULL]);
}
#define NR_WRONG_FD_RESULTS (NR_FD_IOCTLS + 1)

/* ------------------------------------------------------------ main */

static void test_leaks(void)
{
	close(vm_fd);
	if (attr_vm_fd >= 0)
		close(attr_vm_fd);
	vm_fd = attr_vm_fd = -1;
	kvm_test_no_leaks("bad_input_test end");
}

static const struct kvm_section sections[] = {
	{ "CREATE_GUEST_MEMFD pointers", NR_POINTER_RESULTS, NULL, test_ptr_cgm },
	{ "SET_USER_MEMORY_REGION pointers", NR_POINTER_RESULTS, NULL, test_ptr_region },
	{ "SET_USER_MEMORY_REGION2 pointers", NR_POINTER_RESULTS, NULL, test_ptr_region2 },
	{ "GET_SUPPORTED_CPUID pointers", NR_POINTER_RESULTS, NULL, test_ptr_cpuid },
	{ "SET_MEMORY_ATTRIBUTES pointers", NR_POINTER_RESULTS, need_attributes, test_ptr_attr },
	{ "GET_SUPPORTED_CPUID sizing", NR_CPUID_SIZING, NULL, test_cpuid_sizing },
	{ "gmem flags default VM", 1, NULL, test_gmem_flags_default },
	{ "gmem flags SW_PROTECTED VM", 1, need_sw_protected, test_gmem_flags_sw },
	{ "gmem sizes", NR_GMEM_SIZE_RESULTS, NULL, test_gmem_sizes },
	{ "region flags", 1, NULL, test_region_flags },
	{ "bind offsets", 1, NULL, test_bind_offsets },
	{ "attribute bits", 1, need_attributes, test_attr_bits },
	{ "integer args", NR_INTEGER_RESULTS, NULL, test_integer_args },
	{ "wrong fds", NR_WRONG_FD_RESULTS, NULL, test_wrong_fds },
	{ "leaks", 1, NULL, test_leaks },
};

static unsigned int query_cpuid_count(void)
{
	size_t len = sizeof(struct kvm_cpuid2) + KVM_MAX_CPUID_ENTRIES * sizeof(struct kvm_cpuid_entry2);
	struct kvm_cpuid2 *c = calloc(1, len);
	TEST_ASSERT(c, "calloc");
	c->nent = KVM_MAX_CPUID_ENTRIES;
	TEST_ASSERT(ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0 && c->nent >= 2,
		    "KVM_GET_SUPPORTED_CPUID");
	unsigned int n = c->nent;
	free(c);
	return n;
}

int main(void)
{
	ksft_print_header();
	kvm_fd = kvm_open();
	TEST_REQUIRE(kvm_check_cap(KVM_CAP_GUEST_MEMFD) > 0);
	ksft_print_msg("backend: %s", kvm_backend_name());

	vm_fd = vm_create(KVM_X86_DEFAULT_VM);
	/* the attribute ioctl exists iff the system cap is non-zero (6.18) */
	if (kvm_check_cap(KVM_CAP_MEMORY_ATTRIBUTES) > 0)
		attr_vm_fd = vm_create(kvm_has_vm_type(KVM_X86_SW_PROTECTED_VM)
					       ? KVM_X86_SW_PROTECTED_VM
					       : KVM_X86_DEFAULT_VM);
	slot_mem = map_anon(SZ_2M, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	cpuid_n = query_cpuid_count();
	struct_ioctls[IO_CPUID].size =
		sizeof(struct kvm_cpuid2) + cpuid_n * sizeof(struct kvm_cpuid_entry2);

	kvm_run_sections(sections, sizeof(sections) / sizeof(sections[0]));
	munmap(slot_mem, SZ_2M);
	close(kvm_fd);
	return ksft_finished();
}
