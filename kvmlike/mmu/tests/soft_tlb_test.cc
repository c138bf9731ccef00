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

// A 2 MiB-aligned stand-in for a block's host memory (never dereferenced).
uint8_t* const kBlock = reinterpret_cast<uint8_t*>(uintptr_t{0x7f0000000000});
uint8_t* const kOtherBlock = reinterpret_cast<uint8_t*>(uintptr_t{0x7f0000200000});

TEST_CASE("SoftTlb: one 2 MiB entry translates all 512 pages of its block, no others") {
  auto tlb = NewTlb();
  const Gfn base(3 * kPagesPer2M);
  tlb->Insert(1, base + 17, kBlock, kRwx, PageSize::k2M);  // any gfn inside the block
  for (uint64_t i = 0; i < kPagesPer2M; i++)
    REQUIRE(tlb->Lookup(1, base + i, true, true) == kBlock + base::PagesToBytes(i));
  CHECK(tlb->Lookup(1, base - 1, false, false) == nullptr);
  CHECK(tlb->Lookup(1, base + kPagesPer2M, false, false) == nullptr);
  CHECK(tlb->Lookup(2, base, false, false) == nullptr);  // another VPID/ASID
  // A block 256 blocks away shares the slot and evicts it.
  const Gfn alias(base.value() + 256 * kPagesPer2M);
  tlb->Insert(1, alias, kOtherBlock, kRo, PageSize::k2M);
  CHECK(tlb->Lookup(1, base, false, false) == nullptr);
  CHECK(tlb->Lookup(1, alias + 5, false, false) == kOtherBlock + base::PagesToBytes(5));
  CHECK(tlb->Lookup(1, alias + 5, true, false) == nullptr);  // read-only leaf
}

TEST_CASE("SoftTlb: a 4 KiB entry wins over the 2 MiB one; flushes clear both") {
  auto tlb = NewTlb();
  const Gfn base(kPagesPer2M);
  tlb->Insert(1, base, kBlock, kRo, PageSize::k2M);
  tlb->Insert(1, base + 3, page_a, kRwx);
  CHECK(tlb->Lookup(1, base + 3, true, false) == page_a);
  CHECK(tlb->Lookup(1, base + 4, false, false) == kBlock + base::PagesToBytes(4));
  tlb->FlushTag(2);
  CHECK(tlb->Lookup(1, base + 4, false, false) != nullptr);
  tlb->FlushTag(1);
  CHECK(tlb->Lookup(1, base + 3, false, false) == nullptr);
  CHECK(tlb->Lookup(1, base + 4, false, false) == nullptr);
  tlb->Insert(1, base, kBlock, kRo, PageSize::k2M);
  tlb->Flush();
  CHECK(tlb->Lookup(1, base + 4, false, false) == nullptr);
}

}  // namespace
}  // namespace kvmlike::mmu
