// Vm: one virtual machine — what a KVM_CREATE_VM fd names. Owns its memslots
// (per address space), memory attributes and type; answers VM ioctls.
//
// Lifetime: users are the VM's fds. When the last one closes the VM is torn
// down (memslots deleted, which unbinds their guest_memfd ranges and drops
// their file references); the object itself goes with its last reference.
// guest_memfd files never reference the Vm: they know it by id() only.
//
// VM ioctls from a process other than the creator (a forked child) fail with
// EIO, as KVM's mm check does.
//
// Locks, in order: lock_ (kVm) → slots_lock_ (kSlots) → [gmem locks] →
// mmu_lock_ (kMmu). Memslot readers use srcu_ instead of slots_lock_.
#pragma once

#include <boost/intrusive/list.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "base/mutex.h"
#include "base/result.h"
#include "base/srcu.h"
#include "kvmlike/address_space.h"
#include "kvmlike/attributes.h"
#include "kvmlike/fd_object.h"
#include "kvmlike/mmu/tdp.h"
#include "kvmlike/stats.h"
#include "kvmlike/vm_type.h"
#include "kvmlike/x86/guest_memory.h"

struct kvm_userspace_memory_region2;
struct kvm_memory_attributes;

namespace kvmlike {

class System;
class Vcpu;
using SafeListHook = bi::list_member_hook<bi::link_mode<bi::safe_link>>;

// One address space: kvmlike models no SMM, so as_id 1 is refused and
// KVM_CAP_MULTI_ADDRESS_SPACE is not offered (as on an x86 kernel without SMM).
inline constexpr int kAddressSpaces = 1;

inline constexpr uint32_t kMaxVcpus = 4096;    // KVM_CAP_MAX_VCPUS
inline constexpr uint32_t kMaxVcpuId = 4096;   // KVM_CAP_MAX_VCPU_ID
inline constexpr uint64_t kHypercallExitMask = 1ull << 12;  // KVM_HC_MAP_GPA_RANGE

// What a guest fault came to (the fault path's own outcome codes).
enum class FaultOutcome : uint8_t {
  kFixed,   // mapped: host is the page
  kRetry,   // raced an invalidation: run the access again
  kMmio,    // no memslot (or a write to a read-only slot): emulated MMIO
  kExit,    // a memory-fault exit: the run area is filled, KVM_RUN fails with err
};

struct FaultResult {
  FaultOutcome outcome;
  uint8_t* host = nullptr;  // kFixed: host address of the 4 KiB page
  base::Error err = base::Error::kFault;  // kExit
  uint64_t exit_flags = 0;  // kExit: memory_fault.flags
  bool host_writable = true;  // kFixed: the host page may be written (else a read-only leaf)
};

class Vm final : public FdObject {
 public:
  Vm(System& sys, VmType type, std::unique_ptr<StatsBlock> stats);
  ~Vm() override;

  Kind kind() const override { return Kind::kVm; }
  void AddUser() override;
  void DropUser() override;  // the last VM fd tears the VM down
  base::Result<long> Ioctl(unsigned long cmd, unsigned long arg) override;

  uint64_t id() const { return id_; }
  VmType type() const { return type_; }
  const VmTypeInfo& type_info() const { return *info_; }
  int64_t users() const { return users_.load(std::memory_order_relaxed); }
  System& system() const { return sys_; }

  // Memslot readers: call fn(set) for the published set of as_id inside an
  // SRCU read section.
  template <typename Fn>
  auto ReadSlots(int as_id, Fn&& fn) {
    base::SrcuReadGuard g(srcu_);
    return as_[as_id].Read(fn);
  }

  // Invalidation of guest mappings (punch-hole, file release, attribute
  // change): faults that overlap an invalidation in progress, or that began
  // before one ended, retry (KVM's mmu_invalidate_seq scheme).
  void InvalidateBegin(int as_id, GfnRange range) TA_EXCLUDES(mmu_lock_);
  void InvalidateEnd(int as_id, GfnRange range) TA_EXCLUDES(mmu_lock_);
  uint64_t invalidate_seq() const { return invalidate_seq_.load(std::memory_order_acquire); }
  int64_t invalidations_in_progress() const TA_EXCLUDES(mmu_lock_);

