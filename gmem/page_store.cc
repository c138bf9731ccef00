#include "gmem/page_store.h"

#include <algorithm>
#include <cstdlib>
#include <vector>

namespace gmem {

using base::Error;
using base::Status;

PageStore::PageStore(uint64_t nr_pages)
    : nr_pages_(nr_pages), nr_chunks_((nr_pages + kChunkEntries - 1) >> kChunkShift) {}

PageStore::~PageStore() {
  if (!dir_) return;
  for (uint64_t i = 0; i < nr_chunks_; i++) std::free(dir_[i]);
  std::free(dir_);
}

PageStore::Entry* PageStore::Slot(PgOff off) const {
  if (!dir_) return nullptr;
  Chunk* c = dir_[off.value() >> kChunkShift];
  return c ? &c->e[off.value() & (kChunkEntries - 1)] : nullptr;
}

PageStore::Entry* PageStore::SlotAlloc(PgOff off) {
  if (!dir_) {
    dir_ = static_cast<Chunk**>(std::calloc(nr_chunks_, sizeof(Chunk*)));
    if (!dir_) return nullptr;
  }
  Chunk*& c = dir_[off.value() >> kChunkShift];
  if (!c) {
    c = static_cast<Chunk*>(std::calloc(1, sizeof(Chunk)));
    if (!c) return nullptr;
  }
  return &c->e[off.value() & (kChunkEntries - 1)];
}

uint64_t PageStore::CountAbsent(PgOffRange range) const {
  uint64_t absent = 0;
  for (PgOff off = range.begin; off < range.end; ++off) {
    Entry* e = Slot(off);
    absent += !(e && (*e & kPresent));
  }
  return absent;
}

// Whole 2 MiB-aligned blocks that are entirely absent get one aligned run of
// frames each, so that guest faults can map them with 2 MiB leaves later; the
// rest is filled in batches.
Status PageStore::Populate(PgOffRange range, FramePool& pool) {
  PgOff pos = range.begin;
  while (pos < range.end) {
    bool aligned = pos.value() % kHugeFrames == 0 && pos.value() + kHugeFrames <= range.end.value();
    if (aligned && CountAbsent({pos, pos + kHugeFrames}) == kHugeFrames) {
      TRY(PopulateHuge(pos, pool));
      pos += kHugeFrames;
      continue;
    }
    PgOff next(std::min(range.end.value(), (pos.value() / kHugeFrames + 1) * kHugeFrames));
    TRY(PopulateBatch({pos, next}, pool));
    pos = next;
  }
  return Status::Ok();
}

// Counts first, then takes all frames from the pool in one call, then fills:
// a failed allocation changes nothing.
Status PageStore::PopulateBatch(PgOffRange range, FramePool& pool) {
  uint64_t need = CountAbsent(range);
  if (need == 0) return Status::Ok();
  for (PgOff off = range.begin; off < range.end; off += kChunkEntries - (off.value() & (kChunkEntries - 1)))
    if (!SlotAlloc(off)) return Error::kNoMemory;
  std::vector<FrameRun> runs;
  TRY(pool.Allocate(need, runs));
  size_t ri = 0;
  uint64_t used = 0;
  for (PgOff off = range.begin; off < range.end; ++off) {
    Entry* e = Slot(off);
    if (*e & kPresent) continue;
    *e = ((runs[ri].first.value() + used) << base::kPageShift) | kPresent |
         (runs[ri].zeroed ? kUptodate : 0);
    if (++used == runs[ri].count) {
      ri++;
      used = 0;
    }
  }
  nr_present_ += need;
  return Status::Ok();
}

base::Result<Pfn> PageStore::PopulateHuge(PgOff first, FramePool& pool) {
  if (first.value() % kHugeFrames || first.value() + kHugeFrames > nr_pages_) return Error::kInvalid;
  uint64_t absent = CountAbsent({first, first + kHugeFrames});
  if (absent == kHugeFrames) {
    if (!SlotAlloc(first)) return Error::kNoMemory;
    TRY_ASSIGN(FrameRun run, pool.AllocateHuge());
    Entry* e = Slot(first);
    Entry flags = kPresent | (run.zeroed ? kUptodate : 0);
    for (uint64_t i = 0; i < kHugeFrames; i++) e[i] = ((run.first.value() + i) << base::kPageShift) | flags;
    nr_present_ += kHugeFrames;
    return run.first;
  }
  if (absent) return Error::kAgain;
  Entry* e = Slot(first);
  uint64_t pfn0 = e[0] >> base::kPageShift;
  if (pfn0 % kHugeFrames) return Error::kAgain;
  for (uint64_t i = 1; i < kHugeFrames; i++)
    if ((e[i] >> base::kPageShift) != pfn0 + i) return Error::kAgain;
  return Pfn(pfn0);
}

void PageStore::Punch(PgOffRange range, FramePool& pool) {
  if (!dir_ || nr_present_ == 0) return;
  std::vector<FrameRun> runs;
  for (PgOff off = range.begin; off < range.end; ++off) {
    Entry* e = Slot(off);
    if (!e) {
      off += kChunkEntries - 1 - (off.value() & (kChunkEntries - 1));
      continue;
    }
    if (!(*e & kPresent)) continue;
    Pfn pfn(*e >> base::kPageShift);
    if (!runs.empty() && runs.back().first + runs.back().count == pfn)
      runs.back().count++;
    else
      runs.push_back({pfn, 1});
    *e = 0;
    nr_present_--;
  }
  pool.Free(runs.data(), runs.size());
}

PageStore::Page PageStore::Lookup(PgOff off) const {
  Entry* e = Slot(off);
  if (!e || !(*e & kPresent)) return Page{};
  return Page{true, (*e & kUptodate) != 0, (*e & kHwPoison) != 0, Pfn(*e >> base::kPageShift)};
}

void PageStore::SetUptodate(PgOff off) {
  if (Entry* e = Slot(off); e && (*e & kPresent)) *e |= kUptodate;
}

void PageStore::SetHwPoison(PgOff off) {
  if (Entry* e = Slot(off); e && (*e & kPresent)) *e |= kHwPoison;
}

}  // namespace gmem
