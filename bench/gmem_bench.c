/* SPDX-License-Identifier: MIT */
/*
 * gmem_bench: guest_memfd and gmem-memslot micro-benchmarks.
 *
 * The same binary runs against the real /dev/kvm and under the kvmlike
 * interposer (LD_PRELOAD), so both backends are measured by identical code on
 * the same machine; scripts/bench.sh interleaves the two and compares them.
 *
 *   item 1  KVM_CREATE_GUEST_MEMFD + close of a SIZE file (create, close, both)
 *   item 2  fallocate(KEEP_SIZE) populate of the whole file: the first one of
 *           each flag set in this process, then on new files and again on the
 *           same inode after a punch
 *   item 3  fallocate(PUNCH_HOLE|KEEP_SIZE) of the whole populated file
 *           (items 2 and 3 are one loop)
 *   item 4  KVM_SET_USER_MEMORY_REGION2 + KVM_MEM_GUEST_MEMFD: create+delete
 *           pairs of one slot over the whole file, and up to 512 slots of 2 MiB
 *           created then deleted
 *   item 5  memset of already-faulted anonymous memory: the physical limit
 *
 * Items 2 and 4 run for guest_memfd flags 0 and MMAP|INIT_SHARED.
 *
 * Output, one line each:
 *   RESULT|metric|unit|median|min|max|n     (one sample per repetition)
 *   NOTE|topic|text
 *
 * Every populate is checked for real backing. Under kvmlike the inode's
 * present-page count (KVMLIKE_DEBUG_OBJECTS) must equal the file's page count
 * after a populate and be 0 after a punch, or the program exits 3 at the end;
 * on the kernel fallocate allocates the folios itself, which is only noted.
 * KVMLIKE_POOL_INFO and the process RSS are printed, so the memory the pool
 * obtained from the host is visible.
 *
 * Exit status: 0 ok, 1 an operation failed, 2 usage, 3 a backing check failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/falloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "bench_util.h"

#define PAGE_SIZE_4K 4096ull
#define SLOT_CHUNK (2 * MIB)
#define MAX_CHUNK_SLOTS 512
/* Slots go above the low GiB so that nothing overlaps the usual guest RAM. */
#define SLOT_GPA_BASE (1 * GIB)

#define EXIT_UNBACKED 3

/* ------------------------------------------------------------ options */

struct options {
	uint64_t size;  /* bytes of every guest_memfd and of the memset buffer */
	int reps;       /* 0: each item's default */
	int pairs;      /* slot create+delete pairs per repetition (item 4) */
	unsigned items; /* bit n = item n */
};

static struct options opt = {
	.size = 1024 * MIB,
	.reps = 0,
	.pairs = 500,
	.items = 0x3e, /* items 1-5 */
};

/*
 * Per-item defaults, chosen so that a whole run takes about 20 s on the
 * kernel of this machine: a sample of item 1 costs about a microsecond, a
 * repetition of items 2/3 about 0.2 s per flag set, one of item 4 0.1-0.2 s
 * per variant (the kernel's memslot updates are bimodal), one of item 5 0.1 s.
 */
static int reps_for(int item)
{
	static const int def[] = { 0, 1001, 15, 15, 25, 15 };
	return opt.reps > 0 ? opt.reps : def[item];
}

static bool want(int item) { return opt.items & (1u << item); }

/* --------------------------------------------------------- reporting */

static bool g_unbacked; /* a backing check failed: exit 3 at the end */

/* '|' separates fields, so flag names are joined with '+'. */
static const char *flag_name(uint64_t flags)
{
	if (flags == 0)
		return "flags=0";
	if (flags == SHARED_FLAGS)
		return "flags=MMAP+INIT_SHARED";
	return "flags=?";
}

static const char *metric(const char *base, const char *tag)
{
	static char buf[160];
	snprintf(buf, sizeof(buf), "%s[%s]", base, tag);
	return buf;
}

/* ------------------------------------------------------- KVM wrappers */

static int gmem_create(int vm, uint64_t size, uint64_t flags)
{
	struct kvm_create_guest_memfd g = { .size = size, .flags = flags };
	return ioctl(vm, KVM_CREATE_GUEST_MEMFD, &g);
}

static int gmem_create_or_die(int vm, uint64_t size, uint64_t flags)
{
	int fd = gmem_create(vm, size, flags);
	if (fd < 0)
		fail("KVM_CREATE_GUEST_MEMFD");
	return fd;
}

