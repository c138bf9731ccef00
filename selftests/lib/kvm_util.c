/* SPDX-License-Identifier: MIT */
#include "kvm_util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

int kvm_open(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		ksft_exit_skip("/dev/kvm not available");
	TEST_ASSERT(fd >= 0, "open /dev/kvm");
	return fd;
}

void kvm_require_dev(void)
{
	close(kvm_open());
}

int kvm_check_cap(long cap)
{
	int kvm = kvm_open();
	int r = ioctl(kvm, KVM_CHECK_EXTENSION, cap);
	close(kvm);
	return r;
}

bool kvm_is_kvmlike(void)
{
	static int cached = -1;
	if (cached < 0) {
		int kvm = kvm_open();
		cached = ioctl(kvm, KVMLIKE_PROBE, 0) == KVMLIKE_MAGIC;
		close(kvm);
	}
	return cached;
}

const char *kvm_backend_name(void) { return kvm_is_kvmlike() ? "kvmlike" : "kernel"; }

bool kvm_has_vm_type(unsigned long type)
{
	int types = kvm_check_cap(KVM_CAP_VM_TYPES);
	if (types <= 0)
		return type == 0;
	return type < 32 && (types & (1u << type));
}

const char *need_sw_protected(void)
{
	return kvm_has_vm_type(KVM_X86_SW_PROTECTED_VM) ? NULL
							: "KVM_X86_SW_PROTECTED_VM not offered";
}

long vm_type_cap(unsigned long type, long cap)
{
	int vm = vm_create(type);
	long r = vm_check_cap(vm, cap);
	close(vm);
	return r > 0 ? r : 0;
}

const char *need_sw_private(void)
{
	const char *why = need_sw_protected();
	if (why)
		return why;
	if (vm_type_cap(KVM_X86_SW_PROTECTED_VM, KVM_CAP_MEMORY_ATTRIBUTES) &
	    KVM_MEMORY_ATTRIBUTE_PRIVATE)
		return NULL;
	return "SW_PROTECTED VM has no PRIVATE attribute";
}

int __vm_create(int kvm_fd, unsigned long type)
{
	return ioctl(kvm_fd, KVM_CREATE_VM, type);
}

int vm_create(unsigned long type)
{
	int kvm = kvm_open();
	int vm = __vm_create(kvm, type);
	TEST_ASSERT(vm >= 0, "KVM_CREATE_VM(%lu)", type);
	close(kvm);
	return vm;
}

int __gmem_create(int vm_fd, uint64_t size, uint64_t flags)
{
	struct kvm_create_guest_memfd args = { .size = size, .flags = flags };
	return ioctl(vm_fd, KVM_CREATE_GUEST_MEMFD, &args);
}

int gmem_create(int vm_fd, uint64_t size, uint64_t flags)
{
	int fd = __gmem_create(vm_fd, size, flags);
	TEST_ASSERT(fd >= 0, "KVM_CREATE_GUEST_MEMFD(size 0x%llx, flags 0x%llx)",
		    (unsigned long long)size, (unsigned long long)flags);
	return fd;
}

uint64_t vm_gmem_flags(int vm_fd)
{
	int r = vm_check_cap(vm_fd, KVM_CAP_GUEST_MEMFD_FLAGS);
	if (r < 0)
		r = kvm_check_cap(KVM_CAP_GUEST_MEMFD_FLAGS);
	return r > 0 ? (uint64_t)r : 0;
}

uint64_t vm_gmem_shared_flags(int vm_fd)
{
	bool offered = (vm_gmem_flags(vm_fd) & GMEM_FLAGS_SHARED) == GMEM_FLAGS_SHARED;
	return offered ? GMEM_FLAGS_SHARED : 0;
}

int __set_region(int vm_fd, uint32_t slot, uint32_t flags, uint64_t gpa, uint64_t size,
		 uint64_t hva)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot, .flags = flags, .guest_phys_addr = gpa,
		.memory_size = size, .userspace_addr = hva,
	};
	return ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &r);
}

int __set_region2(int vm_fd, uint32_t slot, uint32_t flags, uint64_t gpa, uint64_t size,
		  uint64_t hva, int gmem_fd, uint64_t gmem_off)
{
	struct kvm_userspace_memory_region2 r = {
		.slot = slot, .flags = flags, .guest_phys_addr = gpa,
		.memory_size = size, .userspace_addr = hva,
		.guest_memfd_offset = gmem_off, .guest_memfd = (uint32_t)gmem_fd,
	};
	return ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION2, &r);
}

