// KVM_CHECK_EXTENSION: capabilities are advertised exactly as features land.
// A capability this file does not list answers 0, like any unknown one.
#include <unistd.h>

#include <algorithm>

#include "base/config.h"
#include "kvm_uapi.h"
#include "kvmlike/system.h"
#include "kvmlike/vm.h"

namespace kvmlike {
namespace {

// The PRIVATE attribute exists at system scope when any offered VM type has
// private memory; on a VM, when its type does.
long MemoryAttributes(const Vm* vm) {
  if (vm) return vm->type_info().has_private_mem ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0;
  return base::config::kVmTypeSwProtected ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0;
}

long GuestMemfdFlags(const Vm* vm) {
  if (vm) return static_cast<long>(vm->type_info().gmem_flags);
  return GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED;
}

}  // namespace

long CheckExtension(long cap, const Vm* vm) {
  switch (cap) {
    case KVM_CAP_USER_MEMORY:
    case KVM_CAP_USER_MEMORY2:
    case KVM_CAP_MEMORY_FAULT_INFO:
    case KVM_CAP_PRE_FAULT_MEMORY:
    case KVM_CAP_ENABLE_CAP_VM:
    case KVM_CAP_BINARY_STATS_FD:
    case KVM_CAP_CHECK_EXTENSION_VM:
    case KVM_CAP_IMMEDIATE_EXIT:
    case KVM_CAP_GUEST_MEMFD:
    case KVM_CAP_READONLY_MEM:
      return 1;
    case KVM_CAP_NR_MEMSLOTS:
      return base::config::kMaxMemslots;
    case KVM_CAP_MAX_VCPUS:
      return kMaxVcpus;
    case KVM_CAP_MAX_VCPU_ID:
      return kMaxVcpuId;
    case KVM_CAP_NR_VCPUS:
      return std::max(1L, sysconf(_SC_NPROCESSORS_ONLN));
    case KVM_CAP_EXIT_HYPERCALL:
      return kHypercallExitMask;
    case KVM_CAP_VM_TYPES:
      return SupportedVmTypes();
    case KVM_CAP_MEMORY_ATTRIBUTES:
      return MemoryAttributes(vm);
    case KVM_CAP_GUEST_MEMFD_FLAGS:
      return GuestMemfdFlags(vm);
    default:
      return 0;
  }
}

}  // namespace kvmlike