static int set_slot(int vm, uint32_t slot, uint64_t gpa, uint64_t size,
		    uint64_t uaddr, int gmem, uint64_t gmem_off)
{
	struct kvm_userspace_memory_region2 r = {
		.slot = slot,
		.flags = KVM_MEM_GUEST_MEMFD,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = uaddr,
		.guest_memfd_offset = gmem_off,
		.guest_memfd = (uint32_t)gmem,
	};
	return ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &r);
}

/* Flag sets the backend accepts; MMAP|INIT_SHARED is skipped if it is not. */
static bool flags_supported(int vm, uint64_t flags)
{
	if (flags == 0)
		return true;
	int caps = ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_FLAGS);
	if (caps < 0 || ((uint64_t)caps & flags) != flags) {
		note("skip", "%s: KVM_CAP_GUEST_MEMFD_FLAGS=0x%x lacks it",
		     flag_name(flags), caps < 0 ? 0 : caps);
		return false;
	}
	return true;
}

/* ------------------------------------------------ kvmlike introspection */

/*
 * The kvmlike inode ids live right now. A new guest_memfd's inode is the one
 * id that appears after KVM_CREATE_GUEST_MEMFD; fstat cannot tell it, since
 * st_ino is that of the backing memfd. This program keeps at most two
 * guest_memfds open at a time, so a small fixed set is plenty.
 */
struct id_set {
	uint32_t ids[64];
	int n;
};

static struct id_set live_inodes(void)
{
	struct id_set s = { .n = 0 };
	uint32_t nr;
	struct kvmlike_obj_info *e = debug_objects(&nr);
	for (uint32_t i = 0; i < nr && s.n < 64; i++)
		if (e[i].kind == KVMLIKE_OBJ_INODE)
			s.ids[s.n++] = e[i].id;
	free(e);
	return s;
}

static bool id_in(const struct id_set *s, uint32_t id)
{
	for (int i = 0; i < s->n; i++)
		if (s->ids[i] == id)
			return true;
	return false;
}

/* Present pages of inode id, or -1 if it is not live. */
static int64_t inode_pages(uint32_t id)
{
	uint32_t nr;
	int64_t pages = -1;
	struct kvmlike_obj_info *e = debug_objects(&nr);
	for (uint32_t i = 0; i < nr; i++)
		if (e[i].kind == KVMLIKE_OBJ_INODE && e[i].id == id)
			pages = (int64_t)e[i].pages;
	free(e);
	return pages;
}

/* A guest_memfd together with its kvmlike inode id (unused on the kernel). */
struct gmem {
	int fd;
	uint32_t inode;
	uint64_t flags;
};

static struct gmem gmem_open(int vm, uint64_t flags)
{
	struct gmem g = { .fd = -1, .inode = 0, .flags = flags };
	struct id_set before = { .n = 0 };
	bool found = false;
	if (g_kvmlike)
		before = live_inodes();
	g.fd = gmem_create_or_die(vm, opt.size, flags);
	if (!g_kvmlike)
		return g;
	struct id_set after = live_inodes();
	for (int i = 0; i < after.n; i++) {
		if (!id_in(&before, after.ids[i])) {
			g.inode = after.ids[i];
			found = true;
		}
	}
	if (!found) {
		errno = ESRCH;
		fail("new guest_memfd inode not in KVMLIKE_DEBUG_OBJECTS");
	}
	return g;
}

static void pool_note(const char *when)
{
	if (!g_kvmlike)
		return;
	struct kvmlike_pool_info p = pool_info();
	note("pool", "%s: frames_total=%llu (%.1f MiB obtained from the host, resident) "
	     "frames_free=%llu frame_size=%llu", when,
	     (unsigned long long)p.frames_total,
	     (double)(p.frames_total * p.frame_size) / (double)MIB,
	     (unsigned long long)p.frames_free, (unsigned long long)p.frame_size);
}

/* --------------------------------------------------- backing checks */

struct backing_tally {
	int checked, ok;
};

/*
 * After a populate, every page of the file must be present. Under kvmlike
 * that is the inode's own count; a shortfall means the populate rate was not
 * earned and the run must fail.
 */
static void check_backed(const struct gmem *g, const char *what, int rep,
			 struct backing_tally *t)
{
	int64_t want_pages = (int64_t)(opt.size / PAGE_SIZE_4K);
	if (!g_kvmlike)
		return;
	int64_t got = inode_pages(g->inode);
	t->checked++;
	if (got == want_pages) {
		t->ok++;
		return;
	}
	g_unbacked = true;
	note("backed", "%s rep %d: FAIL: kvmlike inode %u has %lld of %lld pages present",
	     what, rep, g->inode, (long long)got, (long long)want_pages);
}

