/* SPDX-License-Identifier: MIT */
/*
 * bench_util: reporting, timing and /dev/kvm helpers of the benchmarks.
 */
#include "bench_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

const char *bench_prog = "bench";
int kvm_fd = -1;
bool g_kvmlike;

/* --------------------------------------------------------- reporting */

void note(const char *topic, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("NOTE|%s|", topic);
	vprintf(fmt, ap);
	putchar('\n');
	va_end(ap);
	fflush(stdout); /* bench.sh keeps partial output if a later step dies */
}

void fail(const char *what)
{
	fprintf(stderr, "%s: %s: %s\n", bench_prog, what, strerror(errno));
	exit(EXIT_OPFAIL);
}

double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void push(struct series *s, double x)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 16;
		s->v = realloc(s->v, (size_t)s->cap * sizeof(double));
		if (!s->v)
			fail("realloc");
	}
	s->v[s->n++] = x;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

void report(const char *metric, const char *unit, struct series *s)
{
	if (s->n > 0) {
		qsort(s->v, (size_t)s->n, sizeof(double), cmp_double);
		int h = s->n / 2;
		double med = (s->n & 1) ? s->v[h] : 0.5 * (s->v[h - 1] + s->v[h]);
		printf("RESULT|%s|%s|%.6g|%.6g|%.6g|%d\n", metric, unit, med,
		       s->v[0], s->v[s->n - 1], s->n);
		fflush(stdout);
	}
	free(s->v);
	*s = (struct series){ 0 };
}

/* ------------------------------------------------------- KVM wrappers */

void bench_open_kvm(void)
{
	kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm_fd < 0)
		fail("open /dev/kvm");
	/* the kernel answers kvmlike's own ioctl range with ENOTTY */
	g_kvmlike = ioctl(kvm_fd, KVMLIKE_PROBE, 0) == KVMLIKE_MAGIC;
}

int create_vm(unsigned long type)
{
	int vm;
	/* KVM_CREATE_VM may fail with EINTR on the kernel; that is not an error. */
	do
		vm = ioctl(kvm_fd, KVM_CREATE_VM, type);
	while (vm < 0 && errno == EINTR);
	return vm;
}

/* ------------------------------------------------ kvmlike introspection */

struct kvmlike_obj_info *debug_objects(uint32_t *nr)
{
	uint32_t cap = 64;
	for (;;) {
		struct kvmlike_obj_info *e = calloc(cap, sizeof(*e));
		struct kvmlike_debug_objects q = {
			.nr = cap, .entries = (uint64_t)(uintptr_t)e,
		};
		if (!e)
			fail("calloc");
		if (ioctl(kvm_fd, KVMLIKE_DEBUG_OBJECTS, &q))
			fail("KVMLIKE_DEBUG_OBJECTS");
		if (q.nr <= cap) {
			*nr = q.nr;
			return e;
		}
		/* More objects than room: the answer was cut short, ask again. */
		free(e);
		cap = q.nr + 16;
	}
}

uint32_t live_objects(void)
{
	uint32_t nr;
	free(debug_objects(&nr));
	return nr;
}

struct kvmlike_pool_info pool_info(void)
{
	struct kvmlike_pool_info p;
	memset(&p, 0, sizeof(p));
	if (g_kvmlike && ioctl(kvm_fd, KVMLIKE_POOL_INFO, &p))
		fail("KVMLIKE_POOL_INFO");
	return p;
}

void rss_note(const char *when)
{
	char line[256], out[256] = "";
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "VmRSS:", 6) && strncmp(line, "VmHWM:", 6))
			continue;
		line[strcspn(line, "\n")] = '\0';
		/* squeeze "VmRSS:\t  123 kB" into "VmRSS=123 kB" */
		char *v = line + 6 + strspn(line + 6, " \t");
		size_t len = strlen(out);
		snprintf(out + len, sizeof(out) - len, "%s%.5s=%s", len ? " " : "", line, v);
	}
	fclose(f);
	note("rss", "%s: %s", when, out);
}
