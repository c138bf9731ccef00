// AddressSpace: the memslots of one KVM address space (x86 has two: normal
// and SMM) as two MemslotSets, one of which readers see. Readers (faults,
// lookups) run inside the Vm's SRCU read section without the slots lock;
// a writer (slots lock held) applies a change to the inactive set, publishes
// it with a new generation, waits until no reader can still see the other
// set, and replays the change there. Each update is O(log n).
#pragma once

#include <atomic>
#include <cstdint>

#include "base/srcu.h"
#include "kvmlike/memslot.h"

namespace kvmlike {

class AddressSpace {
 public:
  template <typename Fn>
  auto Read(Fn&& fn) {
    return active_.load(std::memory_order_acquire) == 0 ? fn(s0_) : fn(s1_);
  }

  // fn(set) must make the same change to whichever set it is given.
  template <typename Fn>
  void Update(base::Srcu& srcu, Fn&& fn) {
    int active = active_.load(std::memory_order_relaxed);
    if (active == 0) fn(s1_); else fn(s0_);
    generation_.fetch_add(1, std::memory_order_relaxed);
    active_.store(active ^ 1, std::memory_order_release);
    srcu.Synchronize();
    if (active == 0) fn(s0_); else fn(s1_);
  }

  uint64_t generation() const { return generation_.load(std::memory_order_relaxed); }

 private:
  MemslotSet0 s0_;
  MemslotSet1 s1_;
  std::atomic<int> active_{0};
  std::atomic<uint64_t> generation_{0};
};

}  // namespace kvmlike
