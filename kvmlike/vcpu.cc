#include "kvmlike/vcpu.h"

#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstring>
#include <optional>
#include <string>

#include "base/interruptible.h"
#include "base/user_copy.h"
#include "kvm_uapi.h"
#include "kvmlike/system.h"
#include "kvmlike/vm.h"

namespace kvmlike {

using base::Error;
using base::Result;

namespace {

constexpr uint32_t kPioDataOffset = 4096;      // KVM_PIO_PAGE_OFFSET * page size
constexpr uint64_t kInstructionsPerCheck = 16384;  // between signal checks
constexpr uint64_t kKvmEnosys = 1000, kKvmEinval = 22;

// Which exit the next KVM_RUN completes before it runs guest code.
enum PendingExit : uint32_t { kNone = 0, kIoIn, kMmioRead, kHypercall };

}  // namespace

// The interpreter's view of guest memory for one vCPU: the software TLB in
// front, the VM's fault path behind it. Every access first acknowledges TLB
// shootdowns (Vm::SyncTlbs waits for that while the vCPU is in guest mode).
class VcpuMemory final : public x86::GuestMemory {
 public:
  explicit VcpuMemory(Vcpu& v) : v_(v), vm_(*v.vm_) {
    inline_tlb_ = {
        .small = reinterpret_cast<const uint8_t*>(v.tlb_.small_entries()),
        .large = reinterpret_cast<const uint8_t*>(v.tlb_.large_entries()),
        .tag_bits = uint64_t{Tag()} << mmu::SoftTlb::kTagShift,
        .generation = &vm_.tlb_gen_word(),
        .acknowledged = &v.tlb_gen_acked_,
    };
  }

  // The hit path is a few loads and stores nothing: a flush to acknowledge or
  // a miss goes to Slow, a tail call, so that a hit saves no registers (a
  // guest store to uncached memory holds up every host store behind it).
  x86::Translation Translate(base::Gpa gpa, x86::AccessKind kind) override {
    if (vm_.tlb_gen() != v_.tlb_gen_acked_.load(std::memory_order_relaxed)) [[unlikely]]
      return Slow(gpa, kind);
    if (uint8_t* host = Lookup(gpa, kind)) [[likely]] return {x86::MemOutcome::kOk, host};
    return Slow(gpa, kind);
  }

  // Translated code looks the TLB up as Lookup does and acknowledges
  // shootdowns by leaving for Translate when the generation moved.
  const x86::InlineTlb* inline_tlb() const override { return &inline_tlb_; }

  Error exit_error() const { return exit_error_; }

 private:
  uint16_t Tag() const { return static_cast<uint16_t>(v_.id_ + 1); }  // the vCPU's VPID

  // gpa's host byte if the TLB has its page for this access, else null.
  uint8_t* Lookup(base::Gpa gpa, x86::AccessKind kind) const {
    bool write = kind == x86::AccessKind::kWrite, exec = kind == x86::AccessKind::kFetch;
    uint8_t* page = v_.tlb_.Lookup(Tag(), base::GpaToGfn(gpa), write, exec);
    return page ? page + (gpa.value() & (base::kPageSize - 1)) : nullptr;
  }

  // Acknowledges a shootdown (flushing the TLB), then looks up again and
  // handles a miss.
  [[gnu::noinline]] x86::Translation Slow(base::Gpa gpa, x86::AccessKind kind) {
    uint64_t gen = vm_.tlb_gen();
    if (gen != v_.tlb_gen_acked_.load(std::memory_order_relaxed)) {
      v_.tlb_.Flush();
      v_.tlb_gen_acked_.store(gen, std::memory_order_release);
    }
    if (uint8_t* host = Lookup(gpa, kind)) return {x86::MemOutcome::kOk, host};
    return Miss(gpa, kind);
  }

