// SPDX-License-Identifier: MIT
/*
 * Lifetimes of VMs, guest_memfd files, their dups and mappings, and the
 * memslots bound to them (reference/conformance.md rules 3, 28b, 43 and
 * DESIGN §5): every order of closing them must succeed, whatever is still
 * open must keep working, VM ioctls from a forked child fail with EIO, and
 * under kvmlike nothing may stay alive afterwards (the leak oracle).
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define GMEM_SIZE (4ul << 20)
#define KEEP FALLOC_FL_KEEP_SIZE
#define PUNCH (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)

static int kvm_fd;

static const char *leak_note(void) { return kvm_is_kvmlike() ? ", nothing leaked" : ""; }

/* ----------------------------------------------------------- rule 3 */

static void test_gmem_fd_flags(void)
{
	int vm = vm_create(KVM_X86_DEFAULT_VM);
	int gmem = gmem_create(vm, PAGE_SIZE, 0);
	int fdfl = fcntl(gmem, F_GETFD);
	kvm_test(fdfl == 0, "rule 3: gmem fd is not close-on-exec (F_GETFD %#x)", fdfl);
	int fl = fcntl(gmem, F_GETFL);
	kvm_test(fl >= 0 && (fl & O_ACCMODE) == O_RDWR && (fl & KERNEL_O_LARGEFILE),
		 "rule 3: gmem fd is O_RDWR|O_LARGEFILE (F_GETFL %#x)", fl);
	close(gmem);
	close(vm);
}

/* ---------------------------------------------------------- rule 28b */

/*
 * close(gmem) with bound slots succeeds; the slots stay in place (their
 * GPA range is still taken) and can be deleted afterwards.
 */
static void test_close_bound_gmem(void)
{
	int vm = vm_create(KVM_X86_DEFAULT_VM);
	int gmem = gmem_create(vm, GMEM_SIZE, 0);
	set_region2(vm, 0, KVM_MEM_GUEST_MEMFD, 0, SZ_2M, 0, gmem, 0);
	set_region2(vm, 1, KVM_MEM_GUEST_MEMFD, 8 * SZ_1M, SZ_2M, 0, gmem, SZ_2M);

	KCHECK_OK(close(gmem), "rule 28b: close(gmem) with 2 bound slots -> ok");
	KCHECK_ERRNO(__set_region2(vm, 5, 0, 0, SZ_2M, 0, -1, 0), EEXIST,
		     "rule 28b: the severed slot still holds its GPA range (EEXIST)");
	KCHECK_OK(__set_region2(vm, 0, 0, 0, 0, 0, -1, 0),
		  "rule 28b: delete slot 0 of the closed gmem -> ok");
	KCHECK_OK(__set_region2(vm, 1, 0, 0, 0, 0, -1, 0),
		  "rule 28b: delete slot 1 of the closed gmem -> ok");
	int gmem2 = gmem_create(vm, GMEM_SIZE, 0);
	KCHECK_OK(__set_region2(vm, 0, KVM_MEM_GUEST_MEMFD, 0, SZ_2M, 0, gmem2, 0),
		  "rule 28b: new gmem bound at the freed GPA -> ok");
	int c1 = close(vm), c2 = close(gmem2);
	kvm_test(c1 == 0 && c2 == 0 && kvm_no_leaks(),
		 "rule 28b: close VM with bound slot, then gmem -> ok%s", leak_note());
}

/* ----------------------------------------------------------- rule 43 */

/* The gmem fd outlives the VM fd: fallocate, fstat and mmap keep working. */
static void test_gmem_outlives_vm(void)
{
	int vm = vm_create(KVM_X86_DEFAULT_VM);
	uint64_t flags = vm_gmem_shared_flags(vm);
	int gmem = gmem_create(vm, GMEM_SIZE, flags);
	set_region2(vm, 0, KVM_MEM_GUEST_MEMFD, 0, GMEM_SIZE, 0, gmem, 0);

	KCHECK_OK(close(vm), "rule 43: close(VM fd) while its gmem is open and bound -> ok");
	KCHECK_OK(fallocate(gmem, PUNCH, 0, GMEM_SIZE),
		  "rule 43: fallocate(PUNCH|KEEP, 0, size) after the VM fd closed -> ok");
	KCHECK_OK(fallocate(gmem, KEEP, 0, GMEM_SIZE),
		  "rule 43: fallocate(KEEP, 0, size) after the VM fd closed -> ok");
	struct stat st;
	kvm_test(fstat(gmem, &st) == 0 && st.st_size == (off_t)GMEM_SIZE,
		 "rule 43: fstat after the VM fd closed: st_size = 4M");
	if (flags) {
		uint8_t *p = map_shared(gmem, GMEM_SIZE);
		bool ok = p != NULL;
		if (ok) {
			p[0] = 0x5a;
			p[GMEM_SIZE - 1] = 0xa5;
			ok = p[0] == 0x5a && p[GMEM_SIZE - 1] == 0xa5;
			munmap(p, GMEM_SIZE);
		}
		kvm_test(ok, "rule 43: mmap and touch (MMAP|INIT_SHARED) after the VM fd closed");
	} else {
		kvm_test_skip("rule 43: default VM offers no MMAP|INIT_SHARED gmem");
	}
	kvm_test(close(gmem) == 0 && kvm_no_leaks(), "rule 43: close(gmem) last -> ok%s",
		 leak_note());
}

