// SoftTlb: a vCPU's translation cache in front of the Tdp — GFN → host page
// and permissions, tagged with the VPID (EPT VMs) or ASID (NPT VMs) it was
// filled under, as hardware TLBs are. Direct-mapped, fixed size; lookups are
// a few loads and no locks, because only the owning vCPU thread touches it.
//
// Invalidation: the VM zaps the Tdp under its mmu_lock, then asks every vCPU
// to flush (a request checked at each instruction boundary) and waits for the
// acknowledgement before freeing pages, so no vCPU uses an entry of a page
// that is gone (see Vcpu).
#pragma once

#include <array>
#include <cstdint>

#include "base/types.h"
#include "kvmlike/mmu/tdp.h"

namespace kvmlike::mmu {

class SoftTlb {
 public:
  struct Entry {
    uint64_t tag_gfn = ~uint64_t{0};  // (tag << 48) | gfn; all-ones = empty
    uint8_t* host = nullptr;          // host address of the 4 KiB page
    bool writable = false;
    bool executable = false;
  };

  // The host address of gfn's page when cached for tag with the access allowed.
  uint8_t* Lookup(uint16_t tag, Gfn gfn, bool write, bool exec) const {
    const Entry& e = entries_[gfn.value() & (kEntries - 1)];
    if (e.tag_gfn != Key(tag, gfn)) return nullptr;
    if ((write && !e.writable) || (exec && !e.executable)) return nullptr;
    return e.host;
  }
  // Caches gfn → host (its 4 KiB page) for tag, evicting whatever held gfn's
  // slot. perm.read is required (every Tdp leaf is readable).
  void Insert(uint16_t tag, Gfn gfn, uint8_t* host, Perm perm);
  void Flush();                 // every entry, whatever its tag
  void FlushTag(uint16_t tag);  // only the entries filled under tag
  uint64_t flushes() const { return flushes_; }  // Flush and FlushTag calls

 private:
  static constexpr uint64_t kEntries = 4096;
  static uint64_t Key(uint16_t tag, Gfn gfn) { return (uint64_t{tag} << 48) | gfn.value(); }
  std::array<Entry, kEntries> entries_{};
  uint64_t flushes_ = 0;
};

}  // namespace kvmlike::mmu
