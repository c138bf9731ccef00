/* SPDX-License-Identifier: MIT */
/*
 * guest_fault_bench: a vCPU faults in guest_memfd-backed memory.
 *
 * A guest stores one byte into every 4 KiB page of SIZE (default 1 GiB) of
 * guest-physical memory at GPA 1 GiB and reports completion with OUT to port
 * 0x10. Each repetition is a new VM. Two times are taken per repetition:
 *
 *   guest_total  KVM_CREATE_VM up to the guest's final exit: VM, guest_memfd,
 *                memslots, attributes, vCPU, registers, any fallocate or
 *                pre-fault, and the run (teardown is not included)
 *   guest_run    KVM_RUN alone, from entry to that exit
 *
 * both as 4 KiB pages per second. The same binary runs against the real
 * /dev/kvm and under the kvmlike interposer (LD_PRELOAD); scripts/bench.sh
 * interleaves the two and compares them.
 *
 * Payloads (the byte arrays below, documented instruction by instruction):
 *   kernel   64-bit code at CPL 3 over an identity map built from 2 MiB guest
 *            pages. The kernel on the reference machine (kvm_pvm: shadow
 *            paging, no TDP) runs only that natively; every other mode goes
 *            through its instruction emulator, which would measure the
 *            emulator instead of the fault path.
 *   kvmlike  32-bit flat protected mode without paging: kvmlike executes only
 *            real mode and protected mode (docs/x86-subset.md).
 * The loop is the same in both: store, add 4 KiB, decrement, branch.
 *
 * Variants (-V, in this order):
 *   shared       default VM, guest_memfd MMAP|INIT_SHARED bound with
 *                KVM_MEM_GUEST_MEMFD, userspace_addr = its mmap (the kernel's
 *                guest_memfd folios; kvmlike's memfd)
 *   shared-fa    the same after fallocate(KEEP_SIZE) of the whole file
 *   private      KVM_X86_SW_PROTECTED_VM, guest_memfd flags 0, the range set
 *                PRIVATE with KVM_SET_MEMORY_ATTRIBUTES (kvmlike: pool frames)
 *   private-fa   the same after fallocate(KEEP_SIZE)
 *   prefault     private, KVM_PRE_FAULT_MEMORY over the range before the run
 *                (timed on its own as "prefault"); the kernel answers
 *                EOPNOTSUPP without TDP, which is printed as a NOTE
 *   private-2m   private with 2 MiB second-level leaves, asked of kvmlike
 *                with KVMLIKE_HUGE_LEAVES; KVMLIKE_WALK_GPA tells the leaf
 *                level. No figure is printed unless every 2 MiB block was
 *                mapped by a 2 MiB leaf: a NOTE says why instead.
 * Variants a backend lacks (the kernel here offers no SW_PROTECTED VM) are
 * skipped with a NOTE; the pre-fault is then still tried on shared memory, so
 * the backend's answer is printed. Repetitions in which kvmlike's private-page
 * pool grew (frames obtained from the host: host page faults in the times)
 * are reported apart as "pool-grows" and do not count as repetitions of the
 * steady state. A 16 MiB run of "shared" comes first and is not recorded.
 *
 * Host references, measured in the same process: first-touch write faults of
 * a memfd MAP_SHARED mapping, one byte per 4 KiB page, on a new file (fresh)
 * and through a new mapping of the now populated file (resident); and the
 * same byte-per-page loop over resident memory without faults, plain and with
 * N stores to a cache-hot buffer after each page's store (host_stores[+N]).
 * That is the ceiling for code that executes the guest's loop with N host
 * stores of its own per iteration: the store to a page not in the cache waits
 * for its line, and stores leave the store buffer in order, so every store
 * behind it waits too.
 *
 * Checks (a failure makes the exit status 3; the figures are still printed):
 *   - every page holds the guest's byte: through the host mapping for shared
 *     memory; for private memory a second guest pass reads every page back
 *     and reports the count of matching pages with OUT to port 0x11;
 *   - under kvmlike: the private inode has every page present, and
 *     KVMLIKE_DEBUG_OBJECTS lists no object after each repetition's teardown
 *     and at the end (nothing leaked).
 *
 * Output, one line each:
 *   RESULT|metric|unit|median|min|max|n     (one sample per repetition)
 *   NOTE|topic|text
 *
 * Exit status: 0 ok, 1 an operation failed, 2 usage, 3 a check failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/falloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

#define PAGE_4K 4096ull
#define BLOCK_2M (2 * MIB)

#define EXIT_CHECK 3

/* Guest-physical layout. Slot 0 (anonymous) holds code, GDT, stack and the
 * kernel payload's page tables; slot 1 is the region the guest touches. */
#define LOW_SIZE (1 * MIB)
#define GDT_GPA 0x0800ull
#define WRITE_GPA 0x1000ull  /* write pass */
#define CHECK_GPA 0x2000ull  /* read-back pass */
#define STACK_TOP 0x8000ull
#define PT_GPA 0x10000ull    /* PML4, PDPT, 4 PDs: 0x10000-0x15fff */
#define DATA_GPA (1 * GIB)
#define DATA_SLOT 1

#define DONE_PORT 0x10
#define COUNT_PORT 0x11
#define MARK 0xa5            /* the byte every page receives */

#define RUN_WATCHDOG_S 120   /* one KVM_RUN pass longer than this fails */
#define WARMUP_SIZE (16 * MIB)

#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 1u
#endif