/* --------------------------------------------------- forked children */

/*
 * A VM belongs to the process that created it: after fork() the child's
 * VM-fd ioctls fail with EIO (checked before anything else: the ioctl
 * number and the argument pointer do not matter), while /dev/kvm, new VMs
 * and plain file operations on the inherited gmem work.
 */
static int fork_vm, fork_gmem;

static long op_vm_cap(void) { return ioctl(fork_vm, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY2); }
static long op_vm_gmem(void) { return __gmem_create(fork_vm, PAGE_SIZE, 0); }
static long op_vm_bind(void)
{
	return __set_region2(fork_vm, 3, KVM_MEM_GUEST_MEMFD, 16 * SZ_1M, SZ_2M, 0, fork_gmem,
			     0);
}
static long op_vm_region_v1(void) { return __set_region(fork_vm, 4, 0, 32 * SZ_1M, 0, 0); }
static long op_vm_unknown(void) { return ioctl(fork_vm, 0x1234, 0); }
static long op_vm_null(void) { return ioctl(fork_vm, KVM_SET_USER_MEMORY_REGION2, NULL); }
static long op_vm_attrs(void) { return __set_attributes(fork_vm, 0, PAGE_SIZE, 0, 0); }
static long op_sys_api(void) { return ioctl(kvm_fd, KVM_GET_API_VERSION, 0); }
static long op_sys_cap(void) { return ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD); }
static long op_sys_new_vm(void)
{
	/* the child's own VM works completely: create, gmem, bind */
	int vm = __vm_create(kvm_fd, KVM_X86_DEFAULT_VM);
	if (vm < 0)
		return -1;
	int gmem = __gmem_create(vm, SZ_2M, 0);
	long r = gmem < 0 ? -1 : __set_region2(vm, 0, KVM_MEM_GUEST_MEMFD, 0, SZ_2M, 0, gmem, 0);
	int err = errno;
	if (gmem >= 0)
		close(gmem);
	close(vm);
	errno = err;
	return r;
}
static long op_gmem_keep(void) { return fallocate(fork_gmem, KEEP, 0, SZ_2M); }
static long op_gmem_punch(void) { return fallocate(fork_gmem, PUNCH, 0, SZ_2M); }

enum want_kind { WANT_ERRNO, WANT_EQ };

struct child_op {
	const char *what;
	long (*fn)(void);
	enum want_kind kind;
	long want;
};

static const struct child_op child_ops[] = {
	{ "VM fd KVM_CHECK_EXTENSION", op_vm_cap, WANT_ERRNO, EIO },
	{ "VM fd KVM_CREATE_GUEST_MEMFD", op_vm_gmem, WANT_ERRNO, EIO },
	{ "VM fd KVM_SET_USER_MEMORY_REGION2 (valid bind)", op_vm_bind, WANT_ERRNO, EIO },
	{ "VM fd KVM_SET_USER_MEMORY_REGION (v1)", op_vm_region_v1, WANT_ERRNO, EIO },
	{ "VM fd unknown ioctl 0x1234 (EIO before ENOTTY)", op_vm_unknown, WANT_ERRNO, EIO },
	{ "VM fd REGION2 with NULL (EIO before EFAULT)", op_vm_null, WANT_ERRNO, EIO },
	{ "VM fd KVM_SET_MEMORY_ATTRIBUTES", op_vm_attrs, WANT_ERRNO, EIO },
	{ "/dev/kvm KVM_GET_API_VERSION = 12", op_sys_api, WANT_EQ, 12 },
	{ "/dev/kvm KVM_CHECK_EXTENSION(GUEST_MEMFD) = 1", op_sys_cap, WANT_EQ, 1 },
	{ "/dev/kvm new VM + gmem + bind -> 0", op_sys_new_vm, WANT_EQ, 0 },
	{ "inherited gmem fallocate(KEEP) -> 0", op_gmem_keep, WANT_EQ, 0 },
	{ "inherited gmem fallocate(PUNCH|KEEP) -> 0", op_gmem_punch, WANT_EQ, 0 },
};
#define NR_CHILD_OPS (sizeof(child_ops) / sizeof(child_ops[0]))

