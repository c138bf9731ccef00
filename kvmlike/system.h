// System: one kvmlike instance — what /dev/kvm is to a process. Owns the
// guest_memfd subsystem and the registry of live VMs; answers system-fd
// ioctls. Exactly one per process, owned by the front-end (the only global);
// everything below it is handed System& explicitly.
//
// Must outlive every object it created (VMs, guest_memfd files).
#pragma once

#include <boost/intrusive/list.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "base/mutex.h"
#include "base/result.h"
#include "gmem/subsystem.h"
#include "kvmlike/fd_object.h"
#include "kvmlike/vm.h"

struct kvmlike_debug_objects;

namespace kvmlike {

// A change of the VMM's memory under every VM that may map it (munmap, mremap,
// mmap MAP_FIXED), as KVM's MMU notifier sees it: begun before the kernel call
// (System::BeginHostRangeChange), ended when destroyed after it.
class HostRangeChange {
 public:
  ~HostRangeChange();
  HostRangeChange(const HostRangeChange&) = delete;
  HostRangeChange& operator=(const HostRangeChange&) = delete;

 private:
  friend class System;
  explicit HostRangeChange(System& sys) : sys_(sys) {}
  System& sys_;
};

class System {
 public:
  explicit System(FdDirectory& fds);
  ~System();
  System(const System&) = delete;
  System& operator=(const System&) = delete;

  FdDirectory& fds() { return fds_; }
  gmem::Subsystem& gmem() { return gmem_; }

  // open("/dev/kvm", flags): a new system fd.
  base::Result<int> OpenDevice(int flags);

  // The process kvmlike runs in; the front-end calls OnForkChild() in a child.
  int pid() const { return pid_.load(std::memory_order_relaxed); }
  void OnForkChild();

  // The VMM's memory in range is about to be unmapped, moved or replaced:
  // every VM zaps what maps it (Vm::ZapHostRange), and until the result is
  // destroyed no fault maps a host page in it (HostRangeChanging); a fault
  // that began before the change ended retries (host_change_seq). Null in a
  // forked child (its VMs belong to the parent).
  std::unique_ptr<HostRangeChange> BeginHostRangeChange(base::HvaRange range)
      TA_EXCLUDES(lock_, host_change_lock_);
  bool HostRangeChanging(base::HvaRange range) const TA_EXCLUDES(host_change_lock_);
  uint64_t host_change_seq() const { return host_change_seq_.load(std::memory_order_seq_cst); }
  // A memslot maps the VMM's memory in range (grows the bounds that let a
  // change elsewhere skip the VMs).
  void NoteSlotMemory(base::HvaRange range);

  uint64_t NextVmId() { return next_vm_id_.fetch_add(1, std::memory_order_relaxed); }
  void Register(Vm& vm) TA_EXCLUDES(lock_);
  void Unregister(Vm& vm) TA_EXCLUDES(lock_);

  // KVMLIKE_DEBUG_OBJECTS: every live VM, memslot, inode and file.
  base::Result<long> DebugObjects(unsigned long arg) TA_EXCLUDES(lock_);
  base::Result<long> PoolInfo(unsigned long arg);

 private:
  std::vector<base::RefPtr<Vm>> LiveVms() TA_EXCLUDES(lock_);

  FdDirectory& fds_;
  gmem::Subsystem gmem_;
  std::atomic<int> pid_;
  std::atomic<bool> forked_{false};
  // Bounds of every VMM range a memslot ever mapped (never shrink).
  std::atomic<uint64_t> slot_mem_lo_{~uint64_t{0}};
  std::atomic<uint64_t> slot_mem_hi_{0};
  // Host-range changes in progress, the union of their ranges, and how many
  // have ended (KVM's mmu_invalidate_in_progress/range/seq for the VMM's mm).
  friend class HostRangeChange;
  void EndHostRangeChange() TA_EXCLUDES(host_change_lock_);
  mutable base::Mutex host_change_lock_{base::LockClass::kLeaf};
  std::atomic<int64_t> host_changes_{0};
  base::HvaRange host_change_range_ TA_GUARDED_BY(host_change_lock_){};
  std::atomic<uint64_t> host_change_seq_{0};
  std::atomic<uint64_t> next_vm_id_{1};
  base::Mutex lock_{base::LockClass::kLeaf};
  bi::list<Vm, bi::member_hook<Vm, SafeListHook, &Vm::registry_hook_>,
           bi::constant_time_size<false>> vms_ TA_GUARDED_BY(lock_);
};

// The object a /dev/kvm fd names.
class SystemFd final : public FdObject {
 public:
  explicit SystemFd(System& sys) : sys_(sys) {}
  Kind kind() const override { return Kind::kSystem; }
  base::Result<long> Ioctl(unsigned long cmd, unsigned long arg) override;

 private:
  base::Result<long> CreateVm(unsigned long type);
  System& sys_;
};

// Capabilities (KVM_CHECK_EXTENSION) at system scope, and for one VM.
long CheckExtension(long cap, const Vm* vm);
// KVM_GET_SUPPORTED_CPUID.
base::Result<long> GetSupportedCpuid(unsigned long arg);

inline constexpr long kApiVersion = 12;
inline constexpr long kVcpuMmapSize = 3 * 4096;  // kvm_run, PIO page, coalesced-MMIO ring

}  // namespace kvmlike
