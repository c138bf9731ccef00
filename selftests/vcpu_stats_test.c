// SPDX-License-Identifier: MIT
/*
 * Binary statistics (reference/kvm-uapi.md C.5): KVM_GET_STATS_FD on a VM
 * fd and on a vCPU fd, the file's layout (header, id string, descriptors,
 * data block), the names both backends have, and values that change as the
 * guest runs: port I/O, HLT, MMIO, a signal, and fresh pages of guest
 * memory mapped by the second-level MMU. The stats fd is read with pread(2)
 * at offsets and read(2) at the file position, and it keeps its VM alive
 * after the VM and vCPU fds are closed.
 *
 * The kernel here (6.18, kvm_pvm) answers:
 *   - KVM_GET_STATS_FD on /dev/kvm -> EINVAL;
 *   - the fd is F_GETFL 0 (O_RDONLY, no O_LARGEFILE: an anonymous inode),
 *     F_GETFD FD_CLOEXEC; write(2) -> EBADF;
 *   - name_size 48; VM: 15 descriptors, desc_offset 72, data_offset 1032;
 *     vCPU: 45 descriptors, data_offset 2952; id "kvm-<pid>" and
 *     "kvm-<pid>/vcpu-<id>";
 *   - the data block is ordered by desc.offset, not by descriptor order
 *     (max_mmu_rmap_size @112 is listed before max_mmu_page_hash_collisions
 *     @104), so values are always found through desc.offset;
 *   - its llseek is noop_llseek and fstat reports size 0: neither is used;
 *   - it runs these guests (real mode here; long mode too) entirely in its
 *     instruction emulator: insn_emulation grows by every instruction, the
 *     emulator reaches guest memory through the memslot's host mapping and
 *     makes no SPTE (pages_4k stays put), and io_exits, which KVM counts
 *     only in the VMX/SVM I/O exit handlers, stays put too although the
 *     VMM sees every KVM_EXIT_IO. halt_exits, mmio_exits, signal_exits and
 *     exits count as upstream's do.
 * Names checked are those both backends have: VM remote_tlb_flush,
 * pages_4k; vCPU exits, io_exits, halt_exits, mmio_exits, signal_exits,
 * hypercalls. A kernel that emulated the guest (insn_emulation grew by at
 * least the instructions that make no exit) must leave io_exits and
 * pages_4k as they were; otherwise, and always under kvmlike, whose
 * counters follow hardware KVM on EPT, io_exits grows by the OUTs and
 * pages_4k by >= 1 (only growth: shadow and TDP MMUs count differently)
 * after the guest touches fresh pages.
 *
 * Under kvmlike only, its own counters are checked too: VM faults,
 * fault_retries, zaps, zapped_pages (a punch of a bound guest_memfd range
 * zaps exactly the pages mapped there) and vCPU pf_fixed, insn_emulation
 * (every guest instruction is emulated, so it grows by the instructions
 * the guest retired), hypercalls.
 *
 * Guest physical memory (slot 0 = [0, 128 KiB)):
 *   0x01000  code    0x08000  top of the stack
 *   0x10000  FILL_PAGES pages the guest writes (fresh until then)
 *   0x30000  MMIO (no slot)
 */
#include "kvm_util.h"
#include "mem_util.h"
#include "vcpu_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define GUEST_MEM_SIZE 0x20000ul
#define CODE_GPA 0x1000
#define STACK_TOP 0x8000
#define FILL_GPA 0x10000ul
#define FILL_PAGES 8
#define PUNCH_PAGES 8 /* the punched range: [FILL_GPA, + 8 pages) */
#define TOUCH_PAGES 3 /* of which the guest touched these first */
#define MMIO_GPA 0x30010ul
#define NR_OUTS 5
#define VCPU_ID 3 /* the layout section's vCPU: its id shows in the id string */
#define PUNCH (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)

/* ================================================== guest programs */

/*
 * Real mode, entered at 0000:1000. "->" marks the exits the VMM sees.
 * 9 instructions retire up to the first HLT.
 */
static const uint8_t exits_code[] = {
	0xB0, 0x5A,                         /* 1000  mov al, 0x5a */
	0xE6, 0x10,                         /* 1002  out 0x10, al           -> OUT 1 */
	0xE6, 0x10,                         /* 1004  out 0x10, al           -> OUT 2 */
	0xE6, 0x10,                         /* 1006  out 0x10, al           -> OUT 3 */
	0xE6, 0x10,                         /* 1008  out 0x10, al           -> OUT 4 */
	0xE6, 0x10,                         /* 100a  out 0x10, al           -> OUT 5 */
	0x31, 0xDB,                         /* 100c  xor bx, bx */
	0x43,                               /* 100e  inc bx */
	0xF4,                               /* 100f  hlt                    -> HLT */
	0xB8, 0x00, 0x30,                   /* 1010  mov ax, 0x3000 */
	0x8E, 0xD8,                         /* 1013  mov ds, ax             DS base 0x30000 */
	0xC6, 0x06, 0x10, 0x00, 0x99,       /* 1015  mov byte [0x10], 0x99  -> MMIO write 0x30010 */
	0xF4,                               /* 101a  hlt                    -> HLT */
	0xEB, 0xFE,                         /* 101b  jmp 0x101b             spins until a signal */
};
#define EXITS_INSNS (2 + NR_OUTS + 2) /* mov, 5 x out, xor, inc, hlt */
#define EXITS_QUIET_INSNS 3            /* mov, xor, inc: no exit */
#define EXITS_HLT1 0x1010
#define EXITS_HLT2 0x101b

/*
 * Real mode, entered at FILL_ENTRY: writes CX dwords (CX set by the VMM) of
 * 0x5a5a5a5a from GPA 0x10000 (ES base), then stops.
 */
