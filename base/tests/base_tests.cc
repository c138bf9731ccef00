#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
#include <sys/mman.h>

#include <atomic>
#include <thread>
#include <vector>

#include "base/refptr.h"
#include "base/result.h"
#include "base/srcu.h"
#include "base/types.h"
#include "base/user_copy.h"

using namespace base;

TEST_CASE("typed ranges are half-open") {
  GfnRange a{Gfn(10), Gfn(20)};
  CHECK(a.size() == 10);
  CHECK(a.Contains(Gfn(10)));
  CHECK_FALSE(a.Contains(Gfn(20)));
  CHECK(a.Overlaps(GfnRange{Gfn(19), Gfn(30)}));
  CHECK_FALSE(a.Overlaps(GfnRange{Gfn(20), Gfn(30)}));
  CHECK(a.Intersect(GfnRange{Gfn(15), Gfn(30)}) == GfnRange{Gfn(15), Gfn(20)});
  CHECK(a.Intersect(GfnRange{Gfn(25), Gfn(30)}).empty());
  CHECK(GpaToGfn(Gpa(0x3fff)) == Gfn(3));
}

struct Counted : RefCounted<Counted> {
  explicit Counted(int* d) : dead(d) {}
  ~Counted() { ++*dead; }
  int* dead;
};

TEST_CASE("RefPtr frees on the last reference only") {
  int dead = 0;
  {
    auto a = MakeRef<Counted>(&dead);
    RefPtr<Counted> b = a;
    CHECK(a->ref_count() == 2);
    a.reset();
    CHECK(dead == 0);
  }
  CHECK(dead == 1);
}

TEST_CASE("user copies fail with kFault instead of crashing") {
  uint64_t v = 42, out = 0;
  CHECK(CopyFromUser(&out, reinterpret_cast<uint64_t>(&v), sizeof v).ok());
  CHECK(out == 42);
  CHECK(CopyFromUser(&out, 0, sizeof out).error() == Error::kFault);
  void* page = mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(page != MAP_FAILED);
  munmap(static_cast<char*>(page) + 4096, 4096);
  uint64_t straddle = reinterpret_cast<uint64_t>(page) + 4096 - 4;
  CHECK(CopyFromUser(&out, straddle, sizeof out).error() == Error::kFault);
  CHECK(CopyToUser(straddle, &v, sizeof v).error() == Error::kFault);
  // An unaligned pointer is valid.
  CHECK(CopyToUser(reinterpret_cast<uint64_t>(page) + 1, &v, sizeof v).ok());
  munmap(page, 4096);
}

TEST_CASE("srcu: Synchronize waits for readers that started before it") {
  Srcu srcu;
  std::atomic<int> phase{0};
  std::atomic<bool> synced{false};
  std::thread reader([&] {
    SrcuReadGuard g(srcu);
    phase = 1;
    while (phase != 2) std::this_thread::yield();
    CHECK_FALSE(synced.load());
  });
  while (phase != 1) std::this_thread::yield();
  std::thread writer([&] {
    srcu.Synchronize();
    synced = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK_FALSE(synced.load());
  phase = 2;
  reader.join();
  writer.join();
  CHECK(synced.load());
}