/* ------------------------------------------------------------ payloads */

/*
 * 32-bit protected mode (CS.D = 1), paging off. Write pass at WRITE_GPA:
 *
 *  off  bytes                 instruction             effect
 *  00   BF d0 d1 d2 d3        mov edi, imm32          edi = DATA_GPA
 *  05   B9 n0 n1 n2 n3        mov ecx, imm32          ecx = pages
 *  0A   C6 07 A5              mov byte [edi], MARK    the store that faults
 *  0D   81 C7 00 10 00 00     add edi, 0x1000         next 4 KiB page
 *  13   49                    dec ecx
 *  14   75 F4                 jnz 0x0A                (0x16 - 12)
 *  16   E6 10                 out DONE_PORT, al       final exit
 *  18   F4                    hlt                     not reached in a run
 *  19   EB FD                 jmp 0x18
 */
static const uint8_t pm32_write[] = {
	0xBF, 0, 0, 0, 0,
	0xB9, 0, 0, 0, 0,
	0xC6, 0x07, MARK,
	0x81, 0xC7, 0x00, 0x10, 0x00, 0x00,
	0x49,
	0x75, 0xF4,
	0xE6, DONE_PORT,
	0xF4,
	0xEB, 0xFD,
};
#define PM32_WRITE_ADDR 1
#define PM32_WRITE_PAGES 6

/*
 * Read-back pass at CHECK_GPA (same mode): counts the pages that hold MARK.
 *
 *  off  bytes                 instruction             effect
 *  00   BE d0 d1 d2 d3        mov esi, imm32          esi = DATA_GPA
 *  05   B9 n0 n1 n2 n3        mov ecx, imm32          ecx = pages
 *  0A   31 D2                 xor edx, edx            edx = matches
 *  0C   80 3E A5              cmp byte [esi], MARK
 *  0F   75 01                 jne 0x12                (0x11 + 1)
 *  11   42                    inc edx
 *  12   81 C6 00 10 00 00     add esi, 0x1000
 *  18   49                    dec ecx
 *  19   75 F1                 jnz 0x0C                (0x1B - 15)
 *  1B   89 D0                 mov eax, edx
 *  1D   E7 11                 out COUNT_PORT, eax     the count, 4 bytes
 *  1F   F4                    hlt
 *  20   EB FD                 jmp 0x1F
 */
static const uint8_t pm32_check[] = {
	0xBE, 0, 0, 0, 0,
	0xB9, 0, 0, 0, 0,
	0x31, 0xD2,
	0x80, 0x3E, MARK,
	0x75, 0x01,
	0x42,
	0x81, 0xC6, 0x00, 0x10, 0x00, 0x00,
	0x49,
	0x75, 0xF1,
	0x89, 0xD0,
	0xE7, COUNT_PORT,
	0xF4,
	0xEB, 0xFD,
};
#define PM32_CHECK_ADDR 1
#define PM32_CHECK_PAGES 6

/*
 * 64-bit code at CPL 3 (CS.L = 1), paging on. Write pass at WRITE_GPA:
 *
 *  off  bytes                    instruction          effect
 *  00   48 BF q0 .. q7           mov rdi, imm64       rdi = DATA_GPA
 *  0A   B9 n0 n1 n2 n3           mov ecx, imm32       ecx = pages (zero-extended)
 *  0F   C6 07 A5                 mov byte [rdi], MARK the store that faults
 *  12   48 81 C7 00 10 00 00     add rdi, 0x1000
 *  19   FF C9                    dec ecx              (49 would be a REX prefix)
 *  1B   75 F2                    jnz 0x0F             (0x1D - 14)
 *  1D   E6 10                    out DONE_PORT, al    final exit
 *  1F   EB FE                    jmp 0x1F             (HLT is privileged at CPL 3)
 */
static const uint8_t user64_write[] = {
	0x48, 0xBF, 0, 0, 0, 0, 0, 0, 0, 0,
	0xB9, 0, 0, 0, 0,
	0xC6, 0x07, MARK,
	0x48, 0x81, 0xC7, 0x00, 0x10, 0x00, 0x00,
	0xFF, 0xC9,
	0x75, 0xF2,
	0xE6, DONE_PORT,
	0xEB, 0xFE,
};
#define USER64_WRITE_ADDR 2
#define USER64_WRITE_PAGES 11

/* ------------------------------------------------------------ options */

enum variant_id {
	V_SHARED,
	V_SHARED_FA,
	V_PRIVATE,
	V_PRIVATE_FA,
	V_PREFAULT,
	V_PRIVATE_2M,
	V_COUNT,
};

struct variant {
	const char *opt;  /* -V name */
	const char *tag;  /* metric tag */
	bool private_mem; /* SW_PROTECTED VM, flags-0 guest_memfd, PRIVATE range */
	bool fallocate;   /* fallocate(KEEP_SIZE) the whole file before the run */
	bool prefault;    /* KVM_PRE_FAULT_MEMORY the range before the run */
	bool huge;        /* 2 MiB leaves wanted */
};

static const struct variant variants[V_COUNT] = {
	[V_SHARED] = { "shared", "gmem-shared,fresh", false, false, false, false },
	[V_SHARED_FA] = { "shared-fa", "gmem-shared,fallocated", false, true, false, false },
	[V_PRIVATE] = { "private", "private,fresh", true, false, false, false },
	[V_PRIVATE_FA] = { "private-fa", "private,fallocated", true, true, false, false },
	[V_PREFAULT] = { "prefault", "private,prefaulted", true, false, true, false },
	[V_PRIVATE_2M] = { "private-2m", "private,2m-leaves", true, false, false, true },
};

