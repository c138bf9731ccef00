// The two-dimensional fault path (DESIGN §1): memslot → shared or private? →
// guest_memfd file → inode page, or the VMM's userspace_addr memory → a leaf
// in the second-level table. Mismatches and missing backing become memory-fault
// exits, as KVM's kvm_faultin_pfn does.
//
// Races: the fault reads invalidate_seq_ (and the System's host_change_seq)
// before it looks anything up and installs only if no invalidation began or
// ended meanwhile (Install); an invalidation zaps under mmu_lock_ and bumps
// tlb_gen_, so a mapping made from stale state is either refused or zapped.
// Changes of the VMM's own memory (munmap, mremap, MAP_FIXED) come through
// System::BeginHostRangeChange, KVM's MMU notifier.
#include <sched.h>

#include <vector>

#include "base/user_copy.h"
#include "gmem/inode.h"
#include "kvm_uapi.h"
#include "kvmlike/system.h"
#include "kvmlike/vcpu.h"
#include "kvmlike/vm.h"

namespace kvmlike {

using base::Error;
using base::Gfn;
using x86::AccessKind;

namespace {

FaultResult MemoryFaultExit(Error err, uint64_t flags) {
  return {FaultOutcome::kExit, nullptr, err, flags};
}

constexpr uint64_t kPrivate = KVM_MEMORY_EXIT_FLAG_PRIVATE;

}  // namespace

FaultResult Vm::HandleFault(base::Gpa gpa, AccessKind kind) {
  Gfn gfn = base::GpaToGfn(gpa);
  FaultSeq seq{invalidate_seq_.load(std::memory_order_acquire), sys_.host_change_seq()};
  base::SrcuReadGuard srcu(srcu_);
  Memslot* slot = as_[0].Read([&](auto& set) { return set.ByGfn(gfn); });
  bool is_private = info_->has_private_mem && (attributes_.Get(gfn) & KVM_MEMORY_ATTRIBUTE_PRIVATE);
  if (!slot) return is_private ? MemoryFaultExit(Error::kFault, kPrivate) : FaultResult{FaultOutcome::kMmio};
  if (huge_leaves_.load(std::memory_order_relaxed))
    if (std::optional<FaultResult> huge = FaultHuge(*slot, gfn, is_private, kind, seq)) return *huge;
  FaultResult r = is_private ? FaultPrivate(*slot, gfn) : FaultShared(*slot, gfn, kind);
  if (r.outcome != FaultOutcome::kFixed) return r;
  mmu::Perm perm;
  perm.write = !(slot->flags() & KVM_MEM_READONLY) && r.host_writable;
  return Install(gfn, r.host, mmu::PageSize::k4K, perm, seq);
}

// A 2 MiB leaf needs the whole aligned block: inside one guest_memfd slot
// whose file offset is aligned the same way, one attribute value throughout
// (a conversion inside the block splits it), and backing the inode can give
// as one contiguous run. Anything less maps 4 KiB.
std::optional<FaultResult> Vm::FaultHuge(Memslot& slot, Gfn gfn, bool is_private,
                                         AccessKind kind, FaultSeq seq) {
  constexpr uint64_t kHuge = mmu::kPagesPer2M;
  if (!slot.has_gmem()) return std::nullopt;
  if (!is_private && !(slot.binding()->file().flags() & GUEST_MEMFD_FLAG_MMAP)) return std::nullopt;
  if (kind == AccessKind::kWrite && (slot.flags() & KVM_MEM_READONLY)) return std::nullopt;
  GfnRange block = GfnRange::FromCount(Gfn(gfn.value() & ~(kHuge - 1)), kHuge);
  if (block.begin < slot.base_gfn() || slot.gfns().end < block.end) return std::nullopt;
  if (slot.PgOffOf(block.begin).value() % kHuge) return std::nullopt;
  if (!attributes_.RangeHas(block, is_private ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0)) return std::nullopt;
  gmem::Binding& b = *slot.binding();
  base::RefPtr<gmem::Inode> inode = b.file().inode();
  if (!inode || b.severed()) return std::nullopt;  // the 4 KiB path reports it
  base::Result<uint8_t*> host = inode->GetHugePage(slot.PgOffOf(block.begin));
  if (!host.ok()) return std::nullopt;
  mmu::Perm perm;
  perm.write = !(slot.flags() & KVM_MEM_READONLY);
  FaultResult r = Install(block.begin, host.value(), mmu::PageSize::k2M, perm, seq);
  if (r.outcome == FaultOutcome::kFixed) r.host = host.value() + base::PagesToBytes(gfn - block.begin);
  return r;
}

// Private memory exists only in guest_memfd: a private access to another kind
// of slot, or through a binding whose file was released, is the VMM's problem.
FaultResult Vm::FaultPrivate(Memslot& slot, Gfn gfn) {
  if (!slot.has_gmem()) return MemoryFaultExit(Error::kFault, kPrivate);
  return FaultGmem(slot, gfn, kPrivate);
}

// kvm_gmem_get_pfn: the binding's page, allocated and zeroed on first use. A
// released file gives EFAULT, a poisoned page EHWPOISON, with the exit flags
// of the access.
FaultResult Vm::FaultGmem(Memslot& slot, Gfn gfn, uint64_t exit_flags) {
  gmem::Binding& b = *slot.binding();
  base::RefPtr<gmem::Inode> inode = b.file().inode();
  if (!inode || b.severed()) return MemoryFaultExit(Error::kFault, exit_flags);
  base::Result<uint8_t*> page = inode->GetPage(slot.PgOffOf(gfn));
  if (!page.ok())
    return MemoryFaultExit(page.error() == Error::kHwPoison ? Error::kHwPoison : Error::kFault,
                           exit_flags);
  return {FaultOutcome::kFixed, page.value()};
}

// Shared accesses: slots bound to an MMAP-capable guest_memfd are served from
// it (KVM_MEMSLOT_GMEM_ONLY); other slots from the VMM's memory, which must be
// there — a hole becomes a memory-fault exit with EFAULT, not a crash. A read
// maps the VMM's page read-only (it may be mapped so: a write through the
// leaf would fault kvmlike itself); the first write faults again, checks the
// page is writable, and maps it writable, as KVM maps a page writable only
// when the host's mapping allows it.
FaultResult Vm::FaultShared(Memslot& slot, Gfn gfn, AccessKind kind) {
  if (kind == AccessKind::kWrite && (slot.flags() & KVM_MEM_READONLY))
    return {FaultOutcome::kMmio};
  if (slot.has_gmem() && (slot.binding()->file().flags() & GUEST_MEMFD_FLAG_MMAP))
    return FaultGmem(slot, gfn, 0);
  uint64_t hva = slot.userspace_addr().value() + base::PagesToBytes(gfn - slot.base_gfn());
  uint8_t probe;
  // Touches the page once through a fault-safe copy: it must be mapped (and
  // is now resident) before the interpreter dereferences it.
  if (!base::CopyFromUser(&probe, hva, 1).ok()) return MemoryFaultExit(Error::kFault, 0);
  bool write = kind == AccessKind::kWrite;
  if (write && !base::ProbeUserWrite(hva).ok()) return MemoryFaultExit(Error::kFault, 0);
  FaultResult r{FaultOutcome::kFixed, reinterpret_cast<uint8_t*>(hva)};
  r.host_writable = write;
  return r;
}

FaultResult Vm::Install(Gfn gfn, uint8_t* host, mmu::PageSize size, mmu::Perm perm, FaultSeq seq) {
  base::MutexGuard g(mmu_lock_);
  uint64_t pages = size == mmu::PageSize::k2M ? mmu::kPagesPer2M : 1;
  bool raced = invalidate_in_progress_ && invalidate_range_.Overlaps(GfnRange::FromCount(gfn, pages));
  base::HvaRange hvas = base::HvaRange::FromCount(base::Hva(reinterpret_cast<uint64_t>(host)),
                                                  base::PagesToBytes(pages));
  raced |= sys_.HostRangeChanging(hvas) || sys_.host_change_seq() != seq.host;
  if (raced || invalidate_seq_.load(std::memory_order_relaxed) != seq.vm) {
    stats_->Add(vmstat::kFaultRetries);
    return {FaultOutcome::kRetry};
  }
  if (!tdp_->Map(gfn, base::Hva(reinterpret_cast<uint64_t>(host)), size, perm).ok())
    return MemoryFaultExit(Error::kNoMemory, 0);
  stats_->Add(vmstat::kFaults);
  PublishTdpStats();
  return {FaultOutcome::kFixed, host};
}

std::optional<Vm::TlbEntry> Vm::TlbFill(Gfn gfn, AccessKind kind) {
  base::MutexGuard g(mmu_lock_);
  std::optional<mmu::Leaf> leaf = tdp_->Walk(gfn);
  bool write = kind == AccessKind::kWrite;
  if (!leaf || (write && !leaf->perm.write) || (kind == AccessKind::kFetch && !leaf->perm.exec))
    return std::nullopt;
  tdp_->MarkAccessed(gfn, write);
  TlbEntry e{reinterpret_cast<uint8_t*>(leaf->host.value()),
             reinterpret_cast<uint8_t*>(leaf->PageOf(gfn).value()),
             leaf->level == 2 ? mmu::PageSize::k2M : mmu::PageSize::k4K, leaf->perm};
  // The TLB entry allows writes only once the leaf is dirty, so the first
  // write after a read walks again and sets the dirty bit.
  e.perm.write = leaf->perm.write && (write || leaf->dirty);
  return e;
}

std::optional<mmu::Leaf> Vm::WalkTdp(Gfn gfn) {
  base::MutexGuard g(mmu_lock_);
  return tdp_->Walk(gfn);
}

void Vm::PublishTdpStats() {
  stats_->Set(vmstat::kPages4k, tdp_->mapped_4k());
  stats_->Set(vmstat::kPages2m, tdp_->mapped_2m());
}

void Vm::ZapLocked(GfnRange range) {
  uint64_t n = tdp_->Zap(range);
  stats_->Add(vmstat::kZaps);
  stats_->Add(vmstat::kZappedPages, n);
  PublishTdpStats();
  tlb_gen_.fetch_add(1, std::memory_order_seq_cst);  // see Vcpu::Run
}

void Vm::ZapSlot(const Memslot& slot) {
  {
    base::MutexGuard g(mmu_lock_);
    ZapLocked(slot.gfns());
  }
  SyncTlbs();
}

void Vm::InvalidateBegin(int, GfnRange range) {
  base::MutexGuard g(mmu_lock_);
  invalidate_range_ = invalidate_in_progress_++ == 0 ? range : invalidate_range_.Span(range);
  ZapLocked(range);
}

void Vm::InvalidateEnd(int, GfnRange) {
  base::MutexGuard g(mmu_lock_);
  invalidate_seq_.fetch_add(1, std::memory_order_release);
  if (--invalidate_in_progress_ == 0) invalidate_range_ = {};
}

namespace {

// The GFNs of slot whose userspace memory lies in range (empty if none).
GfnRange SlotGfnsIn(const Memslot& slot, base::HvaRange range) {
  base::HvaRange mem = base::HvaRange::FromCount(slot.userspace_addr(), base::PagesToBytes(slot.npages()));
  base::HvaRange part = mem.Intersect(range);
  if (part.empty()) return {};
  uint64_t first = (part.begin - mem.begin) >> base::kPageShift;
  uint64_t end = (part.end - mem.begin + base::kPageSize - 1) >> base::kPageShift;
  return {slot.base_gfn() + first, slot.base_gfn() + end};
}

}  // namespace

// Under slots_lock_, as a memslot update: a slot being deleted has left the
// set before its mappings are zapped (DeleteSlot), and a walk of the set in
// that window would miss them. A slot created meanwhile can map nothing in
// range (the System registered the change before calling here).
void Vm::ZapHostRange(base::HvaRange range) {
  base::MutexGuard slots(slots_lock_);
  std::vector<GfnRange> zap;
  for (auto& as : as_)
    as.Read([&](auto& set) {
      set.ForEach([&](Memslot& slot) {
        if (GfnRange gfns = SlotGfnsIn(slot, range); !gfns.empty()) zap.push_back(gfns);
      });
    });
  if (zap.empty()) return;
  {
    base::MutexGuard g(mmu_lock_);
    for (GfnRange gfns : zap) ZapLocked(gfns);
  }
  SyncTlbs();
}

int64_t Vm::invalidations_in_progress() const {
  base::MutexGuard g(mmu_lock_);
  return invalidate_in_progress_;
}

// A vCPU in guest mode acknowledges the generation at its next memory access
// (every instruction fetches), flushing its TLB; one outside guest mode
// checks on entry. Called with no lock a vCPU's fault path could wait on.
void Vm::SyncTlbs() {
  uint64_t gen = tlb_gen();
  stats_->Add(vmstat::kRemoteTlbFlushRequests);
  std::vector<base::RefPtr<FdObject>> vcpus;
  {
    base::MutexGuard g(vcpus_lock_);
    for (auto& [id, v] : vcpus_)
      if (auto r = base::RefPtr<FdObject>::TryFromRaw(v)) vcpus.push_back(std::move(r));
  }
  for (auto& obj : vcpus) {
    auto& v = static_cast<Vcpu&>(*obj);
    while (v.in_guest() && v.tlb_gen_acked() < gen) sched_yield();
  }
  stats_->Add(vmstat::kRemoteTlbFlush);
}

}  // namespace kvmlike
