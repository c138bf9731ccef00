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

#include "base/mutex.h"
#include "base/result.h"
#include "gmem/subsystem.h"
#include "kvmlike/fd_object.h"
#include "kvmlike/vm.h"

struct kvmlike_debug_objects;

namespace kvmlike {

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

  uint64_t NextVmId() { return next_vm_id_.fetch_add(1, std::memory_order_relaxed); }
  void Register(Vm& vm) TA_EXCLUDES(lock_);
  void Unregister(Vm& vm) TA_EXCLUDES(lock_);

  // KVMLIKE_DEBUG_OBJECTS: every live VM, memslot, inode and file.
  base::Result<long> DebugObjects(unsigned long arg) TA_EXCLUDES(lock_);
  base::Result<long> PoolInfo(unsigned long arg);

 private:
  FdDirectory& fds_;
  gmem::Subsystem gmem_;
  std::atomic<int> pid_;
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