/* After a punch nothing may stay present, or the punch rate is not real. */
static void check_empty(const struct gmem *g, const char *what, int rep)
{
	if (!g_kvmlike)
		return;
	int64_t got = inode_pages(g->inode);
	if (got != 0) {
		g_unbacked = true;
		note("backed", "%s rep %d: FAIL: kvmlike inode %u still has %lld pages after the punch",
		     what, rep, g->inode, (long long)got);
	}
}

static void backing_summary(const char *what, const struct backing_tally *t)
{
	if (g_kvmlike)
		note("backed", "%s: %s: %d/%d populates left all %llu pages present (KVMLIKE_DEBUG_OBJECTS)",
		     what, t->ok == t->checked ? "ok" : "FAIL", t->ok, t->checked,
		     (unsigned long long)(opt.size / PAGE_SIZE_4K));
	else
		/*
		 * Nothing to ask: the kernel's fallocate allocates the folios
		 * itself. mincore() cannot tell either, since fallocated
		 * guest_memfd folios are not uptodate until first zeroed.
		 */
		note("backed", "%s: kernel: not checked (its fallocate allocates the folios)", what);
}

/* ---------------------------------------------------- item 1 */

static void bench_create_close(int vm, uint64_t flags)
{
	struct series both = { 0 }, create = { 0 }, close_only = { 0 };
	int reps = reps_for(1);
	/* One unrecorded round: first-use setup (caches, lazy init) is not the op. */
	for (int i = -1; i < reps; i++) {
		double t0 = now_s();
		int fd = gmem_create_or_die(vm, opt.size, flags);
		double t1 = now_s();
		close(fd);
		double t2 = now_s();
		if (i < 0)
			continue;
		push(&create, (t1 - t0) * 1e6);
		push(&close_only, (t2 - t1) * 1e6);
		push(&both, (t2 - t0) * 1e6);
	}
	const char *tag = flag_name(flags);
	report(metric("create+close", tag), "us", &both);
	report(metric("create", tag), "us", &create);
	report(metric("close", tag), "us", &close_only);
}

/* ---------------------------------------------------- items 2 and 3 */

static double timed_fallocate(int fd, int mode, const char *what)
{
	double t0 = now_s();
	if (fallocate(fd, mode, 0, (off_t)opt.size))
		fail(what);
	return now_s() - t0;
}

static double populate(int fd)
{
	/* guest_memfd has a fixed size: mode 0 is EOPNOTSUPP, KEEP_SIZE is required. */
	return timed_fallocate(fd, FALLOC_FL_KEEP_SIZE, "fallocate(KEEP_SIZE)");
}

static double punch(int fd)
{
	return timed_fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			       "fallocate(PUNCH_HOLE|KEEP_SIZE)");
}

/*
 * One repetition: a new file is populated (the very first of this flag set is
 * reported apart: under kvmlike it is when the pool obtains memory from the
 * host), punched, populated again on the same inode, punched, closed.
 */
static void bench_populate_punch(int vm, uint64_t flags)
{
	struct series first = { 0 }, fresh = { 0 }, again = { 0 }, hole = { 0 };
	struct backing_tally tally = { 0 };
	const char *tag = flag_name(flags);
	double gib = (double)opt.size / (double)GIB;
	int reps = reps_for(2);

	for (int r = 0; r < reps; r++) {
		struct gmem g = gmem_open(vm, flags);
		push(r == 0 ? &first : &fresh, gib / populate(g.fd));
		check_backed(&g, metric("populate_new_file", tag), r, &tally);
		if (r == 0) /* the file owns its frames now: none of them is free */
			pool_note(metric("after the first populate", tag));
		push(&hole, gib / punch(g.fd));
		check_empty(&g, metric("punch", tag), r);
		push(&again, gib / populate(g.fd));
		check_backed(&g, metric("populate_after_punch", tag), r, &tally);
		push(&hole, gib / punch(g.fd));
		check_empty(&g, metric("punch", tag), r);
		close(g.fd);
	}
	backing_summary(metric("populate", tag), &tally);
	report(metric("populate_first", tag), "GiB/s", &first);
	report(metric("populate_new_file", tag), "GiB/s", &fresh);
	report(metric("populate_after_punch", tag), "GiB/s", &again);
	report(metric("punch", tag), "GiB/s", &hole);
}

/* ---------------------------------------------------- item 4 */