struct child_result {
	long ret;
	int err;
};

static void run_child_ops(int sock, void *arg)
{
	(void)arg;
	struct child_result res[NR_CHILD_OPS];
	for (size_t i = 0; i < NR_CHILD_OPS; i++) {
		errno = 0;
		res[i].ret = child_ops[i].fn();
		res[i].err = errno;
	}
	ssize_t w = write(sock, res, sizeof(res));
	_exit(w == (ssize_t)sizeof(res) ? 0 : 1);
}

static void test_fork(void)
{
	fork_vm = vm_create(KVM_X86_DEFAULT_VM);
	fork_gmem = gmem_create(fork_vm, GMEM_SIZE, 0);
	int sock;
	pid_t pid = kvm_fork_connected(run_child_ops, NULL, &sock);
	struct child_result res[NR_CHILD_OPS];
	ssize_t n = read(sock, res, sizeof(res));
	int status = kvm_wait(pid);
	TEST_ASSERT(n == (ssize_t)sizeof(res) && WIFEXITED(status) && WEXITSTATUS(status) == 0,
		    "child reported %zd bytes, status %#x", n, status);
	close(sock);

	for (size_t i = 0; i < NR_CHILD_OPS; i++) {
		const struct child_op *op = &child_ops[i];
		if (op->kind == WANT_ERRNO)
			kvm_test_errno(res[i].ret, res[i].err, (int)op->want,
				       "D: forked child: %s -> EIO", op->what);
		else
			kvm_test_eq(res[i].ret, res[i].err, op->want, "D: forked child: %s",
				    op->what);
	}

	/* The parent's VM is untouched by the child's attempts. */
	KCHECK_OK(__set_region2(fork_vm, 3, KVM_MEM_GUEST_MEMFD, 16 * SZ_1M, SZ_2M, 0, fork_gmem,
				0),
		  "D: parent binds on its VM after the child's EIOs -> ok");
	int c1 = close(fork_gmem), c2 = close(fork_vm);
	kvm_test(c1 == 0 && c2 == 0 && kvm_no_leaks(), "D: parent closes gmem and VM -> ok%s",
		 leak_note());
}
#define NR_FORK_RESULTS (NR_CHILD_OPS + 2)

/* ------------------------------------------- close/unbind sequences */

/*
 * The objects of one scenario: a VM, a gmem (host-mappable when the VM
 * offers it), a dup of the gmem fd, a shared mapping of it, and two slots
 * bound to its two halves. Every step of a sequence closes, deletes or
 * binds one thing and then checks that everything still open works.
 */
struct life {
	int vm, gmem, dup, gmem2;
	uint8_t *map;
	bool slot[3];
};

enum step {
	CLOSE_VM,
	CLOSE_GMEM,
	CLOSE_DUP,
	UNMAP,
	DEL0,
	DEL1,
	NEW_GMEM2_BIND2, /* a second gmem bound as slot 2 on the same VM */
	CLOSE_GMEM2,
	END,
};

static const char *const step_name[] = {
	[CLOSE_VM] = "vm",	    [CLOSE_GMEM] = "gmem",	     [CLOSE_DUP] = "dup",
	[UNMAP] = "mmap",	    [DEL0] = "del0",	     [DEL1] = "del1",
	[NEW_GMEM2_BIND2] = "bind2", [CLOSE_GMEM2] = "gmem2", [END] = "",
};

static const uint64_t slot_gpa[3] = { 0, 8 * SZ_1M, 16 * SZ_1M };

