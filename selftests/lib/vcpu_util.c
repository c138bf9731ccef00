/* SPDX-License-Identifier: MIT */
#include "vcpu_util.h"
#include "mem_util.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <unistd.h>

const char *guest_mem_name(enum guest_mem_kind kind)
{
	return kind == GUEST_MEM_ANON ? "anonymous memory" : "guest_memfd MMAP|INIT_SHARED";
}

const char *guest_mem_unavailable(unsigned long vm_type, enum guest_mem_kind kind)
{
	if (kind == GUEST_MEM_ANON)
		return NULL;
	if (kvm_check_cap(KVM_CAP_GUEST_MEMFD) <= 0)
		return "KVM_CAP_GUEST_MEMFD not offered";
	int vm = vm_create(vm_type);
	uint64_t flags = vm_gmem_shared_flags(vm);
	close(vm);
	return flags ? NULL : "guest_memfd MMAP|INIT_SHARED not offered for this VM type";
}

const char *need_gmem_shared(void)
{
	return guest_mem_unavailable(KVM_X86_DEFAULT_VM, GUEST_MEM_GMEM_SHARED);
}

size_t vcpu_mmap_size(void)
{
	static size_t cached;
	if (cached)
		return cached;
	int kvm = kvm_open();
	long size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	close(kvm);
	TEST_ASSERT(size >= (long)PAGE_SIZE && size % PAGE_SIZE == 0,
		    "KVM_GET_VCPU_MMAP_SIZE = %ld", size);
	cached = (size_t)size;
	return cached;
}

int __vcpu_create(int vm_fd, unsigned long id) { return ioctl(vm_fd, KVM_CREATE_VCPU, id); }

int vcpu_create(int vm_fd, unsigned long id)
{
	int fd = __vcpu_create(vm_fd, id);
	TEST_ASSERT(fd >= 0, "KVM_CREATE_VCPU(%lu)", id);
	return fd;
}

struct kvm_run *vcpu_map_run(int vcpu_fd)
{
	void *p = mmap(NULL, vcpu_mmap_size(), PROT_READ | PROT_WRITE, MAP_SHARED, vcpu_fd, 0);
	TEST_ASSERT(p != MAP_FAILED, "mmap of the vCPU fd");
	return p;
}

void vcpu_unmap_run(struct kvm_run *run)
{
	TEST_ASSERT(munmap(run, vcpu_mmap_size()) == 0, "munmap kvm_run");
}

/* ------------------------------------------------------------ env */

void vcpu_env_create(struct vcpu_env *e, unsigned long vm_type, size_t mem_size,
		     enum guest_mem_kind kind)
{
	TEST_ASSERT(mem_size && mem_size % PAGE_SIZE == 0, "guest memory size 0x%zx", mem_size);
	memset(e, 0, sizeof(*e));
	e->vm = vm_create(vm_type);
	e->mem_size = mem_size;
	e->kind = kind;
	e->gmem = -1;
	if (kind == GUEST_MEM_ANON) {
		e->mem = map_anon(mem_size, PROT_READ | PROT_WRITE, MAP_SHARED);
		set_region2(e->vm, 0, 0, 0, mem_size, (uintptr_t)e->mem, -1, 0);
	} else {
		e->gmem = gmem_create(e->vm, mem_size, GMEM_FLAGS_SHARED);
		e->mem = map_shared(e->gmem, mem_size);
		TEST_ASSERT(e->mem, "mmap of the guest_memfd");
		set_region2(e->vm, 0, KVM_MEM_GUEST_MEMFD, 0, mem_size, (uintptr_t)e->mem,
			    e->gmem, 0);
	}
	e->vcpu = vcpu_create(e->vm, 0);
	e->run = vcpu_map_run(e->vcpu);
}

void vcpu_env_destroy(struct vcpu_env *e)
{
	vcpu_unmap_run(e->run);
	close(e->vcpu);
	delete_slot(e->vm, 0);
	munmap(e->mem, e->mem_size);
	if (e->gmem >= 0)
		close(e->gmem);
	close(e->vm);
	memset(e, 0, sizeof(*e));
	e->vm = e->vcpu = e->gmem = -1;
}