  // The VMM's memory in range is about to be unmapped, moved or replaced
  // (System::BeginHostRangeChange): zaps the GFNs of every slot that maps it;
  // returns once every vCPU has dropped cached translations.
  void ZapHostRange(base::HvaRange range) TA_EXCLUDES(slots_lock_, mmu_lock_, vcpus_lock_);

  const AttributeMap& attributes() const { return attributes_; }

  // vCPUs (KVM_CREATE_VCPU); a Vcpu unregisters itself when released.
  void UnregisterVcpu(Vcpu& vcpu) TA_EXCLUDES(vcpus_lock_);

  // The two-dimensional fault: resolves gpa for a vCPU access through the
  // memslots, memory attributes and guest_memfd, and maps the page in the
  // second-level table. Runs inside the memslot SRCU section.
  FaultResult HandleFault(base::Gpa gpa, x86::AccessKind kind) TA_EXCLUDES(mmu_lock_);
  // A vCPU TLB miss: walks the second-level table as the hardware walker
  // does, setting accessed (and dirty for writes). The leaf when gfn is
  // mapped with the access allowed (perm as a TLB entry may cache it), else
  // nullopt (then the access faults).
  struct TlbEntry {
    uint8_t* host;       // the leaf's first byte: gfn's page, or its 2 MiB block
    uint8_t* page;       // gfn's 4 KiB page (host itself for a 4 KiB leaf)
    mmu::PageSize size;
    mmu::Perm perm;
  };
  std::optional<TlbEntry> TlbFill(base::Gfn gfn, x86::AccessKind kind) TA_EXCLUDES(mmu_lock_);
  // Walks the second-level table (debug query): the leaf for gfn, if any.
  std::optional<mmu::Leaf> WalkTdp(base::Gfn gfn) TA_EXCLUDES(mmu_lock_);

  // TLB shootdown: the generation vCPUs compare with at each access, and the
  // wait for every vCPU in guest mode to have seen the current one.
  // Sequentially consistent with vCPUs entering guest mode (Vcpu::Run).
  uint64_t tlb_gen() const { return tlb_gen_.load(std::memory_order_seq_cst); }
  // The generation itself, for translated guest code that compares it inline.
  const std::atomic<uint64_t>& tlb_gen_word() const { return tlb_gen_; }
  void SyncTlbs() TA_EXCLUDES(vcpus_lock_);

  bool hypercall_exit_enabled(uint64_t nr) const {
    return nr < 64 && (hypercall_exits_.load(std::memory_order_relaxed) & (1ull << nr));
  }
  bool FromOtherProcess() const;

  StatsBlock& stats() { return *stats_; }
  // KVM_GET_STATS_FD on the VM or one of its vCPUs: a new read-only fd on block.
  base::Result<long> OpenStatsFd(const StatsBlock& block);

  struct SlotInfo { uint16_t as_id, id; uint64_t npages; uint32_t file_id; };
  template <typename Fn>
  void ForEachSlot(Fn&& fn) TA_EXCLUDES(slots_lock_);

  SafeListHook registry_hook_;  // System's list of VMs (its lock)

