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
#include <sys/mman.h>
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

int __set_attributes(int vm_fd, uint64_t gpa, uint64_t size, uint64_t attrs, uint64_t flags)
{
	struct kvm_memory_attributes a = {
		.address = gpa, .size = size, .attributes = attrs, .flags = flags,
	};
	return ioctl(vm_fd, KVM_SET_MEMORY_ATTRIBUTES, &a);
}

int run_expect_signal(void (*fn)(void *arg), void *arg)
{
	fflush(stdout);
	pid_t pid = fork();
	TEST_ASSERT(pid >= 0, "fork");
	if (pid == 0) {
		fn(arg);
		_exit(0);
	}
	int status;
	TEST_ASSERT(waitpid(pid, &status, 0) == pid, "waitpid");
	if (WIFSIGNALED(status))
		return WTERMSIG(status);
	return 0;
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

const char *strres(long ret, int err)
{
	static char buf[64];
	if (ret >= 0)
		snprintf(buf, sizeof(buf), "%ld", ret);
	else
		snprintf(buf, sizeof(buf), "-1 (%s)", strerrorname_np(err) ? strerrorname_np(err) : "?");
	return buf;
}

bool expect_errno(long ret, int err, int want)
{
	if (ret == -1 && err == want)
		return true;
	ksft_print_msg("got %s, want -1 (%s)", strres(ret, err), strerrorname_np(want));
	return false;
}

/* ---- results, sections, guard buffers ---- */

static unsigned int kvm_results;

unsigned int kvm_tests_reported(void) { return kvm_results; }

static void report(bool pass, const char *fmt, va_list ap)
{
	char msg[512];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	kvm_results++;
	ksft_test_result(pass, "%s", msg);
}

static const char *errname(int err)
{
	const char *n = strerrorname_np(err);
	return n ? n : "?";
}

bool kvm_test_errno(long ret, int err, int want, const char *fmt, ...)
{
	va_list ap;
	bool pass = ret == -1 && err == want;
	if (!pass)
		ksft_print_msg("got %s, want -1 (%s)", strres(ret, err), errname(want));
	va_start(ap, fmt);
	report(pass, fmt, ap);
	va_end(ap);
	return pass;
}

bool kvm_test_ok(long ret, int err, const char *fmt, ...)
{
	va_list ap;
	bool pass = ret >= 0;
	if (!pass)
		ksft_print_msg("got %s, want success", strres(ret, err));
	va_start(ap, fmt);
	report(pass, fmt, ap);
	va_end(ap);
	return pass;
}

bool kvm_test_eq(long ret, int err, long want, const char *fmt, ...)
{
	va_list ap;
	bool pass = ret == want;
	if (!pass)
		ksft_print_msg("got %s, want %ld", strres(ret, err), want);
	va_start(ap, fmt);
	report(pass, fmt, ap);
	va_end(ap);
	return pass;
}

bool kvm_test(bool cond, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	report(cond, fmt, ap);
	va_end(ap);
	return cond;
}

void kvm_test_skip(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
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

void kvm_test_no_leaks(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!kvm_is_kvmlike()) {
		kvm_test_skip("%s: leak oracle exists only under kvmlike", msg);
		return;
	}
	long live = kvmlike_live_objects(false);
	if (live != 0) {
		ksft_print_msg("%ld live objects:", live);
		kvmlike_live_objects(true);
	}
	kvm_test(live == 0, "%s: no live kvmlike objects", msg);
}

void *kvm_guarded_alloc(size_t len)
{
	size_t span = (len + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
	char *base = mmap(NULL, span + PAGE_SIZE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	TEST_ASSERT(base != MAP_FAILED, "mmap guarded buffer");
	TEST_ASSERT(mprotect(base + span, PAGE_SIZE, PROT_NONE) == 0, "mprotect guard");
	return base + span - len;
}

void kvm_guarded_free(void *p, size_t len)
{
	size_t span = (len + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
	char *base = (char *)p + len - span;
	TEST_ASSERT(munmap(base, span + PAGE_SIZE) == 0, "munmap guarded buffer");
}

void *kvm_unmapped_page(void)
{
	void *p = mmap(NULL, PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	TEST_ASSERT(p != MAP_FAILED, "mmap");
	TEST_ASSERT(munmap(p, PAGE_SIZE) == 0, "munmap");
	/* msync fails with ENOMEM on an unmapped range: proves the hole. */
	TEST_ASSERT(msync(p, PAGE_SIZE, MS_ASYNC) == -1 && errno == ENOMEM, "page still mapped");
	return p;
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

int vm_nr_address_spaces(int vm_fd)
{
	int n = vm_check_cap(vm_fd, KVM_CAP_MULTI_ADDRESS_SPACE);
	return n > 0 ? n : 1;
}
