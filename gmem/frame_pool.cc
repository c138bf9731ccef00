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

Result<std::unique_ptr<FramePool>> FramePool::Create(uint64_t reserve_bytes) {
  void* p = mmap(nullptr, reserve_bytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return Error::kNoMemory;
  // Private memory must not be inherited by helper processes the VMM forks.
  madvise(p, reserve_bytes, MADV_DONTFORK);
  return std::unique_ptr<FramePool>(
      new FramePool(static_cast<char*>(p), reserve_bytes >> base::kPageShift));
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
