#include "kvmlike/mmu/soft_tlb.h"

#include <cassert>

namespace kvmlike::mmu {

void SoftTlb::Insert(uint16_t tag, Gfn gfn, uint8_t* host, Perm perm, PageSize size) {
  // Key() has 48 bits for the GFN; Tdp never translates one past kGfnLimit.
  assert(gfn.value() < kGfnLimit);
  assert(perm.read);
  Entry e{.tag_key = 0, .host = host, .writable = perm.write, .executable = perm.exec};
  if (size == PageSize::k2M) {
    uint64_t block = gfn.value() / kPagesPer2M;
    assert(reinterpret_cast<uintptr_t>(host) % (kPagesPer2M << base::kPageShift) == 0);
    e.tag_key = Key(tag, block);
    large_[block & (kLarge - 1)] = e;
    return;
  }
  e.tag_key = Key(tag, gfn.value());
  small_[gfn.value() & (kSmall - 1)] = e;
}

void SoftTlb::Flush() {
  small_.fill(Entry{});
  large_.fill(Entry{});
  ++flushes_;
}

void SoftTlb::FlushTag(uint16_t tag) {
  for (Entry& e : small_)
    if (e.tag_key >> kTagShift == tag) e = Entry{};
  for (Entry& e : large_)
    if (e.tag_key >> kTagShift == tag) e = Entry{};
  ++flushes_;
}

}  // namespace kvmlike::mmu