#define FILL_ENTRY 0x1100
static const uint8_t fill_code[] = {
	0xB8, 0x00, 0x10,                   /* 1100  mov ax, 0x1000 */
	0x8E, 0xC0,                         /* 1103  mov es, ax             ES base 0x10000 */
	0x31, 0xFF,                         /* 1105  xor di, di */
	0x66, 0xB8, 0x5A, 0x5A, 0x5A, 0x5A, /* 1107  mov eax, 0x5a5a5a5a */
	0xFC,                               /* 110d  cld */
	0x66, 0xF3, 0xAB,                   /* 110e  rep stosd              CX dwords (the VMM's) */
	0xF4,                               /* 1111  hlt                    -> HLT */
	0xEB, 0xFD,                         /* 1112  jmp 0x1111 */
};
#define FILL_HLT 0x1112
#define FILL_QUIET_INSNS 6 /* up to the rep stosd: no exit */

/*
 * Real mode, entered at HC_ENTRY: a hypercall KVM answers itself (EAX 0 is
 * no hypercall: RAX = -KVM_ENOSYS), then stops.
 */
#define HC_ENTRY 0x1200
static const uint8_t hypercall_code[] = {
	0x66, 0x31, 0xC0,                   /* 1200  xor eax, eax */
	0x0F, 0x01, 0xC1,                   /* 1203  vmcall                 answered by KVM */
	0xF4,                               /* 1206  hlt                    -> HLT */
	0xEB, 0xFD,                         /* 1207  jmp 0x1206 */
};
#define HC_HLT 0x1207

/* =================================================== the stats file */

struct stats {
	int fd;
	struct kvm_stats_header hdr;
	char *id;         /* name_size bytes */
	uint8_t *descs;   /* num_desc descriptors of desc_size bytes each */
	size_t desc_size; /* 16 + name_size */
	size_t data_size; /* the data block: the sum of every size x 8 */
};

/* Upper bounds that keep a broken header from making us allocate gigabytes. */
#define MAX_NAME_SIZE 4096u
#define MAX_DESCS 4096u

static int stats_fd_of(int fd)
{
	int s = ioctl(fd, KVM_GET_STATS_FD, 0);
	TEST_ASSERT(s >= 0, "KVM_GET_STATS_FD");
	return s;
}

/* pread of exactly len bytes; prints what happened otherwise. */
static bool pread_all(int fd, void *buf, size_t len, off_t off, const char *what)
{
	errno = 0;
	ssize_t n = pread(fd, buf, len, off);
	if (n == (ssize_t)len)
		return true;
	ksft_print_msg("pread of the %s (%zu bytes at %lld): %s", what, len, (long long)off,
		       strres(n, errno));
	return false;
}

static const struct kvm_stats_desc *stats_desc(const struct stats *s, unsigned int i)
{
	return (const struct kvm_stats_desc *)(const void *)(s->descs + i * s->desc_size);
}

/*
 * Reads the header, the id string and the descriptors of stats fd `fd`
 * into s (kept open, owned by the caller). False, with a diagnostic, when
 * they cannot be read whole or the header is absurd.
 */
static bool stats_load(int fd, struct stats *s)
{
	memset(s, 0, sizeof(*s));
	s->fd = fd;
	if (!pread_all(fd, &s->hdr, sizeof(s->hdr), 0, "header"))
		return false;
	if (s->hdr.name_size == 0 || s->hdr.name_size > MAX_NAME_SIZE || s->hdr.num_desc == 0 ||
	    s->hdr.num_desc > MAX_DESCS) {
		ksft_print_msg("header: name_size %u num_desc %u", s->hdr.name_size,
			       s->hdr.num_desc);
		return false;
	}
	s->desc_size = sizeof(struct kvm_stats_desc) + s->hdr.name_size;
	s->id = calloc(1, s->hdr.name_size);
	s->descs = calloc(s->hdr.num_desc, s->desc_size);
	TEST_ASSERT(s->id && s->descs, "calloc");
	if (!pread_all(fd, s->id, s->hdr.name_size, s->hdr.id_offset, "id string") ||
	    !pread_all(fd, s->descs, s->hdr.num_desc * s->desc_size, s->hdr.desc_offset,
		       "descriptors"))
		return false;
	for (unsigned int i = 0; i < s->hdr.num_desc; i++)
		s->data_size += (size_t)stats_desc(s, i)->size * 8;
	return true;
}

/* Loads, asserted: for sections whose subject is not the layout. */
static void stats_open(int fd, struct stats *s)
{
	TEST_ASSERT(stats_load(stats_fd_of(fd), s), "reading a stats fd's header and descriptors");
}

static void stats_free(struct stats *s)
{
	free(s->id);
	free(s->descs);
	s->id = NULL;
	s->descs = NULL;
}

static void stats_close(struct stats *s)
{
	TEST_ASSERT(close(s->fd) == 0, "close of a stats fd");
	stats_free(s);
	s->fd = -1;
}

/* The descriptor named `name`, or NULL. */
static const struct kvm_stats_desc *stats_find(const struct stats *s, const char *name)
{
	for (unsigned int i = 0; i < s->hdr.num_desc; i++) {
		const struct kvm_stats_desc *d = stats_desc(s, i);
		if (strncmp(d->name, name, s->hdr.name_size) == 0)
			return d;
	}
	return NULL;
}

/* Reads the first value of stat `name` into *val; false (with a diagnostic) if absent. */
static bool stat_get(const struct stats *s, const char *name, uint64_t *val)
{
	const struct kvm_stats_desc *d = stats_find(s, name);
	if (!d) {
		ksft_print_msg("no stat named %s", name);
		return false;
	}
	return pread_all(s->fd, val, sizeof(*val), (off_t)s->hdr.data_offset + d->offset, name);
}

/*
 * A named counter sampled before and after something: up to 8 of them
 * are read together.
 */
#define MAX_SAMPLES 8
struct sample {
	const char *names[MAX_SAMPLES];
	uint64_t before[MAX_SAMPLES], after[MAX_SAMPLES];
	bool ok; /* every value was read both times */
};

