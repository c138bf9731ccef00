// FramePool: the host memory that private guest pages come from. kvmlike owns it
// the way a hypervisor owns RAM: one reserved, MADV_DONTFORK anonymous region
// (never reachable through an fd, absent from forked children), numbered in
// frames (Pfn), handed out and taken back in runs. Frames become resident in
// 2 MiB steps the first time they are needed and stay with the pool, so
// repopulating after a punch costs no host faults; frames fresh from the host
// are handed out marked zeroed, so their first user need not clear them.
//
// Pinned by: the gmem::Subsystem that owns it (one per process).
// Thread safety: all methods may be called concurrently (internal leaf lock).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "base/mutex.h"
#include "base/result.h"
#include "base/types.h"

namespace gmem {

using base::Pfn;

struct FrameRun {
  Pfn first;
  uint64_t count;
  bool zeroed = false;  // known to read zero (fresh from the host, never handed out)
};

class FramePool {
 public:
  // Reserves reserve_bytes of address space (nothing resident yet).
  static base::Result<std::unique_ptr<FramePool>> Create(uint64_t reserve_bytes);
  ~FramePool();
  FramePool(const FramePool&) = delete;
  FramePool& operator=(const FramePool&) = delete;

  // Hands out exactly n frames as runs appended to out (contents undefined), or
  // kNoMemory leaving out unchanged.
  base::Status Allocate(uint64_t n, std::vector<FrameRun>& out) TA_EXCLUDES(lock_);
  // Hands out 512 frames that are contiguous and start on a 512-frame (2 MiB)
  // boundary, for a 2 MiB guest mapping; kNoMemory when none can be had.
  base::Result<FrameRun> AllocateHuge() TA_EXCLUDES(lock_);
  // Takes back frames handed out before. Contents are not cleared here: the
  // next owner zeroes a frame before first use.
  void Free(const FrameRun* runs, size_t nr_runs) TA_EXCLUDES(lock_);

  // Host address of a frame; valid while the frame is allocated.
  void* Address(Pfn pfn) const { return base_ + (pfn.value() << base::kPageShift); }
  // Debug/test query: whether p lies in the pool's reservation (allocated or
  // not) — e.g. that a shared guest mapping never points at a private frame.
  bool Contains(const void* p) const {
    auto a = reinterpret_cast<uintptr_t>(p), b = reinterpret_cast<uintptr_t>(base_);
    return a >= b && a - b < (nr_frames_ << base::kPageShift);
  }

  uint64_t frames_total() const TA_EXCLUDES(lock_);  // resident frames
  uint64_t frames_free() const TA_EXCLUDES(lock_);

 private:
  FramePool(char* base, uint64_t nr_frames) : base_(base), nr_frames_(nr_frames) {}
  base::Status MakeResident(Pfn first, uint64_t count) TA_REQUIRES(lock_);
  // Makes at least n more frames resident (in 2 MiB steps); they join free_
  // as zeroed runs.
  base::Status Grow(uint64_t n) TA_REQUIRES(lock_);
  void PushFree(FrameRun r) TA_REQUIRES(lock_);
  bool TakeAlignedFromFree(FrameRun* out) TA_REQUIRES(lock_);

  char* const base_;
  const uint64_t nr_frames_;
  mutable base::Mutex lock_{base::LockClass::kLeaf};
  // Frames [0, fresh_) have been resident; free ones are in free_ (LIFO runs,
  // each zeroed or not).
  uint64_t fresh_ TA_GUARDED_BY(lock_) = 0;
  uint64_t nr_free_ TA_GUARDED_BY(lock_) = 0;
  std::vector<FrameRun> free_ TA_GUARDED_BY(lock_);
};

}  // namespace gmem
