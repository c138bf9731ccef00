#include <doctest/doctest.h>

#include "kvmlike/attributes.h"

using namespace kvmlike;
using base::Gfn;

TEST_CASE("AttributeMap splits, merges and reports no-op sets") {
  AttributeMap m;
  constexpr uint64_t P = 8;
  CHECK(m.Get(Gfn(5)) == 0);
  CHECK(m.RangeHas({Gfn(0), Gfn(100)}, 0));
  CHECK(m.Set({Gfn(10), Gfn(20)}, P));
  CHECK_FALSE(m.Set({Gfn(12), Gfn(18)}, P));  // already so: no-op
  CHECK(m.Get(Gfn(10)) == P);
  CHECK(m.Get(Gfn(19)) == P);
  CHECK(m.Get(Gfn(20)) == 0);
  CHECK_FALSE(m.RangeHas({Gfn(5), Gfn(15)}, P));
  CHECK_FALSE(m.RangeHas({Gfn(5), Gfn(15)}, 0));

  SUBCASE("clearing the middle splits the run") {
    CHECK(m.Set({Gfn(14), Gfn(16)}, 0));
    CHECK(m.nr_runs() == 2);
    CHECK(m.Get(Gfn(13)) == P);
    CHECK(m.Get(Gfn(14)) == 0);
    CHECK(m.Get(Gfn(16)) == P);
    CHECK(m.Set({Gfn(14), Gfn(16)}, P));
    CHECK(m.nr_runs() == 1);  // merged back
  }
  SUBCASE("adjacent runs merge") {
    CHECK(m.Set({Gfn(20), Gfn(30)}, P));
    CHECK(m.nr_runs() == 1);
    CHECK(m.RangeHas({Gfn(10), Gfn(30)}, P));
  }
  SUBCASE("a set spanning gaps and runs replaces them") {
    CHECK(m.Set({Gfn(30), Gfn(40)}, P));
    CHECK(m.Set({Gfn(0), Gfn(50)}, 0));
    CHECK(m.nr_runs() == 0);
  }
}