static struct {
	uint64_t size;
	int reps;
	int host_reps;
	unsigned want; /* bit per variant */
	bool host_ref;
} opt = {
	.size = 1 * GIB,
	.reps = 2,
	.host_reps = 3,
	.want = (1u << V_COUNT) - 1,
	.host_ref = true,
};

static uint64_t pages(void) { return opt.size / PAGE_4K; }

/* --------------------------------------------------------- reporting */

static bool g_check_failed;

/* NOTE|topic|FAIL: text, and exit status 3 at the end. */
static void check_failed(const char *topic, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check_failed(const char *topic, const char *fmt, ...)
{
	char text[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	note(topic, "FAIL: %s", text);
	g_check_failed = true;
}

static const char *metric(const char *base, const char *tag, const char *extra)
{
	static char buf[160];
	snprintf(buf, sizeof(buf), "%s[%s%s%s]", base, tag, extra ? "," : "", extra ? extra : "");
	return buf;
}

/* ----------------------------------------------------- kvmlike queries */

/* Present pages of the one live guest_memfd inode (-1: not exactly one). */
static int64_t sole_inode_pages(void)
{
	uint32_t nr, inodes = 0;
	int64_t pages_present = -1;
	struct kvmlike_obj_info *e = debug_objects(&nr);
	for (uint32_t i = 0; i < nr; i++) {
		if (e[i].kind == KVMLIKE_OBJ_INODE) {
			inodes++;
			pages_present = (int64_t)e[i].pages;
		}
	}
	free(e);
	return inodes == 1 ? pages_present : -1;
}

static void pool_note(const char *when)
{
	if (!g_kvmlike)
		return;
	struct kvmlike_pool_info p = pool_info();
	note("pool", "%s: frames_total=%llu (%.1f MiB obtained from the host, resident) frames_free=%llu",
	     when, (unsigned long long)p.frames_total,
	     (double)(p.frames_total * p.frame_size) / (double)MIB,
	     (unsigned long long)p.frames_free);
}

/*
 * Leaf levels of the second-level table over the data region, one walk per
 * 2 MiB block (its first page): how many blocks a 2 MiB leaf maps, how many a
 * 4 KiB leaf, how many nothing. false when the backend has no such query.
 */
struct levels {
	uint64_t l2m, l4k, none;
};

static bool walk_levels(int vm, struct levels *lv)
{
	memset(lv, 0, sizeof(*lv));
	if (!g_kvmlike)
		return false;
	for (uint64_t off = 0; off < opt.size; off += BLOCK_2M) {
		struct kvmlike_walk_gpa w;
		memset(&w, 0, sizeof(w));
		w.gpa = DATA_GPA + off;
		if (ioctl(vm, KVMLIKE_WALK_GPA, &w)) {
			if (errno != ENOENT)
				fail("KVMLIKE_WALK_GPA");
			lv->none++;
		} else if (w.level == 2) {
			lv->l2m++;
		} else {
			lv->l4k++;
		}
	}
	return true;
}

/* ------------------------------------------------------- KVM wrappers */

static int set_slot(int vm, uint32_t slot, uint32_t flags, uint64_t gpa, uint64_t size,
		    void *uaddr, int gmem)
{
	struct kvm_userspace_memory_region2 r = {
		.slot = slot,
		.flags = flags,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uint64_t)(uintptr_t)uaddr,
		.guest_memfd_offset = 0,
		.guest_memfd = gmem < 0 ? 0 : (uint32_t)gmem,
	};
	return ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &r);
}

static volatile sig_atomic_t watchdog_fired;

static void on_alarm(int sig)
{
	(void)sig;
	watchdog_fired = 1;
}

static void watchdog(unsigned int seconds)
{
	struct itimerval it;
	memset(&it, 0, sizeof(it));
	it.it_value.tv_sec = seconds;
	watchdog_fired = 0;
	if (setitimer(ITIMER_REAL, &it, NULL))
		fail("setitimer");
}

static void print_exit(int vcpu, const struct kvm_run *run)
{
	struct kvm_regs r;
	memset(&r, 0, sizeof(r));
	ioctl(vcpu, KVM_GET_REGS, &r);
	fprintf(stderr, "guest_fault_bench: unexpected exit %u at rip 0x%llx (rdi 0x%llx rcx 0x%llx)",
		run->exit_reason, (unsigned long long)r.rip, (unsigned long long)r.rdi,
		(unsigned long long)r.rcx);
	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		fprintf(stderr, ": io port 0x%x direction %u size %u", run->io.port,
			run->io.direction, run->io.size);
		break;
	case KVM_EXIT_MMIO:
		fprintf(stderr, ": mmio 0x%llx", (unsigned long long)run->mmio.phys_addr);
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		fprintf(stderr, ": internal error, suberror %u", run->internal.suberror);
		break;
	case KVM_EXIT_MEMORY_FAULT: {
		const struct kvm_run_memory_fault *mf =
			kvm_run_mem_fault((struct kvm_run *)(uintptr_t)run);
		fprintf(stderr, ": memory fault gpa 0x%llx flags 0x%llx",
			(unsigned long long)mf->gpa, (unsigned long long)mf->flags);
		break;
	}
	default:
		break;
	}
	fputc('\n', stderr);
}