static void sample_take(const struct stats *s, struct sample *smp, bool after)
{
	if (!after)
		smp->ok = true;
	for (int i = 0; i < MAX_SAMPLES && smp->names[i]; i++)
		smp->ok &= stat_get(s, smp->names[i], after ? &smp->after[i] : &smp->before[i]);
}

static int sample_index(const struct sample *smp, const char *name)
{
	for (int i = 0; i < MAX_SAMPLES && smp->names[i]; i++)
		if (!strcmp(smp->names[i], name))
			return i;
	TEST_ASSERT(false, "%s was not sampled", name);
	return -1;
}

/* after - before of a sampled counter (0 when it could not be read). */
static int64_t sample_delta(const struct sample *smp, const char *name)
{
	int i = sample_index(smp, name);
	return smp->ok ? (int64_t)(smp->after[i] - smp->before[i]) : 0;
}

/*
 * One result: the counter grew by exactly want (exact) or by at least want
 * (!exact); prints both values otherwise.
 */
static bool check_growth(const struct sample *smp, const char *name, bool exact, int64_t want,
			 const char *after_what)
{
	int i = sample_index(smp, name);
	int64_t d = sample_delta(smp, name);
	bool pass = smp->ok && (exact ? d == want : d >= want);
	if (!pass)
		ksft_print_msg("%s: %llu -> %llu (%+lld)%s", name,
			       (unsigned long long)smp->before[i],
			       (unsigned long long)smp->after[i], (long long)d,
			       smp->ok ? "" : ", not all counters could be read");
	return kvm_test(pass, "%s: %s grew by %s%lld", after_what, name,
			exact ? "" : ">= ", (long long)want);
}

/* ============================================= KVM_GET_STATS_FD itself */

/* KVM_GET_STATS_FD on fd: an fd, O_RDONLY, close-on-exec, not writable. Four results. */
static void check_stats_fd(int fd, const char *what)
{
	int s = ioctl(fd, KVM_GET_STATS_FD, 0);
	int err = errno;
	kvm_test_ok(s, err, "C.5: KVM_GET_STATS_FD on a %s fd returns a new fd", what);
	int fl = s >= 0 ? fcntl(s, F_GETFL) : -1;
	kvm_test(fl == O_RDONLY, "C.5: %s stats fd: F_GETFL is O_RDONLY and nothing else (%#x)",
		 what, fl);
	int fdfl = s >= 0 ? fcntl(s, F_GETFD) : -1;
	kvm_test(fdfl == FD_CLOEXEC, "C.5: %s stats fd: F_GETFD is FD_CLOEXEC (%#x)", what, fdfl);
	uint64_t junk = 0;
	if (s >= 0)
		KCHECK_ERRNO(write(s, &junk, sizeof(junk)), EBADF,
			     "C.5: write(2) on the %s stats fd -> EBADF", what);
	else
		kvm_test(false, "C.5: write(2) on the %s stats fd (no fd)", what);
	if (s >= 0)
		close(s);
}

static void test_get_stats_fd(void)
{
	KCHECK_EQ(kvm_check_cap(KVM_CAP_BINARY_STATS_FD), 1,
		  "C.5: KVM_CHECK_EXTENSION(KVM_CAP_BINARY_STATS_FD) on /dev/kvm -> 1");
	int vm0 = vm_create(KVM_X86_DEFAULT_VM);
	KCHECK_EQ(vm_check_cap(vm0, KVM_CAP_BINARY_STATS_FD), 1,
		  "C.5: KVM_CHECK_EXTENSION(KVM_CAP_BINARY_STATS_FD) on a VM fd -> 1");
	close(vm0);

	int kvm = kvm_open();
	KCHECK_ERRNO(ioctl(kvm, KVM_GET_STATS_FD, 0), EINVAL,
		     "C.5: KVM_GET_STATS_FD on /dev/kvm -> EINVAL");
	close(kvm);

	int vm = vm_create(KVM_X86_DEFAULT_VM);
	int vcpu = vcpu_create(vm, 0);
	check_stats_fd(vm, "VM");
	check_stats_fd(vcpu, "vCPU");
	close(vcpu);
	close(vm);
}
#define NR_GET_RESULTS (2 + 1 + 2 * 4)

/* ========================================================== layout */

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return alen && blen && a < b + blen && b < a + alen;
}

static const char *const type_names[] = { "cumulative", "instant", "peak", "linear hist",
					  "log hist" };

/* The exponent fits the unit (upstream kvm_binary_stats_test's rule). */
static bool exponent_ok(uint32_t unit, int16_t exponent)
{
	switch (unit) {
	case KVM_STATS_UNIT_NONE:
	case KVM_STATS_UNIT_BYTES:
	case KVM_STATS_UNIT_CYCLES:
		return exponent >= 0;
	case KVM_STATS_UNIT_SECONDS:
		return exponent <= 0;
	case KVM_STATS_UNIT_BOOLEAN:
		return exponent == 0;
	}
	return false;
}

/* The descriptor's flags, exponent, size and bucket_size make sense; prints why not. */
static bool desc_flags_ok(const struct kvm_stats_desc *d, const char *name)
{
	uint32_t type = d->flags & KVM_STATS_TYPE_MASK, unit = d->flags & KVM_STATS_UNIT_MASK;
	uint32_t base = d->flags & KVM_STATS_BASE_MASK;
	uint32_t known = KVM_STATS_TYPE_MASK | KVM_STATS_UNIT_MASK | KVM_STATS_BASE_MASK;
	bool hist = type == KVM_STATS_TYPE_LINEAR_HIST || type == KVM_STATS_TYPE_LOG_HIST;
	const char *why = NULL;
	if (d->flags & ~known)
		why = "unknown flag bits";
	else if (type > KVM_STATS_TYPE_MAX)
		why = "unknown type";
	else if (unit > KVM_STATS_UNIT_MAX)
		why = "unknown unit";
	else if (base > KVM_STATS_BASE_MAX)
		why = "unknown base";
	else if (!exponent_ok(unit, d->exponent))
		why = "exponent does not fit the unit";
	else if (!hist && d->size != 1)
		why = "a single value with size != 1";
	else if ((type == KVM_STATS_TYPE_LINEAR_HIST) != (d->bucket_size != 0))
		why = "bucket_size set iff linear histogram violated";
	if (why)
		ksft_print_msg("%s: flags %#x exponent %d size %u bucket_size %u: %s", name,
			       d->flags, d->exponent, d->size, d->bucket_size, why);
	return !why;
}