static void life_setup(struct life *l)
{
	l->vm = vm_create(KVM_X86_DEFAULT_VM);
	uint64_t flags = vm_gmem_shared_flags(l->vm);
	l->gmem = gmem_create(l->vm, GMEM_SIZE, flags);
	l->dup = dup(l->gmem);
	TEST_ASSERT(l->dup >= 0, "dup");
	l->gmem2 = -1;
	l->map = NULL;
	if (flags) {
		l->map = map_shared(l->gmem, GMEM_SIZE);
		TEST_ASSERT(l->map, "mmap gmem");
		memset(l->map, 0xaa, GMEM_SIZE);
	}
	set_region2(l->vm, 0, KVM_MEM_GUEST_MEMFD, slot_gpa[0], SZ_2M, 0, l->gmem, 0);
	set_region2(l->vm, 1, KVM_MEM_GUEST_MEMFD, slot_gpa[1], SZ_2M, 0, l->gmem, SZ_2M);
	l->slot[0] = l->slot[1] = true;
	l->slot[2] = false;
}

static bool close_fd(int *fd)
{
	if (*fd < 0)
		return true;
	int r = close(*fd);
	*fd = -1;
	return r == 0;
}

static bool gmem_fd_works(int fd)
{
	return fd < 0 ||
	       (fallocate(fd, KEEP, 0, GMEM_SIZE) == 0 && fallocate(fd, PUNCH, 0, PAGE_SIZE) == 0);
}

/* Whatever is still open must work: fds fallocate, the mapping reads and
 * writes, and the VM still holds every slot that was not deleted. */
static bool life_check(struct life *l)
{
	bool ok = gmem_fd_works(l->gmem) && gmem_fd_works(l->dup) && gmem_fd_works(l->gmem2);
	if (l->map) {
		l->map[0] = 0x11;
		l->map[SZ_2M] = 0x22;
		ok = ok && l->map[0] == 0x11 && l->map[SZ_2M] == 0x22;
	}
	if (l->vm >= 0) {
		ok = ok && vm_check_cap(l->vm, KVM_CAP_USER_MEMORY2) == 1;
		for (int i = 0; i < 3; i++) {
			/* a live slot makes an overlapping normal slot EEXIST */
			int r = __set_region2(l->vm, 7, 0, slot_gpa[i], PAGE_SIZE, 0, -1, 0);
			int err = errno;
			if (r == 0)
				__set_region2(l->vm, 7, 0, 0, 0, 0, -1, 0);
			ok = ok && (l->slot[i] ? (r == -1 && err == EEXIST) : r == 0);
		}
	}
	return ok;
}

static bool life_delete_slot(struct life *l, int i)
{
	if (l->vm < 0 || !l->slot[i])
		return true;
	l->slot[i] = false;
	return __set_region2(l->vm, (uint32_t)i, 0, 0, 0, 0, -1, 0) == 0;
}

static bool life_step(struct life *l, enum step s)
{
	switch (s) {
	case CLOSE_VM:
		l->slot[0] = l->slot[1] = l->slot[2] = false;
		return close_fd(&l->vm);
	case CLOSE_GMEM:
		return close_fd(&l->gmem);
	case CLOSE_DUP:
		return close_fd(&l->dup);
	case CLOSE_GMEM2:
		return close_fd(&l->gmem2);
	case UNMAP: {
		uint8_t *m = l->map;
		l->map = NULL;
		return !m || munmap(m, GMEM_SIZE) == 0;
	}
	case DEL0:
		return life_delete_slot(l, 0);
	case DEL1:
		return life_delete_slot(l, 1);
	case NEW_GMEM2_BIND2:
		if (l->vm < 0)
			return false;
		l->gmem2 = __gmem_create(l->vm, GMEM_SIZE, 0);
		if (l->gmem2 < 0)
			return false;
		l->slot[2] = true;
		return __set_region2(l->vm, 2, KVM_MEM_GUEST_MEMFD, slot_gpa[2], SZ_2M, 0, l->gmem2,
				     0) == 0;
	case END:
		break;
	}
	return false;
}

/* Runs the steps, then closes whatever is left; one result for all of it. */
static void run_sequence(const char *rule, const enum step *steps)
{
	struct life l;
	char order[128] = "";
	int failed_at = -1;

	life_setup(&l);
	for (int i = 0; steps[i] != END; i++) {
		strncat(order, i ? "," : "", sizeof(order) - strlen(order) - 1);
		strncat(order, step_name[steps[i]], sizeof(order) - strlen(order) - 1);
		if (failed_at < 0 && !(life_step(&l, steps[i]) && life_check(&l)))
			failed_at = i;
	}
	static const enum step rest[] = { CLOSE_VM, CLOSE_GMEM, CLOSE_DUP, UNMAP, CLOSE_GMEM2 };
	for (size_t i = 0; i < sizeof(rest) / sizeof(rest[0]); i++)
		if (!life_step(&l, rest[i]) && failed_at < 0)
			failed_at = 99;
	if (failed_at >= 0)
		ksft_print_msg("sequence %s: failed at step %d", order, failed_at);
	kvm_test(failed_at < 0 && kvm_no_leaks(), "%s: %s: every step ok, the rest still works%s",
		 rule, order, leak_note());
}

