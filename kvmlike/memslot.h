// Memslot: one KVM memory slot — a GFN range backed by the VMM's memory at
// userspace_addr and, for KVM_MEM_GUEST_MEMFD slots, by a range of a
// guest_memfd file through a gmem::Binding (which holds the slot's reference
// on the file). gmem slots are created and deleted, never modified.
//
// MemslotSet: the slots of one address space, indexed by GFN and by id with
// Boost.Intrusive sets (O(log n) lookup and update). Each Memslot carries hooks
// for two sets, as KVM's memslots do: writers change the inactive set, publish
// it, wait for readers of the old one (SRCU) and replay the change on it.
//
// Pinned by: the Vm (slots live in its sets until deleted; the Vm destroys
// them before it dies, so Memslot::vm_ is always valid).
#pragma once

#include <boost/intrusive/set.hpp>

#include <cstdint>
#include <memory>
#include <vector>

#include "base/types.h"
#include "gmem/binding.h"

namespace kvmlike {

class Vm;
using base::Gfn;
using base::GfnRange;
using base::Hva;
using base::PgOff;
using base::PgOffRange;
namespace bi = boost::intrusive;
using SlotHook = bi::set_member_hook<bi::link_mode<bi::safe_link>>;

struct MemslotSpec {
  uint16_t as_id;
  uint16_t id;
  uint32_t flags;  // KVM_MEM_* as given by userspace
  GfnRange gfns;
  Hva userspace_addr;
  PgOff gmem_base;  // KVM_MEM_GUEST_MEMFD: the file page that backs gfns.begin
};

class Memslot final : public gmem::BindingTarget {
 public:
  Memslot(Vm& vm, const MemslotSpec& spec);
  ~Memslot();  // unbinds its guest_memfd range (if any) first
  Memslot(const Memslot&) = delete;
  Memslot& operator=(const Memslot&) = delete;

  uint16_t as_id() const { return spec_.as_id; }
  uint16_t id() const { return spec_.id; }
  uint32_t flags() const { return spec_.flags; }
  GfnRange gfns() const { return spec_.gfns; }
  Gfn base_gfn() const { return spec_.gfns.begin; }
  uint64_t npages() const { return spec_.gfns.size(); }
  Hva userspace_addr() const { return spec_.userspace_addr; }
  const MemslotSpec& spec() const { return spec_; }

  // guest_memfd slots: the binding and the file offset of base_gfn.
  bool has_gmem() const { return binding_ != nullptr; }
  gmem::Binding* binding() const { return binding_.get(); }
  void AttachBinding(std::unique_ptr<gmem::Binding> b);
  // The only place a Gfn becomes a guest_memfd page offset (gfn in gfns()),
  // and back. Both use the spec, never binding_: the Binding is linked into
  // the file, where an invalidation on another thread can reach this slot,
  // before AttachBinding stores it here.
  PgOff PgOffOf(Gfn gfn) const { return spec_.gmem_base + (gfn - base_gfn()); }
  GfnRange GfnsOf(PgOffRange r) const;

  // KVM_MEM_LOG_DIRTY_PAGES: one bit per page, set when the guest writes.
  std::vector<uint64_t>& dirty_bitmap() { return dirty_; }

  // gmem::BindingTarget: the file range is being invalidated.
  void InvalidateBegin(PgOffRange range) override;
  void InvalidateEnd(PgOffRange range) override;
  void SyncInvalidation() override;

  SlotHook gfn_hook0_, gfn_hook1_, id_hook0_, id_hook1_;

 private:
  Vm& vm_;  // back-pointer: the Vm deletes every slot before it dies
  const MemslotSpec spec_;
  std::unique_ptr<gmem::Binding> binding_;
  std::vector<uint64_t> dirty_;
};

struct SlotGfnKey {
  using type = uint64_t;
  uint64_t operator()(const Memslot& s) const { return s.base_gfn().value(); }
};
struct SlotIdKey {
  using type = uint16_t;
  uint16_t operator()(const Memslot& s) const { return s.id(); }
};

template <SlotHook Memslot::*GfnHook, SlotHook Memslot::*IdHook>
class MemslotSet {
 public:
  ~MemslotSet() {
    by_gfn_.clear();
    by_id_.clear();
  }
  void Insert(Memslot& s) {
    by_gfn_.insert(s);
    by_id_.insert(s);
  }
  void Erase(Memslot& s) {
    by_gfn_.erase(by_gfn_.iterator_to(s));
    by_id_.erase(by_id_.iterator_to(s));
  }
  Memslot* ById(uint16_t id) {
    auto it = by_id_.find(id);
    return it == by_id_.end() ? nullptr : &*it;
  }
  // The slot whose range contains gfn.
  Memslot* ByGfn(Gfn gfn) {
    auto it = by_gfn_.upper_bound(gfn.value());
    if (it == by_gfn_.begin()) return nullptr;
    --it;
    return it->gfns().Contains(gfn) ? &*it : nullptr;
  }
  // A slot other than `except` that overlaps range.
  Memslot* FindOverlap(GfnRange range, const Memslot* except) {
    auto it = by_gfn_.upper_bound(range.begin.value());
    if (it != by_gfn_.begin()) --it;
    for (; it != by_gfn_.end() && it->base_gfn() < range.end; ++it)
      if (&*it != except && it->gfns().Overlaps(range)) return &*it;
    return nullptr;
  }
  template <typename Fn>
  void ForEach(Fn&& fn) {
    for (Memslot& s : by_id_) fn(s);
  }
  size_t size() const { return by_id_.size(); }
  bool empty() const { return by_id_.empty(); }

 private:
  bi::set<Memslot, bi::member_hook<Memslot, SlotHook, GfnHook>, bi::key_of_value<SlotGfnKey>,
          bi::constant_time_size<true>> by_gfn_;
  bi::set<Memslot, bi::member_hook<Memslot, SlotHook, IdHook>, bi::key_of_value<SlotIdKey>,
          bi::constant_time_size<true>> by_id_;
};

using MemslotSet0 = MemslotSet<&Memslot::gfn_hook0_, &Memslot::id_hook0_>;
using MemslotSet1 = MemslotSet<&Memslot::gfn_hook1_, &Memslot::id_hook1_>;

}  // namespace kvmlike
