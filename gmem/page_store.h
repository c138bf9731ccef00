// PageStore: an inode's pages, indexed by page offset (PgOff). The inode size is
// fixed at creation, so the index is a two-level table (directory of 512-entry
// chunks, allocated on first use): lookups are two loads, populating or punching
// a range touches only that range, and creation costs nothing per page.
//
// Each entry records: present (a pool frame is owned), uptodate (zeroed and
// prepared: set at first use, as the kernel zeroes a folio at first use, not at
// fallocate), hwpoison. Frames come from and go back to the FramePool.
//
// Pinned by: its Inode. Thread safety: the owner serializes (Inode::pages_lock_).
#pragma once

#include <cstdint>
#include <memory>

#include "base/result.h"
#include "base/types.h"
#include "gmem/frame_pool.h"

namespace gmem {

using base::PgOff;
using base::PgOffRange;

class PageStore {
 public:
  struct Page {
    bool present = false;
    bool uptodate = false;
    bool hwpoison = false;
    Pfn pfn;
  };

  explicit PageStore(uint64_t nr_pages);
  ~PageStore();  // the owner frees frames first (FreeAll)
  PageStore(const PageStore&) = delete;
  PageStore& operator=(const PageStore&) = delete;

  // Gives every absent page in range a frame; a page is uptodate when its
  // frame came clear from the pool, else it is zeroed at first use.
  base::Status Populate(PgOffRange range, FramePool& pool);
  // Makes the 512 pages at first (512-aligned) present on one 2 MiB-aligned
  // run of frames: allocates it when all 512 are absent; succeeds without
  // change when they already are such a run. kAgain otherwise (mixed: the
  // caller maps 4 KiB pages). Returns the first frame.
  base::Result<Pfn> PopulateHuge(PgOff first, FramePool& pool);
  // Returns the frames of range to the pool; their pages become absent.
  void Punch(PgOffRange range, FramePool& pool);
  void FreeAll(FramePool& pool) { Punch({PgOff(0), PgOff(nr_pages_)}, pool); }

  Page Lookup(PgOff off) const;
  void SetUptodate(PgOff off);
  void SetHwPoison(PgOff off);

  uint64_t nr_pages() const { return nr_pages_; }
  uint64_t nr_present() const { return nr_present_; }

 private:
  static constexpr uint64_t kChunkShift = 9;
  static constexpr uint64_t kChunkEntries = uint64_t{1} << kChunkShift;
  static constexpr uint64_t kPresent = 1, kUptodate = 2, kHwPoison = 4;
  using Entry = uint64_t;  // pfn << 12 | flags
  struct Chunk {
    Entry e[kChunkEntries];
  };

  Entry* Slot(PgOff off) const;       // nullptr when its chunk does not exist
  Entry* SlotAlloc(PgOff off);        // allocates the chunk
  uint64_t CountAbsent(PgOffRange range) const;
  base::Status PopulateBatch(PgOffRange range, FramePool& pool);

  const uint64_t nr_pages_;
  const uint64_t nr_chunks_;
  Chunk** dir_ = nullptr;             // calloc'ed on first Populate
  uint64_t nr_present_ = 0;
};

}  // namespace gmem
