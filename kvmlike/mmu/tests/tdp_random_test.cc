// Tdp against a reference model: a std::map from every mapped GFN to what it
// should translate to. Thousands of random maps (both sizes), zaps and A/D
// marks land on 2 MiB blocks placed at the table boundaries that matter (GFN
// 0, 1 GiB, 512 GiB, the top of the 48-bit space); then every GFN of those
// blocks must walk exactly as the model says, and the counters must match.
#include <doctest/doctest.h>

#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <vector>

#include "kvmlike/mmu/tdp.h"
#include "kvmlike/mmu/tests/formats.h"

namespace kvmlike::mmu {
namespace {

using base::PagesToBytes;
using testing::Ept;
using testing::Npt;

constexpr uint64_t kHostBase = 0x7e00'0000'0000;
constexpr uint64_t k1G = uint64_t{1} << 18;
constexpr uint64_t k512G = uint64_t{1} << 27;

struct Expected {
  Hva page;  // host page of this GFN
  Perm perm;
  int level;
  bool accessed = false;
  bool dirty = false;
};

class Model {
 public:
  std::map<uint64_t, Expected> gfns;

  void Map4K(uint64_t gfn, Hva page, Perm perm) {
    Split(gfn);
    gfns[gfn] = Expected{page, perm, 1};
  }
  void Map2M(uint64_t base, Hva host, Perm perm) {
    gfns.erase(gfns.lower_bound(base), gfns.lower_bound(base + kPagesPer2M));
    for (uint64_t i = 0; i < kPagesPer2M; ++i)
      gfns[base + i] = Expected{host + PagesToBytes(i), perm, 2};
  }
  uint64_t Zap(uint64_t begin, uint64_t end) {
    // Only the 2 MiB blocks the range cuts into keep a remainder.
    if (begin % kPagesPer2M != 0) Split(begin);
    if (end % kPagesPer2M != 0) Split(end);
    auto first = gfns.lower_bound(begin), last = gfns.lower_bound(end);
    uint64_t n = 0;
    for (auto it = first; it != last; ++it) ++n;
    gfns.erase(first, last);
    return n;
  }
  bool MarkAccessed(uint64_t gfn, bool write) {
    auto it = gfns.find(gfn);
    if (it == gfns.end()) return false;
    const bool dirty = write && it->second.perm.write;
    const uint64_t first = it->second.level == 2 ? Block(gfn) : gfn;
    const uint64_t count = it->second.level == 2 ? kPagesPer2M : 1;
    for (uint64_t g = first; g < first + count; ++g) {
      Expected& e = gfns.at(g);
      e.accessed = true;
      e.dirty = e.dirty || dirty;
    }
    return true;
  }

  uint64_t Count(int level) const {
    uint64_t n = 0;
    for (const auto& [gfn, e] : gfns) n += e.level == level;
    return n;
  }
  // Root, plus one table per distinct PML4 / PDPT entry in use, plus one PT
  // per 2 MiB block holding 4 KiB leaves: empty tables never survive.
  uint64_t TablePages() const {
    std::set<uint64_t> pdpts, pds, pts;
    for (const auto& [gfn, e] : gfns) {
      pdpts.insert(gfn >> 27);
      pds.insert(gfn >> 18);
      if (e.level == 1) pts.insert(gfn >> 9);
    }
    return 1 + pdpts.size() + pds.size() + pts.size();
  }