/*
 * KVM_RUN until the guest's OUT to port; the OUT's data (up to 4 bytes) in
 * *value. Exits the program on anything else: a benchmark guest has exactly
 * one exit.
 */
static void run_to_port(int vcpu, struct kvm_run *run, uint16_t port, uint32_t *value)
{
	watchdog(RUN_WATCHDOG_S);
	for (;;) {
		if (ioctl(vcpu, KVM_RUN, 0) < 0) {
			if ((errno == EINTR || errno == EAGAIN) && !watchdog_fired)
				continue;
			if (watchdog_fired)
				errno = ETIMEDOUT;
			fail("KVM_RUN");
		}
		if (run->exit_reason == KVM_EXIT_IO && run->io.port == port &&
		    run->io.direction == KVM_EXIT_IO_OUT)
			break;
		print_exit(vcpu, run);
		errno = EPROTO;
		fail("KVM_RUN");
	}
	watchdog(0);
	if (value) {
		uint32_t v = 0;
		memcpy(&v, (uint8_t *)run + run->io.data_offset, run->io.size <= 4 ? run->io.size : 4);
		*value = v;
	}
}

/* ------------------------------------------------------- vCPU set-up */

static struct kvm_segment flat_segment(uint16_t sel, uint8_t type, uint8_t dpl, bool code64)
{
	struct kvm_segment s;
	memset(&s, 0, sizeof(s));
	s.base = 0;
	s.limit = 0xffffffff;
	s.selector = sel;
	s.type = type; /* 0xb: code execute/read accessed, 0x3: data read/write accessed */
	s.present = 1;
	s.dpl = dpl;
	s.s = 1;
	s.g = 1;
	s.l = code64;
	s.db = !code64;
	return s;
}

static void set_regs(int vcpu, uint64_t rip)
{
	struct kvm_regs r;
	memset(&r, 0, sizeof(r));
	r.rip = rip;
	r.rsp = STACK_TOP;
	r.rflags = 0x2;
	if (ioctl(vcpu, KVM_SET_REGS, &r))
		fail("KVM_SET_REGS");
}

/* kvmlike's payload: flat 32-bit protected mode at CPL 0, paging off. */
static void setup_pm32(int vcpu, uint8_t *low)
{
	static const uint64_t gdt[3] = {
		0,
		0x00cf9b000000ffffull, /* 0x08: code, base 0, 4 GiB, D, G */
		0x00cf93000000ffffull, /* 0x10: data, base 0, 4 GiB, B, G */
	};
	struct kvm_sregs sr;
	memcpy(low + GDT_GPA, gdt, sizeof(gdt));
	if (ioctl(vcpu, KVM_GET_SREGS, &sr))
		fail("KVM_GET_SREGS");
	sr.cs = flat_segment(0x08, 0xb, 0, false);
	sr.ds = flat_segment(0x10, 0x3, 0, false);
	sr.es = sr.fs = sr.gs = sr.ss = sr.ds;
	sr.gdt.base = GDT_GPA;
	sr.gdt.limit = sizeof(gdt) - 1;
	sr.cr0 = 0x11; /* PE | ET */
	sr.cr4 = 0;
	sr.efer = 0;
	if (ioctl(vcpu, KVM_SET_SREGS, &sr))
		fail("KVM_SET_SREGS");
}

/*
 * The kernel's payload: long mode, CPL 3 (CS 0x33, SS 0x2b as Linux's user
 * segments), identity map of the low 4 GiB with 2 MiB pages, U/S at every
 * level. The vCPU gets the host-supported CPUID first.
 */
static void setup_user64(int vcpu, uint8_t *low)
{
	uint64_t *pml4 = (uint64_t *)(void *)(low + PT_GPA);
	uint64_t *pdpt = (uint64_t *)(void *)(low + PT_GPA + 0x1000);
	const uint64_t p_rw_us = 0x7, ps = 0x80;
	memset(low + PT_GPA, 0, 6 * PAGE_4K);
	pml4[0] = (PT_GPA + 0x1000) | p_rw_us;
	for (uint64_t g = 0; g < 4; g++) {
		uint64_t pd_gpa = PT_GPA + 0x2000 + g * 0x1000;
		uint64_t *pd = (uint64_t *)(void *)(low + pd_gpa);
		pdpt[g] = pd_gpa | p_rw_us;
		for (uint64_t i = 0; i < 512; i++)
			pd[i] = (g * GIB + i * BLOCK_2M) | ps | p_rw_us;
	}

	int nent = 256;
	struct kvm_cpuid2 *cpuid = calloc(1, sizeof(*cpuid) + (size_t)nent * sizeof(struct kvm_cpuid_entry2));
	if (!cpuid)
		fail("calloc");
	cpuid->nent = (uint32_t)nent;
	if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid) == 0)
		(void)ioctl(vcpu, KVM_SET_CPUID2, cpuid); /* best effort */
	free(cpuid);

	/* SYSCALL/SYSRET selectors as Linux sets them (kernel CS 0x10, user 0x23/0x33) */
	struct kvm_msrs *msrs = calloc(1, sizeof(*msrs) + sizeof(struct kvm_msr_entry));
	if (!msrs)
		fail("calloc");
	msrs->nmsrs = 1;
	msrs->entries[0].index = 0xc0000081; /* MSR_STAR */
	msrs->entries[0].data = (0x23ull << 48) | (0x10ull << 32);
	(void)ioctl(vcpu, KVM_SET_MSRS, msrs);
	free(msrs);

	struct kvm_sregs sr;
	if (ioctl(vcpu, KVM_GET_SREGS, &sr))
		fail("KVM_GET_SREGS");
	sr.cs = flat_segment(0x33, 0xb, 3, true);
	sr.ss = flat_segment(0x2b, 0x3, 3, false);
	sr.ds = sr.es = sr.ss;
	memset(&sr.fs, 0, sizeof(sr.fs));
	sr.fs.unusable = 1;
	sr.gs = sr.fs;
	sr.cr3 = PT_GPA;
	sr.cr4 = 0x20;        /* PAE */
	sr.efer = 0x500;      /* LME | LMA */
	sr.cr0 = 0x80000011;  /* PG | ET | PE */
	if (ioctl(vcpu, KVM_SET_SREGS, &sr))
		fail("KVM_SET_SREGS");
}

