/* SPDX-License-Identifier: MIT */
/*
 * Host-memory helpers for selftests: anonymous and shared mappings,
 * guard-page buffers, byte patterns, and fallocate on a guest_memfd.
 *
 * The checks (bytes_are, is_pattern, fallocate_is) print what they found as
 * a diagnostic when it is not what was wanted and return false; they never
 * print a result line themselves.
 */
#ifndef KVMLIKE_SELFTESTS_MEM_UTIL_H
#define KVMLIKE_SELFTESTS_MEM_UTIL_H

#include "kvm_util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* n rounded up to a whole number of pages. */
size_t page_round(size_t n);

/* mmap(NULL, len, prot, flags | MAP_ANONYMOUS, -1, 0), asserted. */
void *map_anon(size_t len, int prot, int flags);
/* A read/write MAP_SHARED mapping of fd's first len bytes, or NULL (with a diagnostic). */
uint8_t *map_shared(int fd, size_t len);

/*
 * len bytes, readable and writable, ending exactly where a PROT_NONE page
 * begins: [p, p + len) is valid, p + len faults. Free with kvm_guarded_free.
 */
void *kvm_guarded_alloc(size_t len);
void kvm_guarded_free(void *p, size_t len);
/* A page-aligned address whose page was just unmapped (checked). */
void *kvm_unmapped_page(void);

/* True when all len bytes at p are val; otherwise prints the first that is not. */
bool bytes_are(const uint8_t *p, size_t len, uint8_t val);
/* The same for the len / 4 dwords at p (host byte order). */
bool dwords_are(const void *p, size_t len, uint32_t val);

/* Byte i of the test pattern (not constant, so misplaced bytes show). */
static inline uint8_t pattern_byte(size_t i) { return (uint8_t)(i * 7 + 3); }
/* p[i] = pattern_byte(i) for i < len. */
void fill_pattern(uint8_t *p, size_t len);
/* True when p[i] == pattern_byte(i) for i < len; otherwise prints the first that is not. */
bool is_pattern(const uint8_t *p, size_t len);

/*
 * fallocate(fd, mode, off, len) must succeed (want_errno 0) or fail with
 * want_errno; prints what happened otherwise.
 */
bool fallocate_is(int fd, int mode, off_t off, off_t len, int want_errno);

/*
 * Where an ioctl's argument pointer points, for bad-input tables. The kinds
 * up to P_STRADDLE_UNMAPPED are invalid (the kernel answers EFAULT); from
 * P_EXACT_END on they are valid, P_READONLY only for ioctls that do not
 * write the struct back.
 */
enum ptr_kind {
	P_NULL,
	P_ONE,
	P_KERNEL,
	P_NONCANONICAL,
	P_PROT_NONE,
	P_UNMAPPED,
	P_STRADDLE_NONE,
	P_LAST_BYTE_NONE,
	P_STRADDLE_UNMAPPED,
	P_EXACT_END,
	P_ODD,
	P_READONLY,
	NR_PTR_KINDS,
};
extern const char *const ptr_kind_name[NR_PTR_KINDS];
/* Whether an ioctl must accept an argument at kind (copies_back: it writes the struct). */
bool ptr_kind_valid(enum ptr_kind kind, bool copies_back);

/* Where an argument was put, to release it afterwards. */
struct placed {
	void *arg;
	void *map;
	size_t map_len;
};

/*
 * Puts `len` bytes of `tmpl` where `kind` says, as far as they can be
 * written (a straddling struct gets its mapped prefix).
 */
struct placed place_arg(enum ptr_kind kind, const void *tmpl, size_t len);
void release_arg(struct placed *pl);

#endif
