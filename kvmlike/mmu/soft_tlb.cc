#include "kvmlike/mmu/soft_tlb.h"

#include <cassert>

namespace kvmlike::mmu {

void SoftTlb::Insert(uint16_t tag, Gfn gfn, uint8_t* host, Perm perm) {
  // Key() has 48 bits for the GFN; Tdp never translates one past kGfnLimit.
  assert(gfn.value() < kGfnLimit);
  assert(perm.read);
  entries_[gfn.value() & (kEntries - 1)] = Entry{
      .tag_gfn = Key(tag, gfn),
      .host = host,
      .writable = perm.write,
      .executable = perm.exec,
  };
}

void SoftTlb::Flush() {
  entries_.fill(Entry{});
  ++flushes_;
}

void SoftTlb::FlushTag(uint16_t tag) {
  for (Entry& e : entries_)
    if (e.tag_gfn >> 48 == tag) e = Entry{};
  ++flushes_;
}

}  // namespace kvmlike::mmu
