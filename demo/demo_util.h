/* SPDX-License-Identifier: MIT */
/*
 * demo_util: what gmem_demo and guest_boot share. uapi/ + libc only, like the
 * programs themselves.
 */
#ifndef KVMLIKE_DEMO_UTIL_H
#define KVMLIKE_DEMO_UTIL_H

#include <stdbool.h>
#include <stdint.h>

#include "kvm_uapi.h"
#include "kvmlike_ext.h"

/* Each program defines its name: the prefix of fail()'s message. */
extern const char demo_prog[];

/* "<demo_prog>: FAILED: <message>" on stderr (stdout flushed first), exit 1. */
void __attribute__((noreturn, format(printf, 1, 2))) fail(const char *fmt, ...);

/* Every syscall result passes through here: failure ends the program with errno's text. */
long check(long ret, const char *what);

/* True when /dev/kvm fd kvm is kvmlike's (KVMLIKE_PROBE answers its magic),
 * false when the kernel refuses the probe; anything else fails. *how, when how
 * is not NULL, names the backend and the answer for a report line. */
bool probe_kvmlike(int kvm, const char **how);

/* ------------------------------------------------------------------------ */
/* kvmlike's refcount table                                                  */
/* ------------------------------------------------------------------------ */

struct objects {
	uint32_t nr;
	struct kvmlike_obj_info *v;
};

/* The whole table, read through /dev/kvm fd kvm; the buffer grows when the
 * objects outnumber it. The caller frees .v. */
struct objects read_objects(int kvm);

/* "vm", "inode", "file", "memslot" or "?". */
const char *kind_name(uint32_t kind);

#endif /* KVMLIKE_DEMO_UTIL_H */
