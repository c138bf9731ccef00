// AttributeMap: a VM's memory attributes per GFN (KVM_SET_MEMORY_ATTRIBUTES),
// stored as disjoint runs of equal non-zero attributes. Independent of
// memslots: attributes outlive slot deletion and recreation (rule 36).
//
// Pinned by: its Vm. Thread safety: the Vm serializes writers (slots_lock);
// readers take the map's own lock.
#pragma once

#include <cstdint>
#include <map>

#include "base/mutex.h"
#include "base/types.h"

namespace kvmlike {

using base::Gfn;
using base::GfnRange;

class AttributeMap {
 public:
  // Sets every GFN of range to attrs (0 clears). Returns false when nothing changed.
  bool Set(GfnRange range, uint64_t attrs) TA_EXCLUDES(lock_);
  uint64_t Get(Gfn gfn) const TA_EXCLUDES(lock_);
  // True when every GFN of range has exactly attrs.
  bool RangeHas(GfnRange range, uint64_t attrs) const TA_EXCLUDES(lock_);
  size_t nr_runs() const TA_EXCLUDES(lock_);

 private:
  struct Run {
    uint64_t end;
    uint64_t attrs;
  };
  bool RangeHasLocked(GfnRange range, uint64_t attrs) const TA_REQUIRES(lock_);
  void SplitAt(uint64_t gfn) TA_REQUIRES(lock_);
  void MergeAround(uint64_t begin, uint64_t end) TA_REQUIRES(lock_);

  mutable base::Mutex lock_{base::LockClass::kLeaf};
  std::map<uint64_t, Run> runs_ TA_GUARDED_BY(lock_);  // begin -> run
};

}  // namespace kvmlike