/* Copies the write pass (and the read-back pass) with their operands. */
static void load_code(uint8_t *low)
{
	uint32_t n = (uint32_t)pages();
	if (g_kvmlike) {
		uint32_t a = (uint32_t)DATA_GPA;
		memcpy(low + WRITE_GPA, pm32_write, sizeof(pm32_write));
		memcpy(low + WRITE_GPA + PM32_WRITE_ADDR, &a, 4);
		memcpy(low + WRITE_GPA + PM32_WRITE_PAGES, &n, 4);
		memcpy(low + CHECK_GPA, pm32_check, sizeof(pm32_check));
		memcpy(low + CHECK_GPA + PM32_CHECK_ADDR, &a, 4);
		memcpy(low + CHECK_GPA + PM32_CHECK_PAGES, &n, 4);
	} else {
		uint64_t a = DATA_GPA;
		memcpy(low + WRITE_GPA, user64_write, sizeof(user64_write));
		memcpy(low + WRITE_GPA + USER64_WRITE_ADDR, &a, 8);
		memcpy(low + WRITE_GPA + USER64_WRITE_PAGES, &n, 4);
	}
}

/* ------------------------------------------------------ availability */

static bool private_available(const char **why)
{
	int types = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_VM_TYPES);
	if (types <= 0 || !(types & (1 << KVM_X86_SW_PROTECTED_VM))) {
		*why = "KVM_CAP_VM_TYPES lacks KVM_X86_SW_PROTECTED_VM";
		return false;
	}
	int attrs = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MEMORY_ATTRIBUTES);
	if (attrs <= 0 || !((uint64_t)attrs & KVM_MEMORY_ATTRIBUTE_PRIVATE)) {
		*why = "KVM_CAP_MEMORY_ATTRIBUTES lacks PRIVATE";
		return false;
	}
	return true;
}

/* ------------------------------------------------------ one repetition */

struct rep_result {
	double total_s;     /* KVM_CREATE_VM .. final exit */
	double run_s;       /* KVM_RUN only */
	double prefault_s;  /* KVM_PRE_FAULT_MEMORY only */
	bool pool_grew;     /* kvmlike: the pool obtained frames from the host meanwhile */
	double scrub_wait_s; /* kvmlike: waited for the pool's scrubber before t0 */
	uint64_t unclear;   /* kvmlike: frames handed out unscrubbed during the run */
	int prefault_errno; /* first KVM_PRE_FAULT_MEMORY refused: its errno */
	struct levels lv;
	bool have_levels;
};

/*
 * kvmlike's pool clears freed frames in a background thread. A repetition
 * starts once that is done (as on a host where VMs do not start the instant
 * the previous one is gone); the wait is reported on its own.
 */
static double wait_scrubbed(void)
{
	double w0 = now_s();
	while (pool_info().frames_unscrubbed) {
		if (now_s() - w0 > RUN_WATCHDOG_S)
			fail("waiting for the pool's scrubber");
		usleep(200);
	}
	return now_s() - w0;
}

/*
 * One VM, one guest_memfd, one write pass, checks, teardown. Returns false
 * when the backend refused a step the variant needs (reported by the caller).
 */