void *guest_ptr(struct vcpu_env *e, uint64_t gpa)
{
	TEST_ASSERT(gpa < e->mem_size, "GPA 0x%llx outside slot 0", (unsigned long long)gpa);
	return e->mem + gpa;
}

void guest_load(struct vcpu_env *e, uint64_t gpa, const void *bytes, size_t len)
{
	TEST_ASSERT(gpa + len <= e->mem_size, "guest bytes at 0x%llx + 0x%zx outside slot 0",
		    (unsigned long long)gpa, len);
	memcpy(e->mem + gpa, bytes, len);
}

/* ------------------------------------------------------- registers */

void vcpu_regs_get(int vcpu_fd, struct kvm_regs *regs)
{
	TEST_ASSERT(ioctl(vcpu_fd, KVM_GET_REGS, regs) == 0, "KVM_GET_REGS");
}

void vcpu_regs_set(int vcpu_fd, const struct kvm_regs *regs)
{
	TEST_ASSERT(ioctl(vcpu_fd, KVM_SET_REGS, regs) == 0, "KVM_SET_REGS");
}

void vcpu_sregs_get(int vcpu_fd, struct kvm_sregs *sregs)
{
	TEST_ASSERT(ioctl(vcpu_fd, KVM_GET_SREGS, sregs) == 0, "KVM_GET_SREGS");
}

void vcpu_sregs_set(int vcpu_fd, const struct kvm_sregs *sregs)
{
	TEST_ASSERT(ioctl(vcpu_fd, KVM_SET_SREGS, sregs) == 0, "KVM_SET_SREGS");
}

uint64_t vcpu_rip(int vcpu_fd)
{
	struct kvm_regs regs;
	vcpu_regs_get(vcpu_fd, &regs);
	return regs.rip;
}

bool vcpu_rip_is(int vcpu_fd, uint64_t want)
{
	uint64_t rip = vcpu_rip(vcpu_fd);
	if (rip != want)
		ksft_print_msg("RIP 0x%llx, want 0x%llx", (unsigned long long)rip,
			       (unsigned long long)want);
	return rip == want;
}

static void set_gprs(int vcpu_fd, uint64_t rip, uint64_t rsp)
{
	struct kvm_regs regs;
	memset(&regs, 0, sizeof(regs));
	regs.rip = rip;
	regs.rsp = rsp;
	regs.rflags = X86_EFLAGS_FIXED;
	vcpu_regs_set(vcpu_fd, &regs);
}

/* A present, DPL-0 code or data segment cache entry. */
static struct kvm_segment segment(uint16_t sel, uint64_t base, uint32_t limit, uint8_t type,
				  bool big)
{
	struct kvm_segment s;
	memset(&s, 0, sizeof(s));
	s.selector = sel;
	s.base = base;
	s.limit = limit;
	s.type = type; /* 0xb: code execute/read accessed; 0x3: data read/write accessed */
	s.present = 1;
	s.s = 1;
	s.db = big;
	s.g = big;
	return s;
}

void vcpu_set_real_mode(int vcpu_fd, uint16_t ip, uint16_t sp)
{
	struct kvm_sregs sr;
	vcpu_sregs_get(vcpu_fd, &sr);
	sr.cs = segment(0, 0, 0xffff, 0xb, false);
	sr.ds = segment(0, 0, 0xffff, 0x3, false);
	sr.es = sr.fs = sr.gs = sr.ss = sr.ds;
	vcpu_sregs_set(vcpu_fd, &sr);
	set_gprs(vcpu_fd, ip, sp);
}

void guest_put_flat_gdt(struct vcpu_env *e, uint64_t gdt_gpa)
{
	static const uint64_t gdt[3] = {
		0,
		/* base 0, limit 0xfffff pages: P, S, code execute/read accessed, D, G */
		0x00cf9b000000ffffull,
		/* base 0, limit 0xfffff pages: P, S, data read/write accessed, B, G */
		0x00cf93000000ffffull,
	};
	guest_load(e, gdt_gpa, gdt, sizeof(gdt));
}

