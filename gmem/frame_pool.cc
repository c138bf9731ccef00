#include "gmem/frame_pool.h"

#include <sys/mman.h>

#include <algorithm>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace gmem {

using base::Error;
using base::Result;
using base::Status;

// The reservation is 2 MiB aligned, so that 2 MiB guest mappings of pool
// frames can line up with the host's pages. (Transparent huge pages for the
// pool were measured slower here: a first populate of 1 GiB dropped from
// ~2 GiB/s to 0.4 GiB/s, the host compacting memory for each 2 MiB page.)
Result<std::unique_ptr<FramePool>> FramePool::Create(uint64_t reserve_bytes) {
  constexpr uint64_t kHuge = uint64_t{2} << 20;
  reserve_bytes = (reserve_bytes + kHuge - 1) & ~(kHuge - 1);
  void* p = mmap(nullptr, reserve_bytes + kHuge, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return Error::kNoMemory;
  auto raw = reinterpret_cast<uintptr_t>(p);
  uintptr_t base = (raw + kHuge - 1) & ~(kHuge - 1);
  if (base > raw) munmap(p, base - raw);
  munmap(reinterpret_cast<void*>(base + reserve_bytes), raw + kHuge - base);
  void* pool = reinterpret_cast<void*>(base);
  // Private memory must not be inherited by helper processes the VMM forks.
  madvise(pool, reserve_bytes, MADV_DONTFORK);
  return std::unique_ptr<FramePool>(
      new FramePool(static_cast<char*>(pool), reserve_bytes >> base::kPageShift));
}

FramePool::~FramePool() { munmap(base_, nr_frames_ << base::kPageShift); }

// Faults the frames in now, in one call, so that "populated" means resident and
// the later zeroing at first use never waits for the host.
Status FramePool::MakeResident(Pfn first, uint64_t count) {
  if (madvise(Address(first), count << base::kPageShift, MADV_POPULATE_WRITE) != 0)
    return Error::kNoMemory;
  return Status::Ok();
}

namespace {
constexpr uint64_t kHugeFrames = 512;
}  // namespace

void FramePool::PushFree(FrameRun r) {
  if (!free_.empty()) {
    FrameRun& last = free_.back();
    if (last.zeroed == r.zeroed && last.first + last.count == r.first) {
      last.count += r.count;
      nr_free_ += r.count;
      return;
    }
    if (last.zeroed == r.zeroed && r.first + r.count == last.first) {
      last.first = r.first;
      last.count += r.count;
      nr_free_ += r.count;
      return;
    }
  }
  free_.push_back(r);
  nr_free_ += r.count;
}

// The host zeroes the pages it faults in, and they join the pool zeroed.
Status FramePool::Grow(uint64_t n) {
  uint64_t grow = (n + kHugeFrames - 1) & ~(kHugeFrames - 1);
  grow = std::min(grow, nr_frames_ - fresh_);
  if (grow < n) return Error::kNoMemory;
  TRY(MakeResident(Pfn(fresh_), grow));
  PushFree({Pfn(fresh_), grow, true});
  fresh_ += grow;
  return Status::Ok();
}

Status FramePool::Allocate(uint64_t n, std::vector<FrameRun>& out) {
  base::MutexGuard g(lock_);
  if (n > nr_free_) TRY(Grow(n - nr_free_));
  while (n) {
    // From the low end of the run: pages allocated in file order get frames
    // in ascending order, so punching them in file order frees whole runs.
    FrameRun& r = free_.back();
    uint64_t take = std::min(n, r.count);
    out.push_back({r.first, take, r.zeroed});
    r.first += take;
    r.count -= take;
    if (r.count == 0) free_.pop_back();
    nr_free_ -= take;
    n -= take;
  }
  return Status::Ok();
}


// A free run that contains an aligned 512-frame block gives it up; the run's
// remainder on either side stays free.
bool FramePool::TakeAlignedFromFree(FrameRun* out) {
  for (size_t i = free_.size(); i-- > 0;) {
    FrameRun r = free_[i];
    uint64_t first = (r.first.value() + kHugeFrames - 1) & ~(kHugeFrames - 1);
    uint64_t end = r.first.value() + r.count;
    if (first + kHugeFrames > end) continue;
    free_.erase(free_.begin() + static_cast<long>(i));
    nr_free_ -= r.count;
    if (first > r.first.value()) PushFree({r.first, first - r.first.value(), r.zeroed});
    if (end > first + kHugeFrames)
      PushFree({Pfn(first + kHugeFrames), end - first - kHugeFrames, r.zeroed});
    *out = {Pfn(first), kHugeFrames, r.zeroed};
    return true;
  }
  return false;
}

// Fresh growth is in 2 MiB steps from a 2 MiB-aligned base, so a block always
// comes either from a free run or from the next growth step.
Result<FrameRun> FramePool::AllocateHuge() {
  base::MutexGuard g(lock_);
  FrameRun run;
  if (TakeAlignedFromFree(&run)) return run;
  TRY(Grow(kHugeFrames));
  if (TakeAlignedFromFree(&run)) return run;
  return Error::kNoMemory;
}

void FramePool::Free(const FrameRun* runs, size_t nr_runs) {
  base::MutexGuard g(lock_);
  for (size_t i = 0; i < nr_runs; i++) PushFree({runs[i].first, runs[i].count, false});
}

uint64_t FramePool::frames_total() const {
  base::MutexGuard g(lock_);
  return fresh_;
}

uint64_t FramePool::frames_free() const {
  base::MutexGuard g(lock_);
  return nr_free_;
}

}  // namespace gmem
