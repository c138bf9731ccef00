// FramePool: the host memory that private guest pages come from. kvmlike owns it
// the way a hypervisor owns RAM: one reserved, MADV_DONTFORK anonymous region
// (never reachable through an fd, absent from forked children), numbered in
// frames (Pfn), handed out and taken back in runs. Frames become resident in
// 2 MiB steps the first time they are needed and stay with the pool, so
// repopulating after a punch costs no host faults.
//
// Scrubbing: a frame handed back still holds what its last guest wrote. With
// background scrubbing on (the default), a pool thread ("kvmlike-scrub")
// clears freed frames soon after they come back, in 2 MiB pieces, so guest
// data does not linger in free memory and later allocations get frames that
// need no clearing in the fault path. Frames fresh from the host are clear
// too. Allocation prefers clear frames; a frame handed out uncleared (freed
// moments ago, or scrubbing off) is marked so, and its first user clears it.
//
// Pinned by: the gmem::Subsystem that owns it (one per process).
// Thread safety: all methods may be called concurrently (internal leaf lock;
// the scrubber drops it while it clears).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "base/mutex.h"
#include "base/result.h"
#include "base/types.h"

namespace gmem {

using base::Pfn;

// Pages (frames) in a 2 MiB block: the unit of the pool's growth, of its
// scrubbing, and of 2 MiB guest mappings.
inline constexpr uint64_t kHugeFrames = 512;
inline constexpr uint64_t kHugeBytes = kHugeFrames << base::kPageShift;

// mmap(2) of len bytes at a 2 MiB-aligned address chosen by the host (flags
// without MAP_FIXED; fd -1 with MAP_ANONYMOUS), so that aligned 2 MiB blocks
// of it can back 2 MiB guest mappings. MAP_FAILED with errno on failure.
void* MapHugeAligned(uint64_t len, int prot, int flags, int fd);

struct FrameRun {
  Pfn first;
  uint64_t count;
  bool zeroed = false;  // known to read zero (fresh from the host, or scrubbed)
};

enum class Scrub : uint8_t { kBackground, kOff };

class FramePool {
 public:
  // Reserves reserve_bytes of address space (nothing resident yet). The
  // scrubber thread starts with the first frames freed.
  static base::Result<std::unique_ptr<FramePool>> Create(uint64_t reserve_bytes,
                                                         Scrub scrub = Scrub::kBackground);
  ~FramePool();  // stops the scrubber; never in a forked child
  FramePool(const FramePool&) = delete;
  FramePool& operator=(const FramePool&) = delete;

  // Hands out exactly n frames as runs appended to out (contents undefined
  // unless the run says zeroed), or kNoMemory leaving out unchanged.
  base::Status Allocate(uint64_t n, std::vector<FrameRun>& out) TA_EXCLUDES(lock_);
  // Hands out 512 frames that are contiguous and start on a 512-frame (2 MiB)
  // boundary, for a 2 MiB guest mapping; kNoMemory when none can be had.
  base::Result<FrameRun> AllocateHuge() TA_EXCLUDES(lock_);
  // Takes back frames handed out before; the scrubber clears them later.
  void Free(const FrameRun* runs, size_t nr_runs) TA_EXCLUDES(lock_);

  // In a process forked from the pool's owner the reservation is absent
  // (MADV_DONTFORK) and no scrubber runs: from now on allocations fail with
  // kNoMemory and nothing touches the lock (the fork may have copied it held).
  // Nor can such a pool be destroyed (its lock and condition variable may be
  // held by threads that do not exist there, and unmapping the reservation's
  // range would hit whatever the child mapped there since): its owner
  // abandons it instead.
  void OnForkChild() { forked_.store(true, std::memory_order_relaxed); }
  bool forked() const { return forked_.load(std::memory_order_relaxed); }

  // Waits until every free frame is clear (tests; nothing to wait for when
  // scrubbing is off).
  void WaitScrubbed() TA_EXCLUDES(lock_);

