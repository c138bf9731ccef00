#include "kvmlike/memslot.h"

#include "kvm_uapi.h"
#include "kvmlike/vm.h"

namespace kvmlike {

Memslot::Memslot(Vm& vm, const MemslotSpec& spec) : vm_(vm), spec_(spec) {
  if (spec.flags & KVM_MEM_LOG_DIRTY_PAGES) dirty_.assign((npages() + 63) / 64, 0);
}

// Destroying the Binding unbinds the range and drops the file reference; a
// slot whose file was released holds only the husk, and this frees it.
// Unbinding waits for an invalidation in progress on the file, which may still
// call this slot (InvalidateBegin/End): it happens first, while every member
// is alive.
Memslot::~Memslot() { binding_.reset(); }

void Memslot::AttachBinding(std::unique_ptr<gmem::Binding> b) { binding_ = std::move(b); }

GfnRange Memslot::GfnsOf(PgOffRange r) const {
  PgOff first = spec_.gmem_base;
  return {base_gfn() + (r.begin - first), base_gfn() + (r.end - first)};
}

void Memslot::InvalidateBegin(PgOffRange range) { vm_.InvalidateBegin(as_id(), GfnsOf(range)); }

void Memslot::InvalidateEnd(PgOffRange range) { vm_.InvalidateEnd(as_id(), GfnsOf(range)); }

void Memslot::SyncInvalidation() { vm_.SyncTlbs(); }

}  // namespace kvmlike
