/* SPDX-License-Identifier: MIT */
/*
 * Small helpers for selftests: they use only uapi/ and libc, so every program
 * runs unchanged against the real /dev/kvm and under the kvmlike interposer.
 *
 * Functions named __x return the raw result (-1 with errno); functions named x
 * TEST_ASSERT success.
 */
#ifndef KVMLIKE_SELFTESTS_KVM_UTIL_H
#define KVMLIKE_SELFTESTS_KVM_UTIL_H

#include "kvm_uapi.h"
#include "kvmlike_ext.h"
#include "ksft.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PAGE_SIZE 4096ul
#define SZ_1M (1ul << 20)
#define SZ_2M (2ul << 20)
#define SZ_4M (4ul << 20)

/* The kernel clamps kvm_cpuid2.nent to this. */
#define KVM_MAX_CPUID_ENTRIES 256
/*
 * O_LARGEFILE as the kernel reports it in F_GETFL on x86-64: glibc defines
 * O_LARGEFILE as 0 on 64-bit targets.
 */
#define KERNEL_O_LARGEFILE 0100000
/* The number of elements of an array (not a pointer). */
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* The create flags of a guest_memfd the host can map and use at once. */
#define GMEM_FLAGS_SHARED (GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED)

/* open("/dev/kvm", O_RDWR); ENOENT -> whole test SKIPs; other errors assert. */
int kvm_open(void);
/* kvm_open() and close again: only that /dev/kvm is there (or SKIP). */
void kvm_require_dev(void);
/* KVM_CHECK_EXTENSION on a fresh /dev/kvm fd (as upstream's kvm_check_cap). */
int kvm_check_cap(long cap);
/* True when the program runs under kvmlike (KVMLIKE_PROBE answers). */
bool kvm_is_kvmlike(void);
/* "kernel" or "kvmlike", for messages. */
const char *kvm_backend_name(void);
/* True when KVM_CAP_VM_TYPES lists type. */
bool kvm_has_vm_type(unsigned long type);
/* A kvm_section skip_reason: NULL when KVM_X86_SW_PROTECTED_VM is offered. */
const char *need_sw_protected(void);
/* KVM_CHECK_EXTENSION on a fresh VM of type (closed again); an error counts as 0. */
long vm_type_cap(unsigned long type, long cap);
/*
 * A kvm_section skip_reason: NULL when KVM_X86_SW_PROTECTED_VM is offered
 * and has the PRIVATE memory attribute.
 */
const char *need_sw_private(void);

int __vm_create(int kvm_fd, unsigned long type);
int vm_create(unsigned long type); /* opens /dev/kvm itself, closes it again */

int __gmem_create(int vm_fd, uint64_t size, uint64_t flags);
int gmem_create(int vm_fd, uint64_t size, uint64_t flags);
/* Create flags the VM offers: VM-scope KVM_CAP_GUEST_MEMFD_FLAGS, else system scope. */
uint64_t vm_gmem_flags(int vm_fd);
/* GMEM_FLAGS_SHARED when the VM offers both flags, else 0. */
uint64_t vm_gmem_shared_flags(int vm_fd);

int __set_region(int vm_fd, uint32_t slot, uint32_t flags, uint64_t gpa, uint64_t size,
		 uint64_t hva);
int __set_region2(int vm_fd, uint32_t slot, uint32_t flags, uint64_t gpa, uint64_t size,
		  uint64_t hva, int gmem_fd, uint64_t gmem_off);
void set_region2(int vm_fd, uint32_t slot, uint32_t flags, uint64_t gpa, uint64_t size,
		 uint64_t hva, int gmem_fd, uint64_t gmem_off);
/* Deletes slot (as_id << 16 | id; memory_size 0), asserted. */
void delete_slot(int vm_fd, uint32_t slot);

int __set_attributes(int vm_fd, uint64_t gpa, uint64_t size, uint64_t attrs, uint64_t flags);

/*
 * Forked children. kvm_fork flushes stdout first, so that the child does not
 * print the parent's buffered lines again, and asserts that fork worked.
 * kvm_wait waits for a child (asserted) and returns its wait status;
 * kvm_child_ok says whether it exited 0, printing how it ended otherwise.
 */
pid_t kvm_fork(void);
int kvm_wait(pid_t pid);
bool kvm_child_ok(pid_t pid);

/*
 * Forks a child connected to the parent by a stream socketpair: the child
 * runs fn(sock, arg) on its end and exits 0 when fn returns (fn may _exit
 * with another status). The parent gets its own end in *sock.
 */
pid_t kvm_fork_connected(void (*fn)(int sock, void *arg), void *arg, int *sock);

/*
 * Runs fn(arg) in a forked child and reports how it ended: the signal number
 * that killed it, or 0 if it returned. Used for "touching this SIGBUSes".
 */
int run_expect_signal(void (*fn)(void *arg), void *arg);

/*
 * The leak oracle: under kvmlike, the number of live objects (all kinds) in
 * this process; -1 against the real kernel. `dump` prints them as diagnostics.
 */