/* Every order of closing {VM fd, gmem fd, dup, mapping} with 2 slots bound. */
static void test_close_permutations(void)
{
	enum step objs[4] = { CLOSE_VM, CLOSE_GMEM, CLOSE_DUP, UNMAP };
	/* the 24 permutations in lexicographic order of indices */
	int idx[4] = { 0, 1, 2, 3 };
	for (;;) {
		enum step steps[5] = { objs[idx[0]], objs[idx[1]], objs[idx[2]], objs[idx[3]], END };
		run_sequence("rules 28b/43", steps);

		int i = 2;
		while (i >= 0 && idx[i] > idx[i + 1])
			i--;
		if (i < 0)
			break;
		int j = 3;
		while (idx[j] < idx[i])
			j--;
		int t = idx[i];
		idx[i] = idx[j];
		idx[j] = t;
		for (int a = i + 1, b = 3; a < b; a++, b--) {
			t = idx[a];
			idx[a] = idx[b];
			idx[b] = t;
		}
	}
}
#define NR_PERMUTATIONS 24

/* Orders mixing slot deletion, rebinding and closing. */
static const enum step seq_unbind_first[] = { DEL0, DEL1, CLOSE_GMEM, CLOSE_DUP, UNMAP,
					      CLOSE_VM, END };
static const enum step seq_half_unbound[] = { DEL1, CLOSE_VM, CLOSE_DUP, CLOSE_GMEM, UNMAP,
					      END };
static const enum step seq_close_then_unbind[] = { CLOSE_GMEM, CLOSE_DUP, UNMAP, DEL0,
						   DEL1, CLOSE_VM, END };
static const enum step seq_rebind_other[] = { CLOSE_GMEM, CLOSE_DUP, UNMAP, NEW_GMEM2_BIND2,
					      CLOSE_VM, CLOSE_GMEM2, END };
static const enum step seq_gmem2_first[] = { NEW_GMEM2_BIND2, CLOSE_GMEM2, DEL0, CLOSE_VM,
					     UNMAP, CLOSE_GMEM, CLOSE_DUP, END };
static const enum step seq_map_last[] = { CLOSE_GMEM, CLOSE_DUP, CLOSE_VM, UNMAP, END };
static const enum step seq_vm_first_then_unbind[] = { DEL0, CLOSE_VM, UNMAP, CLOSE_DUP,
						      CLOSE_GMEM, END };

static const enum step *const sequences[] = {
	seq_unbind_first, seq_half_unbound,	seq_close_then_unbind,	  seq_rebind_other,
	seq_gmem2_first,  seq_map_last,		seq_vm_first_then_unbind,
};
#define NR_SEQUENCES (sizeof(sequences) / sizeof(sequences[0]))

static void test_mixed_sequences(void)
{
	for (size_t i = 0; i < NR_SEQUENCES; i++)
		run_sequence("rule 28b", sequences[i]);
}

/* ------------------------------------------------------------ main */

static void test_leaks(void) { kvm_test_no_leaks("vm_lifecycle_test end"); }

static const struct kvm_section sections[] = {
	{ "gmem fd flags", 2, NULL, test_gmem_fd_flags },
	{ "close bound gmem", 6, NULL, test_close_bound_gmem },
	{ "gmem outlives VM", 6, NULL, test_gmem_outlives_vm },
	{ "fork", NR_FORK_RESULTS, NULL, test_fork },
	{ "close permutations", NR_PERMUTATIONS, NULL, test_close_permutations },
	{ "mixed sequences", NR_SEQUENCES, NULL, test_mixed_sequences },
	{ "leaks", 1, NULL, test_leaks },
};

int main(void)
{
	ksft_print_header();
	kvm_fd = kvm_open();
	TEST_REQUIRE(kvm_check_cap(KVM_CAP_GUEST_MEMFD) > 0);
	ksft_print_msg("backend: %s", kvm_backend_name());
	kvm_run_sections(sections, sizeof(sections) / sizeof(sections[0]));
	close(kvm_fd);
	return ksft_finished();
}
