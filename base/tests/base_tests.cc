#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>

#include <atomic>
#include <thread>
#include <vector>

#include "base/config.h"
#include "base/mutex.h"
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
  CHECK(a.Span(GfnRange{Gfn(25), Gfn(30)}) == GfnRange{Gfn(10), Gfn(30)});
  CHECK(a.Span(GfnRange{Gfn(12), Gfn(15)}) == a);
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
  InstallUserCopyFaultHandler();  // doctest put its own crash handler in front
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
  // Read-only memory cannot be written.
  mprotect(page, 4096, PROT_READ);
  CHECK(CopyToUser(reinterpret_cast<uint64_t>(page), &v, sizeof v).error() == Error::kFault);
  CHECK(CopyFromUser(&out, reinterpret_cast<uint64_t>(page), sizeof out).ok());
  CHECK(ProbeUserWrite(reinterpret_cast<uint64_t>(page)).error() == Error::kFault);
  mprotect(page, 4096, PROT_READ | PROT_WRITE);
  static_cast<char*>(page)[7] = 9;
  CHECK(ProbeUserWrite(reinterpret_cast<uint64_t>(page) + 7).ok());
  CHECK(static_cast<char*>(page)[7] == 9);  // unchanged
  // Kernel-half and non-canonical addresses never reach the copy.
  CHECK(CopyFromUser(&out, 0xffff800000000000ull, sizeof out).error() == Error::kFault);
  CHECK(CopyFromUser(&out, 1ull << 60, sizeof out).error() == Error::kFault);
  // An unaligned pointer is valid.
  CHECK(CopyToUser(reinterpret_cast<uint64_t>(page) + 1, &v, sizeof v).ok());
  munmap(page, 4096);
}

// An address with nothing mapped (not NULL: UBSan would stop at a null store).
volatile int* UnmappedInt() {
  void* p = mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  munmap(p, 4096);
  return static_cast<volatile int*>(p);
}

TEST_CASE("faults outside the copy still take their normal course") {
  fflush(stdout);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // doctest's crash handler was there first; foreign faults go to the
    // default action here.
    InstallUserCopyFaultHandler();
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    ChainFaultSigaction(SIGSEGV, &dfl, nullptr);
    uint64_t out;
    if (CopyFromUser(&out, 8, sizeof out).ok()) _exit(1);  // fixed up, not fatal
    *UnmappedInt() = 1;  // not the copy instruction: the default action must kill us
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGSEGV);
}

TEST_CASE("a handler set later through the chain sees foreign faults") {
  fflush(stdout);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    InstallUserCopyFaultHandler();
    struct sigaction sa {};
    sa.sa_handler = [](int) { _exit(42); };
    ChainFaultSigaction(SIGSEGV, &sa, nullptr);
    uint64_t out;
    if (!CopyFromUser(&out, 8, sizeof out).ok()) *UnmappedInt() = 1;  // fixed up, then chained
    _exit(1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 42);
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

TEST_CASE("lockdep aborts on an inversion of the lock order (debug builds)") {
  if constexpr (!config::kDebugChecks) {
    MESSAGE("CONFIG_DEBUG_CHECKS is off in this build: nothing to check");
    return;
  }
  Mutex slots(LockClass::kSlots), vm(LockClass::kVm);
  {
    MutexGuard a(vm);
    MutexGuard b(slots);  // the written order: fine
  }
  fflush(stdout);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    signal(SIGABRT, SIG_DFL);
    slots.lock();
    vm.lock();  // inverted
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGABRT);
}