struct required_stat {
	const char *name;
	uint32_t flags; /* type | unit | base */
};

static const struct required_stat vm_required[] = {
	{ "remote_tlb_flush", KVM_STATS_TYPE_CUMULATIVE },
	{ "pages_4k", KVM_STATS_TYPE_INSTANT },
};
static const struct required_stat vcpu_required[] = {
	{ "exits", KVM_STATS_TYPE_CUMULATIVE },
	{ "io_exits", KVM_STATS_TYPE_CUMULATIVE },
	{ "halt_exits", KVM_STATS_TYPE_CUMULATIVE },
	{ "mmio_exits", KVM_STATS_TYPE_CUMULATIVE },
	{ "signal_exits", KVM_STATS_TYPE_CUMULATIVE },
	{ "hypercalls", KVM_STATS_TYPE_CUMULATIVE },
};
#define NR_VM_REQUIRED ARRAY_SIZE(vm_required)
#define NR_VCPU_REQUIRED ARRAY_SIZE(vcpu_required)

/*
 * The layout of the stats file of fd (a VM or a vCPU): 7 results, then one
 * per required name.
 */
static void check_layout(int fd, const char *what, const char *want_id,
			 const struct required_stat *req, size_t nr_req)
{
	struct stats s;
	bool loaded = stats_load(stats_fd_of(fd), &s);
	const struct kvm_stats_header *h = &s.hdr;
	if (loaded)
		ksft_print_msg("%s: name_size %u num_desc %u id_offset %u desc_offset %u "
			       "data_offset %u, data block %zu bytes", what, h->name_size,
			       h->num_desc, h->id_offset, h->desc_offset, h->data_offset,
			       s.data_size);

	kvm_test(loaded && h->flags == 0 && h->name_size > 0 && h->num_desc > 0,
		 "C.5: %s header: flags 0, name_size > 0, num_desc > 0 (flags %#x)", what,
		 h->flags);

	bool aligned = loaded && h->id_offset % 8 == 0 && h->desc_offset % 8 == 0 &&
		       h->data_offset % 8 == 0 && h->id_offset >= sizeof(*h) &&
		       h->desc_offset >= sizeof(*h) && h->data_offset >= sizeof(*h);
	kvm_test(aligned, "C.5: %s header: id, descriptor and data offsets 8-aligned, past the "
			  "header", what);

	/* the three blocks do not overlap each other and are inside the file */
	uint64_t desc_len = loaded ? (uint64_t)h->num_desc * s.desc_size : 0;
	bool apart = loaded &&
		     !ranges_overlap(h->id_offset, h->name_size, h->desc_offset, desc_len) &&
		     !ranges_overlap(h->id_offset, h->name_size, h->data_offset, s.data_size) &&
		     !ranges_overlap(h->desc_offset, desc_len, h->data_offset, s.data_size);
	uint8_t *data = loaded ? malloc(s.data_size) : NULL;
	bool inside = loaded && data &&
		      pread_all(s.fd, data, s.data_size, h->data_offset, "data block");
	uint64_t end = 0;
	if (loaded) {
		end = h->data_offset + s.data_size;
		if (h->desc_offset + desc_len > end)
			end = h->desc_offset + desc_len;
		if (h->id_offset + h->name_size > end)
			end = h->id_offset + h->name_size;
	}
	uint8_t past;
	errno = 0;
	ssize_t n = loaded ? pread(s.fd, &past, 1, (off_t)end) : -1;
	if (loaded && n != 0)
		ksft_print_msg("pread at the end of the blocks (%llu): %s, want 0 (EOF)",
			       (unsigned long long)end, strres(n, errno));
	kvm_test(apart && inside && n == 0,
		 "C.5: %s: id, descriptor and data blocks apart, readable whole, EOF right after "
		 "the last", what);
	free(data);

	bool id_ok = loaded && memchr(s.id, 0, h->name_size) && !strcmp(s.id, want_id);
	if (loaded && !id_ok)
		ksft_print_msg("id string '%.*s', want '%s'", (int)h->name_size, s.id, want_id);
	kvm_test(id_ok, "C.5: %s id string is \"%s\" (NUL-terminated)", what, want_id);

	/* every descriptor, one result per property */
	bool names_ok = loaded, flags_ok = loaded, data_ok = loaded;
	for (unsigned int i = 0; loaded && i < h->num_desc; i++) {
		const struct kvm_stats_desc *d = stats_desc(&s, i);
		char name[64];
		if (!memchr(d->name, 0, h->name_size) || !d->name[0]) {
			ksft_print_msg("descriptor %u: name not NUL-terminated within name_size, "
				       "or empty", i);
			names_ok = false;
			snprintf(name, sizeof(name), "descriptor %u", i);
		} else {
			snprintf(name, sizeof(name), "%s", d->name);
			for (unsigned int j = 0; j < i; j++)
				if (!strcmp(stats_desc(&s, j)->name, d->name)) {
					ksft_print_msg("%s: named twice", name);
					names_ok = false;
				}
		}
		flags_ok &= desc_flags_ok(d, name);
		uint64_t len = (uint64_t)d->size * 8;
		if (d->size < 1 || d->offset % 8 || d->offset + len > s.data_size) {
			ksft_print_msg("%s: size %u offset %u, data block %zu bytes", name, d->size,
				       d->offset, s.data_size);
			data_ok = false;
		}
		for (unsigned int j = 0; j < i; j++) {
			const struct kvm_stats_desc *o = stats_desc(&s, j);
			if (ranges_overlap(d->offset, len, o->offset, (uint64_t)o->size * 8)) {
				ksft_print_msg("%s: data [%u, +%llu) overlaps descriptor %u's",
					       name, d->offset, (unsigned long long)len, j);
				data_ok = false;
			}
		}
	}
	kvm_test(names_ok, "C.5: %s: every descriptor name NUL-terminated within name_size, "
			   "non-empty, unique", what);
	kvm_test(flags_ok, "C.5: %s: every descriptor's flags decode to a known type, unit and "
			   "base; exponent, size and bucket_size fit them", what);
	kvm_test(data_ok, "C.5: %s: every descriptor has size >= 1 and an 8-aligned offset whose "
			  "values lie inside the data block, apart from the others'", what);

	for (size_t i = 0; i < nr_req; i++) {
		const struct kvm_stats_desc *d = loaded ? stats_find(&s, req[i].name) : NULL;
		bool ok = d && d->flags == req[i].flags && d->size == 1 && d->exponent == 0;
		if (loaded && !d)
			ksft_print_msg("no descriptor named %s", req[i].name);
		else if (d && !ok)
			ksft_print_msg("%s: flags %#x size %u exponent %d", req[i].name, d->flags,
				       d->size, d->exponent);
		kvm_test(ok, "C.5: %s has \"%s\" (%s, unit none, size 1)", what, req[i].name,
			 type_names[req[i].flags & KVM_STATS_TYPE_MASK]);
	}
	stats_close(&s);
}
#define NR_LAYOUT_RESULTS 7

