// SoftTlb: a vCPU's translation cache in front of the Tdp — GFN → host page
// and permissions, tagged with the VPID (EPT VMs) or ASID (NPT VMs) it was
// filled under, as hardware TLBs are. Two direct-mapped arrays of fixed size,
// one of 4 KiB entries and one of 2 MiB entries (filled from 2 MiB leaves: one
// entry translates the whole block, as a hardware TLB caches a large page);
// lookups are a few loads and no locks, because only the owning vCPU thread
// touches it.
//
// Invalidation: the VM zaps the Tdp under its mmu_lock and bumps its TLB
// generation, which each vCPU compares at every memory access (flushing when
// it moved), and waits for every vCPU in guest mode to acknowledge it before
// freeing pages, so no vCPU uses an entry of a page that is gone (Vm::SyncTlbs).
#pragma once

#include <array>
#include <cstdint>

#include "base/types.h"
#include "kvmlike/mmu/tdp.h"

namespace kvmlike::mmu {

class SoftTlb {
 public:
  struct Entry {
    uint64_t tag_key = ~uint64_t{0};  // (tag << 48) | gfn (4 KiB) or gfn / 512 (2 MiB); all-ones = empty
    uint8_t* host = nullptr;          // host address of the 4 KiB page, or of the 2 MiB block
    bool writable = false;
    bool executable = false;
  };

  // The host address of gfn's 4 KiB page when cached for tag with the access
  // allowed, from a 4 KiB entry or a 2 MiB one.
  uint8_t* Lookup(uint16_t tag, Gfn gfn, bool write, bool exec) const {
    const Entry& e = small_[gfn.value() & (kSmall - 1)];
    if (e.tag_key == Key(tag, gfn.value()) && Allows(e, write, exec)) [[likely]]
      return e.host;
    return LookupLarge(tag, gfn, write, exec);
  }
  // Caches the translation of gfn for tag, evicting whatever held its slot:
  // size k4K maps gfn → host (its 4 KiB page); size k2M maps gfn's aligned
  // 2 MiB block → host, the block's first byte (2 MiB aligned). perm.read is
  // required (every Tdp leaf is readable).
  void Insert(uint16_t tag, Gfn gfn, uint8_t* host, Perm perm, PageSize size = PageSize::k4K);
  void Flush();                 // every entry, whatever its tag
  void FlushTag(uint16_t tag);  // only the entries filled under tag
  uint64_t flushes() const { return flushes_; }  // Flush and FlushTag calls

  // The arrays as translated guest code reads them inline (x86::InlineTlb):
  // entry i of small_entries() caches GFN g with g % kSmall == i, entry i of
  // large_entries() the 2 MiB block b with b % kLarge == i, each keyed by
  // (tag << kTagShift) | g or b.
  static constexpr uint64_t kSmall = 4096;  // 16 MiB of 4 KiB pages
  static constexpr uint64_t kLarge = 256;   // 512 MiB of 2 MiB blocks
  static constexpr uint32_t kTagShift = 48;
  const Entry* small_entries() const { return small_.data(); }
  const Entry* large_entries() const { return large_.data(); }

 private:
  static uint64_t Key(uint16_t tag, uint64_t index) { return (uint64_t{tag} << kTagShift) | index; }
  static bool Allows(const Entry& e, bool write, bool exec) {
    return (!write || e.writable) && (!exec || e.executable);
  }
  uint8_t* LookupLarge(uint16_t tag, Gfn gfn, bool write, bool exec) const {
    uint64_t block = gfn.value() / kPagesPer2M;
    const Entry& e = large_[block & (kLarge - 1)];
    if (e.tag_key != Key(tag, block) || !Allows(e, write, exec)) return nullptr;
    return e.host + base::PagesToBytes(gfn.value() & (kPagesPer2M - 1));
  }

  std::array<Entry, kSmall> small_{};
  std::array<Entry, kLarge> large_{};
  uint64_t flushes_ = 0;
};

}  // namespace kvmlike::mmu
