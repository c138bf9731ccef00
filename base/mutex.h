// Annotated locks, and the one lock order of kvmlike.
//
// Lock order (outermost first), anchored on KVM's:
//   LockClass::kVm        Vm::lock_            (kvm->lock)
//   LockClass::kVcpu      Vcpu::run_lock_      (vcpu->mutex)
//   LockClass::kSlots     Vm::slots_lock_      (kvm->slots_lock)
//   LockClass::kInvalidate Inode::invalidate_lock_ (filemap invalidate lock)
//   LockClass::kFile      File::lock_          (a file's bindings)
//   LockClass::kMmu       Vm::mmu_lock_        (kvm->mmu_lock)
//   LockClass::kPages     Inode::pages_lock_   (an inode's page store)
//   LockClass::kLeaf      registries, pool, fd table (take nothing after them)
// Debug builds check the order per thread and abort on an inversion; the clang
// build checks the annotations statically.
#pragma once

#include <mutex>
#include <shared_mutex>

#include "base/config.h"
#include "base/thread_annotations.h"

namespace base {

enum class LockClass : int { kVm = 1, kVcpu, kSlots, kInvalidate, kFile, kMmu, kPages, kLeaf };

namespace lockdep {
void Acquire(LockClass c, const void* lock);
void Release(LockClass c, const void* lock);
void AssertHeld(LockClass c, const void* lock);
}  // namespace lockdep

// A lock's identity for the order checker: its class and address. Compiles to
// nothing when debug checks are off.
class LockdepMap {
 public:
  explicit LockdepMap(LockClass c) : class_(c) {}
  void Acquire(const void* lock) const {
    if constexpr (config::kDebugChecks) lockdep::Acquire(class_, lock);
  }
  void Release(const void* lock) const {
    if constexpr (config::kDebugChecks) lockdep::Release(class_, lock);
  }
  void AssertHeld(const void* lock) const {
    if constexpr (config::kDebugChecks) lockdep::AssertHeld(class_, lock);
  }

 private:
  LockClass class_;
};

class TA_CAPABILITY("mutex") Mutex {
 public:
  explicit Mutex(LockClass c) : dep_(c) {}
  void lock() TA_ACQUIRE() { dep_.Acquire(this); m_.lock(); }
  void unlock() TA_RELEASE() { m_.unlock(); dep_.Release(this); }
  void AssertHeld() const TA_ASSERT_CAPABILITY(this) { dep_.AssertHeld(this); }

 private:
  std::mutex m_;
  LockdepMap dep_;
};

// Shared holders are checked like exclusive ones: the order is the same.
class TA_CAPABILITY("shared_mutex") SharedMutex {
 public:
  explicit SharedMutex(LockClass c) : dep_(c) {}
  void lock() TA_ACQUIRE() { dep_.Acquire(this); m_.lock(); }
  void unlock() TA_RELEASE() { m_.unlock(); dep_.Release(this); }
  void lock_shared() TA_ACQUIRE_SHARED() { dep_.Acquire(this); m_.lock_shared(); }
  void unlock_shared() TA_RELEASE_SHARED() { m_.unlock_shared(); dep_.Release(this); }
  void AssertHeld() const TA_ASSERT_CAPABILITY(this) { dep_.AssertHeld(this); }

 private:
  std::shared_mutex m_;
  LockdepMap dep_;
};

template <typename M>
class TA_SCOPED_CAPABILITY Guard {
 public:
  explicit Guard(M& m) TA_ACQUIRE(m) : m_(m) { m_.lock(); }
  ~Guard() TA_RELEASE() { m_.unlock(); }
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;

 private:
  M& m_;
};

class TA_SCOPED_CAPABILITY SharedGuard {
 public:
  explicit SharedGuard(SharedMutex& m) TA_ACQUIRE_SHARED(m) : m_(m) { m_.lock_shared(); }
  ~SharedGuard() TA_RELEASE() { m_.unlock_shared(); }
  SharedGuard(const SharedGuard&) = delete;
  SharedGuard& operator=(const SharedGuard&) = delete;

 private:
  SharedMutex& m_;
};

using MutexGuard = Guard<Mutex>;
using WriteGuard = Guard<SharedMutex>;

}  // namespace base