static void test_layout(void)
{
	char vm_id[64], vcpu_id[80];
	snprintf(vm_id, sizeof(vm_id), "kvm-%d", (int)getpid());
	snprintf(vcpu_id, sizeof(vcpu_id), "%s/vcpu-%d", vm_id, VCPU_ID);
	int vm = vm_create(KVM_X86_DEFAULT_VM);
	int vcpu = vcpu_create(vm, VCPU_ID);
	check_layout(vm, "VM", vm_id, vm_required, NR_VM_REQUIRED);
	check_layout(vcpu, "vCPU", vcpu_id, vcpu_required, NR_VCPU_REQUIRED);
	close(vcpu);
	close(vm);
}
#define NR_LAYOUTS_RESULTS (2 * NR_LAYOUT_RESULTS + NR_VM_REQUIRED + NR_VCPU_REQUIRED)

/* ====================================================== the guest */

/* A default VM whose slot 0 (of kind) holds the three routines; vCPU 0 at exits_code. */
static void env_guest(struct vcpu_env *e, enum guest_mem_kind kind)
{
	vcpu_env_create(e, KVM_X86_DEFAULT_VM, GUEST_MEM_SIZE, kind);
	guest_load(e, CODE_GPA, exits_code, sizeof(exits_code));
	guest_load(e, FILL_ENTRY, fill_code, sizeof(fill_code));
	guest_load(e, HC_ENTRY, hypercall_code, sizeof(hypercall_code));
	vcpu_set_real_mode(e->vcpu, CODE_GPA, STACK_TOP);
}

/*
 * True when the kernel (never kvmlike, whose counters follow hardware KVM
 * on EPT) ran the guest steps just sampled in its instruction emulator:
 * insn_emulation grew by at least the `quiet` instructions a guest running
 * natively executes without any exit. kvm_pvm emulates these guests
 * entirely; VMX with unrestricted guest runs them natively.
 */
static bool kernel_emulated(const struct sample *smp, int64_t quiet)
{
	if (kvm_is_kvmlike())
		return false;
	int64_t d = sample_delta(smp, "insn_emulation");
	ksft_print_msg("kernel: insn_emulation grew by %lld over %lld instructions that make "
		       "no exit", (long long)d, (long long)quiet);
	return smp->ok && d >= quiet;
}

/* From the start of exits_code: 5 OUTs to port 0x10, then the first HLT. */
static bool run_outs_then_hlt(struct vcpu_env *e)
{
	for (int i = 0; i < NR_OUTS; i++)
		if (!vcpu_run_expect(e, KVM_EXIT_IO) ||
		    !io_exit_is(e->run, KVM_EXIT_IO_OUT, 0x10, 1))
			return false;
	return vcpu_run_expect(e, KVM_EXIT_HLT) && vcpu_rip_is(e->vcpu, EXITS_HLT1);
}

/*
 * Points the vCPU (stopped at a HLT) at a real-mode routine with CX = cx
 * (vcpu_call) and runs it to its HLT at hlt_rip.
 */
static bool run_routine(struct vcpu_env *e, uint16_t ip, uint16_t cx, uint64_t hlt_rip)
{
	vcpu_call(e->vcpu, ip, STACK_TOP, (struct guest_args){ .ecx = cx });
	return vcpu_run_expect(e, KVM_EXIT_HLT) && vcpu_rip_is(e->vcpu, hlt_rip);
}

/* The guest writes `pages` pages from FILL_GPA (rep stosd), up to its HLT. */
static bool run_fill(struct vcpu_env *e, unsigned int pages)
{
	return run_routine(e, FILL_ENTRY, (uint16_t)(pages * PAGE_SIZE / 4), FILL_HLT);
}

/* =================================================== exit counters */

