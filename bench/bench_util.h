/* SPDX-License-Identifier: MIT */
/*
 * bench_util: what gmem_bench and guest_fault_bench share. uapi/ + libc only,
 * like the programs themselves.
 *
 * Output, one line each:
 *   RESULT|metric|unit|median|min|max|n     (report(): one sample per repetition)
 *   NOTE|topic|text                         (note())
 */
#ifndef KVMLIKE_BENCH_UTIL_H
#define KVMLIKE_BENCH_UTIL_H

#include <stdbool.h>
#include <stdint.h>

#include "kvm_uapi.h"
#include "kvmlike_ext.h"

#define MIB (1024ull * 1024ull)
#define GIB (1024ull * MIB)

#define EXIT_OPFAIL 1
#define EXIT_USAGE 2

#define SHARED_FLAGS (GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED)

/* The program's name, the prefix of fail()'s message; set first in main(). */
extern const char *bench_prog;
/* /dev/kvm, and whether it is kvmlike's; both set by bench_open_kvm(). */
extern int kvm_fd;
extern bool g_kvmlike;

void note(const char *topic, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "<bench_prog>: what: strerror(errno)" on stderr, exit EXIT_OPFAIL. */
void fail(const char *what) __attribute__((noreturn));

/* CLOCK_MONOTONIC in seconds. */
double now_s(void);

/* A growable list of samples of one metric, already in its unit. */
struct series {
	double *v;
	int n, cap;
};

void push(struct series *s, double x);
/* Prints the RESULT line (nothing for an empty series) and frees it. */
void report(const char *metric, const char *unit, struct series *s);

/* Opens /dev/kvm into kvm_fd (or fails) and probes for kvmlike. */
void bench_open_kvm(void);
/* KVM_CREATE_VM of type, retried on EINTR; -1 with errno on failure. */
int create_vm(unsigned long type);

/* All live objects of this process's kvmlike instance; caller frees. */
struct kvmlike_obj_info *debug_objects(uint32_t *nr);
/* How many kvmlike objects are live. */
uint32_t live_objects(void);
/* KVMLIKE_POOL_INFO; all zero on the kernel. */
struct kvmlike_pool_info pool_info(void);
/* NOTE|rss| with VmRSS and VmHWM, so memory held by the process is visible. */
void rss_note(const char *when);

#endif /* KVMLIKE_BENCH_UTIL_H */