  // A TLB miss walks the second-level table first; only a missing (or too
  // weak) leaf is a two-dimensional fault.
  x86::Translation Miss(base::Gpa gpa, x86::AccessKind kind) {
    const base::Gfn gfn = base::GpaToGfn(gpa);
    const uint64_t offset = gpa.value() & (base::kPageSize - 1);
    if (uint8_t* host = Fill(gfn, kind)) return {x86::MemOutcome::kOk, host + offset};
    FaultResult f = vm_.HandleFault(gpa, kind);
    switch (f.outcome) {
      case FaultOutcome::kFixed: {
        v_.stats_->Add(vcpustat::kPfFixed);
        uint8_t* host = Fill(gfn, kind);  // null if an invalidation zapped it already
        if (!host) return {x86::MemOutcome::kRetry, nullptr};
        return {x86::MemOutcome::kOk, host + offset};
      }
      case FaultOutcome::kRetry:
        // An invalidation of this page is in progress on another thread:
        // give it the CPU rather than spin (two cores here, often fewer
        // than vCPUs plus mutators).
        v_.stats_->Add(vcpustat::kPfRetry);
        sched_yield();
        return {x86::MemOutcome::kRetry, nullptr};
      case FaultOutcome::kMmio:
        // KVM cannot fetch instructions from emulated MMIO (nor from nothing).
        if (kind == x86::AccessKind::kFetch) {
          // Not an error return: KVM_RUN gives 0 with the internal-error exit.
          v_.ReportInternal(KVM_INTERNAL_ERROR_EMULATION, nullptr);
          return {x86::MemOutcome::kExit, nullptr};
        }
        return {x86::MemOutcome::kMmio, nullptr};
      case FaultOutcome::kExit:
        FillMemoryFault(gpa, f.exit_flags);
        exit_error_ = f.err;
        return {x86::MemOutcome::kExit, nullptr};
    }
    return {x86::MemOutcome::kRetry, nullptr};
  }

  // The host address of gfn's page once the TLB caches its leaf, or null.
  uint8_t* Fill(base::Gfn gfn, x86::AccessKind kind) {
    std::optional<Vm::TlbEntry> e = vm_.TlbFill(gfn, kind);
    if (!e) return nullptr;
    v_.tlb_.Insert(Tag(), gfn, e->host, e->perm, e->size);
    return e->page;
  }

  void FillMemoryFault(base::Gpa gpa, uint64_t flags) {
    v_.run_->exit_reason = KVM_EXIT_MEMORY_FAULT;
    kvm_run_memory_fault* mf = kvm_run_mem_fault(v_.run_);
    mf->flags = flags;
    mf->gpa = gpa.value() & ~(base::kPageSize - 1);
    mf->size = base::kPageSize;
  }

  Vcpu& v_;
  Vm& vm_;
  Error exit_error_ = Error::kFault;
  x86::InlineTlb inline_tlb_;
};

namespace {

// Guest mode lasts from the start of KVM_RUN to its return: Vm::SyncTlbs
// waits for a vCPU in guest mode to acknowledge a shootdown. Entering is
// sequentially consistent, as are the generation's load at each access and
// the zapper's increment and its read of the flag: either SyncTlbs sees the
// vCPU in guest mode and waits for it, or the vCPU's first access sees the
// new generation. (With release/acquire only, the store here and the load of
// the generation may pass each other, and neither side would notice.)
class GuestModeScope {
 public:
  explicit GuestModeScope(std::atomic<bool>& in_guest) : in_guest_(in_guest) {
    in_guest_.store(true, std::memory_order_seq_cst);
  }
  ~GuestModeScope() { in_guest_.store(false, std::memory_order_release); }
  GuestModeScope(const GuestModeScope&) = delete;
  GuestModeScope& operator=(const GuestModeScope&) = delete;