static void test_exit_counters(void)
{
	struct vcpu_env e;
	env_guest(&e, GUEST_MEM_ANON);
	struct stats vs;
	stats_open(e.vcpu, &vs);
	struct sample smp = { .names = { "exits", "io_exits", "halt_exits", "mmio_exits",
					 "signal_exits", "insn_emulation" } };
	const char *step = "C.5: after 5 OUTs and a HLT";

	sample_take(&vs, &smp, false);
	bool ran = run_outs_then_hlt(&e);
	sample_take(&vs, &smp, true);
	kvm_test(ran, "C.5: the guest did 5 OUTs (5 KVM_EXIT_IO) and a HLT (KVM_EXIT_HLT)");
	bool emulated = kernel_emulated(&smp, EXITS_QUIET_INSNS);
	if (emulated)
		ksft_print_msg("the kernel emulated the guest: KVM counts io_exits only in the "
			       "VMX/SVM I/O exit handlers, not for I/O its emulator completes");
	check_growth(&smp, "io_exits", true, emulated ? 0 : NR_OUTS, step);
	check_growth(&smp, "halt_exits", true, 1, step);
	check_growth(&smp, "exits", false, NR_OUTS + 1, step);
	check_growth(&smp, "mmio_exits", true, 0, step);

	step = "C.5: after an MMIO write and a HLT";
	sample_take(&vs, &smp, false);
	ran = ran && vcpu_run_expect(&e, KVM_EXIT_MMIO) &&
	      mmio_exit_is(e.run, MMIO_GPA, 1, true) && vcpu_run_expect(&e, KVM_EXIT_HLT) &&
	      vcpu_rip_is(e.vcpu, EXITS_HLT2);
	sample_take(&vs, &smp, true);
	kvm_test(ran, "C.5: the guest wrote 1 byte to a GPA without a memslot (KVM_EXIT_MMIO) "
		      "and halted");
	check_growth(&smp, "mmio_exits", true, 1, step);
	check_growth(&smp, "io_exits", true, 0, step);
	check_growth(&smp, "halt_exits", true, 1, step);
	check_growth(&smp, "exits", false, 2, step);

	/* the guest spins at 0x101b until SIGALRM interrupts KVM_RUN */
	step = "C.5: after a signal interrupted KVM_RUN";
	sample_take(&vs, &smp, false);
	int r = ran ? __vcpu_run_timed(e.vcpu, 100) : 0;
	int err = errno;
	sample_take(&vs, &smp, true);
	bool intr = ran && r == -1 && err == EINTR && e.run->exit_reason == KVM_EXIT_INTR;
	if (ran && !intr)
		ksft_print_msg("KVM_RUN: %s, exit %s; want -1 (EINTR), KVM_EXIT_INTR",
			       strres(r, err), exit_reason_str(e.run->exit_reason));
	kvm_test(intr, "C.5: a spinning guest's KVM_RUN interrupted by SIGALRM -> -1/EINTR, "
		       "KVM_EXIT_INTR");
	check_growth(&smp, "signal_exits", true, 1, step);
	check_growth(&smp, "halt_exits", true, 0, step);

	stats_close(&vs);
	vcpu_env_destroy(&e);
}
#define NR_EXIT_RESULTS (5 + 5 + 3)

/* ======================================================= pages_4k */

static void test_pages_4k(void)
{
	struct vcpu_env e;
	env_guest(&e, GUEST_MEM_ANON);
	struct stats ms;
	stats_open(e.vm, &ms);
	struct stats vs;
	stats_open(e.vcpu, &vs);
	struct sample smp = { .names = { "pages_4k" } };
	struct sample vsmp = { .names = { "insn_emulation" } };

	bool ran = run_outs_then_hlt(&e); /* the code page is mapped now */
	sample_take(&ms, &smp, false);
	sample_take(&vs, &vsmp, false);
	ran = ran && run_fill(&e, FILL_PAGES);
	sample_take(&ms, &smp, true);
	sample_take(&vs, &vsmp, true);
	kvm_test(ran && bytes_are(guest_ptr(&e, FILL_GPA), FILL_PAGES * PAGE_SIZE, 0x5a),
		 "C.5: the guest wrote %d fresh pages (rep stosd; the host sees them)", FILL_PAGES);
	/*
	 * KVM's emulator reaches guest memory through the memslot's host
	 * mapping and makes no SPTE: on a kernel that emulated the fill,
	 * pages_4k stays where it was.
	 */
	bool emulated = kernel_emulated(&vsmp, FILL_QUIET_INSNS);
	if (emulated)
		ksft_print_msg("the kernel emulated the guest's writes: no SPTE, pages_4k "
			       "unchanged");
	check_growth(&smp, "pages_4k", emulated, emulated ? 0 : 1,
		     "C.5: after the guest wrote 8 fresh pages");

	stats_close(&vs);
	stats_close(&ms);
	vcpu_env_destroy(&e);
}
#define NR_PAGES_RESULTS 2

/* =================================================== read and pread */

/*
 * read(2) and pread(2) on a stats fd of fd (a VM or an idle vCPU, so no
 * value changes meanwhile). Three results.
 */
