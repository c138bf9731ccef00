// Bindings: which ranges of a guest_memfd file back which memslots.
//
// A Binding is the memslot's hold on its file: it owns one reference on the
// File (so a slot never points at freed memory) and links the slot into the
// file's binding set under [pgoff range). The memslot owns the Binding
// (std::unique_ptr); destroying it unbinds. BindingTarget is the memslot seen
// from below: gmem calls it to zap the guest mappings of a range, and knows
// nothing else about VMs.
//
// After the file is released (its last fd and mapping gone), the binding stays
// as a husk: linked nowhere, target never called again, severed() true, and
// the file object alive until the Binding is destroyed.
#pragma once

#include <boost/intrusive/set.hpp>

#include "base/refptr.h"
#include "base/types.h"

namespace gmem {

class File;
using base::PgOffRange;

class BindingTarget {
 public:
  // A range of the binding is being invalidated (punch-hole, release): remove
  // guest mappings of the GFNs that map it and keep faults on them from
  // installing new ones until the matching InvalidateEnd. Called with the
  // inode's invalidate lock held exclusively and the file's lock held; must
  // not take slots_lock and must not wait for vCPUs.
  virtual void InvalidateBegin(PgOffRange range) = 0;
  virtual void InvalidateEnd(PgOffRange range) = 0;
  // After InvalidateBegin, with only the invalidate lock held: returns once no
  // vCPU can still reach the zapped pages through a cached translation. The
  // pages are freed after this.
  virtual void SyncInvalidation() = 0;

 protected:
  ~BindingTarget() = default;
};

namespace bi = boost::intrusive;
using SafeSetHook = bi::set_member_hook<bi::link_mode<bi::safe_link>>;

class Binding {
 public:
  ~Binding();  // unbinds (if still linked) and drops the file reference
  Binding(const Binding&) = delete;
  Binding& operator=(const Binding&) = delete;

  File& file() const { return *file_; }
  PgOffRange range() const { return range_; }
  BindingTarget& target() const { return *target_; }
  // True once the file has been released: faults through this binding fail.
  bool severed() const;

 private:
  friend class File;
  Binding(base::RefPtr<File> file, PgOffRange range, BindingTarget& target);

  base::RefPtr<File> file_;
  const PgOffRange range_;
  BindingTarget* const target_;  // the owning memslot: outlives the Binding
 public:
  SafeSetHook hook_;  // in File::bindings_, guarded by the inode invalidate lock + file lock
};

struct BindingKey {
  using type = uint64_t;
  uint64_t operator()(const Binding& b) const { return b.range().begin.value(); }
};

using BindingSet =
    bi::set<Binding, bi::member_hook<Binding, SafeSetHook, &Binding::hook_>,
            bi::key_of_value<BindingKey>, bi::constant_time_size<false>>;

}  // namespace gmem
