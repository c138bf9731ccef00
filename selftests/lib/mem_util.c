/* SPDX-License-Identifier: MIT */
#include "mem_util.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>

size_t page_round(size_t n) { return (n + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1); }

void *map_anon(size_t len, int prot, int flags)
{
	void *p = mmap(NULL, len, prot, flags | MAP_ANONYMOUS, -1, 0);
	TEST_ASSERT(p != MAP_FAILED, "mmap %zu bytes", len);
	return p;
}

uint8_t *map_shared(int fd, size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		ksft_print_msg("mmap(0x%zx, MAP_SHARED): %s", len, strres(-1, errno));
		return NULL;
	}
	return p;
}

void *kvm_guarded_alloc(size_t len)
{
	size_t span = page_round(len);
	char *base = map_anon(span + PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	TEST_ASSERT(mprotect(base + span, PAGE_SIZE, PROT_NONE) == 0, "mprotect guard");
	return base + span - len;
}

void kvm_guarded_free(void *p, size_t len)
{
	size_t span = page_round(len);
	char *base = (char *)p + len - span;
	TEST_ASSERT(munmap(base, span + PAGE_SIZE) == 0, "munmap guarded buffer");
}

void *kvm_unmapped_page(void)
{
	void *p = map_anon(PAGE_SIZE, PROT_READ, MAP_PRIVATE);
	TEST_ASSERT(munmap(p, PAGE_SIZE) == 0, "munmap");
	/* msync fails with ENOMEM on an unmapped range: proves the hole. */
	TEST_ASSERT(msync(p, PAGE_SIZE, MS_ASYNC) == -1 && errno == ENOMEM, "page still mapped");
	return p;
}

/*
 * The first i < len where p[i] is not the wanted byte (pattern_byte(i) if
 * pattern, else val), printed as a diagnostic; len when there is none.
 */
static size_t first_mismatch(const uint8_t *p, size_t len, bool pattern, uint8_t val)
{
	for (size_t i = 0; i < len; i++) {
		uint8_t want = pattern ? pattern_byte(i) : val;
		if (p[i] != want) {
			ksft_print_msg("byte 0x%zx is 0x%02x, want 0x%02x", i, p[i], want);
			return i;
		}
	}
	return len;
}

bool bytes_are(const uint8_t *p, size_t len, uint8_t val)
{
	return first_mismatch(p, len, false, val) == len;
}

bool dwords_are(const void *p, size_t len, uint32_t val)
{
	const uint32_t *w = p;
	for (size_t i = 0; i < len / 4; i++)
		if (w[i] != val) {
			ksft_print_msg("dword at byte 0x%zx is 0x%08x, want 0x%08x", 4 * i, w[i], val);
			return false;
		}
	return true;
}

void fill_pattern(uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		p[i] = pattern_byte(i);
}

bool is_pattern(const uint8_t *p, size_t len) { return first_mismatch(p, len, true, 0) == len; }

bool fallocate_is(int fd, int mode, off_t off, off_t len, int want_errno)
{
	errno = 0;
	int r = fallocate(fd, mode, off, len);
	int err = errno;
	if (!want_errno) {
		if (r != 0)
			ksft_print_msg("fallocate(0x%x, 0x%llx, 0x%llx): %s, want 0", mode,
				       (long long)off, (long long)len, strres(r, err));
		return r == 0;
	}
	if (expect_errno(r, err, want_errno))
		return true;
	ksft_print_msg("  (fallocate mode 0x%x, offset 0x%llx, len 0x%llx)", mode,
		       (long long)off, (long long)len);
	return false;
}

/* ---- argument pointer kinds ---- */

const char *const ptr_kind_name[NR_PTR_KINDS] = {
	[P_NULL] = "NULL",
	[P_ONE] = "address 1",
	[P_KERNEL] = "kernel address 0xffff800000000000",
	[P_NONCANONICAL] = "non-canonical 0x8000000000000000",
	[P_PROT_NONE] = "PROT_NONE page",
	[P_UNMAPPED] = "munmap'ed page",
	[P_STRADDLE_NONE] = "struct straddling into a PROT_NONE page",
	[P_LAST_BYTE_NONE] = "struct whose last byte is in a PROT_NONE page",
	[P_STRADDLE_UNMAPPED] = "struct straddling into a munmap'ed page",
	[P_EXACT_END] = "struct ending exactly at a PROT_NONE page",
	[P_ODD] = "odd (unaligned) address",
	[P_READONLY] = "read-only page",
};

bool ptr_kind_valid(enum ptr_kind kind, bool copies_back)
{
	switch (kind) {
	case P_EXACT_END:
	case P_ODD:
		return true;
	case P_READONLY:
		return !copies_back;
	default:
		return false;
	}
}

struct placed place_arg(enum ptr_kind kind, const void *tmpl, size_t len)
{
	struct placed pl = { 0 };
	size_t span = page_round(len) + PAGE_SIZE;
	char *m;

	switch (kind) {
	case P_NULL:
		pl.arg = NULL;
		break;
	case P_ONE:
		pl.arg = (void *)1;
		break;
	case P_KERNEL:
		pl.arg = (void *)0xffff800000000000ul;
		break;
	case P_NONCANONICAL:
		pl.arg = (void *)0x8000000000000000ul;
		break;
	case P_PROT_NONE:
		pl.map = pl.arg = map_anon(PAGE_SIZE, PROT_NONE, MAP_PRIVATE);
		pl.map_len = PAGE_SIZE;
		break;
	case P_UNMAPPED:
		pl.arg = kvm_unmapped_page();
		break;
	case P_STRADDLE_NONE:
	case P_LAST_BYTE_NONE:
	case P_STRADDLE_UNMAPPED:
	case P_EXACT_END: {
		size_t valid = kind == P_EXACT_END ? len
			       : kind == P_LAST_BYTE_NONE ? len - 1
							   : len / 2;
		m = map_anon(span, PROT_READ | PROT_WRITE, MAP_PRIVATE);
		char *guard = m + span - PAGE_SIZE;
		pl.arg = guard - valid;
		memcpy(pl.arg, tmpl, valid);
		if (kind == P_STRADDLE_UNMAPPED) {
			TEST_ASSERT(munmap(guard, PAGE_SIZE) == 0, "munmap");
			pl.map_len = span - PAGE_SIZE;
		} else {
			TEST_ASSERT(mprotect(guard, PAGE_SIZE, PROT_NONE) == 0, "mprotect");
			pl.map_len = span;
		}
		pl.map = m;
		break;
	}
	case P_ODD:
		m = map_anon(span, PROT_READ | PROT_WRITE, MAP_PRIVATE);
		pl.arg = m + 1;
		memcpy(pl.arg, tmpl, len);
		pl.map = m;
		pl.map_len = span;
		break;
	case P_READONLY:
		m = map_anon(span, PROT_READ | PROT_WRITE, MAP_PRIVATE);
		memcpy(m, tmpl, len);
		TEST_ASSERT(mprotect(m, span, PROT_READ) == 0, "mprotect");
		pl.arg = m;
		pl.map = m;
		pl.map_len = span;
		break;
	case NR_PTR_KINDS:
		break;
	}
	return pl;
}

void release_arg(struct placed *pl)
{
	if (pl->map)
		munmap(pl->map, pl->map_len);
}
