// Debug-build lock-order checking: each thread keeps the locks it holds; taking
// a lock whose class is not strictly after every held class is an inversion of
// the order written in mutex.h and aborts with both classes named.
#include <cstdio>
#include <cstdlib>

#include "base/mutex.h"

namespace base::lockdep {
namespace {

struct Held {
  LockClass cls;
  const void* lock;
};

constexpr int kMaxHeld = 16;
thread_local Held held[kMaxHeld];
thread_local int depth = 0;

[[noreturn]] void Die(const char* what, LockClass a, LockClass b) {
  std::fprintf(stderr, "kvmlike lockdep: %s (held class %d, taking class %d)\n", what,
               static_cast<int>(a), static_cast<int>(b));
  std::abort();
}

}  // namespace

void Acquire(LockClass c, const void* lock) {
  for (int i = 0; i < depth; i++) {
    if (held[i].lock == lock) Die("recursive acquisition", held[i].cls, c);
    if (held[i].cls >= c) Die("lock order inversion", held[i].cls, c);
  }
  if (depth == kMaxHeld) Die("too many locks held", c, c);
  held[depth++] = {c, lock};
}

void Release(LockClass c, const void* lock) {
  for (int i = depth - 1; i >= 0; i--) {
    if (held[i].lock == lock) {
      for (int j = i; j < depth - 1; j++) held[j] = held[j + 1];
      depth--;
      return;
    }
  }
  Die("release of a lock not held", c, c);
}

void AssertHeld(LockClass c, const void* lock) {
  for (int i = 0; i < depth; i++)
    if (held[i].lock == lock) return;
  Die("lock not held", c, c);
}

}  // namespace base::lockdep
