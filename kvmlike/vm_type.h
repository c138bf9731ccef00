// VM types (KVM_CREATE_VM's argument on x86) and what each one offers.
#pragma once

#include <cstdint>

#include "kvmlike/mmu/tdp.h"

namespace kvmlike {

enum class VmType : uint32_t {
  kDefault = 0,      // KVM_X86_DEFAULT_VM
  kSwProtected = 1,  // KVM_X86_SW_PROTECTED_VM
};

struct VmTypeInfo {
  VmType type;
  const char* name;
  bool has_private_mem;     // PRIVATE attribute, private faults through gmem
  uint64_t gmem_flags;      // KVM_CAP_GUEST_MEMFD_FLAGS on a VM of this type
  bool has_readonly_mem;    // KVM_MEM_READONLY accepted
  mmu::Format tdp_format;   // second-level table format (Intel-like EPT, AMD-like NPT)
};

// The types this build offers (Kconfig), as a KVM_CAP_VM_TYPES bitmap.
uint32_t SupportedVmTypes();
// Info for a supported type, or null.
const VmTypeInfo* LookupVmType(unsigned long type);
// The second-level table format a VM of this type uses (Kconfig may force one).
mmu::Format TdpFormat(const VmTypeInfo& info);

}  // namespace kvmlike