static void check_read(int fd, const char *what)
{
	struct stats s;
	stats_open(fd, &s);
	const struct kvm_stats_header *h = &s.hdr;
	size_t end = h->data_offset + s.data_size;
	if (h->desc_offset + h->num_desc * s.desc_size > end)
		end = h->desc_offset + h->num_desc * s.desc_size;
	uint8_t *whole = calloc(1, end), *seq = calloc(1, end + 64);
	TEST_ASSERT(whole && seq, "calloc");
	bool got = pread_all(s.fd, whole, end, 0, "whole file");

	/* read(2) from position 0: the header, then chunks of 100 bytes up to EOF */
	int rfd = stats_fd_of(fd);
	size_t total = 0;
	ssize_t n = read(rfd, seq, sizeof(struct kvm_stats_header));
	while (n > 0) {
		total += (size_t)n;
		size_t want = end + 64 - total < 100 ? end + 64 - total : 100;
		n = want ? read(rfd, seq + total, want) : 0;
	}
	int err = errno;
	bool same = got && n == 0 && total == end && !memcmp(whole, seq, end);
	if (got && !same)
		ksft_print_msg("read(2): %zu bytes then %s; want %zu bytes equal to pread's, "
			       "then 0", total, strres(n, err), end);
	kvm_test(same, "C.5: %s stats fd: read(2) from the file position (header, then 100-byte "
		       "chunks) returns the bytes pread(2) does, then 0 at EOF", what);
	close(rfd);

	/* pread at any offset and length */
	uint8_t part[12];
	bool mid = got && pread_all(s.fd, part, sizeof(part), 4, "12 bytes at offset 4") &&
		   !memcmp(part, whole + 4, sizeof(part));
	kvm_test(mid, "C.5: %s stats fd: pread(2) of 12 bytes at offset 4 returns those bytes of "
		      "the file", what);

	/* pread leaves the file position alone */
	rfd = stats_fd_of(fd);
	struct kvm_stats_header hdr;
	uint32_t next = 0;
	bool kept = read(rfd, &hdr, sizeof(hdr)) == (ssize_t)sizeof(hdr) &&
		    pread_all(rfd, part, sizeof(part), 0, "12 bytes at 0") &&
		    read(rfd, &next, sizeof(next)) == (ssize_t)sizeof(next) &&
		    !memcmp(&next, whole + sizeof(hdr), sizeof(next));
	kvm_test(got && kept, "C.5: %s stats fd: pread(2) does not move the file position (read "
			      "continues after the header)", what);
	close(rfd);

	free(whole);
	free(seq);
	stats_close(&s);
}

static void test_read(void)
{
	int vm = vm_create(KVM_X86_DEFAULT_VM);
	int vcpu = vcpu_create(vm, 0);
	check_read(vm, "VM");
	check_read(vcpu, "vCPU");
	close(vcpu);
	close(vm);
}
#define NR_READ_RESULTS (2 * 3)

/* ====================================== the stats fd keeps the VM alive */

static void test_keeps_vm_alive(void)
{
	struct vcpu_env e;
	env_guest(&e, GUEST_MEM_ANON);
	struct stats ms, vs;
	stats_open(e.vm, &ms);
	stats_open(e.vcpu, &vs);
	bool ran = run_outs_then_hlt(&e);
	uint64_t exits_before = 0, exits_after = ~0ull;
	bool before = stat_get(&vs, "exits", &exits_before);
	vcpu_env_destroy(&e); /* vCPU fd, slot, VM fd: all gone */

	if (!kvm_is_kvmlike()) {
		kvm_test_skip("C.5: the VM object outlives its fds: only observable under kvmlike");
	} else {
		long live = kvmlike_live_objects(false);
		kvm_test(live > 0, "C.5: with only stats fds open, the VM is still live (%ld "
				   "kvmlike objects)", live);
	}
	char want_id[64];
	snprintf(want_id, sizeof(want_id), "kvm-%d", (int)getpid());
	struct kvm_stats_header hdr;
	char id[64] = "";
	bool vm_ok = pread_all(ms.fd, &hdr, sizeof(hdr), 0, "VM header") &&
		     !memcmp(&hdr, &ms.hdr, sizeof(hdr)) && hdr.name_size <= sizeof(id) &&
		     pread_all(ms.fd, id, hdr.name_size, hdr.id_offset, "VM id") &&
		     !strcmp(id, want_id);
	kvm_test(vm_ok, "C.5: after close of the VM and vCPU fds, the VM stats fd still reads "
			"its header and id \"%s\"", want_id);
	bool vcpu_ok = ran && before && stat_get(&vs, "exits", &exits_after) &&
		       exits_after == exits_before && exits_before >= NR_OUTS + 1;
	kvm_test(vcpu_ok, "C.5: ... and the vCPU stats fd still reads exits as they were (%llu, "
			  "was %llu)", (unsigned long long)exits_after,
		 (unsigned long long)exits_before);

	int c1 = close(ms.fd), c2 = close(vs.fd);
	stats_free(&ms);
	stats_free(&vs);
	kvm_test(c1 == 0 && c2 == 0 && kvm_no_leaks(),
		 "C.5: closing the two stats fds -> ok%s",
		 kvm_is_kvmlike() ? ", and then no kvmlike object is live" : "");
}
#define NR_ALIVE_RESULTS 4

/* ============================================= kvmlike's own counters */

static const char *need_kvmlike(void)
{
	return kvm_is_kvmlike() ? NULL : "kvmlike's own counters: only under kvmlike";
}

/* VM and vCPU counters read together. */
struct both {
	struct stats vm, vcpu;
	struct sample vms, vcpus;
};

static void both_take(struct both *b, bool after)
{
	sample_take(&b->vm, &b->vms, after);
	sample_take(&b->vcpu, &b->vcpus, after);
}

/*
 * A default VM on anonymous memory: insn_emulation for the 5-OUT program,
 * then faults / pf_fixed / pages_4k for fresh pages, hypercalls, and the
 * zap of a slot's deletion.
 */
