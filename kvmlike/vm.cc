#include "kvmlike/vm.h"

#include <unistd.h>

#include "base/user_copy.h"
#include "kvm_uapi.h"
#include "kvmlike_ext.h"
#include "kvmlike/gmem_fd.h"
#include "kvmlike/system.h"

namespace kvmlike {

using base::Error;
using base::Result;
using base::Status;

Vm::Vm(System& sys, VmType type, std::unique_ptr<StatsBlock> stats)
    : sys_(sys),
      id_(sys.NextVmId()),
      type_(type),
      info_(LookupVmType(static_cast<unsigned long>(type))),
      creator_pid_(sys.pid()),
      stats_(std::move(stats)),
      tdp_(std::make_unique<mmu::Tdp>(TdpFormat(*info_))) {
  sys_.Register(*this);
}

Vm::~Vm() { sys_.Unregister(*this); }

void Vm::AddUser() { users_.fetch_add(1, std::memory_order_relaxed); }

void Vm::DropUser() {
  if (users_.fetch_sub(1, std::memory_order_acq_rel) == 1) Destroy();
}

// The last VM fd closed: delete every memslot (unbinding guest_memfd ranges,
// dropping file references). guest_memfd files stay usable on their own.
void Vm::Destroy() {
  base::MutexGuard g(slots_lock_);
  for (int as = 0; as < kAddressSpaces; as++) {
    std::vector<Memslot*> slots;
    as_[as].Read([&](auto& set) { set.ForEach([&](Memslot& s) { slots.push_back(&s); }); });
    for (Memslot* s : slots) DeleteSlot(*s);
  }
}

// KVM compares the caller's mm with the VM's; a forked child has another one.
bool Vm::FromOtherProcess() const { return sys_.pid() != creator_pid_; }

Result<long> Vm::Ioctl(unsigned long cmd, unsigned long arg) {
  if (FromOtherProcess()) return Error::kIo;
  switch (cmd) {
    case KVM_CHECK_EXTENSION:
      return CheckExtension(static_cast<long>(arg));
    case KVM_CREATE_GUEST_MEMFD:
      return CreateGuestMemfd(arg);
    case KVM_SET_USER_MEMORY_REGION:
    case KVM_SET_USER_MEMORY_REGION2:
      return SetUserMemoryRegion(cmd, arg);
    case KVM_SET_MEMORY_ATTRIBUTES:
      return SetMemoryAttributes(arg);
    case KVM_GET_DIRTY_LOG:
      return GetDirtyLog(arg);
    case KVM_SET_NR_MMU_PAGES:
      return SetNrMmuPages(arg);
    case KVM_CREATE_VCPU:
      return CreateVcpu(arg);
    case KVM_ENABLE_CAP:
      return EnableCap(arg);
    case KVM_GET_STATS_FD:
      return OpenStatsFd(*stats_);
    case KVMLIKE_WALK_GPA:
      return DebugWalk(arg);
    case KVMLIKE_GMEM_POISON:
      return DebugPoison(arg);
    case KVMLIKE_HUGE_LEAVES:
      return SetHugeLeaves(arg);
    default:
      return Error::kNoTty;
  }
}

Result<long> Vm::OpenStatsFd(const StatsBlock& block) {
  TRY_ASSIGN(base::UniqueFd fd, block.OpenReadOnly());
  return sys_.fds().Install(std::move(fd), base::MakeRef<StatsFd>(base::RefPtr<Vm>::FromRaw(this)));
}

Result<long> Vm::CheckExtension(long cap) const { return kvmlike::CheckExtension(cap, this); }

Result<long> Vm::SetNrMmuPages(unsigned long arg) {
  constexpr unsigned long kMinMmuPages = 64;  // KVM_MIN_ALLOC_MMU_PAGES
  return arg < kMinMmuPages ? Result<long>(Error::kInvalid) : Result<long>(0);
}

// KVM_CREATE_GUEST_MEMFD: flags against what this VM type supports, then the
// size (a positive multiple of the page size, compared as signed like loff_t).
Result<long> Vm::CreateGuestMemfd(unsigned long arg) {
  TRY_ASSIGN(kvm_create_guest_memfd args, base::ReadUser<kvm_create_guest_memfd>(arg));
  if (args.flags & ~info_->gmem_flags) return Error::kInvalid;
  auto size = static_cast<int64_t>(args.size);
  if (size <= 0 || !base::IsPageAligned(args.size)) return Error::kInvalid;
  TRY_ASSIGN(gmem::Inode::Created created, gmem::Inode::Create(sys_.gmem(), args.size, args.flags));
  auto file = gmem::File::Create(std::move(created.inode), id_);
  return sys_.fds().Install(std::move(created.memfd), base::MakeRef<GmemFd>(sys_, std::move(file)));
}

}  // namespace kvmlike
