/* SPDX-License-Identifier: MIT */
/*
 * demo_util: failing loudly, which backend, and kvmlike's refcount table, for
 * the demos.
 */
#include "demo_util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

/* ------------------------------------------------------------------------ */
/* failing loudly                                                            */
/* ------------------------------------------------------------------------ */

void fail(const char *fmt, ...)
{
	va_list ap;
	fflush(stdout);
	va_start(ap, fmt);
	fprintf(stderr, "%s: FAILED: ", demo_prog);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

long check(long ret, const char *what)
{
	if (ret < 0)
		fail("%s: %s", what, strerror(errno));
	return ret;
}

/* ------------------------------------------------------------------------ */
/* which backend                                                             */
/* ------------------------------------------------------------------------ */

/*
 * kvmlike answers KVMLIKE_PROBE with its magic; the kernel refuses ioctls it
 * does not know (x86 answers unknown /dev/kvm ioctls with EINVAL, other paths
 * with ENOTTY). Anything else is neither and is a bug.
 */
bool probe_kvmlike(int kvm, const char **how)
{
	const char *unused;
	if (!how)
		how = &unused;
	errno = 0;
	int r = ioctl(kvm, KVMLIKE_PROBE, 0);
	if (r == KVMLIKE_MAGIC) {
		*how = "kvmlike (KVMLIKE_PROBE answered)";
		return true;
	}
	if (r == -1 && errno == ENOTTY) {
		*how = "Linux KVM (KVMLIKE_PROBE: ENOTTY)";
		return false;
	}
	if (r == -1 && errno == EINVAL) {
		*how = "Linux KVM (KVMLIKE_PROBE: EINVAL)";
		return false;
	}
	fail("KVMLIKE_PROBE returned %d (%s): neither kvmlike's magic nor a refusal", r,
	     r < 0 ? strerror(errno) : "no error");
}

/* ------------------------------------------------------------------------ */
/* kvmlike's refcount table                                                  */
/* ------------------------------------------------------------------------ */

struct objects read_objects(int kvm)
{
	struct objects o = { 0, NULL };
	uint32_t cap = 16;
	for (;;) {
		o.v = realloc(o.v, cap * sizeof(*o.v));
		if (!o.v)
			fail("out of memory for %u table entries", cap);
		struct kvmlike_debug_objects q = { .nr = cap, .entries = (uintptr_t)o.v };
		check(ioctl(kvm, KVMLIKE_DEBUG_OBJECTS, &q), "KVMLIKE_DEBUG_OBJECTS");
		if (q.nr <= cap) {
			o.nr = q.nr;
			return o;
		}
		cap = q.nr;
	}
}

const char *kind_name(uint32_t kind)
{
	switch (kind) {
	case KVMLIKE_OBJ_VM: return "vm";
	case KVMLIKE_OBJ_INODE: return "inode";
	case KVMLIKE_OBJ_FILE: return "file";
	case KVMLIKE_OBJ_MEMSLOT: return "memslot";
	default: return "?";
	}
}
