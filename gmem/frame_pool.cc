#include "gmem/frame_pool.h"

#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace gmem {

using base::Error;
using base::Result;
using base::Status;

// A PROT_NONE reservation one block larger than asked, the mapping placed at
// its first 2 MiB boundary, and the rest of the reservation given back.
void* MapHugeAligned(uint64_t len, int prot, int flags, int fd) {
  void* area = mmap(nullptr, len + kHugeBytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                    -1, 0);
  if (area == MAP_FAILED) return MAP_FAILED;
  auto raw = reinterpret_cast<uintptr_t>(area);
  uintptr_t aligned = (raw + kHugeBytes - 1) & ~(kHugeBytes - 1);
  void* p = mmap(reinterpret_cast<void*>(aligned), len, prot, flags | MAP_FIXED, fd, 0);
  if (p == MAP_FAILED) {
    int err = errno;
    munmap(area, len + kHugeBytes);
    errno = err;
    return MAP_FAILED;
  }
  if (aligned > raw) munmap(area, aligned - raw);
  munmap(reinterpret_cast<void*>(aligned + len), raw + kHugeBytes - aligned);
  return p;
}

// The reservation is 2 MiB aligned, so that 2 MiB guest mappings of pool
// frames can line up with the host's pages. (Transparent huge pages for the
// pool were measured slower here: a first populate of 1 GiB dropped from
// ~2 GiB/s to 0.4 GiB/s, the host compacting memory for each 2 MiB page.)
Result<std::unique_ptr<FramePool>> FramePool::Create(uint64_t reserve_bytes, Scrub scrub) {
  reserve_bytes = (reserve_bytes + kHugeBytes - 1) & ~(kHugeBytes - 1);
  void* pool = MapHugeAligned(reserve_bytes, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1);
  if (pool == MAP_FAILED) return Error::kNoMemory;
  // Private memory must not be inherited by helper processes the VMM forks.
  madvise(pool, reserve_bytes, MADV_DONTFORK);
  return std::unique_ptr<FramePool>(
      new FramePool(static_cast<char*>(pool), reserve_bytes >> base::kPageShift, scrub));
}

FramePool::~FramePool() {
  assert(!forked() && "a forked child abandons its pool (Subsystem)");
  std::unique_ptr<std::thread> scrubber;
  {
    base::MutexGuard g(lock_);
    stopping_ = true;
    scrubber = std::move(scrubber_);
  }
  cv_.notify_all();
  if (scrubber) scrubber->join();
  munmap(base_, nr_frames_ << base::kPageShift);
}

// Faults the frames in now, in one call, so that "populated" means resident and
// the later zeroing at first use never waits for the host.
Status FramePool::MakeResident(Pfn first, uint64_t count) {
  if (madvise(Address(first), count << base::kPageShift, MADV_POPULATE_WRITE) != 0)
    return Error::kNoMemory;
  return Status::Ok();
}

void FramePool::Runs::Insert(uint64_t first, uint64_t end) {
  frames_ += end - first;
  if (auto prev = by_end_.find(first); prev != by_end_.end()) {
    first = prev->second;
    by_end_.erase(prev);
  }
  if (auto next = by_end_.upper_bound(end); next != by_end_.end() && next->second == end) {
    next->second = first;
    return;
  }
  by_end_.emplace(end, first);
}

uint64_t FramePool::Runs::TakeLow(uint64_t n, bool zeroed, std::vector<FrameRun>& out) {
  uint64_t taken = 0;
  while (taken < n && !by_end_.empty()) {
    auto it = by_end_.begin();
    uint64_t take = std::min(n - taken, it->first - it->second);
    out.push_back({Pfn(it->second), take, zeroed});
    it->second += take;  // the end, and so the key, stays
    if (it->second == it->first) by_end_.erase(it);
    taken += take;
  }
  frames_ -= taken;
  return taken;
}

bool FramePool::Runs::TakeAligned(uint64_t* block) {
  for (auto it = by_end_.begin(); it != by_end_.end(); ++it) {
    uint64_t first = it->second, end = it->first;
    uint64_t aligned = (first + kHugeFrames - 1) & ~(kHugeFrames - 1);
    if (aligned + kHugeFrames > end) continue;
    by_end_.erase(it);
    frames_ -= end - first;
    if (aligned > first) Insert(first, aligned);
    if (end > aligned + kHugeFrames) Insert(aligned + kHugeFrames, end);
    *block = aligned;
    return true;
  }
  return false;
}

