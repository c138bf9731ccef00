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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PAGE_SIZE 4096ul
#define SZ_2M (2ul << 20)

/* open("/dev/kvm", O_RDWR); ENOENT -> whole test SKIPs; other errors assert. */
int kvm_open(void);
/* KVM_CHECK_EXTENSION on a fresh /dev/kvm fd (as upstream's kvm_check_cap). */
int kvm_check_cap(long cap);
/* True when the program runs under kvmlike (KVMLIKE_PROBE answers). */
bool kvm_is_kvmlike(void);
/* "kernel" or "kvmlike", for messages. */
const char *kvm_backend_name(void);
/* True when KVM_CAP_VM_TYPES lists type. */
bool kvm_has_vm_type(unsigned long type);

int __vm_create(int kvm_fd, unsigned long type);
int vm_create(unsigned long type); /* opens /dev/kvm itself, closes it again */

int __gmem_create(int vm_fd, uint64_t size, uint64_t flags);
int gmem_create(int vm_fd, uint64_t size, uint64_t flags);

int __set_region(int vm_fd, uint32_t slot, uint32_t flags, uint64_t gpa, uint64_t size,
		 uint64_t hva);
int __set_region2(int vm_fd, uint32_t slot, uint32_t flags, uint64_t gpa, uint64_t size,
		  uint64_t hva, int gmem_fd, uint64_t gmem_off);
void set_region2(int vm_fd, uint32_t slot, uint32_t flags, uint64_t gpa, uint64_t size,
		 uint64_t hva, int gmem_fd, uint64_t gmem_off);

int __set_attributes(int vm_fd, uint64_t gpa, uint64_t size, uint64_t attrs, uint64_t flags);

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

/* "ok"/"-1 (Ename)" of a raw result, for messages; static buffer. */
const char *strres(long ret, int err);

/* Check helper: ret == -1 && errno == err, printing what happened otherwise. */
bool expect_errno(long ret, int err, int want);

#endif