 private:
  static uint64_t Block(uint64_t gfn) { return gfn - gfn % kPagesPer2M; }
  // The 2 MiB leaf over gfn, if any, becomes 512 4 KiB leaves.
  void Split(uint64_t gfn) {
    auto it = gfns.find(Block(gfn));
    if (it == gfns.end() || it->second.level != 2) return;
    for (uint64_t g = Block(gfn); g < Block(gfn) + kPagesPer2M; ++g) gfns.at(g).level = 1;
  }
};

// The 2 MiB blocks the test works in: runs of eight straddling each boundary.
std::vector<uint64_t> Blocks() {
  std::vector<uint64_t> blocks;
  for (uint64_t center : {4 * kPagesPer2M, k1G, 5 * k1G, k512G,
                          kGfnLimit - 4 * kPagesPer2M})
    for (uint64_t i = 0; i < 8; ++i) blocks.push_back(center - 4 * kPagesPer2M + i * kPagesPer2M);
  return blocks;
}

void CheckAgainstModel(const Tdp& tdp, const Model& model, const std::vector<uint64_t>& blocks) {
  for (uint64_t block : blocks) {
    for (uint64_t gfn = block; gfn < block + kPagesPer2M; ++gfn) {
      CAPTURE(gfn);
      auto leaf = tdp.Walk(Gfn(gfn));
      auto it = model.gfns.find(gfn);
      REQUIRE(leaf.has_value() == (it != model.gfns.end()));
      if (!leaf) continue;
      const Expected& e = it->second;
      REQUIRE(leaf->level == e.level);
      REQUIRE(leaf->PageOf(Gfn(gfn)) == e.page);
      REQUIRE(leaf->perm == e.perm);
      REQUIRE(leaf->accessed == e.accessed);
      REQUIRE(leaf->dirty == e.dirty);
    }
  }
  CHECK(tdp.mapped_4k() == model.Count(1));
  CHECK(tdp.mapped_2m() * kPagesPer2M == model.Count(2));
  CHECK(tdp.table_pages() == model.TablePages());
}

TEST_CASE_TEMPLATE("Tdp matches a reference model under random map, zap and mark", F, Ept, Npt) {
  const uint64_t seed = 0x5eed'0000 + static_cast<uint64_t>(F::kFormat);
  CAPTURE(seed);
  std::mt19937_64 rng(seed);
  auto uniform = [&rng](uint64_t n) {
    return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng);
  };

  const std::vector<uint64_t> blocks = Blocks();
  auto random_gfn = [&] { return blocks[uniform(blocks.size())] + uniform(kPagesPer2M); };
  auto random_perm = [&] {
    return Perm{.read = true, .write = uniform(2) == 1, .exec = uniform(2) == 1};
  };

  Tdp tdp(F::kFormat);
  Model model;
  constexpr int kOps = 20000;
  for (int op = 0; op < kOps; ++op) {
    CAPTURE(op);
    const uint64_t kind = uniform(100);
    if (kind < 40) {
      const uint64_t gfn = random_gfn();
      const Hva page(kHostBase + PagesToBytes(uniform(1 << 20)));
      const Perm perm = random_perm();
      REQUIRE(tdp.Map(Gfn(gfn), page, PageSize::k4K, perm).ok());
      model.Map4K(gfn, page, perm);
    } else if (kind < 55) {
      const uint64_t base = blocks[uniform(blocks.size())];
      const Hva host(kHostBase + PagesToBytes(uniform(1 << 11) * kPagesPer2M));
      const Perm perm = random_perm();
      REQUIRE(tdp.Map(Gfn(base), host, PageSize::k2M, perm).ok());
      model.Map2M(base, host, perm);
    } else if (kind < 80) {
      const uint64_t begin = random_gfn();
      // Mostly short ranges, sometimes several blocks, rarely across regions.
      const uint64_t len = kind < 70   ? 1 + uniform(64)
                           : kind < 79 ? 1 + uniform(6 * kPagesPer2M)
                                       : 1 + uniform(2 * k512G);
      const uint64_t end = std::min(begin + len, kGfnLimit);
      REQUIRE(tdp.Zap({Gfn(begin), Gfn(end)}) == model.Zap(begin, end));
    } else {
      const uint64_t gfn = random_gfn();
      const bool write = uniform(2) == 1;
      REQUIRE(tdp.MarkAccessed(Gfn(gfn), write) == model.MarkAccessed(gfn, write));
    }
    if (op % 2000 == 0) {
      REQUIRE(tdp.mapped_4k() == model.Count(1));
      REQUIRE(tdp.table_pages() == model.TablePages());
    }
  }
  CHECK(model.gfns.size() > 1000);  // the mix keeps a good part of the space mapped
  CheckAgainstModel(tdp, model, blocks);

  CHECK(tdp.ZapAll() == model.gfns.size());
  CHECK(tdp.table_pages() == 1);
}

}  // namespace
}  // namespace kvmlike::mmu