FrameRun FramePool::Runs::TakeTopPiece() {
  auto it = std::prev(by_end_.end());
  uint64_t first = it->second, end = it->first;
  uint64_t begin = std::max(first, (end - 1) & ~(kHugeFrames - 1));
  by_end_.erase(it);
  if (begin > first) by_end_.emplace(begin, first);
  frames_ -= end - begin;
  return {Pfn(begin), end - begin, false};
}

// The host zeroes the pages it faults in, and they join the pool clear.
Status FramePool::Grow(uint64_t n) {
  uint64_t grow = (n + kHugeFrames - 1) & ~(kHugeFrames - 1);
  grow = std::min(grow, nr_frames_ - fresh_);
  if (grow < n) return Error::kNoMemory;
  TRY(MakeResident(Pfn(fresh_), grow));
  clean_.Insert(fresh_, fresh_ + grow);
  fresh_ += grow;
  return Status::Ok();
}

Status FramePool::Allocate(uint64_t n, std::vector<FrameRun>& out) {
  if (forked()) return Error::kNoMemory;
  base::MutexGuard g(lock_);
  // Frames being scrubbed count as free: wait for them rather than grow.
  while (n > clean_.frames() + dirty_.frames() && scrubbing_) cv_.wait(lock_);
  uint64_t have = clean_.frames() + dirty_.frames();
  if (n > have) TRY(Grow(n - have));
  n -= clean_.TakeLow(n, true, out);
  handed_unclear_ += dirty_.TakeLow(n, false, out);
  return Status::Ok();
}

// Fresh growth is in 2 MiB steps from a 2 MiB-aligned base, so a block always
// comes either from the free runs, from a scrub in flight, or from the next
// growth step.
Result<FrameRun> FramePool::AllocateHuge() {
  if (forked()) return Error::kNoMemory;
  base::MutexGuard g(lock_);
  uint64_t block;
  for (;;) {
    if (clean_.TakeAligned(&block)) return FrameRun{Pfn(block), kHugeFrames, true};
    if (dirty_.TakeAligned(&block)) {
      handed_unclear_ += kHugeFrames;
      return FrameRun{Pfn(block), kHugeFrames, false};
    }
    if (!scrubbing_) break;
    cv_.wait(lock_);
  }
  TRY(Grow(kHugeFrames));
  if (clean_.TakeAligned(&block)) return FrameRun{Pfn(block), kHugeFrames, true};
  return Error::kNoMemory;
}

void FramePool::Free(const FrameRun* runs, size_t nr_runs) {
  if (forked()) return;  // not mapped here
  {
    base::MutexGuard g(lock_);
    for (size_t i = 0; i < nr_runs; i++)
      dirty_.Insert(runs[i].first.value(), runs[i].first.value() + runs[i].count);
    if (scrub_ == Scrub::kBackground && !scrubber_) StartScrubberLocked();
  }
  cv_.notify_all();
}

// The scrubber must not take the process's signals: a VMM directs them at
// vCPU threads (KVM_RUN → EINTR), or at whichever thread does not block them.
void FramePool::StartScrubberLocked() {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  scrubber_ = std::make_unique<std::thread>([this] { ScrubLoop(); });
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  pthread_setname_np(scrubber_->native_handle(), "kvmlike-scrub");
}

void FramePool::ScrubLoop() {
  lock_.lock();
  for (;;) {
    while (!stopping_ && dirty_.empty()) cv_.wait(lock_);
    if (stopping_) break;
    // Top down in 2 MiB pieces, so that each clear piece is a block a
    // 2 MiB mapping can use while the rest is still being scrubbed.
    FrameRun piece = dirty_.TakeTopPiece();
    scrubbing_ = piece.count;
    lock_.unlock();
    std::memset(Address(piece.first), 0, piece.count << base::kPageShift);
    lock_.lock();
    scrubbing_ = 0;
    scrubbed_ += piece.count;
    clean_.Insert(piece.first.value(), piece.first.value() + piece.count);
    cv_.notify_all();
  }
  lock_.unlock();
}

void FramePool::WaitScrubbed() {
  base::MutexGuard g(lock_);
  if (scrub_ != Scrub::kBackground) return;
  while (!dirty_.empty() || scrubbing_) cv_.wait(lock_);
}

FramePool::Counters FramePool::counters() const {
  if (forked()) return {};
  base::MutexGuard g(lock_);
  return {fresh_, nr_free(), dirty_.frames() + scrubbing_, scrubbed_, handed_unclear_};
}

}  // namespace gmem
