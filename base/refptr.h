// Intrusive reference counting. RefCounted<T> carries the count; RefPtr<T> owns
// one reference. Objects are born with a count of one, adopted by MakeRef().
// The count is an object-lifetime count only: "in use" counts (a guest_memfd
// file's users) are separate and explicit in the owning type.
#pragma once

#include <atomic>
#include <cassert>
#include <cstdint>
#include <utility>

namespace base {

template <typename T>
class RefCounted {
 public:
  RefCounted() = default;
  RefCounted(const RefCounted&) = delete;
  RefCounted& operator=(const RefCounted&) = delete;

  void AddRef() const { refs_.fetch_add(1, std::memory_order_relaxed); }
  // Returns true when this dropped the last reference.
  bool DropRef() const {
    auto prev = refs_.fetch_sub(1, std::memory_order_acq_rel);
    assert(prev > 0);
    return prev == 1;
  }
  // Takes a reference unless the object is already dying (count 0): for
  // registries that list objects whose destructor unregisters them.
  bool TryAddRef() const {
    int64_t c = refs_.load(std::memory_order_relaxed);
    while (c > 0)
      if (refs_.compare_exchange_weak(c, c + 1, std::memory_order_acquire)) return true;
    return false;
  }
  int64_t ref_count() const { return refs_.load(std::memory_order_relaxed); }

 protected:
  ~RefCounted() = default;

 private:
  mutable std::atomic<int64_t> refs_{1};
};

template <typename T>
class RefPtr {
 public:
  RefPtr() = default;
  RefPtr(std::nullptr_t) {}  // NOLINT
  RefPtr(const RefPtr& o) : p_(o.p_) { if (p_) p_->AddRef(); }
  RefPtr(RefPtr&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  template <typename U>
  RefPtr(RefPtr<U>&& o) noexcept : p_(o.Leak()) {}  // NOLINT: upcast
  ~RefPtr() { reset(); }

  RefPtr& operator=(RefPtr o) noexcept { std::swap(p_, o.p_); return *this; }

  // Takes a new reference on a raw pointer someone else keeps alive.
  static RefPtr FromRaw(T* p) { if (p) p->AddRef(); return RefPtr(p, AdoptTag{}); }
  // A new reference unless p is dying; null then.
  static RefPtr TryFromRaw(T* p) { return p && p->TryAddRef() ? RefPtr(p, AdoptTag{}) : RefPtr(); }
  // Adopts the birth reference of a newly created object.
  static RefPtr Adopt(T* p) { return RefPtr(p, AdoptTag{}); }

  void reset() {
    if (T* p = std::exchange(p_, nullptr); p && p->DropRef()) delete p;
  }
  T* get() const { return p_; }
  T* operator->() const { return p_; }
  T& operator*() const { return *p_; }
  explicit operator bool() const { return p_ != nullptr; }
  bool operator==(const RefPtr& o) const { return p_ == o.p_; }
  T* Leak() { return std::exchange(p_, nullptr); }

 private:
  struct AdoptTag {};
  RefPtr(T* p, AdoptTag) : p_(p) {}
  T* p_ = nullptr;
};

template <typename T, typename... Args>
RefPtr<T> MakeRef(Args&&... args) {
  return RefPtr<T>::Adopt(new T(std::forward<Args>(args)...));
}

}  // namespace base