void vcpu_set_protected_mode(int vcpu_fd, uint32_t eip, uint32_t esp, uint64_t gdt_gpa)
{
	struct kvm_sregs sr;
	vcpu_sregs_get(vcpu_fd, &sr);
	sr.cs = segment(FLAT_CODE32_SEL, 0, 0xffffffff, 0xb, true);
	sr.ds = segment(FLAT_DATA32_SEL, 0, 0xffffffff, 0x3, true);
	sr.es = sr.fs = sr.gs = sr.ss = sr.ds;
	sr.gdt.base = gdt_gpa;
	sr.gdt.limit = FLAT_GDT_LIMIT;
	sr.cr0 = X86_CR0_PE | X86_CR0_ET;
	sr.cr4 = 0;
	sr.efer = 0;
	vcpu_sregs_set(vcpu_fd, &sr);
	set_gprs(vcpu_fd, eip, esp);
}

/* ------------------------------------------------------------ run */

static void watchdog_handler(int sig) { (void)sig; }

static void arm_timer(unsigned int ms)
{
	static bool installed;
	if (!installed) {
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = watchdog_handler;
		sigemptyset(&sa.sa_mask);
		TEST_ASSERT(sigaction(SIGALRM, &sa, NULL) == 0, "sigaction(SIGALRM)");
		installed = true;
	}
	struct itimerval it;
	memset(&it, 0, sizeof(it));
	it.it_value.tv_sec = ms / 1000;
	it.it_value.tv_usec = (ms % 1000) * 1000;
	TEST_ASSERT(setitimer(ITIMER_REAL, &it, NULL) == 0, "setitimer");
}

int __vcpu_run_timed(int vcpu_fd, unsigned int ms)
{
	if (ms)
		arm_timer(ms);
	int r = ioctl(vcpu_fd, KVM_RUN, 0);
	int err = errno;
	if (ms)
		arm_timer(0);
	errno = err;
	return r;
}

int __vcpu_run(int vcpu_fd) { return __vcpu_run_timed(vcpu_fd, VCPU_RUN_WATCHDOG_MS); }

static const char *const exit_names[] = {
	[KVM_EXIT_UNKNOWN] = "UNKNOWN",
	[KVM_EXIT_EXCEPTION] = "EXCEPTION",
	[KVM_EXIT_IO] = "IO",
	[KVM_EXIT_HYPERCALL] = "HYPERCALL",
	[KVM_EXIT_DEBUG] = "DEBUG",
	[KVM_EXIT_HLT] = "HLT",
	[KVM_EXIT_MMIO] = "MMIO",
	[KVM_EXIT_IRQ_WINDOW_OPEN] = "IRQ_WINDOW_OPEN",
	[KVM_EXIT_SHUTDOWN] = "SHUTDOWN",
	[KVM_EXIT_FAIL_ENTRY] = "FAIL_ENTRY",
	[KVM_EXIT_INTR] = "INTR",
	[KVM_EXIT_INTERNAL_ERROR] = "INTERNAL_ERROR",
	[KVM_EXIT_SYSTEM_EVENT] = "SYSTEM_EVENT",
	[KVM_EXIT_MEMORY_FAULT] = "MEMORY_FAULT",
};

const char *exit_reason_str(uint32_t reason)
{
	static char buf[32];
	if (reason < ARRAY_SIZE(exit_names) && exit_names[reason])
		snprintf(buf, sizeof(buf), "KVM_EXIT_%s", exit_names[reason]);
	else
		snprintf(buf, sizeof(buf), "exit %u", reason);
	return buf;
}