/* Where a slot's userspace_addr points, per variant. */
static void *slot_uaddr(const struct gmem *g)
{
	void *p;
	if (g->flags & GUEST_MEMFD_FLAG_MMAP)
		/* shared gmem: the host view of the slot is the file's own mapping */
		p = mmap(NULL, opt.size, PROT_READ | PROT_WRITE, MAP_SHARED, g->fd, 0);
	else
		/* private gmem: an anonymous range that is never touched */
		p = mmap(NULL, opt.size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		fail("mmap userspace_addr");
	return p;
}

/* One create+delete pair of slot 0 over the whole file; returns both times. */
static void slot_pair(int vm, const struct gmem *g, uint64_t ua, double *tc, double *td)
{
	double t0 = now_s();
	if (set_slot(vm, 0, SLOT_GPA_BASE, opt.size, ua, g->fd, 0))
		fail("KVM_SET_USER_MEMORY_REGION2 create");
	double t1 = now_s();
	/* memory_size 0 deletes the slot */
	if (set_slot(vm, 0, SLOT_GPA_BASE, 0, ua, g->fd, 0))
		fail("KVM_SET_USER_MEMORY_REGION2 delete");
	double t2 = now_s();
	*tc = t1 - t0;
	*td = t2 - t1;
}

static void bench_slot_pairs(int vm, const struct gmem *g, uint64_t ua, const char *tag)
{
	struct series rate = { 0 }, cre = { 0 }, del = { 0 };
	double tc, td;
	slot_pair(vm, g, ua, &tc, &td); /* warm-up: first-slot setup is not the op */
	for (int r = 0; r < reps_for(4); r++) {
		double sc = 0, sd = 0;
		double t0 = now_s();
		for (int i = 0; i < opt.pairs; i++) {
			slot_pair(vm, g, ua, &tc, &td);
			sc += tc;
			sd += td;
		}
		push(&rate, opt.pairs / (now_s() - t0));
		push(&cre, sc / opt.pairs * 1e6);
		push(&del, sd / opt.pairs * 1e6);
	}
	report(metric("slot_create+delete", tag), "pairs/s", &rate);
	report(metric("slot_create", tag), "us", &cre);
	report(metric("slot_delete", tag), "us", &del);
}

/* Creates (size != 0) or deletes (size == 0) slots 0..n-1; returns seconds. */
static double chunk_slots(int vm, const struct gmem *g, uint64_t ua, int n, bool create)
{
	double t0 = now_s();
	for (int s = 0; s < n; s++) {
		uint64_t off = (uint64_t)s * SLOT_CHUNK;
		if (set_slot(vm, (uint32_t)s, SLOT_GPA_BASE + off, create ? SLOT_CHUNK : 0,
			     ua + off, g->fd, off))
			fail(create ? "KVM_SET_USER_MEMORY_REGION2 create (chunks)"
				    : "KVM_SET_USER_MEMORY_REGION2 delete (chunks)");
	}
	return now_s() - t0;
}

static void bench_chunk_slots(int vm, const struct gmem *g, uint64_t ua, const char *tag)
{
	struct series cre = { 0 }, del = { 0 };
	int n = (int)(opt.size / SLOT_CHUNK);
	if (n > MAX_CHUNK_SLOTS)
		n = MAX_CHUNK_SLOTS;
	int nr_slots = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_MEMSLOTS);
	if (nr_slots > 0 && n > nr_slots)
		n = nr_slots;
	note("slots2m", "%s: %d slots of 2 MiB (KVM_CAP_NR_MEMSLOTS=%d)", tag, n, nr_slots);
	for (int r = -1; r < reps_for(4); r++) { /* r = -1: warm-up */
		double tc = chunk_slots(vm, g, ua, n, true);
		double td = chunk_slots(vm, g, ua, n, false);
		if (r < 0)
			continue;
		push(&cre, tc * 1e3);
		push(&del, td * 1e3);
	}
	report(metric("slots2m_create_all", tag), "ms", &cre);
	report(metric("slots2m_delete_all", tag), "ms", &del);
}

static void bench_slots(int vm, uint64_t flags)
{
	struct gmem g = gmem_open(vm, flags);
	void *ua = slot_uaddr(&g);
	char tag[64];
	snprintf(tag, sizeof(tag), "%s,uaddr=%s", flag_name(flags),
		 (flags & GUEST_MEMFD_FLAG_MMAP) ? "gmem" : "anon");
	bench_slot_pairs(vm, &g, (uint64_t)(uintptr_t)ua, tag);
	bench_chunk_slots(vm, &g, (uint64_t)(uintptr_t)ua, tag);
	munmap(ua, opt.size);
	close(g.fd);
}

/* ---------------------------------------------------- item 5 */

