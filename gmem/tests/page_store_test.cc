#include <doctest/doctest.h>

#include "gmem/page_store.h"

using namespace gmem;
using base::PgOff;

TEST_CASE("PageStore populate, lookup and punch") {
  auto pool = FramePool::Create(64ull << 20);
  REQUIRE(pool.ok());
  FramePool& fp = *pool.value();
  PageStore s(2000);
  CHECK_FALSE(s.Lookup(PgOff(5)).present);

  REQUIRE(s.Populate({PgOff(0), PgOff(1000)}, fp).ok());
  CHECK(s.nr_present() == 1000);
  auto pg = s.Lookup(PgOff(999));
  CHECK(pg.present);
  CHECK_FALSE(pg.uptodate);  // zeroed at first use, not at populate
  s.SetUptodate(PgOff(999));
  CHECK(s.Lookup(PgOff(999)).uptodate);

  SUBCASE("populating an overlapping range allocates only the holes") {
    REQUIRE(s.Populate({PgOff(500), PgOff(1500)}, fp).ok());
    CHECK(s.nr_present() == 1500);
    CHECK(fp.frames_total() == 1500);
    CHECK(s.Lookup(PgOff(999)).uptodate);  // untouched
  }
  SUBCASE("punch frees frames back to the pool and forgets state") {
    s.Punch({PgOff(900), PgOff(1100)}, fp);
    CHECK(s.nr_present() == 900);
    CHECK(fp.frames_free() == 100);
    CHECK_FALSE(s.Lookup(PgOff(999)).present);
    REQUIRE(s.Populate({PgOff(999), PgOff(1000)}, fp).ok());
    CHECK_FALSE(s.Lookup(PgOff(999)).uptodate);
  }
  s.FreeAll(fp);
  CHECK(s.nr_present() == 0);
  CHECK(fp.frames_free() == fp.frames_total());
}