void vcpu_print_exit(int vcpu_fd, const struct kvm_run *run)
{
	struct kvm_regs regs;
	bool have_regs = ioctl(vcpu_fd, KVM_GET_REGS, &regs) == 0;
	ksft_print_msg("exit_reason %s, rip 0x%llx", exit_reason_str(run->exit_reason),
		       have_regs ? (unsigned long long)regs.rip : ~0ull);
	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		ksft_print_msg("  io: direction %u size %u port 0x%x count %u data_offset 0x%llx",
			       run->io.direction, run->io.size, run->io.port, run->io.count,
			       (unsigned long long)run->io.data_offset);
		break;
	case KVM_EXIT_MMIO:
		ksft_print_msg("  mmio: phys_addr 0x%llx len %u is_write %u",
			       (unsigned long long)run->mmio.phys_addr, run->mmio.len,
			       run->mmio.is_write);
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		ksft_print_msg("  internal: suberror %u ndata %u data[0] 0x%llx",
			       run->internal.suberror, run->internal.ndata,
			       (unsigned long long)run->internal.data[0]);
		break;
	case KVM_EXIT_HYPERCALL:
		ksft_print_msg("  hypercall: nr %llu args 0x%llx 0x%llx 0x%llx",
			       (unsigned long long)run->hypercall.nr,
			       (unsigned long long)run->hypercall.args[0],
			       (unsigned long long)run->hypercall.args[1],
			       (unsigned long long)run->hypercall.args[2]);
		break;
	default:
		break;
	}
}

bool vcpu_run_expect(struct vcpu_env *e, uint32_t want)
{
	int r = __vcpu_run(e->vcpu);
	int err = errno;
	if (r == 0 && e->run->exit_reason == want)
		return true;
	if (r != 0)
		ksft_print_msg("KVM_RUN: %s, want 0 with %s", strres(r, err),
			       exit_reason_str(want));
	else
		ksft_print_msg("KVM_RUN: want %s", exit_reason_str(want));
	vcpu_print_exit(e->vcpu, e->run);
	return false;
}

/* ------------------------------------------------------ exit fields */

bool io_exit_is(const struct kvm_run *run, uint8_t direction, uint16_t port, uint8_t size)
{
	bool ok = run->exit_reason == KVM_EXIT_IO && run->io.direction == direction &&
		  run->io.port == port && run->io.size == size && run->io.count == 1 &&
		  run->io.data_offset >= sizeof(struct kvm_run) &&
		  run->io.data_offset + size <= vcpu_mmap_size();
	if (!ok)
		ksft_print_msg("exit %s io: direction %u size %u port 0x%x count %u data_offset "
			       "0x%llx; want direction %u size %u port 0x%x count 1",
			       exit_reason_str(run->exit_reason), run->io.direction, run->io.size,
			       run->io.port, run->io.count, (unsigned long long)run->io.data_offset,
			       direction, size, port);
	return ok;
}

void *io_data(struct kvm_run *run) { return (uint8_t *)run + run->io.data_offset; }

uint32_t io_value(struct kvm_run *run)
{
	uint32_t v = 0;
	memcpy(&v, io_data(run), run->io.size <= 4 ? run->io.size : 4);
	return v;
}

bool vcpu_run_expect_out32(struct vcpu_env *e, uint16_t port, uint32_t *val)
{
	if (!vcpu_run_expect(e, KVM_EXIT_IO) || !io_exit_is(e->run, KVM_EXIT_IO_OUT, port, 4))
		return false;
	*val = io_value(e->run);
	return true;
}

void vcpu_call(int vcpu_fd, uint32_t eip, uint32_t esp, struct guest_args args)
{
	struct kvm_regs regs;
	vcpu_regs_get(vcpu_fd, &regs);
	regs.rip = eip;
	regs.rax = args.eax;
	regs.rbx = args.ebx;
	regs.rcx = args.ecx;
	regs.rdx = args.edx;
	regs.rdi = args.edi;
	regs.rflags = X86_EFLAGS_FIXED;
	regs.rsp = esp;
	vcpu_regs_set(vcpu_fd, &regs);
}

bool guest_word_is(uint32_t got, uint64_t gpa, uint32_t want)
{
	if (got != want)
		ksft_print_msg("guest read 0x%08x at GPA 0x%llx, want 0x%08x", got,
			       (unsigned long long)gpa, want);
	return got == want;
}

