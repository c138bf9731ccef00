// Tdp as a specification: every case runs for both entry formats and checks
// the raw entries against the manuals' bit positions (formats.h).
#include <doctest/doctest.h>

#include <cstdint>
#include <iterator>

#include "kvmlike/mmu/tdp.h"
#include "kvmlike/mmu/tests/formats.h"

namespace kvmlike::mmu {
namespace {

using base::Error;
using base::PagesToBytes;
using testing::Ept;
using testing::Npt;

// Host addresses are only numbers to the Tdp; these never get dereferenced.
constexpr uint64_t kHostBase = 0x7f12'3400'0000;  // 2 MiB aligned
constexpr uint64_t k1G = uint64_t{1} << 18;       // GFNs per 1 GiB (one PDPT entry)
constexpr uint64_t k512G = uint64_t{1} << 27;     // GFNs per PML4 entry

constexpr Perm kRwx{};
constexpr Perm kRo{.read = true, .write = false, .exec = false};
constexpr Perm kRwNx{.read = true, .write = true, .exec = false};
constexpr Perm kRx{.read = true, .write = false, .exec = true};

Hva HostPage(uint64_t n) { return Hva(kHostBase + PagesToBytes(n)); }
Hva Host2M(uint64_t n) { return HostPage(n * kPagesPer2M); }

// Maps [begin, end) with 4 KiB leaves, gfn g to HostPage(g).
void Map4KRange(Tdp& tdp, uint64_t begin, uint64_t end) {
  for (uint64_t g = begin; g < end; ++g)
    REQUIRE(tdp.Map(Gfn(g), HostPage(g), PageSize::k4K, kRwx).ok());
}

// gfn is translated by a 4 KiB or 2 MiB leaf to host page `page`.
void CheckMapped(const Tdp& tdp, uint64_t gfn, Hva page, int level) {
  CAPTURE(gfn);
  auto leaf = tdp.Walk(Gfn(gfn));
  REQUIRE(leaf.has_value());
  CHECK(leaf->level == level);
  CHECK(leaf->PageOf(Gfn(gfn)) == page);
}

void CheckUnmapped(const Tdp& tdp, uint64_t gfn) {
  CAPTURE(gfn);
  CHECK_FALSE(tdp.Walk(Gfn(gfn)).has_value());
}

TEST_CASE_TEMPLATE("Tdp maps and walks 4 KiB leaves with exact entry bits", F, Ept, Npt) {
  Tdp tdp(F::kFormat);
  CHECK(tdp.format() == F::kFormat);
  CHECK(tdp.table_pages() == 1);
  CHECK_FALSE(tdp.Walk(Gfn(0x1234)).has_value());

  for (Perm perm : {kRwx, kRo, kRwNx, kRx}) {
    CAPTURE(perm.write);
    CAPTURE(perm.exec);
    REQUIRE(tdp.Map(Gfn(0x1234), HostPage(7), PageSize::k4K, perm).ok());
    auto leaf = tdp.Walk(Gfn(0x1234));
    REQUIRE(leaf.has_value());
    CHECK(leaf->level == 1);
    CHECK(leaf->host == HostPage(7));
    CHECK(leaf->perm == perm);
    CHECK_FALSE(leaf->accessed);
    CHECK_FALSE(leaf->dirty);
    CHECK(leaf->raw == F::Leaf(HostPage(7).value(), perm));
    CHECK((leaf->raw & F::kLarge) == 0);
  }
  // Replacing a leaf changes no count: PML4 → PDPT → PD → PT stays 4 pages.
  CHECK(tdp.mapped_4k() == 1);
  CHECK(tdp.mapped_2m() == 0);
  CHECK(tdp.table_pages() == 4);
  CheckUnmapped(tdp, 0x1233);
  CheckUnmapped(tdp, 0x1235);

  // A neighbour in the same PT needs no table page.
  REQUIRE(tdp.Map(Gfn(0x1235), HostPage(3), PageSize::k4K, kRwx).ok());
  CHECK(tdp.mapped_4k() == 2);
  CHECK(tdp.table_pages() == 4);
  CheckMapped(tdp, 0x1235, HostPage(3), 1);
}

TEST_CASE_TEMPLATE("Tdp maps and walks 2 MiB leaves with the large-page bit", F, Ept, Npt) {
  Tdp tdp(F::kFormat);
  const uint64_t base = 3 * kPagesPer2M;
  REQUIRE(tdp.Map(Gfn(base), Host2M(5), PageSize::k2M, kRwNx).ok());
  CHECK(tdp.mapped_2m() == 1);
  CHECK(tdp.mapped_4k() == 0);
  CHECK(tdp.table_pages() == 3);  // PML4, PDPT, PD: no PT under a 2 MiB leaf

  for (uint64_t off : {uint64_t{0}, uint64_t{1}, uint64_t{255}, uint64_t{511}}) {
    auto leaf = tdp.Walk(Gfn(base + off));
    REQUIRE(leaf.has_value());
    CHECK(leaf->level == 2);
    CHECK(leaf->host == Host2M(5));
    CHECK(leaf->PageOf(Gfn(base + off)) == HostPage(5 * kPagesPer2M + off));
    CHECK(leaf->perm == kRwNx);
    CHECK(leaf->raw == (F::Leaf(Host2M(5).value(), kRwNx) | F::kLarge));
  }
  CheckUnmapped(tdp, base - 1);
  CheckUnmapped(tdp, base + kPagesPer2M);
}

TEST_CASE_TEMPLATE("Tdp replaces leaves of either size", F, Ept, Npt) {
  Tdp tdp(F::kFormat);
  const uint64_t base = 8 * kPagesPer2M;

  SUBCASE("a 2 MiB leaf over a PT frees the PT and its 4 KiB leaves") {
    Map4KRange(tdp, base + 10, base + 20);
    CHECK(tdp.mapped_4k() == 10);
    CHECK(tdp.table_pages() == 4);
    REQUIRE(tdp.Map(Gfn(base), Host2M(1), PageSize::k2M, kRwx).ok());
    CHECK(tdp.mapped_4k() == 0);
    CHECK(tdp.mapped_2m() == 1);
    CHECK(tdp.table_pages() == 3);
    for (uint64_t off = 0; off < kPagesPer2M; ++off)
      CheckMapped(tdp, base + off, HostPage(kPagesPer2M + off), 2);
  }
  SUBCASE("a 2 MiB leaf over a 2 MiB leaf") {
    REQUIRE(tdp.Map(Gfn(base), Host2M(1), PageSize::k2M, kRwx).ok());
    REQUIRE(tdp.Map(Gfn(base), Host2M(2), PageSize::k2M, kRo).ok());
    CHECK(tdp.mapped_2m() == 1);
    CHECK(tdp.table_pages() == 3);
    auto leaf = tdp.Walk(Gfn(base + 9));
    REQUIRE(leaf.has_value());
    CHECK(leaf->host == Host2M(2));
    CHECK(leaf->perm == kRo);
  }
  SUBCASE("a 4 KiB leaf over a 4 KiB leaf drops its A/D bits") {
    REQUIRE(tdp.Map(Gfn(base), HostPage(1), PageSize::k4K, kRwx).ok());
    REQUIRE(tdp.MarkAccessed(Gfn(base), /*write=*/true));
    REQUIRE(tdp.Map(Gfn(base), HostPage(2), PageSize::k4K, kRwx).ok());
    auto leaf = tdp.Walk(Gfn(base));
    REQUIRE(leaf.has_value());
    CHECK(leaf->host == HostPage(2));
    CHECK_FALSE(leaf->accessed);
    CHECK_FALSE(leaf->dirty);
    CHECK(tdp.mapped_4k() == 1);
  }
}

TEST_CASE_TEMPLATE("A 4 KiB map inside a 2 MiB leaf splits it, keeping the other 511", F, Ept,
                   Npt) {
  Tdp tdp(F::kFormat);
  const uint64_t base = 5 * kPagesPer2M;
  REQUIRE(tdp.Map(Gfn(base), Host2M(9), PageSize::k2M, kRwNx).ok());
  REQUIRE(tdp.MarkAccessed(Gfn(base + 3), /*write=*/true));  // A and D on the 2 MiB leaf

  REQUIRE(tdp.Map(Gfn(base + 100), HostPage(1), PageSize::k4K, kRo).ok());
  CHECK(tdp.mapped_2m() == 0);
  CHECK(tdp.mapped_4k() == kPagesPer2M);
  CHECK(tdp.table_pages() == 4);

  auto changed = tdp.Walk(Gfn(base + 100));
  REQUIRE(changed.has_value());
  CHECK(changed->level == 1);
  CHECK(changed->raw == F::Leaf(HostPage(1).value(), kRo));

  for (uint64_t off = 0; off < kPagesPer2M; ++off) {
    if (off == 100) continue;
    CAPTURE(off);
    auto leaf = tdp.Walk(Gfn(base + off));
    REQUIRE(leaf.has_value());
    CHECK(leaf->level == 1);
    const Hva page = HostPage(9 * kPagesPer2M + off);
    CHECK(leaf->host == page);
    CHECK(leaf->raw == (F::Leaf(page.value(), kRwNx) | F::kAccessed | F::kDirty));
  }
}

TEST_CASE_TEMPLATE("A partial zap of a 2 MiB leaf splits it", F, Ept, Npt) {
  Tdp tdp(F::kFormat);
  const uint64_t base = 7 * kPagesPer2M;
  REQUIRE(tdp.Map(Gfn(base), Host2M(4), PageSize::k2M, kRx).ok());

  CHECK(tdp.Zap({Gfn(base + 10), Gfn(base + 20)}) == 10);
  CHECK(tdp.mapped_2m() == 0);
  CHECK(tdp.mapped_4k() == kPagesPer2M - 10);
  CHECK(tdp.table_pages() == 4);
  for (uint64_t off = 0; off < kPagesPer2M; ++off) {
    if (off >= 10 && off < 20) {
      CheckUnmapped(tdp, base + off);
      continue;
    }
    CheckMapped(tdp, base + off, HostPage(4 * kPagesPer2M + off), 1);
    auto leaf = tdp.Walk(Gfn(base + off));
    REQUIRE(leaf.has_value());
    CHECK(leaf->perm == kRx);
  }

  SUBCASE("zapping the rest frees the PT and leaves only the root") {
    CHECK(tdp.Zap({Gfn(base), Gfn(base + kPagesPer2M)}) == kPagesPer2M - 10);
    CHECK(tdp.mapped_4k() == 0);
    CHECK(tdp.table_pages() == 1);
  }
  SUBCASE("a zap covering the whole 2 MiB leaf does not split") {
    REQUIRE(tdp.Map(Gfn(base), Host2M(4), PageSize::k2M, kRx).ok());
    CHECK(tdp.table_pages() == 3);
    CHECK(tdp.Zap({Gfn(base - 1), Gfn(base + kPagesPer2M + 1)}) == kPagesPer2M);
    CHECK(tdp.table_pages() == 1);
  }
}

TEST_CASE_TEMPLATE("Zap ranges that cross PT, PD and PDPT boundaries", F, Ept, Npt) {
  Tdp tdp(F::kFormat);

  SUBCASE("[511, 1537) over four PTs") {
    Map4KRange(tdp, 0, 2048);
    CHECK(tdp.table_pages() == 3 + 4);
    CHECK(tdp.Zap({Gfn(511), Gfn(1537)}) == 1537 - 511);
    CheckMapped(tdp, 510, HostPage(510), 1);
    for (uint64_t g = 511; g < 1537; ++g) CheckUnmapped(tdp, g);
    CheckMapped(tdp, 1537, HostPage(1537), 1);
    CHECK(tdp.mapped_4k() == 2048 - (1537 - 511));
    // The PTs for [512, 1024) and [1024, 1536) emptied and went.
    CHECK(tdp.table_pages() == 3 + 2);
  }
  SUBCASE("across 1 GiB, with 2 MiB leaves split at both ends") {
    const uint64_t lo = k1G - 4 * kPagesPer2M;
    for (uint64_t b = 0; b < 8; ++b)
      REQUIRE(tdp.Map(Gfn(lo + b * kPagesPer2M), Host2M(b), PageSize::k2M, kRwx).ok());
    CHECK(tdp.table_pages() == 1 + 1 + 2);  // one PDPT, two PDs
    const GfnRange zap{Gfn(k1G - 700), Gfn(k1G + 700)};
    CHECK(tdp.Zap(zap) == 1400);
    // The two 2 MiB leaves touching 1 GiB went whole; the two at the edges
    // of the range were split and kept 324 pages each.
    CHECK(tdp.mapped_2m() == 8 - 4);
    CHECK(tdp.mapped_4k() == 2 * (kPagesPer2M - 188));
    for (uint64_t g = lo; g < lo + 8 * kPagesPer2M; ++g) {
      if (zap.Contains(Gfn(g))) {
        CheckUnmapped(tdp, g);
      } else {
        const uint64_t b = (g - lo) / kPagesPer2M;
        const bool split = b == 2 || b == 5;
        CheckMapped(tdp, g, HostPage(g - lo), split ? 1 : 2);
      }
    }
    CHECK(tdp.table_pages() == 1 + 1 + 2 + 2);
    CHECK(tdp.Zap({Gfn(0), Gfn(2 * k1G)}) == 8 * kPagesPer2M - 1400);
    CHECK(tdp.table_pages() == 1);
  }
  SUBCASE("across 512 GiB (two PML4 entries)") {
    Map4KRange(tdp, k512G - 600, k512G + 600);
    CHECK(tdp.table_pages() == 1 + 2 + 2 + 4);  // root, PDPT and PD per side, two PTs per side
    CHECK(tdp.Zap({Gfn(k512G - 1), Gfn(k512G + 1)}) == 2);
    CheckMapped(tdp, k512G - 2, HostPage(k512G - 2), 1);
    CheckMapped(tdp, k512G + 1, HostPage(k512G + 1), 1);
    CHECK(tdp.Zap({Gfn(k512G - 600), Gfn(k512G + 600)}) == 1198);
    CHECK(tdp.table_pages() == 1);
  }
}

TEST_CASE_TEMPLATE("Zapping everything piece by piece frees every table but the root", F, Ept,
                   Npt) {
  Tdp tdp(F::kFormat);
  const uint64_t gfns[] = {0, 1, 511, 512, 4095, k1G - 1, k1G, 3 * k1G + 77, k512G + 5,
                           kGfnLimit - 1};
  for (uint64_t g : gfns) REQUIRE(tdp.Map(Gfn(g), HostPage(g % 1000), PageSize::k4K, kRwx).ok());
  REQUIRE(tdp.Map(Gfn(2 * k1G), Host2M(1), PageSize::k2M, kRwx).ok());
  CHECK(tdp.table_pages() > 10);
  uint64_t unmapped = 0;
  for (uint64_t g : gfns) unmapped += tdp.Zap({Gfn(g), Gfn(g + 1)});
  unmapped += tdp.Zap({Gfn(2 * k1G), Gfn(2 * k1G + kPagesPer2M)});
  CHECK(unmapped == std::size(gfns) + kPagesPer2M);
  CHECK(tdp.mapped_4k() == 0);
  CHECK(tdp.mapped_2m() == 0);
  CHECK(tdp.table_pages() == 1);
  CHECK(tdp.Zap({Gfn(0), Gfn(kGfnLimit)}) == 0);
}

TEST_CASE_TEMPLATE("ZapAll tears down to an empty root and the Tdp stays usable", F, Ept, Npt) {
  Tdp tdp(F::kFormat);
  Map4KRange(tdp, 1000, 1100);
  REQUIRE(tdp.Map(Gfn(k1G), Host2M(3), PageSize::k2M, kRwx).ok());
  REQUIRE(tdp.Map(Gfn(k512G + kPagesPer2M), Host2M(4), PageSize::k2M, kRwx).ok());
  CHECK(tdp.ZapAll() == 100 + 2 * kPagesPer2M);
  CHECK(tdp.mapped_4k() == 0);
  CHECK(tdp.mapped_2m() == 0);
  CHECK(tdp.table_pages() == 1);
  CheckUnmapped(tdp, 1000);
  CheckUnmapped(tdp, k1G);
  CHECK(tdp.ZapAll() == 0);
  REQUIRE(tdp.Map(Gfn(1000), HostPage(1), PageSize::k4K, kRwx).ok());
  CheckMapped(tdp, 1000, HostPage(1), 1);
}

TEST_CASE_TEMPLATE("MarkAccessed sets the format's A and D bits", F, Ept, Npt) {
  Tdp tdp(F::kFormat);
  REQUIRE(tdp.Map(Gfn(10), HostPage(10), PageSize::k4K, kRwx).ok());
  REQUIRE(tdp.Map(Gfn(11), HostPage(11), PageSize::k4K, kRo).ok());
  REQUIRE(tdp.Map(Gfn(kPagesPer2M), Host2M(1), PageSize::k2M, kRwx).ok());
  const uint64_t rw_leaf = F::Leaf(HostPage(10).value(), kRwx);

  CHECK_FALSE(tdp.MarkAccessed(Gfn(12), /*write=*/false));

  CHECK(tdp.MarkAccessed(Gfn(10), /*write=*/false));
  CHECK(tdp.Walk(Gfn(10))->raw == (rw_leaf | F::kAccessed));
  CHECK(tdp.Walk(Gfn(10))->accessed);
  CHECK_FALSE(tdp.Walk(Gfn(10))->dirty);
  CHECK(tdp.MarkAccessed(Gfn(10), /*write=*/true));
  CHECK(tdp.Walk(Gfn(10))->raw == (rw_leaf | F::kAccessed | F::kDirty));
  CHECK(tdp.Walk(Gfn(10))->dirty);

  // A write through a read-only leaf would fault: nothing gets dirty.
  CHECK(tdp.MarkAccessed(Gfn(11), /*write=*/true));
  CHECK(tdp.Walk(Gfn(11))->raw == (F::Leaf(HostPage(11).value(), kRo) | F::kAccessed));

  // A 2 MiB leaf carries one A/D pair for all its pages.
  CHECK(tdp.MarkAccessed(Gfn(kPagesPer2M + 300), /*write=*/true));
  auto big = tdp.Walk(Gfn(kPagesPer2M + 7));
  REQUIRE(big.has_value());
  CHECK(big->raw == (F::Leaf(Host2M(1).value(), kRwx) | F::kLarge | F::kAccessed | F::kDirty));
}

TEST_CASE_TEMPLATE("A table-page allocation failure changes nothing", F, Ept, Npt) {
  Tdp tdp(F::kFormat);
  REQUIRE(tdp.Map(Gfn(0), Host2M(0), PageSize::k2M, kRwx).ok());
  const uint64_t pages = tdp.table_pages();
  tdp.set_table_page_limit(pages);

  SUBCASE("a map that needs new tables") {
    CHECK(tdp.Map(Gfn(k512G), HostPage(1), PageSize::k4K, kRwx).error() == Error::kNoMemory);
    CHECK(tdp.Map(Gfn(k1G), Host2M(1), PageSize::k2M, kRwx).error() == Error::kNoMemory);
    CHECK(tdp.table_pages() == pages);
    CheckUnmapped(tdp, k512G);
    CheckUnmapped(tdp, k1G);
    // With one page to spare a 4 KiB map under a new PD still needs two.
    tdp.set_table_page_limit(pages + 1);
    CHECK(tdp.Map(Gfn(k1G), HostPage(1), PageSize::k4K, kRwx).error() == Error::kNoMemory);
    CHECK(tdp.table_pages() == pages);
    CheckUnmapped(tdp, k1G);
  }
  SUBCASE("a 4 KiB map that would split") {
    CHECK(tdp.Map(Gfn(5), HostPage(1), PageSize::k4K, kRo).error() == Error::kNoMemory);
    CHECK(tdp.mapped_2m() == 1);
    CheckMapped(tdp, 5, HostPage(5), 2);
  }
  SUBCASE("a partial zap that cannot split drops the whole 2 MiB leaf") {
    CHECK(tdp.Zap({Gfn(5), Gfn(6)}) == kPagesPer2M);
    CHECK(tdp.mapped_2m() == 0);
    CHECK(tdp.table_pages() == 1);  // the PD and PDPT emptied
    CheckUnmapped(tdp, 0);
  }
}

TEST_CASE_TEMPLATE("GFNs at or past kGfnLimit are refused and never alias low GFNs", F, Ept,
                   Npt) {
  Tdp tdp(F::kFormat);
  REQUIRE(tdp.Map(Gfn(0), Host2M(0), PageSize::k2M, kRwx).ok());
  CHECK(tdp.Map(Gfn(kGfnLimit), HostPage(1), PageSize::k4K, kRwx).error() == Error::kInvalid);
  CHECK(tdp.Map(Gfn(kGfnLimit + kPagesPer2M), Host2M(1), PageSize::k2M, kRwx).error() ==
        Error::kInvalid);
  CheckUnmapped(tdp, kGfnLimit);
  CHECK_FALSE(tdp.MarkAccessed(Gfn(kGfnLimit), /*write=*/false));
  CHECK(tdp.Zap({Gfn(kGfnLimit), Gfn(kGfnLimit + 100)}) == 0);
  // The last GFN below the limit is mappable and does not alias GFN 0's slot.
  REQUIRE(tdp.Map(Gfn(kGfnLimit - 1), HostPage(2), PageSize::k4K, kRwx).ok());
  CheckMapped(tdp, kGfnLimit - 1, HostPage(2), 1);
  CHECK(tdp.Zap({Gfn(kGfnLimit - 1), Gfn(~uint64_t{0})}) == 1);
  CheckMapped(tdp, 0, HostPage(0), 2);
}

}  // namespace
}  // namespace kvmlike::mmu