static void bench_memset(void)
{
	struct series bw = { 0 };
	unsigned char *p = mmap(NULL, opt.size, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		fail("mmap anon");
	memset(p, 0xff, opt.size); /* fault everything in first: only stores are timed */
	for (int r = 0; r < reps_for(5); r++) {
		/* A new non-zero byte each time: zero stores take a faster path. */
		int fill = 1 + r % 254;
		double t0 = now_s();
		memset(p, fill, opt.size);
		/* the compiler must not drop stores to memory nobody reads */
		__asm__ volatile("" : : "r"(p) : "memory");
		push(&bw, (double)opt.size / 1e9 / (now_s() - t0));
	}
	munmap(p, opt.size);
	report("memset_nonzero[anon,faulted]", "GB/s", &bw);
}

/* ---------------------------------------------------- main */

static void usage(const char *argv0)
{
	fprintf(stderr,
		"usage: %s [-r REPS] [-s SIZE_MIB] [-i ITEMS] [-p PAIRS]\n"
		"  -r REPS      repetitions of every measurement (default per item:\n"
		"               1: 1001, 2/3: 15, 4: 25, 5: 15; about 20 s on the kernel)\n"
		"  -s SIZE_MIB  guest_memfd and memset size, multiple of 2 (default 1024)\n"
		"  -i ITEMS     items to run, e.g. 1,2,4 or 124 (default all: 1-5;\n"
		"               2 and 3 are one loop)\n"
		"  -p PAIRS     slot create+delete pairs per repetition (default 500)\n",
		argv0);
	exit(EXIT_USAGE);
}

static unsigned parse_items(const char *s)
{
	unsigned m = 0;
	for (; *s; s++) {
		if (*s >= '1' && *s <= '5')
			m |= 1u << (*s - '0');
		else if (*s != ',')
			return 0;
	}
	/* populate and punch are measured by the same loop */
	if (m & (1u << 3))
		m |= 1u << 2;
	return m;
}

static void parse_options(int argc, char **argv)
{
	int c;
	while ((c = getopt(argc, argv, "r:s:i:p:h")) != -1) {
		char *end = NULL;
		long v = 0;
		if (c != 'i' && c != 'h' && c != '?')
			v = strtol(optarg, &end, 10);
		switch (c) {
		case 'r':
			if (*end || v < 1)
				usage(argv[0]);
			opt.reps = (int)v;
			break;
		case 's':
			if (*end || v < 2 || v % 2)
				usage(argv[0]);
			opt.size = (uint64_t)v * MIB;
			break;
		case 'p':
			if (*end || v < 1)
				usage(argv[0]);
			opt.pairs = (int)v;
			break;
		case 'i':
			opt.items = parse_items(optarg);
			if (!opt.items)
				usage(argv[0]);
			break;
		default:
			usage(argv[0]);
		}
	}
	if (optind != argc)
		usage(argv[0]);
}

static void header_notes(void)
{
	struct utsname u;
	uname(&u);
	note("backend", "%s", g_kvmlike ? "kvmlike" : "kernel");
	char reps[16] = "default";
	if (opt.reps)
		snprintf(reps, sizeof(reps), "%d", opt.reps);
	note("config", "size_mib=%llu reps=%s pairs=%d uname=%s",
	     (unsigned long long)(opt.size / MIB), reps, opt.pairs, u.release);
}

static void trailer_notes(void)
{
	rss_note("end");
	if (!g_kvmlike)
		return;
	pool_note("end");
	/* everything was closed: anything live now is a leak (only noted here) */
	note("objects", "live kvmlike objects at the end: %u", live_objects());
}

int main(int argc, char **argv)
{
	static const uint64_t all_flags[] = { 0, SHARED_FLAGS };
	uint64_t flag_sets[2];
	size_t nr_sets = 0;

	bench_prog = "gmem_bench";
	parse_options(argc, argv);
	bench_open_kvm();
	header_notes();

	int vm = create_vm(0);
	if (vm < 0)
		fail("KVM_CREATE_VM");
	for (size_t k = 0; k < 2; k++)
		if (flags_supported(vm, all_flags[k]))
			flag_sets[nr_sets++] = all_flags[k];
	for (size_t k = 0; k < nr_sets && want(1); k++)
		bench_create_close(vm, flag_sets[k]);
	/* Nothing before this point populates: the "first" populate is the first. */
	for (size_t k = 0; k < nr_sets && want(2); k++)
		bench_populate_punch(vm, flag_sets[k]);
	for (size_t k = 0; k < nr_sets && want(4); k++)
		bench_slots(vm, flag_sets[k]);
	close(vm);
	if (want(5))
		bench_memset();

	trailer_notes();
	close(kvm_fd);
	if (g_unbacked) {
		fprintf(stderr, "gmem_bench: a populated range was not fully present\n");
		return EXIT_UNBACKED;
	}
	return 0;
}
