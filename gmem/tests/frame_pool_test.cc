#include <doctest/doctest.h>

#include <cstring>

#include "gmem/frame_pool.h"

using namespace gmem;

namespace {

uint64_t Count(const std::vector<FrameRun>& runs) {
  uint64_t n = 0;
  for (auto& r : runs) n += r.count;
  return n;
}

}  // namespace

TEST_CASE("FramePool grows in 2 MiB steps, hands out zeroed fresh frames, reuses freed ones") {
  auto pool = FramePool::Create(64ull << 20);
  REQUIRE(pool.ok());
  FramePool& p = *pool.value();
  std::vector<FrameRun> runs;
  REQUIRE(p.Allocate(100, runs).ok());
  CHECK(Count(runs) == 100);
  CHECK(p.frames_total() == 512);  // one growth step
  CHECK(p.frames_free() == 412);
  for (auto& r : runs) CHECK(r.zeroed);
  // Fresh frames read zero and are writable memory.
  auto* bytes = static_cast<char*>(p.Address(runs[0].first));
  CHECK(bytes[0] == 0);
  bytes[0] = 1;

  SUBCASE("freed frames come back dirty, before any growth") {
    p.Free(runs.data(), runs.size());
    CHECK(p.frames_free() == 512);
    std::vector<FrameRun> again;
    REQUIRE(p.Allocate(512, again).ok());
    CHECK(p.frames_total() == 512);
    CHECK(p.frames_free() == 0);
    CHECK(Count(again) == 512);
    uint64_t dirty = 0;
    for (auto& r : again) dirty += r.zeroed ? 0 : r.count;
    CHECK(dirty == 100);  // exactly the frames that were handed out before
  }
  SUBCASE("a 2 MiB block is aligned and contiguous") {
    auto huge = p.AllocateHuge();
    REQUIRE(huge.ok());
    CHECK(huge->count == 512);
    CHECK(huge->first.value() % 512 == 0);
    CHECK(huge->zeroed);
    CHECK(p.frames_total() == 1024);
  }
  SUBCASE("exhaustion fails without side effects") {
    std::vector<FrameRun> big;
    CHECK(p.Allocate(1ull << 20, big).error() == base::Error::kNoMemory);
    CHECK(big.empty());
    CHECK(p.frames_total() == 512);
  }
}