 private:
  std::atomic<bool>& in_guest_;
};

}  // namespace

// The layout InlineTlb promises translated code.
namespace inline_layout {
using Entry = mmu::SoftTlb::Entry;
namespace itlb = x86::inline_tlb;
static_assert(sizeof(Entry) == itlb::kEntrySize);
static_assert(offsetof(Entry, tag_key) == itlb::kKeyOffset);
static_assert(offsetof(Entry, host) == itlb::kHostOffset);
static_assert(offsetof(Entry, writable) == itlb::kWritableOffset && sizeof(Entry::writable) == 1);
static_assert(mmu::SoftTlb::kSmall == itlb::kSmallEntries);
static_assert(mmu::SoftTlb::kLarge == itlb::kLargeEntries);
static_assert(mmu::SoftTlb::kTagShift == itlb::kTagShift);
}  // namespace inline_layout

Vcpu::Vcpu(Vm& vm, uint32_t id, kvm_run* run, std::unique_ptr<StatsBlock> stats)
    : vm_(base::RefPtr<Vm>::FromRaw(&vm)), id_(id), run_(run), stats_(std::move(stats)) {
  cpu_ = x86::CpuState::Reset();
  // The local APIC is enabled at reset; vCPU 0 is the bootstrap processor.
  constexpr uint64_t kApicBase = 0xfee00000, kApicEnable = 1u << 11, kApicBsp = 1u << 8;
  cpu_.apic_base = kApicBase | kApicEnable | (id == 0 ? kApicBsp : 0);
  vm.AddUser();  // dropped when the vCPU is released (DropUser)
}

Vcpu::~Vcpu() { munmap(run_, kVcpuMmapSize); }

Result<Vcpu::Created> Vcpu::Create(Vm& vm, uint32_t id) {
  base::UniqueFd fd(memfd_create("kvm-vcpu", MFD_CLOEXEC));
  if (!fd.valid()) return base::FromErrno(errno);
  if (ftruncate(fd.get(), kVcpuMmapSize) != 0) return Error::kNoMemory;
  std::string stats_id = "kvm-" + std::to_string(vm.system().pid()) + "/vcpu-" + std::to_string(id);
  TRY_ASSIGN(auto stats, StatsBlock::Create(stats_id, vcpustat::Descs()));
  void* run = mmap(nullptr, kVcpuMmapSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (run == MAP_FAILED) return Error::kNoMemory;
  auto vcpu = base::RefPtr<Vcpu>::Adopt(new Vcpu(vm, id, static_cast<kvm_run*>(run), std::move(stats)));
  return Created{std::move(vcpu), std::move(fd)};
}

void Vcpu::AddUser() { users_.fetch_add(1, std::memory_order_relaxed); }

void Vcpu::DropUser() {
  if (users_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  vm_->UnregisterVcpu(*this);
  vm_->DropUser();
}

// Any mapping the kernel allows (it accepts MAP_PRIVATE too, which then sees
// the run area as it was at mmap time, copy-on-write).
Result<void*> Vcpu::Mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  void* p = mmap(addr, len, prot, flags, fd, off);
  if (p == MAP_FAILED) return base::FromErrno(errno);
  return p;
}

Result<long> Vcpu::Ioctl(unsigned long cmd, unsigned long arg) {
  if (vm_->FromOtherProcess()) return Error::kIo;
  base::MutexGuard g(run_lock_);
  switch (cmd) {
    case KVM_RUN:
      return Run(arg);
    case KVM_GET_REGS:
      return GetRegs(arg);
    case KVM_SET_REGS:
      return SetRegs(arg);
    case KVM_GET_SREGS:
      return GetSregs(arg);
    case KVM_SET_SREGS:
      return SetSregs(arg);
    case KVM_PRE_FAULT_MEMORY:
      return PreFault(arg);
    case KVM_ENABLE_CAP:
      return EnableCap(arg);
    case KVM_GET_STATS_FD:
      return vm_->OpenStatsFd(*stats_);
    default:
      return Error::kInvalid;  // x86's kvm_arch_vcpu_ioctl answers EINVAL
  }
}

// The exit KVM_RUN returned last is completed first, with the data the VMM
// left in the run area, even when immediate_exit then stops the vCPU: the
// IN or MMIO read retires (one instruction), a hypercall gets its result.
void Vcpu::CompletePendingExit(VcpuMemory& mem) {
  auto* page = reinterpret_cast<uint8_t*>(run_);
  uint32_t pending = pending_exit_;
  pending_exit_ = kNone;
  switch (pending) {
    case kIoIn:
      interp_.CompleteRead(page + run_->io.data_offset, run_->io.size);
      interp_.Run(cpu_, mem, 1);
      break;
    case kMmioRead:
      interp_.CompleteRead(run_->mmio.data, run_->mmio.len);
      interp_.Run(cpu_, mem, 1);
      break;
    case kHypercall:
      x86::Interpreter::CompleteHypercall(cpu_, run_->hypercall.ret);
      break;
    default:
      break;
  }
}

Result<long> Vcpu::Run(unsigned long arg) {
  if (arg) return Error::kInvalid;
  VcpuMemory mem(*this);
  GuestModeScope guest(in_guest_);
  CompletePendingExit(mem);
  if (run_->immediate_exit) return Error::kInterrupted;
  base::InterruptibleSection signals;
  Result<long> result = 0;
  uint64_t retired = interp_.instructions_retired();
  for (;;) {
    x86::Stop stop = interp_.Run(cpu_, mem, kInstructionsPerCheck);
    if (stop.reason == x86::StopReason::kMemExit) {
      if (run_->exit_reason == KVM_EXIT_MEMORY_FAULT) {
        stats_->Add(vcpustat::kMemoryFaultExits);
        result = mem.exit_error();
      }
      break;
    }
    if (stop.reason != x86::StopReason::kBudget && ReportStop(stop)) break;
    if (signals.Pending()) {
      run_->exit_reason = KVM_EXIT_INTR;
      stats_->Add(vcpustat::kSignalExits);
      result = Error::kInterrupted;
      break;
    }
  }
  stats_->Add(vcpustat::kExits);
  stats_->Add(vcpustat::kInsnEmulation, interp_.instructions_retired() - retired);
  return result;
}

// Fills the run area for a stop; false when the vCPU continues (a hypercall
// that KVM answers itself).
bool Vcpu::ReportStop(const x86::Stop& stop) {
  switch (stop.reason) {
    case x86::StopReason::kHlt:
      run_->exit_reason = KVM_EXIT_HLT;
      stats_->Add(vcpustat::kHaltExits);
      return true;
    case x86::StopReason::kIo: {
      run_->exit_reason = KVM_EXIT_IO;
      stats_->Add(vcpustat::kIoExits);
      run_->io.direction = stop.io.out ? KVM_EXIT_IO_OUT : KVM_EXIT_IO_IN;
      run_->io.size = stop.io.size;
      run_->io.port = stop.io.port;
      run_->io.count = stop.io.count;
      run_->io.data_offset = kPioDataOffset;
      auto* data = reinterpret_cast<uint8_t*>(run_) + kPioDataOffset;
      if (stop.io.out)
        std::memcpy(data, stop.io.data.data(), stop.io.size);
      else
        pending_exit_ = kIoIn;
      return true;
    }
    case x86::StopReason::kMmio:
      run_->exit_reason = KVM_EXIT_MMIO;
      stats_->Add(vcpustat::kMmioExits);
      run_->mmio.phys_addr = stop.mmio.gpa;
      run_->mmio.len = stop.mmio.len;
      run_->mmio.is_write = stop.mmio.is_write;
      std::memcpy(run_->mmio.data, stop.mmio.data.data(), sizeof(run_->mmio.data));
      if (!stop.mmio.is_write) pending_exit_ = kMmioRead;
      return true;
    case x86::StopReason::kHypercall:
      return ReportHypercall(stop.hypercall);
    case x86::StopReason::kShutdown:
      run_->exit_reason = KVM_EXIT_SHUTDOWN;
      return true;
    case x86::StopReason::kInternalError:
      ReportInternal(stop.internal.suberror, &stop.internal);
      return true;
    case x86::StopReason::kBudget:
    case x86::StopReason::kMemExit:
      break;
  }
  return false;
}

// KVM_HC_MAP_GPA_RANGE goes to userspace when the VMM enabled it; everything
// else, and malformed ranges, KVM answers in RAX without an exit.
bool Vcpu::ReportHypercall(const x86::HypercallStop& h) {
  stats_->Add(vcpustat::kHypercalls);
  if (h.nr != KVM_HC_MAP_GPA_RANGE || !vm_->hypercall_exit_enabled(h.nr)) {
    x86::Interpreter::CompleteHypercall(cpu_, -kKvmEnosys);
    return false;
  }
  uint64_t gpa = h.args[0], npages = h.args[1];
  if (!base::IsPageAligned(gpa) || npages == 0 ||
      gpa + base::PagesToBytes(npages) <= gpa) {
    x86::Interpreter::CompleteHypercall(cpu_, -kKvmEinval);
    return false;
  }
  run_->exit_reason = KVM_EXIT_HYPERCALL;
  run_->hypercall.nr = h.nr;
  for (int i = 0; i < 6; i++) run_->hypercall.args[i] = i < 3 ? h.args[i] : 0;
  run_->hypercall.ret = 0;
  // 6.1's header names the flags word "longmode" (bit 0 = KVM_EXIT_HYPERCALL_LONG_MODE).
  run_->hypercall.longmode = h.long_mode ? KVM_EXIT_HYPERCALL_LONG_MODE : 0;
  run_->hypercall.pad = 0;
  pending_exit_ = kHypercall;
  return true;
}

void Vcpu::ReportInternal(uint32_t suberror, const x86::InternalStop* insn) {
  run_->exit_reason = KVM_EXIT_INTERNAL_ERROR;
  run_->emulation_failure.suberror = suberror;
  run_->emulation_failure.ndata = 0;
  if (insn && insn->insn_len) {
    run_->emulation_failure.ndata = 3;  // flags, insn_size + insn_bytes
    run_->emulation_failure.flags = KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES;
    run_->emulation_failure.insn_size = insn->insn_len;
    std::memcpy(run_->emulation_failure.insn_bytes, insn->insn.data(), insn->insn_len);
  }
}

// KVM_ENABLE_CAP on a vCPU: no per-vCPU capability is offered, so every one is
// refused (after the argument was read, as KVM does).
Result<long> Vcpu::EnableCap(unsigned long arg) {
  TRY_ASSIGN(kvm_enable_cap cap, base::ReadUser<kvm_enable_cap>(arg));
  (void)cap;
  return Error::kInvalid;
}

// KVM_PRE_FAULT_MEMORY maps [gpa, gpa+size) page by page as a read fault
// would. Progress is reported in the struct; a call that mapped nothing
// fails with the reason (no memslot: ENOENT, as KVM's MMIO path answers).
Result<long> Vcpu::PreFault(unsigned long arg) {
  TRY_ASSIGN(kvm_pre_fault_memory r, base::ReadUser<kvm_pre_fault_memory>(arg));
  if (r.flags) return Error::kInvalid;
  if (!base::IsPageAligned(r.gpa) || !base::IsPageAligned(r.size) || r.size == 0 ||
      r.gpa + r.size < r.gpa)
    return Error::kInvalid;
  base::InterruptibleSection signals;
  uint64_t done = 0;
  std::optional<Error> stopped;  // why the loop ended early
  while (r.size) {
    FaultResult f = vm_->HandleFault(base::Gpa(r.gpa), x86::AccessKind::kRead);
    if (f.outcome == FaultOutcome::kRetry) {
      sched_yield();  // let the invalidation in progress finish (see VcpuMemory::Miss)
      continue;
    }
    if (f.outcome != FaultOutcome::kFixed) {
      stopped = f.outcome == FaultOutcome::kMmio ? Error::kNotFound : f.err;
      break;
    }
    r.gpa += base::kPageSize;
    r.size -= base::kPageSize;
    done++;
    if (r.size && signals.Pending()) {
      stopped = Error::kInterrupted;
      break;
    }
  }
  if (done) TRY(base::WriteUser(arg, r));
  if (stopped && !done) return *stopped;
  return 0;
}

}  // namespace kvmlike
