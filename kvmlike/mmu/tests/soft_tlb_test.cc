#include <doctest/doctest.h>

#include <cstdint>
#include <memory>

#include "kvmlike/mmu/soft_tlb.h"

namespace kvmlike::mmu {
namespace {

constexpr Perm kRwx{};
constexpr Perm kRo{.read = true, .write = false, .exec = false};

// A SoftTlb is ~100 KiB; keep it off the test's stack.
std::unique_ptr<SoftTlb> NewTlb() { return std::make_unique<SoftTlb>(); }

uint8_t page_a[16], page_b[16];

TEST_CASE("SoftTlb hits only for the tag and access it was filled for") {
  auto tlb = NewTlb();
  CHECK(tlb->Lookup(1, Gfn(5), false, false) == nullptr);

  tlb->Insert(1, Gfn(5), page_a, kRo);
  CHECK(tlb->Lookup(1, Gfn(5), false, false) == page_a);
  CHECK(tlb->Lookup(2, Gfn(5), false, false) == nullptr);  // another VPID/ASID
  CHECK(tlb->Lookup(1, Gfn(6), false, false) == nullptr);
  CHECK(tlb->Lookup(1, Gfn(5), /*write=*/true, false) == nullptr);
  CHECK(tlb->Lookup(1, Gfn(5), false, /*exec=*/true) == nullptr);

  tlb->Insert(1, Gfn(5), page_b, kRwx);
  CHECK(tlb->Lookup(1, Gfn(5), true, true) == page_b);
}

TEST_CASE("SoftTlb is direct-mapped: a colliding GFN or tag evicts") {
  auto tlb = NewTlb();
  tlb->Insert(1, Gfn(7), page_a, kRwx);
  tlb->Insert(1, Gfn(7 + 4096), page_b, kRwx);
  CHECK(tlb->Lookup(1, Gfn(7), false, false) == nullptr);
  CHECK(tlb->Lookup(1, Gfn(7 + 4096), false, false) == page_b);
  tlb->Insert(2, Gfn(7), page_a, kRwx);
  CHECK(tlb->Lookup(1, Gfn(7 + 4096), false, false) == nullptr);
  CHECK(tlb->Lookup(2, Gfn(7), false, false) == page_a);
}

TEST_CASE("SoftTlb flushes one tag or everything") {
  auto tlb = NewTlb();
  // Large GFNs too: the key keeps the tag clear of GFN bits.
  const Gfn high(kGfnLimit - 1);
  tlb->Insert(1, Gfn(1), page_a, kRwx);
  tlb->Insert(2, Gfn(2), page_b, kRwx);
  tlb->Insert(1, high, page_a, kRwx);
  tlb->Insert(0, Gfn(3), page_b, kRwx);
  CHECK(tlb->flushes() == 0);

  tlb->FlushTag(1);
  CHECK(tlb->flushes() == 1);
  CHECK(tlb->Lookup(1, Gfn(1), false, false) == nullptr);
  CHECK(tlb->Lookup(1, high, false, false) == nullptr);
  CHECK(tlb->Lookup(2, Gfn(2), false, false) == page_b);
  CHECK(tlb->Lookup(0, Gfn(3), false, false) == page_b);

  tlb->FlushTag(0xffff);  // a tag nobody used: nothing else goes
  CHECK(tlb->Lookup(2, Gfn(2), false, false) == page_b);

  tlb->Flush();
  CHECK(tlb->flushes() == 3);
  CHECK(tlb->Lookup(2, Gfn(2), false, false) == nullptr);
  CHECK(tlb->Lookup(0, Gfn(3), false, false) == nullptr);
}

}  // namespace
}  // namespace kvmlike::mmu
