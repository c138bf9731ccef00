#include <doctest/doctest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "gmem/frame_pool.h"
#include "gmem/subsystem.h"

using namespace gmem;

namespace {

uint64_t Count(const std::vector<FrameRun>& runs) {
  uint64_t n = 0;
  for (auto& r : runs) n += r.count;
  return n;
}

}  // namespace

TEST_CASE("FramePool grows in 2 MiB steps, hands out zeroed fresh frames, reuses freed ones") {
  auto pool = FramePool::Create(64ull << 20, Scrub::kOff);
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

TEST_CASE("FramePool scrubs freed frames in the background; clear frames are handed out first") {
  auto pool = FramePool::Create(64ull << 20);
  REQUIRE(pool.ok());
  FramePool& p = *pool.value();
  std::vector<FrameRun> runs;
  REQUIRE(p.Allocate(1024, runs).ok());
  for (auto& r : runs)
    std::memset(p.Address(r.first), 0x5a, r.count << base::kPageShift);
  p.Free(runs.data(), runs.size());
  p.WaitScrubbed();
  FramePool::Counters c = p.counters();
  CHECK(c.total == 1024);
  CHECK(c.free == 1024);
  CHECK(c.unscrubbed == 0);
  CHECK(c.scrubbed == 1024);
  // Every frame the guest dirtied reads zero again, and comes back marked so.
  std::vector<FrameRun> again;
  REQUIRE(p.Allocate(1024, again).ok());
  CHECK(p.frames_total() == 1024);
  for (auto& r : again) {
    CHECK(r.zeroed);
    auto* b = static_cast<const uint8_t*>(p.Address(r.first));
    for (uint64_t i = 0; i < (r.count << base::kPageShift); i += 512) REQUIRE(b[i] == 0);
  }
  CHECK(p.counters().handed_unclear == 0);
  p.Free(again.data(), again.size());
  p.WaitScrubbed();
  // Scrubbed pieces are 2 MiB blocks: both can be had again as huge runs.
  auto h1 = p.AllocateHuge(), h2 = p.AllocateHuge();
  REQUIRE(h1.ok());
  REQUIRE(h2.ok());
  CHECK(h1->zeroed);
  CHECK(h2->zeroed);
  CHECK(p.frames_total() == 1024);
  FrameRun back[] = {*h1, *h2};
  p.Free(back, 2);
}

TEST_CASE("FramePool: allocations racing the scrubber get every frame exactly once") {
  auto pool = FramePool::Create(64ull << 20);
  REQUIRE(pool.ok());
  FramePool& p = *pool.value();
  std::vector<FrameRun> runs;
  REQUIRE(p.Allocate(2048, runs).ok());
  for (int round = 0; round < 50; round++) {
    // Mark each frame with its own number, free, and take them back at once
    // while the scrubber works: a frame is either cleared (zeroed run) or
    // still holds its mark (dirty run), never half of each, never lost.
    for (auto& r : runs)
      for (uint64_t i = 0; i < r.count; i++)
        std::memset(p.Address(r.first + i), 1 + int((r.first.value() + i) % 200), base::kPageSize);
    p.Free(runs.data(), runs.size());
    runs.clear();
    REQUIRE(p.Allocate(2048, runs).ok());
    REQUIRE(p.frames_total() == 2048);
    std::vector<bool> handed(2048);
    for (auto& r : runs)
      for (uint64_t i = 0; i < r.count; i++) {
        uint64_t frame = r.first.value() + i;
        REQUIRE(frame < handed.size());
        REQUIRE_FALSE(handed[frame]);  // no frame twice in one allocation
        handed[frame] = true;
        auto* b = static_cast<const uint8_t*>(p.Address(r.first + i));
        uint8_t want = r.zeroed ? 0 : uint8_t(1 + (r.first.value() + i) % 200);
        REQUIRE(b[0] == want);
        REQUIRE(b[base::kPageSize - 1] == want);
      }
  }
  p.Free(runs.data(), runs.size());
}

TEST_CASE("FramePool in a forked child: allocations fail; the owner abandons the pool") {
  auto sys = std::make_unique<Subsystem>(64ull << 20);
  auto pool = sys->pool();
  REQUIRE(pool.ok());
  FramePool& p = *pool.value();
  std::vector<FrameRun> runs;
  REQUIRE(p.Allocate(512, runs).ok());
  p.Free(runs.data(), runs.size());  // starts the scrubber thread
  p.WaitScrubbed();                  // which now waits for work
  void* reservation = p.Address(Pfn(0));
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    alarm(10);  // a teardown that hangs fails the test
    p.OnForkChild();
    std::vector<FrameRun> more;
    if (p.Allocate(1, more).error() != base::Error::kNoMemory) _exit(10);
    // The reservation is absent here (MADV_DONTFORK): what the child maps at
    // its address must survive the teardown, which must not wait for the
    // scrubber thread the child does not have.
    void* m = mmap(reservation, 4096, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (m != reservation) _exit(11);
    static_cast<volatile char*>(m)[0] = 42;
    sys.reset();
    if (msync(m, 4096, MS_ASYNC) != 0) _exit(12);
    _exit(static_cast<volatile char*>(m)[0] == 42 ? 0 : 13);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