 private:
  base::Result<long> CheckExtension(long cap) const;
  base::Result<long> CreateVcpu(unsigned long id);
  base::Result<long> EnableCap(unsigned long arg);
  base::Result<long> SetHugeLeaves(unsigned long arg);
  base::Result<long> DebugWalk(unsigned long arg);
  base::Result<long> DebugPoison(unsigned long arg);
  FaultResult FaultPrivate(Memslot& slot, base::Gfn gfn);
  FaultResult FaultGmem(Memslot& slot, base::Gfn gfn, uint64_t exit_flags);
  FaultResult FaultShared(Memslot& slot, base::Gfn gfn, x86::AccessKind kind);
  // The invalidation counters a fault read before it looked anything up.
  struct FaultSeq {
    uint64_t vm;    // invalidate_seq_
    uint64_t host;  // System::host_change_seq()
  };
  FaultResult Install(base::Gfn gfn, uint8_t* host, mmu::PageSize size, mmu::Perm perm,
                      FaultSeq seq) TA_EXCLUDES(mmu_lock_);
  // A 2 MiB leaf for the block around gfn, when huge leaves are on and the
  // block qualifies; nullopt means: map 4 KiB.
  std::optional<FaultResult> FaultHuge(Memslot& slot, base::Gfn gfn, bool is_private,
                                       x86::AccessKind kind, FaultSeq seq);
  void ZapSlot(const Memslot& slot) TA_EXCLUDES(mmu_lock_);
  void ZapLocked(GfnRange range) TA_REQUIRES(mmu_lock_);
  void PublishTdpStats() TA_REQUIRES(mmu_lock_);
  base::Result<long> CreateGuestMemfd(unsigned long arg);
  base::Result<long> SetUserMemoryRegion(unsigned long cmd, unsigned long arg);
  base::Status SetMemoryRegion(const kvm_userspace_memory_region2& mem) TA_REQUIRES(slots_lock_);
  base::Status CreateSlot(const MemslotSpec& spec, const kvm_userspace_memory_region2& mem)
      TA_REQUIRES(slots_lock_);
  base::Status ModifySlot(Memslot& old, const MemslotSpec& spec) TA_REQUIRES(slots_lock_);
  void DeleteSlot(Memslot& old) TA_REQUIRES(slots_lock_);
  base::Status BindGuestMemfd(Memslot& slot, int fd);
  base::Result<long> SetMemoryAttributes(unsigned long arg);
  base::Result<long> GetDirtyLog(unsigned long arg);
  base::Result<long> SetNrMmuPages(unsigned long arg);
  void Destroy() TA_EXCLUDES(slots_lock_);

  System& sys_;
  const uint64_t id_;
  const VmType type_;
  const VmTypeInfo* const info_;
  const int creator_pid_;
  const std::unique_ptr<StatsBlock> stats_;
  std::atomic<int64_t> users_{1};

  base::Mutex lock_{base::LockClass::kVm};
  base::Mutex slots_lock_{base::LockClass::kSlots};
  base::Srcu srcu_;
  std::array<AddressSpace, kAddressSpaces> as_;
  uint64_t nr_memslot_pages_ TA_GUARDED_BY(slots_lock_) = 0;
  AttributeMap attributes_;

  // Every vCPU id created in this VM (KVM_CREATE_VCPU answers EEXIST for them).
  std::set<uint32_t> vcpu_ids_ TA_GUARDED_BY(lock_);
  // The vCPU table: raw back-pointers, each cleared by its Vcpu's release.
  base::Mutex vcpus_lock_{base::LockClass::kLeaf};
  std::map<uint32_t, Vcpu*> vcpus_ TA_GUARDED_BY(vcpus_lock_);
  std::atomic<uint64_t> hypercall_exits_{0};
  std::atomic<bool> huge_leaves_{false};  // KVMLIKE_HUGE_LEAVES

  mutable base::Mutex mmu_lock_{base::LockClass::kMmu};
  std::unique_ptr<mmu::Tdp> tdp_ TA_GUARDED_BY(mmu_lock_);
  int64_t invalidate_in_progress_ TA_GUARDED_BY(mmu_lock_) = 0;
  // The union of the ranges being invalidated while any invalidation is in
  // progress: only faults inside it must wait (mmu_invalidate_range_start/end).
  GfnRange invalidate_range_ TA_GUARDED_BY(mmu_lock_){};
  std::atomic<uint64_t> invalidate_seq_{0};
  std::atomic<uint64_t> tlb_gen_{0};
};

template <typename Fn>
void Vm::ForEachSlot(Fn&& fn) {
  base::MutexGuard g(slots_lock_);
  for (auto& as : as_) as.Read([&](auto& set) { set.ForEach(fn); });
}

}  // namespace kvmlike