/* ------------------------------------------------------- routines */

static const uint8_t read_code[] = {
	0x8B, 0x03,       /* 1000  mov eax, [ebx] */
	0xE7, 0x10,       /* 1002  out 0x10, eax        -> OUT port 0x10, 4 bytes */
	0xF4,             /* 1004  hlt                  -> HLT */
	0xEB, 0xF9,       /* 1005  jmp 0x1000           (reads again when run on) */
};

static const uint8_t fill_code[] = {
	0xF3, 0xAB,       /* 1010  rep stosd */
	0xF4,             /* 1012  hlt                  -> HLT */
	0xEB, 0xFD,       /* 1013  jmp 0x1012 */
};

void vcpu_env_create_routines(struct vcpu_env *e, unsigned long vm_type, size_t mem_size)
{
	_Static_assert(ROUTINE_READ_GPA + sizeof(read_code) <= ROUTINE_FILL_GPA &&
			       ROUTINE_FILL_GPA + sizeof(fill_code) <= ROUTINES_FREE_GPA,
		       "routines overlap");
	vcpu_env_create(e, vm_type, mem_size, GUEST_MEM_ANON);
	guest_put_flat_gdt(e, ROUTINES_GDT_GPA);
	guest_load(e, ROUTINE_READ_GPA, read_code, sizeof(read_code));
	guest_load(e, ROUTINE_FILL_GPA, fill_code, sizeof(fill_code));
	vcpu_set_protected_mode(e->vcpu, ROUTINE_READ_GPA, ROUTINES_STACK_TOP, ROUTINES_GDT_GPA);
}

void guest_call(struct vcpu_env *e, uint32_t eip, struct guest_args args)
{
	vcpu_call(e->vcpu, eip, ROUTINES_STACK_TOP, args);
}

bool guest_read(struct vcpu_env *e, uint64_t gpa, uint32_t *val)
{
	guest_call(e, ROUTINE_READ_GPA, (struct guest_args){ .ebx = (uint32_t)gpa });
	return vcpu_run_expect_out32(e, ROUTINE_READ_PORT, val) &&
	       vcpu_run_expect(e, KVM_EXIT_HLT);
}

bool guest_read_is(struct vcpu_env *e, uint64_t gpa, uint32_t want)
{
	uint32_t v = ~want;
	return guest_read(e, gpa, &v) && guest_word_is(v, gpa, want);
}

bool guest_fill(struct vcpu_env *e, uint64_t gpa, uint32_t n, uint32_t value)
{
	guest_call(e, ROUTINE_FILL_GPA,
		   (struct guest_args){ .eax = value, .ecx = n, .edi = (uint32_t)gpa });
	return vcpu_run_expect(e, KVM_EXIT_HLT);
}

bool mmio_exit_is(const struct kvm_run *run, uint64_t gpa, uint32_t len, bool is_write)
{
	bool ok = run->exit_reason == KVM_EXIT_MMIO && run->mmio.phys_addr == gpa &&
		  run->mmio.len == len && !!run->mmio.is_write == is_write;
	if (!ok)
		ksft_print_msg("exit %s mmio: phys_addr 0x%llx len %u is_write %u; want 0x%llx "
			       "len %u is_write %u",
			       exit_reason_str(run->exit_reason),
			       (unsigned long long)run->mmio.phys_addr, run->mmio.len,
			       run->mmio.is_write, (unsigned long long)gpa, len, is_write);
	return ok;
}

uint64_t mmio_value(const struct kvm_run *run)
{
	uint64_t v = 0;
	memcpy(&v, run->mmio.data, run->mmio.len <= 8 ? run->mmio.len : 8);
	return v;
}

uint64_t vcpu_hypercall_flags(const struct kvm_run *run)
{
	_Static_assert(offsetof(struct kvm_run, hypercall.longmode) == 96, "hypercall.flags");
	uint64_t flags;
	memcpy(&flags, &run->hypercall.longmode, sizeof(flags));
	return flags;
}