void set_region2(int vm_fd, uint32_t slot, uint32_t flags, uint64_t gpa, uint64_t size,
		 uint64_t hva, int gmem_fd, uint64_t gmem_off)
{
	int r = __set_region2(vm_fd, slot, flags, gpa, size, hva, gmem_fd, gmem_off);
	TEST_ASSERT(r == 0, "KVM_SET_USER_MEMORY_REGION2(slot %u, gpa 0x%llx, size 0x%llx)",
		    slot, (unsigned long long)gpa, (unsigned long long)size);
}

void delete_slot(int vm_fd, uint32_t slot)
{
	TEST_ASSERT(__set_region2(vm_fd, slot, 0, 0, 0, 0, -1, 0) == 0, "delete slot %#x", slot);
}

int __set_attributes(int vm_fd, uint64_t gpa, uint64_t size, uint64_t attrs, uint64_t flags)
{
	struct kvm_memory_attributes a = {
		.address = gpa, .size = size, .attributes = attrs, .flags = flags,
	};
	return ioctl(vm_fd, KVM_SET_MEMORY_ATTRIBUTES, &a);
}

pid_t kvm_fork(void)
{
	fflush(stdout);
	pid_t pid = fork();
	TEST_ASSERT(pid >= 0, "fork");
	return pid;
}

int kvm_wait(pid_t pid)
{
	int status;
	TEST_ASSERT(waitpid(pid, &status, 0) == pid, "waitpid");
	return status;
}

bool kvm_child_ok(pid_t pid)
{
	int status = kvm_wait(pid);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return true;
	if (WIFSIGNALED(status))
		ksft_print_msg("child killed by %s", strsignal(WTERMSIG(status)));
	else
		ksft_print_msg("child exit status %d", WEXITSTATUS(status));
	return false;
}

pid_t kvm_fork_connected(void (*fn)(int sock, void *arg), void *arg, int *sock)
{
	int sv[2];
	TEST_ASSERT(!socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), "socketpair");
	pid_t pid = kvm_fork();
	if (pid == 0) {
		close(sv[0]);
		fn(sv[1], arg);
		_exit(0);
	}
	close(sv[1]);
	*sock = sv[0];
	return pid;
}

