// KVM_SET_USER_MEMORY_REGION(2): the checks in the order KVM makes them
// (flags → sizes and alignment → as_id/id → GPA wrap → page count → delete →
// create or modify → GPA overlap → guest_memfd bind), then the update of the
// address space's memslot sets (AddressSpace::Update).
#include <fcntl.h>

#include <algorithm>

#include "base/config.h"
#include "base/user_copy.h"
#include "kvm_uapi.h"
#include "kvmlike/gmem_fd.h"
#include "kvmlike/system.h"
#include "kvmlike/vm.h"

namespace kvmlike {

using base::Error;
using base::Result;
using base::Status;

namespace {

constexpr uint64_t kMemMaxNrPages = (uint64_t{1} << 31) - 1;  // KVM_MEM_MAX_NR_PAGES (x86)
constexpr uint32_t kV1Flags = KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_READONLY;
// Highest GFN a slot may reach (kvm_mmu_max_gfn): 52 address bits, as the
// kernel answers on these machines.
constexpr uint64_t kMaxGfn = (uint64_t{1} << (52 - base::kPageShift)) - 1;

Status CheckFlags(const VmTypeInfo& type, const kvm_userspace_memory_region2& mem) {
  uint32_t valid = KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_GUEST_MEMFD;
  if (mem.flags & KVM_MEM_GUEST_MEMFD) valid &= ~KVM_MEM_LOG_DIRTY_PAGES;  // no dirty log for gmem
  if (type.has_readonly_mem && !(mem.flags & KVM_MEM_GUEST_MEMFD)) valid |= KVM_MEM_READONLY;
  if (mem.flags & ~valid) return Error::kInvalid;
  return Status::Ok();
}

Status CheckSizes(const kvm_userspace_memory_region2& mem) {
  if (!base::IsPageAligned(mem.memory_size) || !base::IsPageAligned(mem.guest_phys_addr))
    return Error::kInvalid;
  if (!base::IsPageAligned(mem.userspace_addr) ||
      !base::UserRangeOk(mem.userspace_addr, mem.memory_size))
    return Error::kInvalid;
  if ((mem.flags & KVM_MEM_GUEST_MEMFD) &&
      (!base::IsPageAligned(mem.guest_memfd_offset) ||
       mem.guest_memfd_offset + mem.memory_size < mem.guest_memfd_offset))
    return Error::kInvalid;
  return Status::Ok();
}

}  // namespace

Result<long> Vm::SetUserMemoryRegion(unsigned long cmd, unsigned long arg) {
  kvm_userspace_memory_region2 mem{};
  size_t size = cmd == KVM_SET_USER_MEMORY_REGION ? sizeof(kvm_userspace_memory_region)
                                                  : sizeof(kvm_userspace_memory_region2);
  TRY(base::CopyFromUser(&mem, arg, size));
  if (cmd == KVM_SET_USER_MEMORY_REGION && (mem.flags & ~kV1Flags)) return Error::kInvalid;
  if ((mem.slot & 0xffff) >= base::config::kMaxMemslots) return Error::kInvalid;
  base::MutexGuard g(slots_lock_);
  TRY(SetMemoryRegion(mem));
  return 0;
}

Status Vm::SetMemoryRegion(const kvm_userspace_memory_region2& mem) {
  TRY(CheckFlags(*info_, mem));
  TRY(CheckSizes(mem));
  uint32_t as_id = mem.slot >> 16;
  auto id = static_cast<uint16_t>(mem.slot);
  if (as_id >= kAddressSpaces) return Error::kInvalid;
  if (mem.guest_phys_addr + mem.memory_size < mem.guest_phys_addr) return Error::kInvalid;
  uint64_t npages = base::BytesToPages(mem.memory_size);
  if (npages > kMemMaxNrPages) return Error::kInvalid;

  AddressSpace& as = as_[as_id];
  Memslot* old = as.Read([&](auto& set) { return set.ById(id); });
  if (npages == 0) {
    if (!old) return Error::kInvalid;
    DeleteSlot(*old);
    return Status::Ok();
  }
  MemslotSpec spec{static_cast<uint16_t>(as_id), id, mem.flags,
                   base::GfnRange::FromCount(base::GpaToGfn(base::Gpa(mem.guest_phys_addr)), npages),
                   base::Hva(mem.userspace_addr),
                   (mem.flags & KVM_MEM_GUEST_MEMFD) ? base::ByteOffToPgOff(mem.guest_memfd_offset)
                                                     : base::PgOff(0)};
  if (!old) return CreateSlot(spec, mem);
  return ModifySlot(*old, spec);
}

Status Vm::CreateSlot(const MemslotSpec& spec, const kvm_userspace_memory_region2& mem) {
  if (nr_memslot_pages_ + spec.gfns.size() < nr_memslot_pages_) return Error::kInvalid;
  AddressSpace& as = as_[spec.as_id];
  if (as.Read([&](auto& set) { return set.FindOverlap(spec.gfns, nullptr); })) return Error::kExists;
  auto slot = std::make_unique<Memslot>(*this, spec);
  if (spec.flags & KVM_MEM_GUEST_MEMFD)
    TRY(BindGuestMemfd(*slot, static_cast<int>(mem.guest_memfd)));
  // The architecture's own limit comes last, after the bind (as KVM's
  // prepare step does); a failure here unbinds with the slot.
  if (spec.gfns.end.value() - 1 > kMaxGfn) return Error::kInvalid;
  // Before the slot is published: from here on, changes of the VMM's memory
  // in its range look at this VM (System::BeginHostRangeChange).
  sys_.NoteSlotMemory(base::HvaRange::FromCount(spec.userspace_addr, base::PagesToBytes(spec.gfns.size())));
  Memslot* s = slot.release();  // owned by the address space from here on
  as.Update(srcu_, [&](auto& set) { set.Insert(*s); });
  nr_memslot_pages_ += s->npages();
  return Status::Ok();
}

// Existing slots may move (new base GFN) or change flags; guest_memfd slots
// and changes of size, userspace address or READONLY are refused.
Status Vm::ModifySlot(Memslot& old, const MemslotSpec& spec) {
  if (spec.flags & KVM_MEM_GUEST_MEMFD) return Error::kInvalid;
  if (old.has_gmem()) return Error::kInvalid;
  if (spec.userspace_addr != old.userspace_addr() || spec.gfns.size() != old.npages() ||
      ((spec.flags ^ old.flags()) & KVM_MEM_READONLY))
    return Error::kInvalid;
  bool move = spec.gfns.begin != old.base_gfn();
  if (!move && spec.flags == old.flags()) return Status::Ok();
  AddressSpace& as = as_[spec.as_id];
  if (move) {
    if (as.Read([&](auto& set) { return set.FindOverlap(spec.gfns, &old); })) return Error::kExists;
    if (spec.gfns.end.value() - 1 > kMaxGfn) return Error::kInvalid;
  }
  auto* fresh = new Memslot(*this, spec);
  as.Update(srcu_, [&](auto& set) {
    set.Erase(old);
    set.Insert(*fresh);
  });
  ZapSlot(old);  // faults see the new slot now; drop what the old one mapped
  delete &old;   // no reader can see it after the update
  return Status::Ok();
}

// The slot leaves the published set first (after the update no fault can
// find it, and none still holds it: the SRCU wait covers whole faults), then
// its mappings are zapped and every vCPU's TLB flushed, and only then does
// the binding go, so no guest mapping outlives the memory behind it.
void Vm::DeleteSlot(Memslot& old) {
  AddressSpace& as = as_[old.as_id()];
  as.Update(srcu_, [&](auto& set) { set.Erase(old); });
  ZapSlot(old);
  nr_memslot_pages_ -= old.npages();
  delete &old;  // unbinds its guest_memfd range
}

// kvm_gmem_bind: the fd must be a guest_memfd of this VM, and the slot's
// range must fit in the file without overlapping another binding.
Status Vm::BindGuestMemfd(Memslot& slot, int fd) {
  base::RefPtr<FdObject> obj = sys_.fds().Lookup(fd);
  if (!obj) return fcntl(fd, F_GETFD) < 0 ? Error::kBadFd : Error::kInvalid;
  if (obj->kind() != FdObject::Kind::kGmem) return Error::kInvalid;
  gmem::File& file = static_cast<GmemFd&>(*obj).file();
  if (file.vm_id() != id_) return Error::kInvalid;
  auto range = base::PgOffRange::FromCount(slot.spec().gmem_base, slot.npages());
  uint64_t offset = base::PagesToBytes(range.begin.value());  // guest_memfd_offset, page-aligned
  if (static_cast<int64_t>(offset) < 0 || offset + base::PagesToBytes(slot.npages()) > file.size())
    return Error::kInvalid;
  TRY_ASSIGN(std::unique_ptr<gmem::Binding> binding, file.Bind(range, slot));
  slot.AttachBinding(std::move(binding));
  return Status::Ok();
}

Result<long> Vm::GetDirtyLog(unsigned long arg) {
  TRY_ASSIGN(kvm_dirty_log log, base::ReadUser<kvm_dirty_log>(arg));
  uint32_t as_id = log.slot >> 16;
  auto id = static_cast<uint16_t>(log.slot);
  if (as_id >= kAddressSpaces || id >= base::config::kMaxMemslots) return Error::kInvalid;
  base::MutexGuard g(slots_lock_);
  Memslot* slot = as_[as_id].Read([&](auto& set) { return set.ById(id); });
  if (!slot || !(slot->flags() & KVM_MEM_LOG_DIRTY_PAGES)) return Error::kNotFound;
  std::vector<uint64_t>& bitmap = slot->dirty_bitmap();
  TRY(base::CopyToUser(reinterpret_cast<uint64_t>(log.dirty_bitmap), bitmap.data(),
                       bitmap.size() * sizeof(uint64_t)));
  std::fill(bitmap.begin(), bitmap.end(), 0);
  return 0;
}

// KVM_SET_MEMORY_ATTRIBUTES: VM-wide, independent of memslots. A change
// invalidates guest mappings of the range in every address space.
Result<long> Vm::SetMemoryAttributes(unsigned long arg) {
  TRY_ASSIGN(kvm_memory_attributes a, base::ReadUser<kvm_memory_attributes>(arg));
  uint64_t supported = info_->has_private_mem ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0;
  if (a.flags) return Error::kInvalid;
  if (a.attributes & ~supported) return Error::kInvalid;
  if (a.size == 0 || a.address + a.size < a.address) return Error::kInvalid;
  if (!base::IsPageAligned(a.address) || !base::IsPageAligned(a.size)) return Error::kInvalid;
  base::GfnRange range{base::GpaToGfn(base::Gpa(a.address)),
                       base::GpaToGfn(base::Gpa(a.address + a.size))};
  base::MutexGuard g(slots_lock_);
  if (attributes_.RangeHas(range, a.attributes)) return 0;
  for (int as = 0; as < kAddressSpaces; as++) InvalidateBegin(as, range);
  SyncTlbs();  // no vCPU uses a translation of the old attributes after this returns
  attributes_.Set(range, a.attributes);
  for (int as = 0; as < kAddressSpaces; as++) InvalidateEnd(as, range);
  return 0;
}

}  // namespace kvmlike
