#include "base/srcu.h"

#include <sched.h>

#include <functional>
#include <thread>

namespace base {

Srcu::Srcu() {
  for (auto& s : slots_) {
    for (int i = 0; i < 2; i++) {
      s.locks[i].store(0, std::memory_order_relaxed);
      s.unlocks[i].store(0, std::memory_order_relaxed);
    }
  }
}

int Srcu::MySlot() {
  thread_local const int slot =
      static_cast<int>(std::hash<std::thread::id>{}(std::this_thread::get_id()) % kSlots);
  return slot;
}

int Srcu::ReadLock() {
  int idx = idx_.load(std::memory_order_relaxed);
  slots_[MySlot()].locks[idx].fetch_add(1, std::memory_order_relaxed);
  // Orders the increment before the reader's loads of protected pointers
  // (pairs with the fence in ReadersGone).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return idx;
}

// The release on the unlock count (with the acquire in ReadersGone) is what
// the fences already guarantee; it is spelled out so that ThreadSanitizer,
// which does not model atomic_thread_fence, sees the reader's section happen
// before the writer's reclaim. Free on x86 (a locked add either way).
void Srcu::ReadUnlock(int idx) {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  slots_[MySlot()].unlocks[idx].fetch_add(1, std::memory_order_release);
}

// Unlocks are summed before locks: a reader that enters and leaves between
// the two sums is then counted in locks only, which errs on "still there".
bool Srcu::ReadersGone(int idx) {
  uint64_t unlocks = 0, locks = 0;
  for (auto& s : slots_) unlocks += s.unlocks[idx].load(std::memory_order_acquire);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  for (auto& s : slots_) locks += s.locks[idx].load(std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return locks == unlocks;
}

void Srcu::WaitForReaders(int idx) {
  for (int spins = 0; !ReadersGone(idx); spins++) {
    if (spins < 64)
      sched_yield();
    else
      std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

// The classic two-phase flip: readers that sampled the old index just before
// the flip but incremented after it are caught by the second wait.
void Srcu::Synchronize() {
  MutexGuard g(sync_lock_);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  int idx = idx_.load(std::memory_order_relaxed);
  WaitForReaders(idx ^ 1);
  idx_.store(idx ^ 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  WaitForReaders(idx);
}

}  // namespace base