int run_expect_signal(void (*fn)(void *arg), void *arg)
{
	pid_t pid = kvm_fork();
	if (pid == 0) {
		/*
		 * Default actions, so that a sanitizer runtime's handlers cannot turn
		 * the signal into an ordinary exit status.
		 */
		signal(SIGBUS, SIG_DFL);
		signal(SIGSEGV, SIG_DFL);
		fn(arg);
		_exit(0);
	}
	int status = kvm_wait(pid);
	return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

long kvmlike_live_objects(bool dump)
{
	if (!kvm_is_kvmlike())
		return -1;
	int kvm = kvm_open();
	struct kvmlike_obj_info info[256];
	struct kvmlike_debug_objects q = { .nr = 256, .entries = (uint64_t)(uintptr_t)info };
	int r = ioctl(kvm, KVMLIKE_DEBUG_OBJECTS, &q);
	TEST_ASSERT(r == 0, "KVMLIKE_DEBUG_OBJECTS");
	close(kvm);
	if (dump) {
		static const char *kinds[] = { "?", "vm", "inode", "file", "memslot" };
		for (unsigned i = 0; i < q.nr && i < 256; i++)
			ksft_print_msg("live %s #%u users=%lld refs=%lld parent=%llu pages=%llu aux=%llu",
				       info[i].kind < 5 ? kinds[info[i].kind] : "?", info[i].id,
				       (long long)info[i].users, (long long)info[i].refs,
				       (unsigned long long)info[i].parent,
				       (unsigned long long)info[i].pages,
				       (unsigned long long)info[i].aux);
	}
	return q.nr;
}

bool kvm_no_leaks(void)
{
	if (!kvm_is_kvmlike())
		return true;
	long live = kvmlike_live_objects(false);
	if (live != 0) {
		ksft_print_msg("%ld live objects:", live);
		kvmlike_live_objects(true);
	}
	return live == 0;
}

const char *strres(long ret, int err)
{
	static char buf[64];
	if (ret >= 0)
		snprintf(buf, sizeof(buf), "%ld", ret);
	else
		snprintf(buf, sizeof(buf), "-1 (%s)", strerrorname_np(err) ? strerrorname_np(err) : "?");
	return buf;
}

static const char *errname(int err)
{
	const char *n = strerrorname_np(err);
	return n ? n : "?";
}

bool expect_errno(long ret, int err, int want)
{
	if (ret == -1 && err == want)
		return true;
	ksft_print_msg("got %s, want -1 (%s)", strres(ret, err), errname(want));
	return false;
}

bool expect_ok(long ret, int err)
{
	if (ret >= 0)
		return true;
	ksft_print_msg("got %s, want success", strres(ret, err));
	return false;
}

/* ---- results, sections ---- */

static unsigned int kvm_results;

unsigned int kvm_tests_reported(void) { return kvm_results; }

static bool report(bool pass, const char *msg)
{
	kvm_results++;
	ksft_test_result(pass, "%s", msg);
	return pass;
}

/* In a function taking (..., fmt, ...): formats the caller's arguments into buf[]. */
#define FORMAT_VA(buf, fmt)                                  \
	do {                                                 \
		va_list fv_ap_;                              \
		va_start(fv_ap_, fmt);                       \
		vsnprintf(buf, sizeof(buf), fmt, fv_ap_);    \
		va_end(fv_ap_);                              \
	} while (0)

/*
 * In a function taking (..., fmt, ...): evaluates pass (which may print a
 * diagnostic), reports it with the caller's format and arguments, and
 * yields it.
 */
#define REPORT_VA(pass, fmt)                          \
	({                                            \
		bool rv_pass_ = (pass);               \
		char rv_msg_[512];                    \
		FORMAT_VA(rv_msg_, fmt);              \
		report(rv_pass_, rv_msg_);            \
	})

bool kvm_test_errno(long ret, int err, int want, const char *fmt, ...)
{
	return REPORT_VA(expect_errno(ret, err, want), fmt);
}

bool kvm_test_ok(long ret, int err, const char *fmt, ...)
{
	return REPORT_VA(expect_ok(ret, err), fmt);
}

static bool expect_eq(long ret, int err, long want)
{
	if (ret == want)
		return true;
	ksft_print_msg("got %s, want %ld", strres(ret, err), want);
	return false;
}

bool kvm_test_eq(long ret, int err, long want, const char *fmt, ...)
{
	return REPORT_VA(expect_eq(ret, err, want), fmt);
}

bool kvm_test(bool cond, const char *fmt, ...) { return REPORT_VA(cond, fmt); }

void kvm_test_skip(const char *fmt, ...)
{
	char msg[512];
	FORMAT_VA(msg, fmt);
	kvm_results++;
	ksft_test_result_skip("%s", msg);
}

void kvm_run_sections(const struct kvm_section *sections, size_t n)
{
	unsigned int plan = 0;
	for (size_t i = 0; i < n; i++)
		plan += sections[i].nr_results;
	ksft_set_plan(plan);

	for (size_t i = 0; i < n; i++) {
		const struct kvm_section *s = &sections[i];
		const char *why = s->skip_reason ? s->skip_reason() : NULL;
		unsigned int before = kvm_results;
		if (why) {
			for (unsigned int k = 0; k < s->nr_results; k++)
				kvm_test_skip("%s: %s", s->name, why);
			continue;
		}
		s->run();
		TEST_ASSERT(kvm_results - before == s->nr_results,
			    "section %s reported %u results, declared %u", s->name,
			    kvm_results - before, s->nr_results);
	}
}

int kvm_sections_main(const struct kvm_section *sections, size_t n)
{
	ksft_print_msg("backend: %s", kvm_backend_name());
	kvm_run_sections(sections, n);
	return ksft_finished();
}

void kvm_test_no_leaks(const char *fmt, ...)
{
	char msg[512];
	FORMAT_VA(msg, fmt);
	if (!kvm_is_kvmlike())
		kvm_test_skip("%s: leak oracle exists only under kvmlike", msg);
	else
		kvm_test(kvm_no_leaks(), "%s: no live kvmlike objects", msg);
}

void kvm_test_live_objects(void)
{
	if (!kvm_is_kvmlike()) {
		kvm_test_skip("leak oracle: only under kvmlike (backend: %s)", kvm_backend_name());
		return;
	}
	long live = kvmlike_live_objects(true);
	kvm_test(live == 0, "leak oracle: %ld live kvmlike objects after everything is closed",
		 live);
}

int kvm_lowest_free_fd(void)
{
	int fd = dup(0);
	if (fd < 0)
		fd = open("/dev/null", O_RDONLY);
	TEST_ASSERT(fd >= 0, "dup/open");
	close(fd);
	return fd;
}

int vm_check_cap(int vm_fd, long cap) { return ioctl(vm_fd, KVM_CHECK_EXTENSION, cap); }

int __enable_cap(int fd, uint32_t cap, uint32_t flags, uint64_t arg0)
{
	struct kvm_enable_cap c;
	memset(&c, 0, sizeof(c));
	c.cap = cap;
	c.flags = flags;
	c.args[0] = arg0;
	return ioctl(fd, KVM_ENABLE_CAP, &c);
}

int vm_nr_address_spaces(int vm_fd)
{
	int n = vm_check_cap(vm_fd, KVM_CAP_MULTI_ADDRESS_SPACE);
	return n > 0 ? n : 1;
}