  // Host address of a frame; valid while the frame is allocated.
  void* Address(Pfn pfn) const { return base_ + (pfn.value() << base::kPageShift); }
  // Debug/test query: whether p lies in the pool's reservation (allocated or
  // not) — e.g. that a shared guest mapping never points at a private frame.
  bool Contains(const void* p) const {
    auto a = reinterpret_cast<uintptr_t>(p), b = reinterpret_cast<uintptr_t>(base_);
    return a >= b && a - b < (nr_frames_ << base::kPageShift);
  }

  struct Counters {
    uint64_t total;           // resident frames
    uint64_t free;            // of those, owned by no inode (clear or not)
    uint64_t unscrubbed;      // of the free ones, not yet clear
    uint64_t scrubbed;        // frames the scrubber has cleared, ever
    uint64_t handed_unclear;  // frames handed out not clear, ever (cleared in use)
  };
  Counters counters() const TA_EXCLUDES(lock_);
  uint64_t frames_total() const { return counters().total; }
  uint64_t frames_free() const { return counters().free; }

 private:
  FramePool(char* base, uint64_t nr_frames, Scrub scrub)
      : base_(base), nr_frames_(nr_frames), scrub_(scrub) {}
  // Free frames of one kind (clear or not) as address-ordered runs that
  // coalesce on insertion, so freed frames form whole 2 MiB blocks again
  // whatever order they come back in.
  class Runs {
   public:
    uint64_t frames() const { return frames_; }
    bool empty() const { return by_end_.empty(); }
    void Insert(uint64_t first, uint64_t end);
    // Appends up to n frames from the lowest runs to out (ascending, so pages
    // allocated in file order get ascending frames); returns how many.
    uint64_t TakeLow(uint64_t n, bool zeroed, std::vector<FrameRun>& out);
    // An aligned 512-frame block from the lowest run holding one.
    bool TakeAligned(uint64_t* first);
    // The top of the highest run, cut at a 512-frame boundary (≤ 512 frames).
    FrameRun TakeTopPiece();

   private:
    std::map<uint64_t, uint64_t> by_end_;  // run end (exclusive) → first frame
    uint64_t frames_ = 0;
  };

  base::Status MakeResident(Pfn first, uint64_t count) TA_REQUIRES(lock_);
  // Makes at least n more frames resident (in 2 MiB steps); they join clean_.
  base::Status Grow(uint64_t n) TA_REQUIRES(lock_);
  uint64_t nr_free() const TA_REQUIRES(lock_) { return clean_.frames() + dirty_.frames() + scrubbing_; }

  void StartScrubberLocked() TA_REQUIRES(lock_);
  void ScrubLoop() TA_EXCLUDES(lock_);

  char* const base_;
  const uint64_t nr_frames_;
  const Scrub scrub_;
  std::atomic<bool> forked_{false};
  mutable base::Mutex lock_{base::LockClass::kLeaf};
  std::condition_variable_any cv_;  // dirty_ grew, a scrub finished, or stopping
  // Frames [0, fresh_) have been resident; free ones are in clean_ (clear) or
  // dirty_ (not yet), or being scrubbed (scrubbing_ frames).
  uint64_t fresh_ TA_GUARDED_BY(lock_) = 0;
  Runs clean_ TA_GUARDED_BY(lock_);
  Runs dirty_ TA_GUARDED_BY(lock_);
  uint64_t scrubbing_ TA_GUARDED_BY(lock_) = 0;
  uint64_t scrubbed_ TA_GUARDED_BY(lock_) = 0;
  uint64_t handed_unclear_ TA_GUARDED_BY(lock_) = 0;
  bool stopping_ TA_GUARDED_BY(lock_) = false;
  std::unique_ptr<std::thread> scrubber_ TA_GUARDED_BY(lock_);
};

}  // namespace gmem
