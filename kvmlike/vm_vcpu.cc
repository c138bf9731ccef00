// The VM ioctls that concern vCPUs and guest execution: KVM_CREATE_VCPU,
// KVM_ENABLE_CAP, and kvmlike's own (second-level table walk and leaf size,
// guest_memfd page poisoning).
#include "base/user_copy.h"
#include "gmem/inode.h"
#include "kvm_uapi.h"
#include "kvmlike/gmem_fd.h"
#include "kvmlike/system.h"
#include "kvmlike/vcpu.h"
#include "kvmlike/vm.h"
#include "kvmlike_ext.h"

namespace kvmlike {

using base::Error;
using base::Result;

// The table is checked and filled under one lock hold (lock_), so two racing
// creations of one id cannot both succeed. An id stays taken until the VM
// dies, as in Linux, where a vCPU lives as long as its VM: closing its fd
// frees kvmlike's object but not the id.
Result<long> Vm::CreateVcpu(unsigned long id) {
  if (id >= kMaxVcpuId) return Error::kInvalid;
  base::MutexGuard g(lock_);
  if (vcpu_ids_.count(static_cast<uint32_t>(id))) return Error::kExists;
  if (vcpu_ids_.size() >= kMaxVcpus) return Error::kInvalid;
  TRY_ASSIGN(Vcpu::Created created, Vcpu::Create(*this, static_cast<uint32_t>(id)));
  vcpu_ids_.insert(static_cast<uint32_t>(id));
  {
    base::MutexGuard t(vcpus_lock_);
    vcpus_[static_cast<uint32_t>(id)] = created.vcpu.get();  // cleared by its release
  }
  return sys_.fds().Install(std::move(created.fd), std::move(created.vcpu));
}

void Vm::UnregisterVcpu(Vcpu& vcpu) {
  base::MutexGuard t(vcpus_lock_);
  auto it = vcpus_.find(vcpu.id());
  if (it != vcpus_.end() && it->second == &vcpu) vcpus_.erase(it);
}

// KVM_ENABLE_CAP on the VM: only KVM_CAP_EXIT_HYPERCALL, with a subset of the
// forwardable hypercalls (KVM_HC_MAP_GPA_RANGE).
Result<long> Vm::EnableCap(unsigned long arg) {
  TRY_ASSIGN(kvm_enable_cap cap, base::ReadUser<kvm_enable_cap>(arg));
  if (cap.flags) return Error::kInvalid;
  switch (cap.cap) {
    case KVM_CAP_EXIT_HYPERCALL:
      if (cap.args[0] & ~kHypercallExitMask) return Error::kInvalid;
      hypercall_exits_.store(cap.args[0], std::memory_order_relaxed);
      return 0;
    default:
      return Error::kInvalid;
  }
}

// KVMLIKE_HUGE_LEAVES: whether faults may map 2 MiB leaves (off by default,
// as Linux's guest_memfd maps order-0 folios).
Result<long> Vm::SetHugeLeaves(unsigned long arg) {
  if (arg > 1) return Error::kInvalid;
  huge_leaves_.store(arg != 0, std::memory_order_relaxed);
  return 0;
}

Result<long> Vm::DebugWalk(unsigned long arg) {
  TRY_ASSIGN(kvmlike_walk_gpa q, base::ReadUser<kvmlike_walk_gpa>(arg));
  std::optional<mmu::Leaf> leaf = WalkTdp(base::GpaToGfn(base::Gpa(q.gpa)));
  if (!leaf) return Error::kNotFound;
  q.level = static_cast<uint32_t>(leaf->level);
  q.perm = (leaf->perm.read ? KVMLIKE_PERM_READ : 0) | (leaf->perm.write ? KVMLIKE_PERM_WRITE : 0) |
           (leaf->perm.exec ? KVMLIKE_PERM_EXEC : 0);
  q.host = leaf->host.value();
  q.raw = leaf->raw;
  q.format = TdpFormat(type_info()) == mmu::Format::kEpt ? KVMLIKE_TDP_EPT : KVMLIKE_TDP_NPT;
  q.flags = (leaf->accessed ? KVMLIKE_LEAF_ACCESSED : 0) | (leaf->dirty ? KVMLIKE_LEAF_DIRTY : 0);
  TRY(base::WriteUser(arg, q));
  return 0;
}

// Memory failure on a guest_memfd page, as the kernel's error_remove_folio
// handles it: zap the guest mappings, keep the page, fail later lookups.
Result<long> Vm::DebugPoison(unsigned long arg) {
  TRY_ASSIGN(kvmlike_gmem_poison p, base::ReadUser<kvmlike_gmem_poison>(arg));
  base::RefPtr<FdObject> obj = sys_.fds().Lookup(static_cast<int>(p.fd));
  if (!obj || obj->kind() != FdObject::Kind::kGmem) return Error::kBadFd;
  gmem::File& file = static_cast<GmemFd&>(*obj).file();
  if (!base::IsPageAligned(p.offset) || p.offset >= file.size()) return Error::kInvalid;
  base::RefPtr<gmem::Inode> inode = file.inode();
  if (!inode) return Error::kBadFd;
  TRY(inode->PoisonAndInvalidate(base::ByteOffToPgOff(p.offset)));
  return 0;
}

}  // namespace kvmlike
