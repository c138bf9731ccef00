/* SPDX-License-Identifier: MIT */
#include "kvm_util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
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
