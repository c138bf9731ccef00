// Sleepable read-copy-update, the scheme KVM uses for memslots: readers mark
// themselves in one of two epochs without taking a lock; a writer that has
// unpublished an object calls Synchronize(), which returns once every reader
// that could still see the old object has left its read-side section.
#pragma once

#include <atomic>
#include <cstdint>

#include "base/mutex.h"

namespace base {

class Srcu {
 public:
  Srcu();
  Srcu(const Srcu&) = delete;
  Srcu& operator=(const Srcu&) = delete;

  // Enter/leave a read-side section; the returned index must be passed back.
  int ReadLock();
  void ReadUnlock(int idx);
  // Waits for every read-side section that began before this call.
  void Synchronize();

 private:
  static constexpr int kSlots = 32;
  struct alignas(64) Slot {
    std::atomic<uint64_t> locks[2];
    std::atomic<uint64_t> unlocks[2];
  };
  static int MySlot();
  bool ReadersGone(int idx);
  void WaitForReaders(int idx);

  Slot slots_[kSlots];
  std::atomic<int> idx_{0};
  Mutex sync_lock_{LockClass::kLeaf};
};

class SrcuReadGuard {
 public:
  explicit SrcuReadGuard(Srcu& s) : s_(s), idx_(s.ReadLock()) {}
  ~SrcuReadGuard() { s_.ReadUnlock(idx_); }
  SrcuReadGuard(const SrcuReadGuard&) = delete;
  SrcuReadGuard& operator=(const SrcuReadGuard&) = delete;

 private:
  Srcu& s_;
  int idx_;
};

}  // namespace base
