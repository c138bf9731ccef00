#include "gmem/file.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>

#include <cassert>
#include <climits>
#include <vector>

#include "base/config.h"
#include "gmem/inode.h"
#include "gmem/subsystem.h"

#ifndef FALLOC_FL_WRITE_ZEROES
#define FALLOC_FL_WRITE_ZEROES 0x80
#endif

namespace gmem {

using base::Error;
using base::RefPtr;
using base::Result;
using base::Status;

File::File(RefPtr<Inode> inode, uint64_t vm_id)
    : sys_(inode->subsystem()),
      id_(sys_.Register(*this)),
      vm_id_(vm_id),
      size_(inode->size()),
      flags_(inode->flags()),
      inode_id_(inode->id()),
      inode_(std::move(inode)) {}

RefPtr<File> File::Create(RefPtr<Inode> inode, uint64_t vm_id) {
  Inode& i = *inode;
  auto f = RefPtr<File>::Adopt(new File(std::move(inode), vm_id));
  i.LinkFile(*f);
  return f;
}

File::~File() {
  assert(released() && bindings_.empty());
  sys_.Unregister(*this);
}

void File::AddUser() { users_.fetch_add(1, std::memory_order_relaxed); }

void File::DropUser() {
  if (users_.fetch_sub(1, std::memory_order_acq_rel) == 1) ReleaseFile();
}

RefPtr<Inode> File::inode() const {
  base::MutexGuard g(lock_);
  return inode_;
}

// Release happens when Linux's kvm_gmem_release would run: the last fd and the
// last mapping are gone. Every bound memslot is severed here, without touching
// the memslot itself: the binding is invalidated (guest mappings zapped) and
// unlinked, and released_ makes later faults through it fail with EFAULT. The
// memslot keeps its Binding (and so this object) until it is deleted.
void File::ReleaseFile() {
  RefPtr<Inode> inode = this->inode();
  if (!inode) return;
  {
    base::WriteGuard inv(inode->invalidate_lock());
    released_.store(true, std::memory_order_release);
    PgOffRange all{PgOff(0), base::ByteOffToPgOff(size_)};
    std::vector<BindingTarget*> begun;
    BeginInvalidation(all, begun);
    for (BindingTarget* t : begun) t->SyncInvalidation();
    EndInvalidation(all);
    base::MutexGuard g(lock_);
    bindings_.clear();
    inode->UnlinkFile(*this);
    inode_.reset();
  }
  // The last file of the inode frees the memory here (outside every lock).
}

void File::BeginInvalidation(PgOffRange range, std::vector<BindingTarget*>& begun) {
  ForEachBinding(range, [&](Binding& b, PgOffRange r) {
    b.target().InvalidateBegin(r);
    begun.push_back(&b.target());
  });
}

void File::EndInvalidation(PgOffRange range) {
  ForEachBinding(range, [](Binding& b, PgOffRange r) { b.target().InvalidateEnd(r); });
}

Result<std::unique_ptr<Binding>> File::Bind(PgOffRange range, BindingTarget& target) {
  constexpr Error kOverlap = base::config::kGmemOverlapEexist ? Error::kExists : Error::kInvalid;
  RefPtr<Inode> inode = this->inode();
  if (!inode) return Error::kInvalid;
  if (range.empty() || range.end.value() > inode->nr_pages()) return Error::kInvalid;
  base::WriteGuard inv(inode->invalidate_lock());
  base::MutexGuard g(lock_);
  auto next = bindings_.lower_bound(range.begin.value());
  if (next != bindings_.end() && next->range().Overlaps(range)) return kOverlap;
  if (next != bindings_.begin() && std::prev(next)->range().Overlaps(range)) return kOverlap;
  std::unique_ptr<Binding> b(new Binding(RefPtr<File>::FromRaw(this), range, target));
  bindings_.insert(next, *b);
  if constexpr (base::config::kSlotsKeepFileInUse) AddUser();
  return b;
}

void File::Unbind(Binding& b) {
  if (RefPtr<Inode> inode = this->inode()) {
    base::WriteGuard inv(inode->invalidate_lock());
    base::MutexGuard g(lock_);
    if (b.hook_.is_linked()) bindings_.erase(bindings_.iterator_to(b));
  }
  if constexpr (base::config::kSlotsKeepFileInUse) DropUser();
}

Binding::Binding(RefPtr<File> file, PgOffRange range, BindingTarget& target)
    : file_(std::move(file)), range_(range), target_(&target) {}

Binding::~Binding() {
  file_->Unbind(*this);
  assert(!hook_.is_linked());
}

bool Binding::severed() const { return file_->released(); }

namespace {

// The VFS part of fallocate(2), in the order vfs_fallocate checks it.
Status CheckVfsFallocate(int mode, int64_t offset, int64_t len) {
  constexpr int kModeMask = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_ZERO_RANGE |
                            FALLOC_FL_INSERT_RANGE | FALLOC_FL_UNSHARE_RANGE |
                            FALLOC_FL_WRITE_ZEROES;
  if (offset < 0 || len <= 0) return Error::kInvalid;
  if (mode & ~(kModeMask | FALLOC_FL_KEEP_SIZE)) return Error::kNotSupported;
  switch (mode & kModeMask) {
    case 0:
    case FALLOC_FL_UNSHARE_RANGE:
    case FALLOC_FL_ZERO_RANGE:
      break;
    case FALLOC_FL_PUNCH_HOLE:
      if (!(mode & FALLOC_FL_KEEP_SIZE)) return Error::kNotSupported;
      break;
    case FALLOC_FL_COLLAPSE_RANGE:
    case FALLOC_FL_INSERT_RANGE:
    case FALLOC_FL_WRITE_ZEROES:
      if (mode & FALLOC_FL_KEEP_SIZE) return Error::kNotSupported;
      break;
    default:
      return Error::kNotSupported;
  }
  if (offset > INT64_MAX - len) return Error::kFileTooBig;
  return Status::Ok();
}

}  // namespace

// guest_memfd's own rules come after the VFS ones: KEEP_SIZE is mandatory, only
// PUNCH_HOLE may accompany it, and offset/len must be page aligned.
Status File::Fallocate(int fd, int mode, int64_t offset, int64_t len) {
  TRY(CheckVfsFallocate(mode, offset, len));
  if (!(mode & FALLOC_FL_KEEP_SIZE)) return Error::kNotSupported;
  if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE)) return Error::kNotSupported;
  uint64_t off = static_cast<uint64_t>(offset), n = static_cast<uint64_t>(len);
  if (!base::IsPageAligned(off) || !base::IsPageAligned(n)) return Error::kInvalid;
  RefPtr<Inode> inode = this->inode();
  if (!inode) return Error::kBadFd;  // cannot happen while the caller holds an fd
  PgOffRange range{base::ByteOffToPgOff(off), base::ByteOffToPgOff(off + n)};
  if (mode & FALLOC_FL_PUNCH_HOLE)
    TRY(inode->Punch(range));
  else
    TRY(inode->Allocate(range));
  // file_modified(): mtime and ctime move, as for any successful fallocate.
  struct timespec ts[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
  futimens(fd, ts);
  return Status::Ok();
}

}  // namespace gmem