static void test_kvmlike_anon(void)
{
	struct vcpu_env e;
	env_guest(&e, GUEST_MEM_ANON);
	struct both b = {
		.vms = { .names = { "faults", "fault_retries", "pages_4k", "zaps",
				    "zapped_pages" } },
		.vcpus = { .names = { "insn_emulation", "pf_fixed", "hypercalls" } },
	};
	stats_open(e.vm, &b.vm);
	stats_open(e.vcpu, &b.vcpu);

	both_take(&b, false);
	bool ran = run_outs_then_hlt(&e);
	both_take(&b, true);
	kvm_test(ran, "kvmlike: the guest did 5 OUTs and a HLT (%d instructions)", EXITS_INSNS);
	check_growth(&b.vcpus, "insn_emulation", true, EXITS_INSNS,
		     "kvmlike: after 9 instructions in 6 KVM_RUNs");

	const char *step = "kvmlike: after the guest wrote 8 fresh pages";
	both_take(&b, false);
	ran = ran && run_fill(&e, FILL_PAGES);
	both_take(&b, true);
	kvm_test(ran, "kvmlike: the guest wrote %d fresh pages", FILL_PAGES);
	check_growth(&b.vms, "faults", true, FILL_PAGES, step);
	check_growth(&b.vcpus, "pf_fixed", true, FILL_PAGES, step);
	check_growth(&b.vms, "pages_4k", true, FILL_PAGES, step);
	check_growth(&b.vms, "fault_retries", true, 0, step);

	both_take(&b, false);
	bool hc = ran && run_routine(&e, HC_ENTRY, 0, HC_HLT);
	struct kvm_regs regs;
	vcpu_regs_get(e.vcpu, &regs);
	both_take(&b, true);
	if (hc && (uint32_t)regs.rax != (uint32_t)-1000)
		ksft_print_msg("EAX 0x%x after the hypercall, want -KVM_ENOSYS",
			       (uint32_t)regs.rax);
	kvm_test(hc && (uint32_t)regs.rax == (uint32_t)-1000,
		 "kvmlike: vmcall with EAX 0 answered in KVM (EAX -1000), then HLT");
	check_growth(&b.vcpus, "hypercalls", true, 1, "kvmlike: after one vmcall");

	/* deleting slot 0 zaps every page mapped in it */
	uint64_t mapped = 0, now = ~0ull;
	bool have_mapped = stat_get(&b.vm, "pages_4k", &mapped);
	both_take(&b, false);
	delete_slot(e.vm, 0);
	both_take(&b, true);
	b.vms.ok &= have_mapped;
	check_growth(&b.vms, "zapped_pages", true, (int64_t)mapped,
		     "kvmlike: after slot 0 (with pages_4k mapped pages) was deleted");
	kvm_test(stat_get(&b.vm, "pages_4k", &now) && now == 0,
		 "kvmlike: pages_4k is 0 once the only slot is gone (%llu)",
		 (unsigned long long)now);
	set_region2(e.vm, 0, 0, 0, e.mem_size, (uintptr_t)e.mem, -1, 0); /* for vcpu_env_destroy */

	stats_close(&b.vm);
	stats_close(&b.vcpu);
	vcpu_env_destroy(&e);
}
#define NR_KVMLIKE_ANON_RESULTS (2 + 5 + 2 + 2)

/*
 * A guest_memfd MMAP|INIT_SHARED slot: the guest touches TOUCH_PAGES of
 * the PUNCH_PAGES range, the VMM punches the whole range: the zap removes
 * exactly the pages that were mapped.
 */
static void test_kvmlike_punch(void)
{
	struct vcpu_env e;
	env_guest(&e, GUEST_MEM_GMEM_SHARED);
	struct both b = {
		.vms = { .names = { "zaps", "zapped_pages", "pages_4k", "faults" } },
		.vcpus = { .names = { "pf_fixed" } },
	};
	stats_open(e.vm, &b.vm);
	stats_open(e.vcpu, &b.vcpu);

	bool ran = run_outs_then_hlt(&e) && run_fill(&e, TOUCH_PAGES);
	kvm_test(ran, "kvmlike: the guest wrote %d pages of a guest_memfd slot", TOUCH_PAGES);

	const char *step = "kvmlike: after a punch of 8 pages of which the guest had mapped 3";
	both_take(&b, false);
	bool punched = fallocate_is(e.gmem, PUNCH, FILL_GPA, PUNCH_PAGES * PAGE_SIZE, 0);
	both_take(&b, true);
	kvm_test(punched, "kvmlike: fallocate(PUNCH_HOLE|KEEP_SIZE) of the 8 pages -> ok");
	check_growth(&b.vms, "zaps", false, 1, step);
	check_growth(&b.vms, "zapped_pages", true, TOUCH_PAGES, step);
	check_growth(&b.vms, "pages_4k", true, -TOUCH_PAGES, step);

	step = "kvmlike: after the guest wrote the punched pages again";
	both_take(&b, false);
	ran = ran && run_fill(&e, TOUCH_PAGES);
	both_take(&b, true);
	kvm_test(ran, "kvmlike: the guest wrote the %d punched pages again", TOUCH_PAGES);
	check_growth(&b.vms, "pages_4k", true, TOUCH_PAGES, step);
	check_growth(&b.vms, "faults", true, TOUCH_PAGES, step);
	check_growth(&b.vcpus, "pf_fixed", true, TOUCH_PAGES, step);

	stats_close(&b.vm);
	stats_close(&b.vcpu);
	vcpu_env_destroy(&e);
}
#define NR_KVMLIKE_PUNCH_RESULTS (1 + 4 + 4)

static const char *need_kvmlike_gmem(void)
{
	const char *why = need_kvmlike();
	return why ? why : need_gmem_shared();
}

/* ============================================================ main */

static const struct kvm_section sections[] = {
	{ "KVM_GET_STATS_FD", NR_GET_RESULTS, NULL, test_get_stats_fd },
	{ "layout", NR_LAYOUTS_RESULTS, NULL, test_layout },
	{ "exit counters", NR_EXIT_RESULTS, NULL, test_exit_counters },
	{ "pages_4k", NR_PAGES_RESULTS, NULL, test_pages_4k },
	{ "read and pread", NR_READ_RESULTS, NULL, test_read },
	{ "the stats fd keeps the VM alive", NR_ALIVE_RESULTS, NULL, test_keeps_vm_alive },
	{ "kvmlike counters, anonymous memory", NR_KVMLIKE_ANON_RESULTS, need_kvmlike,
	  test_kvmlike_anon },
	{ "kvmlike counters, guest_memfd punch", NR_KVMLIKE_PUNCH_RESULTS, need_kvmlike_gmem,
	  test_kvmlike_punch },
	{ "leaks", 1, NULL, kvm_test_live_objects },
};

int main(void)
{
	ksft_print_header();
	kvm_require_dev();
	return kvm_sections_main(sections, ARRAY_SIZE(sections));
}
