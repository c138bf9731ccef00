#include "kvmlike/vm_type.h"

#include "base/config.h"
#include "kvm_uapi.h"

namespace kvmlike {
namespace {

// x86: VMs without private-memory tracking may start their guest_memfd
// shared; VMs with private memory get MMAP only (INIT_SHARED would make
// memory host-faultable that the guest may expect to be private).
constexpr VmTypeInfo kTypes[] = {
    {VmType::kDefault, "default", false, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED, true,
     mmu::Format::kEpt},
    {VmType::kSwProtected, "sw-protected", true, GUEST_MEMFD_FLAG_MMAP, true, mmu::Format::kEpt},
};

bool Offered(VmType t) {
  return t == VmType::kDefault || (t == VmType::kSwProtected && base::config::kVmTypeSwProtected);
}

}  // namespace

uint32_t SupportedVmTypes() {
  uint32_t mask = 0;
  for (const VmTypeInfo& t : kTypes)
    if (Offered(t.type)) mask |= 1u << static_cast<uint32_t>(t.type);
  return mask;
}

const VmTypeInfo* LookupVmType(unsigned long type) {
  for (const VmTypeInfo& t : kTypes)
    if (static_cast<unsigned long>(t.type) == type && Offered(t.type)) return &t;
  return nullptr;
}

mmu::Format TdpFormat(const VmTypeInfo& info) {
  if constexpr (base::config::kTdpFormatOverride == 1) return mmu::Format::kEpt;
  if constexpr (base::config::kTdpFormatOverride == 2) return mmu::Format::kNpt;
  return info.tdp_format;
}

}  // namespace kvmlike
