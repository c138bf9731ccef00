#include "kvmlike/system.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "base/config.h"
#include "base/user_copy.h"
#include "kvm_uapi.h"
#include "kvmlike_ext.h"

namespace kvmlike {

using base::Error;
using base::RefPtr;
using base::Result;

System::System(FdDirectory& fds)
    : fds_(fds), gmem_(base::config::kPoolReserveGiB << 30), pid_(getpid()) {
  // Bad ioctl argument pointers must give EFAULT, not a crash.
  base::InstallUserCopyFaultHandler();
}

System::~System() = default;

void System::OnForkChild() {
  pid_.store(getpid(), std::memory_order_relaxed);
  forked_.store(true, std::memory_order_relaxed);
  if (gmem::FramePool* pool = gmem_.pool_if_created()) pool->OnForkChild();
}

namespace {

// Every kvmlike object is backed by a real kernel fd, so that fd numbers are
// the kernel's and no other open() can take them.
Result<base::UniqueFd> Placeholder(const char* name, bool cloexec) {
  base::UniqueFd fd(memfd_create(name, cloexec ? MFD_CLOEXEC : 0));
  if (!fd.valid()) return errno == ENOMEM ? Error::kNoMemory : Error::kBadFd;
  return fd;
}

}  // namespace

Result<int> System::OpenDevice(int flags) {
  TRY_ASSIGN(base::UniqueFd fd, Placeholder("kvm", (flags & O_CLOEXEC) != 0));
  return fds_.Install(std::move(fd), base::MakeRef<SystemFd>(*this));
}

void System::Register(Vm& vm) {
  base::MutexGuard g(lock_);
  vms_.push_back(vm);
}

void System::Unregister(Vm& vm) {
  base::MutexGuard g(lock_);
  vms_.erase(vms_.iterator_to(vm));
}

Result<long> SystemFd::CreateVm(unsigned long type) {
  const VmTypeInfo* info = LookupVmType(type);
  if (!info) return Error::kInvalid;
  TRY_ASSIGN(auto stats, StatsBlock::Create("kvm-" + std::to_string(sys_.pid()), vmstat::Descs()));
  auto vm = base::MakeRef<Vm>(sys_, info->type, std::move(stats));
  TRY_ASSIGN(base::UniqueFd fd, Placeholder("kvm-vm", true));  // VM fds are O_CLOEXEC
  return sys_.fds().Install(std::move(fd), std::move(vm));
}

Result<long> SystemFd::Ioctl(unsigned long cmd, unsigned long arg) {
  switch (cmd) {
    case KVM_GET_API_VERSION:
      return arg ? Result<long>(Error::kInvalid) : Result<long>(kApiVersion);
    case KVM_CREATE_VM:
      return CreateVm(arg);
    case KVM_CHECK_EXTENSION:
      return CheckExtension(static_cast<long>(arg), nullptr);
    case KVM_GET_VCPU_MMAP_SIZE:
      return arg ? Result<long>(Error::kInvalid) : Result<long>(kVcpuMmapSize);
    case KVMLIKE_IOCTL_GET_SUPPORTED_CPUID:
      return GetSupportedCpuid(arg);
    case KVMLIKE_PROBE:
      return KVMLIKE_MAGIC;
    case KVMLIKE_DEBUG_OBJECTS:
      return sys_.DebugObjects(arg);
    case KVMLIKE_POOL_INFO:
      return sys_.PoolInfo(arg);
    default:
      return Error::kInvalid;  // x86's kvm_arch_dev_ioctl answers EINVAL
  }
}

// References to every VM that is not being destroyed.
std::vector<RefPtr<Vm>> System::LiveVms() {
  std::vector<RefPtr<Vm>> vms;
  base::MutexGuard g(lock_);
  for (Vm& vm : vms_)
    if (auto r = RefPtr<FdObject>::TryFromRaw(&vm)) vms.push_back(RefPtr<Vm>::Adopt(static_cast<Vm*>(r.Leak())));
  return vms;
}

void System::NoteSlotMemory(base::HvaRange range) {
  uint64_t lo = slot_mem_lo_.load(std::memory_order_seq_cst);
  while (range.begin.value() < lo && !slot_mem_lo_.compare_exchange_weak(lo, range.begin.value())) {
  }
  uint64_t hi = slot_mem_hi_.load(std::memory_order_seq_cst);
  while (range.end.value() > hi && !slot_mem_hi_.compare_exchange_weak(hi, range.end.value())) {
  }
}

// The change is registered before the bounds are read (both sequentially
// consistent): a slot noted too late for this change to zap it can only map
// memory through a fault that finds the change in progress, and retries.
std::unique_ptr<HostRangeChange> System::BeginHostRangeChange(base::HvaRange range) {
  if (range.empty() || forked_.load(std::memory_order_relaxed)) return nullptr;
  {
    base::MutexGuard g(host_change_lock_);
    host_change_range_ = host_changes_.fetch_add(1) == 0 ? range : host_change_range_.Span(range);
  }
  auto change = std::unique_ptr<HostRangeChange>(new HostRangeChange(*this));
  if (range.end.value() <= slot_mem_lo_.load() || range.begin.value() >= slot_mem_hi_.load())
    return change;
  for (auto& vm : LiveVms())
    if (!vm->FromOtherProcess()) vm->ZapHostRange(range);
  return change;
}

bool System::HostRangeChanging(base::HvaRange range) const {
  if (host_changes_.load() == 0) return false;
  base::MutexGuard g(host_change_lock_);
  return host_changes_.load() != 0 && host_change_range_.Overlaps(range);
}

void System::EndHostRangeChange() {
  base::MutexGuard g(host_change_lock_);
  host_change_seq_.fetch_add(1);
  if (host_changes_.fetch_sub(1) == 1) host_change_range_ = {};
}

HostRangeChange::~HostRangeChange() { sys_.EndHostRangeChange(); }

// The leak oracle. Counts are snapshots; an empty list after a test closed
// everything means nothing leaked.
Result<long> System::DebugObjects(unsigned long arg) {
  TRY_ASSIGN(kvmlike_debug_objects q, base::ReadUser<kvmlike_debug_objects>(arg));
  std::vector<kvmlike_obj_info> out;
  std::vector<RefPtr<Vm>> vms = LiveVms();
  for (auto& vm : vms) {
    out.push_back({KVMLIKE_OBJ_VM, static_cast<uint32_t>(vm->id()), vm->users(),
                   vm->ref_count() - 1, 0, 0, static_cast<uint64_t>(vm->type())});
    vm->ForEachSlot([&](Memslot& s) {
      uint32_t file = s.has_gmem() ? s.binding()->file().id() : 0;
      out.push_back({KVMLIKE_OBJ_MEMSLOT, static_cast<uint32_t>(s.as_id()) << 16 | s.id(), 0, 0,
                     vm->id(), s.npages(), file});
    });
  }
  vms.clear();
  gmem_.ForEachInode([&](const gmem::Subsystem::InodeInfo& i) {
    out.push_back({KVMLIKE_OBJ_INODE, i.id, i.files, 0, 0, i.pages, 0});
  });
  gmem_.ForEachFile([&](const gmem::Subsystem::FileInfo& f) {
    out.push_back({KVMLIKE_OBJ_FILE, f.id, f.users, f.refs, f.vm_id, f.inode_id,
                   f.released ? 1u : 0u});
  });
  size_t n = std::min<size_t>(q.nr, out.size());
  TRY(base::CopyToUser(q.entries, out.data(), n * sizeof(kvmlike_obj_info)));
  q.nr = static_cast<uint32_t>(out.size());
  TRY(base::WriteUser(arg, q));
  return 0;
}

Result<long> System::PoolInfo(unsigned long arg) {
  kvmlike_pool_info info{};
  if (gmem::FramePool* pool = gmem_.pool_if_created()) {
    gmem::FramePool::Counters c = pool->counters();
    info.frames_total = c.total;
    info.frames_free = c.free;
    info.frames_unscrubbed = c.unscrubbed;
    info.frames_scrubbed = c.scrubbed;
    info.frames_handed_unclear = c.handed_unclear;
  }
  info.frame_size = base::kPageSize;
  TRY(base::WriteUser(arg, info));
  return 0;
}

}  // namespace kvmlike
