#include <doctest/doctest.h>

#include "gmem/frame_pool.h"

using namespace gmem;

TEST_CASE("FramePool hands out resident frames and reuses freed ones") {
  auto pool = FramePool::Create(64ull << 20);
  REQUIRE(pool.ok());
  FramePool& p = *pool.value();
  std::vector<FrameRun> runs;
  REQUIRE(p.Allocate(100, runs).ok());
  CHECK(runs.size() == 1);
  CHECK(p.frames_total() == 100);
  CHECK(p.frames_free() == 0);
  // Frames are writable memory.
  static_cast<char*>(p.Address(runs[0].first))[0] = 1;

  SUBCASE("freed frames come back before fresh ones") {
    p.Free(runs.data(), runs.size());
    CHECK(p.frames_free() == 100);
    std::vector<FrameRun> again;
    REQUIRE(p.Allocate(150, again).ok());
    CHECK(p.frames_total() == 150);
    CHECK(p.frames_free() == 0);
    uint64_t n = 0;
    for (auto& r : again) n += r.count;
    CHECK(n == 150);
  }
  SUBCASE("exhaustion fails without side effects") {
    std::vector<FrameRun> big;
    CHECK(p.Allocate(1ull << 20, big).error() == base::Error::kNoMemory);
    CHECK(big.empty());
    CHECK(p.frames_total() == 100);
  }
}
