#include "kvmlike/attributes.h"

#include <iterator>

namespace kvmlike {

uint64_t AttributeMap::Get(Gfn gfn) const {
  base::MutexGuard g(lock_);
  auto it = runs_.upper_bound(gfn.value());
  if (it == runs_.begin()) return 0;
  --it;
  return gfn.value() < it->second.end ? it->second.attrs : 0;
}

bool AttributeMap::RangeHasLocked(GfnRange range, uint64_t attrs) const {
  uint64_t pos = range.begin.value(), end = range.end.value();
  auto it = runs_.upper_bound(pos);
  if (it != runs_.begin()) --it;
  if (it != runs_.end() && it->second.end <= pos) ++it;  // first run ending after pos
  while (pos < end) {
    if (it == runs_.end() || it->first > pos) {  // a gap: attributes 0
      if (attrs != 0) return false;
      pos = it == runs_.end() ? end : it->first;
      continue;
    }
    if (it->second.attrs != attrs) return false;
    pos = it->second.end;
    ++it;
  }
  return true;
}

bool AttributeMap::RangeHas(GfnRange range, uint64_t attrs) const {
  base::MutexGuard g(lock_);
  return RangeHasLocked(range, attrs);
}

// Splits the run containing gfn (if any) so that a run starts at gfn.
void AttributeMap::SplitAt(uint64_t gfn) {
  auto it = runs_.upper_bound(gfn);
  if (it == runs_.begin()) return;
  --it;
  if (it->first < gfn && gfn < it->second.end) {
    runs_[gfn] = Run{it->second.end, it->second.attrs};
    it->second.end = gfn;
  }
}

void AttributeMap::MergeAround(uint64_t begin, uint64_t end) {
  auto it = runs_.lower_bound(begin);
  if (it != runs_.begin()) --it;
  while (it != runs_.end() && it->first <= end) {
    auto next = std::next(it);
    if (next != runs_.end() && it->second.end == next->first &&
        it->second.attrs == next->second.attrs) {
      it->second.end = next->second.end;
      runs_.erase(next);
    } else {
      it = next;
    }
  }
}

bool AttributeMap::Set(GfnRange range, uint64_t attrs) {
  base::MutexGuard g(lock_);
  if (RangeHasLocked(range, attrs)) return false;
  uint64_t b = range.begin.value(), e = range.end.value();
  SplitAt(b);
  SplitAt(e);
  runs_.erase(runs_.lower_bound(b), runs_.lower_bound(e));
  if (attrs) runs_[b] = Run{e, attrs};
  MergeAround(b, e);
  return true;
}

size_t AttributeMap::nr_runs() const {
  base::MutexGuard g(lock_);
  return runs_.size();
}

}  // namespace kvmlike
