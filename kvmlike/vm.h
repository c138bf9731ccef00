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

#include "base/mutex.h"
#include "base/result.h"
#include "base/srcu.h"
#include "kvmlike/address_space.h"
#include "kvmlike/attributes.h"
#include "kvmlike/fd_object.h"
#include "kvmlike/vm_type.h"

struct kvm_userspace_memory_region2;
struct kvm_memory_attributes;

namespace kvmlike {

class System;
using SafeListHook = bi::list_member_hook<bi::link_mode<bi::safe_link>>;

// One address space: kvmlike models no SMM, so as_id 1 is refused and
// KVM_CAP_MULTI_ADDRESS_SPACE is not offered (as on an x86 kernel without SMM).
inline constexpr int kAddressSpaces = 1;

class Vm final : public FdObject {
 public:
  Vm(System& sys, VmType type);
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

  const AttributeMap& attributes() const { return attributes_; }

  struct SlotInfo { uint16_t as_id, id; uint64_t npages; uint32_t file_id; };
  template <typename Fn>
  void ForEachSlot(Fn&& fn) TA_EXCLUDES(slots_lock_);

  SafeListHook registry_hook_;  // System's list of VMs (its lock)

 private:
  bool FromOtherProcess() const;
  base::Result<long> CheckExtension(long cap) const;
  base::Result<long> CreateGuestMemfd(unsigned long arg);
  base::Result<long> SetUserMemoryRegion(unsigned long cmd, unsigned long arg);
  base::Status SetMemoryRegion(const kvm_userspace_memory_region2& mem) TA_REQUIRES(slots_lock_);
  base::Status CreateSlot(const MemslotSpec& spec, const kvm_userspace_memory_region2& mem)
      TA_REQUIRES(slots_lock_);
  base::Status ModifySlot(Memslot& old, const MemslotSpec& spec) TA_REQUIRES(slots_lock_);
  void DeleteSlot(Memslot& old) TA_REQUIRES(slots_lock_);
  base::Status BindGuestMemfd(Memslot& slot, int fd, uint64_t offset);
  base::Result<long> SetMemoryAttributes(unsigned long arg);
  base::Result<long> GetDirtyLog(unsigned long arg);
  base::Result<long> SetNrMmuPages(unsigned long arg);
  void Destroy() TA_EXCLUDES(slots_lock_);

  System& sys_;
  const uint64_t id_;
  const VmType type_;
  const VmTypeInfo* const info_;
  const int creator_pid_;
  std::atomic<int64_t> users_{1};

  base::Mutex lock_{base::LockClass::kVm};
  base::Mutex slots_lock_{base::LockClass::kSlots};
  base::Srcu srcu_;
  std::array<AddressSpace, kAddressSpaces> as_;
  uint64_t nr_memslot_pages_ TA_GUARDED_BY(slots_lock_) = 0;
  AttributeMap attributes_;

  mutable base::Mutex mmu_lock_{base::LockClass::kMmu};
  int64_t invalidate_in_progress_ TA_GUARDED_BY(mmu_lock_) = 0;
  std::atomic<uint64_t> invalidate_seq_{0};
};

template <typename Fn>
void Vm::ForEachSlot(Fn&& fn) {
  base::MutexGuard g(slots_lock_);
  for (auto& as : as_) as.Read([&](auto& set) { set.ForEach(fn); });
}

}  // namespace kvmlike
