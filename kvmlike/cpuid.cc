// KVM_GET_SUPPORTED_CPUID: a minimal table — vendor and family from the host,
// physical/virtual address widths, and the KVM paravirt leaves. VMMs and the
// selftest library read the address widths from it.
#include <cpuid.h>

#include <cstring>
#include <vector>

#include "base/user_copy.h"
#include "kvm_uapi.h"
#include "kvmlike/system.h"

namespace kvmlike {
namespace {

constexpr uint32_t kMaxCpuidEntries = 256;  // KVM_MAX_CPUID_ENTRIES

kvm_cpuid_entry2 HostLeaf(uint32_t fn) {
  kvm_cpuid_entry2 e{};
  e.function = fn;
  __cpuid_count(fn, 0, e.eax, e.ebx, e.ecx, e.edx);
  return e;
}

std::vector<kvm_cpuid_entry2> SupportedEntries() {
  std::vector<kvm_cpuid_entry2> v;
  kvm_cpuid_entry2 l0 = HostLeaf(0);
  l0.eax = 1;  // highest basic leaf offered
  v.push_back(l0);
  kvm_cpuid_entry2 l1 = HostLeaf(1);
  l1.ecx &= (1u << 0) | (1u << 9) | (1u << 13) | (1u << 19) | (1u << 20) | (1u << 23);
  l1.ecx |= 1u << 31;  // hypervisor
  l1.edx &= 0x0f8bfbffu;
  l1.ebx &= 0x0000ffffu;
  v.push_back(l1);
  kvm_cpuid_entry2 kvm_sig{};
  kvm_sig.function = 0x40000000;
  kvm_sig.eax = 0x40000001;
  std::memcpy(&kvm_sig.ebx, "KVMK", 4);
  std::memcpy(&kvm_sig.ecx, "VMKV", 4);
  std::memcpy(&kvm_sig.edx, "M\0\0\0", 4);
  v.push_back(kvm_sig);
  kvm_cpuid_entry2 kvm_feat{};
  kvm_feat.function = 0x40000001;
  v.push_back(kvm_feat);
  kvm_cpuid_entry2 e0 = HostLeaf(0x80000000);
  e0.eax = 0x80000008;
  v.push_back(e0);
  kvm_cpuid_entry2 e1 = HostLeaf(0x80000001);
  e1.ecx &= 1u << 0;                            // LAHF in long mode
  e1.edx &= (1u << 11) | (1u << 20) | (1u << 29);  // SYSCALL, NX, LM
  v.push_back(e1);
  kvm_cpuid_entry2 e8 = HostLeaf(0x80000008);
  e8.ebx = e8.ecx = e8.edx = 0;
  e8.eax &= 0xffff;  // physical and linear address widths
  v.push_back(e8);
  return v;
}

}  // namespace

// As KVM: nent below the table size fails with E2BIG and the caller's struct
// untouched; otherwise nent becomes the table size and the entries follow.
base::Result<long> GetSupportedCpuid(unsigned long arg) {
  // kvm_cpuid2's fixed part; sizeof(kvm_cpuid2) is wrong in C++ with the 6.1
  // header (see uapi/kvm_uapi.h).
  struct CpuidHeader {
    uint32_t nent;
    uint32_t padding;
  };
  TRY_ASSIGN(CpuidHeader hdr, base::ReadUser<CpuidHeader>(arg));
  static const std::vector<kvm_cpuid_entry2> entries = SupportedEntries();
  uint32_t n = static_cast<uint32_t>(entries.size());
  if (hdr.nent < 1) return base::Error::kTooBig;
  if (hdr.nent > kMaxCpuidEntries) hdr.nent = kMaxCpuidEntries;
  if (hdr.nent < n) return base::Error::kTooBig;
  TRY(base::CopyToUser(arg + sizeof(CpuidHeader), entries.data(), n * sizeof(kvm_cpuid_entry2)));
  hdr.nent = n;
  TRY(base::CopyToUser(arg, &hdr, sizeof(uint32_t)));
  return 0;
}

}  // namespace kvmlike
