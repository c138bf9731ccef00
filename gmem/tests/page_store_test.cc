#include <doctest/doctest.h>

#include <cstring>

#include "gmem/page_store.h"

using namespace gmem;
using base::PgOff;

TEST_CASE("PageStore populate, lookup and punch") {
  auto pool = FramePool::Create(64ull << 20, Scrub::kOff);
  REQUIRE(pool.ok());
  FramePool& fp = *pool.value();
  PageStore s(2000);
  CHECK_FALSE(s.Lookup(PgOff(5)).present);

  REQUIRE(s.Populate({PgOff(0), PgOff(1000)}, fp).ok());
  CHECK(s.nr_present() == 1000);
  auto pg = s.Lookup(PgOff(999));
  CHECK(pg.present);
  CHECK(pg.uptodate);  // frames fresh from the host are already zero

  SUBCASE("an aligned 2 MiB block gets one aligned run of frames") {
    auto a = s.Lookup(PgOff(0)), b = s.Lookup(PgOff(511));
    CHECK(a.pfn.value() % 512 == 0);
    CHECK(b.pfn.value() == a.pfn.value() + 511);
    CHECK(s.PopulateHuge(PgOff(0), fp).ok());
  }
  SUBCASE("populating an overlapping range allocates only the holes") {
    REQUIRE(s.Populate({PgOff(500), PgOff(1500)}, fp).ok());
    CHECK(s.nr_present() == 1500);
  }
  SUBCASE("punched frames come back dirty: their next user must clear them") {
    s.Punch({PgOff(900), PgOff(1100)}, fp);
    CHECK(s.nr_present() == 900);
    CHECK_FALSE(s.Lookup(PgOff(999)).present);
    uint64_t free_before = fp.frames_free();
    uint64_t unclear_before = fp.counters().handed_unclear;
    // Clear frames go first (the 24 left of the growth step), then the 100
    // punched ones (pages 900..999; 1000..1099 were never populated).
    REQUIRE(s.Populate({PgOff(900), PgOff(1000)}, fp).ok());
    CHECK(fp.frames_free() == free_before - 100);
    uint64_t unclear = fp.counters().handed_unclear - unclear_before;
    CHECK(unclear == 100 - (1024 - 1000));
    uint64_t not_uptodate = 0;
    for (uint64_t i = 900; i < 1000; i++) {
      auto p = s.Lookup(PgOff(i));
      CHECK(p.present);
      not_uptodate += !p.uptodate;
    }
    CHECK(not_uptodate == unclear);
  }
  SUBCASE("a partly populated block cannot be mapped whole") {
    CHECK(s.PopulateHuge(PgOff(512), fp).error() == base::Error::kAgain);
  }
  s.FreeAll(fp);
  CHECK(s.nr_present() == 0);
  CHECK(fp.frames_free() == fp.frames_total());
}