static bool one_rep(const struct variant *v, struct rep_result *out)
{
	const uint64_t npages = pages();
	memset(out, 0, sizeof(*out));
	/* frames the pool obtained from the host so far (0 on the kernel) */
	const uint64_t pool_before = pool_info().frames_total;
	if (g_kvmlike)
		out->scrub_wait_s = wait_scrubbed();
	const uint64_t unclear_before = pool_info().frames_handed_unclear;

	double t0 = now_s();
	int vm = create_vm(v->private_mem ? KVM_X86_SW_PROTECTED_VM : KVM_X86_DEFAULT_VM);
	if (vm < 0)
		fail("KVM_CREATE_VM");
	uint8_t *low = mmap(NULL, LOW_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (low == MAP_FAILED)
		fail("mmap low memory");
	if (set_slot(vm, 0, 0, 0, LOW_SIZE, low, -1))
		fail("KVM_SET_USER_MEMORY_REGION2 slot 0");

	struct kvm_create_guest_memfd cg = {
		.size = opt.size,
		.flags = v->private_mem ? 0 : SHARED_FLAGS,
	};
	int gmem = ioctl(vm, KVM_CREATE_GUEST_MEMFD, &cg);
	if (gmem < 0)
		fail("KVM_CREATE_GUEST_MEMFD");
	void *ua;
	if (v->private_mem) /* shared accesses would go here; the guest makes none */
		ua = mmap(NULL, opt.size, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	else
		ua = mmap(NULL, opt.size, PROT_READ | PROT_WRITE, MAP_SHARED, gmem, 0);
	if (ua == MAP_FAILED)
		fail("mmap userspace_addr");
	if (v->huge && g_kvmlike)
		(void)ioctl(vm, KVMLIKE_HUGE_LEAVES, 1); /* refused: 4 KiB leaves, which the walk reports */
	if (set_slot(vm, DATA_SLOT, KVM_MEM_GUEST_MEMFD, DATA_GPA, opt.size, ua, gmem))
		fail("KVM_SET_USER_MEMORY_REGION2 data slot");
	if (v->private_mem) {
		struct kvm_memory_attributes a = {
			.address = DATA_GPA,
			.size = opt.size,
			.attributes = KVM_MEMORY_ATTRIBUTE_PRIVATE,
		};
		if (ioctl(vm, KVM_SET_MEMORY_ATTRIBUTES, &a))
			fail("KVM_SET_MEMORY_ATTRIBUTES");
	}
	if (v->fallocate && fallocate(gmem, FALLOC_FL_KEEP_SIZE, 0, (off_t)opt.size))
		fail("fallocate(KEEP_SIZE)");

	load_code(low);
	int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0)
		fail("KVM_CREATE_VCPU");
	int run_size = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (run_size <= 0)
		fail("KVM_GET_VCPU_MMAP_SIZE");
	struct kvm_run *run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED)
		fail("mmap kvm_run");
	if (g_kvmlike)
		setup_pm32(vcpu, low);
	else
		setup_user64(vcpu, low);
	set_regs(vcpu, WRITE_GPA);

	bool ok = true;
	if (v->prefault) {
		struct kvm_pre_fault_memory pf = { .gpa = DATA_GPA, .size = opt.size };
		double p0 = now_s();
		while (pf.size) {
			uint64_t before = pf.size;
			if (ioctl(vcpu, KVM_PRE_FAULT_MEMORY, &pf) < 0) {
				if (errno == EINTR || errno == EAGAIN)
					continue;
				/* refused outright: the backend has no pre-fault (the
				 * kernel here: EOPNOTSUPP without TDP); anything else,
				 * or a failure after progress, is an error */
				if (before == opt.size && (errno == EOPNOTSUPP || errno == ENOTTY)) {
					out->prefault_errno = errno;
					ok = false;
					break;
				}
				fail("KVM_PRE_FAULT_MEMORY");
			}
		}
		out->prefault_s = now_s() - p0;
	}

	if (ok) {
		double r0 = now_s();
		run_to_port(vcpu, run, DONE_PORT, NULL);
		double r1 = now_s();
		out->total_s = r1 - t0;
		out->run_s = r1 - r0;
		out->unclear = pool_info().frames_handed_unclear - unclear_before;

		/* ---- checks, untimed ---- */
		if (!v->private_mem) {
			const uint8_t *p = ua;
			uint64_t bad = 0;
			for (uint64_t i = 0; i < npages; i++)
				bad += p[i * PAGE_4K] != MARK;
			if (bad)
				check_failed("verify", "%s: %llu of %llu pages lack the guest's byte (host mapping)",
					     v->tag, (unsigned long long)bad, (unsigned long long)npages);
		} else {
			uint32_t good = 0;
			set_regs(vcpu, CHECK_GPA);
			run_to_port(vcpu, run, COUNT_PORT, &good);
			if (good != npages)
				check_failed("verify", "%s: the read-back pass found %u of %llu pages with the guest's byte",
					     v->tag, good, (unsigned long long)npages);
			if (g_kvmlike) {
				int64_t present = sole_inode_pages();
				if (present != (int64_t)npages)
					check_failed("verify", "%s: kvmlike inode has %lld of %llu pages present",
						     v->tag, (long long)present, (unsigned long long)npages);
			}
		}
		out->have_levels = walk_levels(vm, &out->lv);
	}

	munmap(run, (size_t)run_size);
	close(vcpu);
	munmap(ua, opt.size);
	close(gmem);
	close(vm);
	munmap(low, LOW_SIZE);
	if (g_kvmlike) {
		uint32_t live = live_objects();
		if (live)
			check_failed("objects", "%s: %u kvmlike objects still live after the teardown",
				     v->tag, live);
		/* the pool grew: host page faults are in this repetition's times */
		out->pool_grew = pool_info().frames_total > pool_before;
	}
	return ok;
}

/* ------------------------------------------------------ one variant */

