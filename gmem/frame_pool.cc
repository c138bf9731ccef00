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

Status FramePool::Allocate(uint64_t n, std::vector<FrameRun>& out) {
  base::MutexGuard g(lock_);
  uint64_t from_fresh = n > nr_free_ ? n - nr_free_ : 0;
  if (from_fresh > nr_frames_ - fresh_) return Error::kNoMemory;
  if (from_fresh) {
    TRY(MakeResident(Pfn(fresh_), from_fresh));
    out.push_back({Pfn(fresh_), from_fresh});
    fresh_ += from_fresh;
    n -= from_fresh;
  }
  while (n) {
    FrameRun& r = free_.back();
    uint64_t take = std::min(n, r.count);
    out.push_back({r.first + (r.count - take), take});
    r.count -= take;
    if (r.count == 0) free_.pop_back();
    nr_free_ -= take;
    n -= take;
  }
  return Status::Ok();
}

namespace {
constexpr uint64_t kHugeFrames = 512;
}  // namespace

// A free run that contains an aligned 512-frame block gives it up; the run's
// remainder on either side stays free.
bool FramePool::TakeAlignedFromFree(Pfn* out) {
  for (size_t i = free_.size(); i-- > 0;) {
    FrameRun r = free_[i];
    uint64_t first = (r.first.value() + kHugeFrames - 1) & ~(kHugeFrames - 1);
    uint64_t end = r.first.value() + r.count;
    if (first + kHugeFrames > end) continue;
    free_.erase(free_.begin() + static_cast<long>(i));
    if (first > r.first.value()) free_.push_back({r.first, first - r.first.value()});
    if (end > first + kHugeFrames) free_.push_back({Pfn(first + kHugeFrames), end - first - kHugeFrames});
    nr_free_ -= kHugeFrames;
    *out = Pfn(first);
    return true;
  }
  return false;
}

Result<Pfn> FramePool::AllocateHuge() {
  base::MutexGuard g(lock_);
  Pfn pfn;
  if (TakeAlignedFromFree(&pfn)) return pfn;
  uint64_t first = (fresh_ + kHugeFrames - 1) & ~(kHugeFrames - 1);
  if (first + kHugeFrames > nr_frames_) return Error::kNoMemory;
  TRY(MakeResident(Pfn(first), kHugeFrames));
  if (first > fresh_) {  // the gap below the aligned block becomes free frames
    TRY(MakeResident(Pfn(fresh_), first - fresh_));
    free_.push_back({Pfn(fresh_), first - fresh_});
    nr_free_ += first - fresh_;
  }
  fresh_ = first + kHugeFrames;
  return Pfn(first);
}

void FramePool::Free(const FrameRun* runs, size_t nr_runs) {
  base::MutexGuard g(lock_);
  for (size_t i = 0; i < nr_runs; i++) {
    const FrameRun& r = runs[i];
    if (!free_.empty() && free_.back().first + free_.back().count == r.first)
      free_.back().count += r.count;
    else
      free_.push_back(r);
    nr_free_ += r.count;
  }
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