long kvmlike_live_objects(bool dump);
/*
 * The leak oracle as a check: true against the kernel; under kvmlike true
 * iff no object is live (and dumps them otherwise).
 */
bool kvm_no_leaks(void);

/* "ok"/"-1 (Ename)" of a raw result, for messages; static buffer. */
const char *strres(long ret, int err);

/* Check helpers: print what happened when the result is not the wanted one. */
/* ret == -1 && err == want */
bool expect_errno(long ret, int err, int want);
/* ret >= 0 (0 or an fd) */
bool expect_ok(long ret, int err);

/* expect_errno of expr, with errno cleared before and read right after it. */
#define FAILS_WITH(expr, want)                          \
	({                                              \
		errno = 0;                              \
		long fw_ret = (long)(expr);             \
		int fw_err = errno;                     \
		expect_errno(fw_ret, fw_err, want);     \
	})

/*
 * ---- Results with captured errno, sections with a fixed result count
 *      and small queries ----
 */

/*
 * One TAP result for a raw syscall result. kvm_test_errno passes iff
 * ret == -1 with err == want; kvm_test_ok iff ret >= 0; kvm_test_eq iff
 * ret == want. On failure they print what happened as a diagnostic.
 */
bool kvm_test_errno(long ret, int err, int want, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
bool kvm_test_ok(long ret, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
bool kvm_test_eq(long ret, int err, long want, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
bool kvm_test(bool cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kvm_test_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Results reported through the kvm_test* functions so far. */
unsigned int kvm_tests_reported(void);

/* The KCHECK_* forms read errno right after expr, before anything else runs. */
#define KCHECK_ERRNO(expr, want, ...)                                   \
	({                                                              \
		long kc_ret_ = (long)(expr);                            \
		int kc_err_ = errno;                                    \
		kvm_test_errno(kc_ret_, kc_err_, (want), __VA_ARGS__); \
	})
#define KCHECK_OK(expr, ...)                                    \
	({                                                      \
		long kc_ret_ = (long)(expr);                    \
		int kc_err_ = errno;                            \
		kvm_test_ok(kc_ret_, kc_err_, __VA_ARGS__);     \
	})
#define KCHECK_EQ(expr, want, ...)                                   \
	({                                                           \
		long kc_ret_ = (long)(expr);                         \
		int kc_err_ = errno;                                 \
		kvm_test_eq(kc_ret_, kc_err_, (want), __VA_ARGS__); \
	})

/*
 * A group of results with a fixed count. kvm_run_sections() prints the plan
 * (the sum of nr_results), then runs each section, or reports nr_results
 * skips when skip_reason() returns a reason. A section that reports another
 * number of results through kvm_test* is a bug in the test: it asserts.
 */
struct kvm_section {
	const char *name;
	unsigned int nr_results;
	const char *(*skip_reason)(void); /* NULL: always run */
	void (*run)(void);
};
void kvm_run_sections(const struct kvm_section *sections, size_t n);

/*
 * The usual main() after its checks: the backend as a diagnostic, then
 * kvm_run_sections(); returns ksft_finished().
 */
int kvm_sections_main(const struct kvm_section *sections, size_t n);

/*
 * One result for the leak oracle: under kvmlike, passes iff no object is
 * live (and dumps them otherwise); against the kernel, a SKIP.
 */
void kvm_test_no_leaks(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/*
 * The leak oracle's last result in a program without sections: under
 * kvmlike, passes iff no object is live (dumping any that are); against the
 * kernel, a SKIP.
 */
void kvm_test_live_objects(void);

/*
 * Tables of ioctl numbers an fd must refuse: the number and its name for the
 * result line. The IOCTL_CASES_* macros are rows several tables begin with.
 */
struct ioctl_case {
	unsigned long nr;
	const char *name;
};
#define IOCTL_CASES_FOREIGN                               \
	{ _IO(KVMIO, 0xff), "_IO(KVMIO, 0xff)" },         \
	{ 0x1234, "0x1234" },                             \
	{ _IO(0xAF, 0x41), "_IO(0xAF, 0x41)" }
#define IOCTL_CASES_SYSTEM                                                    \
	{ KVM_GET_API_VERSION, "KVM_GET_API_VERSION (system ioctl)" },         \
	{ KVM_CREATE_VM, "KVM_CREATE_VM (system ioctl)" },                     \
	{ KVM_GET_VCPU_MMAP_SIZE, "KVM_GET_VCPU_MMAP_SIZE (system ioctl)" }

/* The lowest fd number not in use: unchanged after a call that must not create an fd. */
int kvm_lowest_free_fd(void);
/* KVM_CHECK_EXTENSION on a VM fd. */
int vm_check_cap(int vm_fd, long cap);
/* KVM_ENABLE_CAP on a VM or vCPU fd with args[0] = arg0; the raw result. */
int __enable_cap(int fd, uint32_t cap, uint32_t flags, uint64_t arg0);
/* Address spaces of a VM: KVM_CAP_MULTI_ADDRESS_SPACE, or 1 when it answers 0. */
int vm_nr_address_spaces(int vm_fd);

#endif