static void bench_variant(const struct variant *v)
{
	struct series run = { 0 }, total = { 0 }, pf = { 0 };
	struct series grow_run = { 0 }, grow_total = { 0 }, grow_pf = { 0 };
	struct series scrub_wait = { 0 };
	uint64_t unclear = 0;
	const double npages = (double)pages();
	const char *why = NULL;

	struct variant on_shared; /* a private variant moved to shared memory */
	if (v->private_mem && !private_available(&why)) {
		if (!v->prefault) {
			note("skip", "%s: %s", v->tag, why);
			return;
		}
		/* Pre-fault is still asked, on shared memory: the answer is the point. */
		on_shared = *v;
		on_shared.private_mem = false;
		on_shared.tag = "gmem-shared,prefaulted";
		v = &on_shared;
		note("skip", "private,prefaulted: %s; KVM_PRE_FAULT_MEMORY is tried on gmem-shared", why);
	}

	struct levels lv_first = { 0 };
	bool have_lv = false;
	int steady = 0, attempts = 0;
	bool huge_ok = true;
	while (steady < opt.reps && attempts < opt.reps + 3) {
		struct rep_result r;
		attempts++;
		if (!one_rep(v, &r)) {
			int cap = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_PRE_FAULT_MEMORY);
			note("prefault", "not available: KVM_PRE_FAULT_MEMORY: %s (KVM_CAP_PRE_FAULT_MEMORY=%d)",
			     strerror(r.prefault_errno), cap);
			break;
		}
		if (!have_lv && r.have_levels) {
			lv_first = r.lv;
			have_lv = true;
		}
		if (v->huge) {
			/* the figure counts only if 2 MiB leaves mapped every block */
			if (!r.have_levels) {
				note("2m", "not available: no leaf-level query on this backend "
				     "(guest_memfd here uses 4 KiB folios)");
				huge_ok = false;
				break;
			}
			if (r.lv.l2m != opt.size / BLOCK_2M) {
				note("2m", "not available: after the run KVMLIKE_WALK_GPA finds %llu of %llu "
				     "2 MiB blocks mapped by a 2 MiB leaf (%llu by 4 KiB leaves, %llu unmapped): "
				     "the fault path maps 4 KiB leaves; no figure is printed",
				     (unsigned long long)r.lv.l2m, (unsigned long long)(opt.size / BLOCK_2M),
				     (unsigned long long)r.lv.l4k, (unsigned long long)r.lv.none);
				huge_ok = false;
				break;
			}
		}
		if (g_kvmlike && v->private_mem) {
			push(&scrub_wait, r.scrub_wait_s * 1e3);
			unclear += r.unclear;
		}
		if (r.pool_grew) {
			push(&grow_run, npages / r.run_s);
			push(&grow_total, npages / r.total_s);
			if (v->prefault)
				push(&grow_pf, npages / r.prefault_s);
			continue;
		}
		push(&run, npages / r.run_s);
		push(&total, npages / r.total_s);
		if (v->prefault)
			push(&pf, npages / r.prefault_s);
		steady++;
	}
	if (have_lv)
		note("levels", "%s: leaves over the data region after the run: %llu blocks 2 MiB, "
		     "%llu blocks 4 KiB, %llu unmapped (KVMLIKE_WALK_GPA, first page of each 2 MiB)",
		     v->tag, (unsigned long long)lv_first.l2m, (unsigned long long)lv_first.l4k,
		     (unsigned long long)lv_first.none);
	if (v->huge && huge_ok && run.n)
		note("2m", "available: every 2 MiB block was mapped by a 2 MiB leaf");
	if (!huge_ok) {
		struct series *all[] = { &run, &total, &pf, &grow_run, &grow_total, &grow_pf, &scrub_wait };
		for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
			free(all[i]->v);
		return;
	}
	if (pf.n || grow_pf.n) {
		const char *t = v->private_mem ? "private" : "gmem-shared";
		report(metric("prefault", t, NULL), "pages/s", &pf);
		report(metric("prefault", t, "pool-grows"), "pages/s", &grow_pf);
	}
	report(metric("guest_run", v->tag, NULL), "pages/s", &run);
	report(metric("guest_total", v->tag, NULL), "pages/s", &total);
	report(metric("guest_run", v->tag, "pool-grows"), "pages/s", &grow_run);
	report(metric("guest_total", v->tag, "pool-grows"), "pages/s", &grow_total);
	if (g_kvmlike && v->private_mem) { /* shared memory is the memfd's, not the pool's */
		report(metric("pool_scrub_wait", v->tag, NULL), "ms", &scrub_wait);
		note("scrub", "%s: before each repetition the pool's scrubber finished clearing the "
		     "frames the previous one freed (pool_scrub_wait); frames handed out uncleared "
		     "during the timed runs, cleared in the fault path: %llu",
		     v->tag, (unsigned long long)unclear);
	}
	note("verify", "%s: %s", v->tag,
	     v->private_mem ? "checked by a guest read-back pass and the inode's present pages"
			    : "checked through the host mapping of the guest_memfd");
}

/* ------------------------------------------------------ host references */

/* Writes one byte into every 4 KiB page of p; returns seconds. */
static double touch_pages(uint8_t *p, uint8_t value)
{
	double t0 = now_s();
	for (uint64_t off = 0; off < opt.size; off += PAGE_4K)
		((volatile uint8_t *)p)[off] = value;
	return now_s() - t0;
}

/*
 * One byte into every 4 KiB page of p (resident, not cached: the previous
 * pass went through all of it), each followed by extra stores to a small
 * cache-hot buffer; returns seconds.
 */
volatile uint64_t host_stores_hot[64]; /* extern: the stores must happen */

static double touch_with_stores(uint8_t *p, uint8_t value, int extra)
{
	volatile uint64_t *hot = host_stores_hot;
	double t0 = now_s();
	for (uint64_t off = 0; off < opt.size; off += PAGE_4K) {
		((volatile uint8_t *)p)[off] = value;
		for (int i = 0; i < extra; i++)
			hot[i & 63] = off + (uint64_t)i;
	}
	return now_s() - t0;
}

static void bench_host_stores(void)
{
	static const int extras[] = { 0, 16, 32, 64, 128 };
	const double npages = (double)pages();
	uint8_t *p = mmap(NULL, opt.size, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (p == MAP_FAILED)
		fail("mmap host_stores");
	for (size_t e = 0; e < sizeof(extras) / sizeof(extras[0]); e++) {
		struct series s = { 0 };
		for (int r = 0; r < opt.host_reps; r++)
			push(&s, npages / touch_with_stores(p, (uint8_t)r, extras[e]));
		char name[64];
		snprintf(name, sizeof(name), "host_stores[+%d]", extras[e]);
		report(name, "pages/s", &s);
	}
	munmap(p, opt.size);
}

static void bench_host_refs(void)
{
	struct series fresh = { 0 }, resident = { 0 };
	const double npages = (double)pages();
	for (int r = 0; r < opt.host_reps; r++) {
		int fd = memfd_create("guest_fault_bench", MFD_CLOEXEC);
		if (fd < 0 || ftruncate(fd, (off_t)opt.size))
			fail("memfd");
		uint8_t *p = mmap(NULL, opt.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED)
			fail("mmap memfd");
		push(&fresh, npages / touch_pages(p, 1));
		munmap(p, opt.size);
		p = mmap(NULL, opt.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED)
			fail("mmap memfd");
		push(&resident, npages / touch_pages(p, 2));
		munmap(p, opt.size);
		close(fd);
	}
	report("host_touch[memfd,fresh]", "pages/s", &fresh);
	report("host_touch[memfd,resident]", "pages/s", &resident);
	bench_host_stores();
}

/* ------------------------------------------------------------ main */

static void usage(const char *argv0)
{
	fprintf(stderr,
		"usage: %s [-n MIB] [-r REPS] [-R HOST_REPS] [-V VARIANTS] [-H]\n"
		"  -n MIB       guest memory the guest touches, multiple of 2, at most 3072\n"
		"               (default 1024)\n"
		"  -r REPS      repetitions per variant, each a new VM (default 2)\n"
		"  -R REPS      repetitions of the host references (default 3)\n"
		"  -V LIST      variants, comma-separated (default all):\n"
		"               shared,shared-fa,private,private-fa,prefault,private-2m\n"
		"  -H           no host references\n",
		argv0);
	exit(EXIT_USAGE);
}

static unsigned parse_variants(const char *s)
{
	unsigned m = 0;
	char *copy = strdup(s), *save = NULL;
	if (!copy)
		fail("strdup");
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		int k;
		for (k = 0; k < V_COUNT; k++)
			if (!strcmp(t, variants[k].opt))
				break;
		if (k == V_COUNT) {
			free(copy);
			return 0;
		}
		m |= 1u << k;
	}
	free(copy);
	return m;
}

static void parse_options(int argc, char **argv)
{
	int c;
	while ((c = getopt(argc, argv, "n:r:R:V:Hh")) != -1) {
		char *end = NULL;
		long val = 0;
		if (c == 'n' || c == 'r' || c == 'R')
			val = strtol(optarg, &end, 10);
		switch (c) {
		case 'n':
			if (*end || val < 2 || val % 2 || (uint64_t)val * MIB + DATA_GPA > 4 * GIB)
				usage(argv[0]);
			opt.size = (uint64_t)val * MIB;
			break;
		case 'r':
			if (*end || val < 1)
				usage(argv[0]);
			opt.reps = (int)val;
			break;
		case 'R':
			if (*end || val < 1)
				usage(argv[0]);
			opt.host_reps = (int)val;
			break;
		case 'V':
			opt.want = parse_variants(optarg);
			if (!opt.want)
				usage(argv[0]);
			break;
		case 'H':
			opt.host_ref = false;
			break;
		default:
			usage(argv[0]);
		}
	}
	if (optind != argc)
		usage(argv[0]);
}

int main(int argc, char **argv)
{
	bench_prog = "guest_fault_bench";
	parse_options(argc, argv);
	bench_open_kvm();

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm; /* no SA_RESTART: KVM_RUN returns EINTR */
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGALRM, &sa, NULL))
		fail("sigaction");

	struct utsname u;
	uname(&u);
	note("backend", "%s", g_kvmlike ? "kvmlike" : "kernel");
	note("config", "size_mib=%llu pages=%llu reps=%d host_reps=%d uname=%s",
	     (unsigned long long)(opt.size / MIB), (unsigned long long)pages(), opt.reps,
	     opt.host_reps, u.release);
	note("payload", "%s", g_kvmlike
		     ? "32-bit protected mode, CPL 0, paging off (kvmlike executes real and protected mode)"
		     : "64-bit code at CPL 3, identity map with 2 MiB guest pages (runs natively on the kernel here)");

	/* One small unrecorded run: first-use costs (lazy set-up on either side)
	 * are not the operation measured. */
	{
		struct rep_result r;
		uint64_t size = opt.size;
		opt.size = WARMUP_SIZE < size ? WARMUP_SIZE : size;
		one_rep(&variants[V_SHARED], &r);
		opt.size = size;
	}
	if (opt.host_ref)
		bench_host_refs();
	for (int k = 0; k < V_COUNT; k++)
		if (opt.want & (1u << k))
			bench_variant(&variants[k]);

	rss_note("end");
	pool_note("end");
	if (g_kvmlike) {
		uint32_t live = live_objects();
		note("objects", "live kvmlike objects at the end: %u", live);
		if (live)
			check_failed("objects", "%u kvmlike objects leaked", live);
	}
	close(kvm_fd);
	if (g_check_failed) {
		fprintf(stderr, "guest_fault_bench: a check failed (see the NOTE lines)\n");
		return EXIT_CHECK;
	}
	return 0;
}
