#include "gmem/inode.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "base/interruptible.h"
#include "gmem/subsystem.h"

namespace gmem {

using base::Error;
using base::Result;
using base::Status;

namespace {

// The fd of every guest_memfd: a memfd of the file's size, sealed against
// resizing so that no process, interposed or not, can change the size Linux
// fixes at creation. Not close-on-exec, as a guest_memfd fd is not.
Result<base::UniqueFd> CreateMemfd(uint64_t size) {
  base::UniqueFd fd(memfd_create("kvm-gmem", MFD_ALLOW_SEALING));
  if (!fd.valid()) return errno == EMFILE || errno == ENFILE ? Error::kBadFd : Error::kNoMemory;
  if (ftruncate(fd.get(), static_cast<off_t>(size)) != 0) return Error::kNoMemory;
  if (fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
    return Error::kNoMemory;
  return fd;
}

// Populate works in chunks of 32 MiB between signal checks.
constexpr uint64_t kAllocChunkPages = 8192;

}  // namespace

Inode::Inode(Subsystem& sys, uint64_t nr_pages, uint64_t flags, base::UniqueFd own)
    : sys_(sys), nr_pages_(nr_pages), flags_(flags), own_fd_(std::move(own)), pages_(nr_pages) {
  id_ = sys_.Register(*this);
}

Result<Inode::Created> Inode::Create(Subsystem& sys, uint64_t size, uint64_t flags) {
  TRY_ASSIGN(base::UniqueFd fd, CreateMemfd(size));
  base::UniqueFd own;
  bool memfd_backed = (flags & (kFlagMmap | kFlagInitShared)) == (kFlagMmap | kFlagInitShared);
  if (memfd_backed) {
    own = base::DupOwnFd(fd.get());
    if (!own.valid()) return Error::kNoMemory;
  }
  auto inode = base::RefPtr<Inode>::Adopt(
      new Inode(sys, base::BytesToPages(size), flags, std::move(own)));
  return Created{std::move(inode), std::move(fd)};
}

Inode::~Inode() {
  {
    base::MutexGuard g(pages_lock_);
    if (FramePool* pool = sys_.pool_if_created()) pages_.FreeAll(*pool);
    if (shared_) munmap(shared_, size());
  }
  sys_.Unregister(*this);
}

void Inode::LinkFile(File& f) {
  base::WriteGuard g(invalidate_lock_);
  files_.push_back(f);
}

void Inode::UnlinkFile(File& f) { files_.erase(files_.iterator_to(f)); }

// Invalidation brackets the removal of pages: every binding that maps part of
// the range is told before the pages go (so no guest mapping can point at a
// freed page) and again after (so faults that raced the punch retry and see
// the hole), as KVM's mmu_invalidate begin/end do.
class Inode::InvalidationScope {
 public:
  // Vcpus are waited for after every file lock is dropped: a vCPU's fault
  // path may take a file lock before it notices the invalidation.
  InvalidationScope(Inode& inode, PgOffRange range) TA_REQUIRES(inode.invalidate_lock_)
      : inode_(inode), range_(range) {
    std::vector<BindingTarget*> begun;
    for (File& f : inode_.files_) f.BeginInvalidation(range_, begun);
    for (BindingTarget* t : begun) t->SyncInvalidation();
  }
  ~InvalidationScope() TA_NO_THREAD_SAFETY_ANALYSIS {
    for (File& f : inode_.files_) f.EndInvalidation(range_);
  }

 private:
  Inode& inode_;
  PgOffRange range_;
};

// Allocation is interruptible, as in the kernel: a signal that arrives between
// chunks ends it with EINTR, keeping what was allocated so far.
Status Inode::Allocate(PgOffRange range) {
  if (range.end.value() > nr_pages_) return Error::kInvalid;
  base::InterruptibleSection signals;
  for (PgOff pos = range.begin; pos < range.end;) {
    PgOff end = std::min(range.end, pos + kAllocChunkPages);
    TRY(AllocateChunk({pos, end}));
    pos = end;
    if (pos < range.end && signals.Pending()) return Error::kInterrupted;
  }
  return Status::Ok();
}

Status Inode::AllocateChunk(PgOffRange range) {
  if (memfd_backed()) {
    off_t off = static_cast<off_t>(base::PagesToBytes(range.begin.value()));
    off_t len = static_cast<off_t>(base::PagesToBytes(range.size()));
    if (fallocate(own_fd_.get(), FALLOC_FL_KEEP_SIZE, off, len) != 0) return base::FromErrno(errno);
    return Status::Ok();
  }
  TRY_ASSIGN(FramePool * pool, sys_.pool());
  base::SharedGuard inv(invalidate_lock_);
  base::MutexGuard g(pages_lock_);
  return pages_.Populate(range, *pool);
}

Status Inode::Punch(PgOffRange range) {
  if (range.begin.value() >= nr_pages_) return Status::Ok();
  if (range.end.value() > nr_pages_) range.end = PgOff(nr_pages_);
  base::WriteGuard inv(invalidate_lock_);
  InvalidationScope scope(*this, range);
  return PunchPages(range);
}

Status Inode::PunchPages(PgOffRange range) {
  if (memfd_backed()) {
    off_t off = static_cast<off_t>(base::PagesToBytes(range.begin.value()));
    off_t len = static_cast<off_t>(base::PagesToBytes(range.size()));
    if (fallocate(own_fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len) != 0)
      return Error::kNoMemory;
    return Status::Ok();
  }
  FramePool* pool = sys_.pool_if_created();
  if (!pool) return Status::Ok();
  base::MutexGuard g(pages_lock_);
  pages_.Punch(range, *pool);
  return Status::Ok();
}

// The mapping is 2 MiB aligned, so that aligned blocks of the file can back
// 2 MiB leaves.
Result<uint8_t*> Inode::MemfdPage(PgOff off) {
  if (!shared_) {
    void* p = MapHugeAligned(size(), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, own_fd_.get());
    if (p == MAP_FAILED) return Error::kNoMemory;
    shared_ = static_cast<uint8_t*>(p);
  }
  return shared_ + base::PagesToBytes(off.value());
}

// A pool frame is zeroed the first time a guest uses it, not at fallocate (as
// the kernel zeroes a folio that is not yet uptodate).
uint8_t* Inode::UptodateFrame(PgOff off, PageStore::Page page, FramePool& pool) {
  auto* host = static_cast<uint8_t*>(pool.Address(page.pfn));
  if (!page.uptodate) {
    std::memset(host, 0, base::kPageSize);
    pages_.SetUptodate(off);
  }
  return host;
}

// memfd pages come zeroed from the host when first touched.
Result<uint8_t*> Inode::GetPage(PgOff off) {
  if (off.value() >= nr_pages_) return Error::kInvalid;
  base::MutexGuard g(pages_lock_);
  if (memfd_backed()) return MemfdPage(off);
  PageStore::Page page = pages_.Lookup(off);
  if (!page.present) {
    TRY_ASSIGN(FramePool * pool, sys_.pool());
    TRY(pages_.Populate({off, off + 1}, *pool));
    page = pages_.Lookup(off);
  }
  if (page.hwpoison) return Error::kHwPoison;
  return UptodateFrame(off, page, *sys_.pool_if_created());
}

uint8_t* Inode::PeekPage(PgOff off) const {
  if (off.value() >= nr_pages_) return nullptr;
  base::MutexGuard g(pages_lock_);
  if (memfd_backed()) return shared_ ? shared_ + base::PagesToBytes(off.value()) : nullptr;
  PageStore::Page page = pages_.Lookup(off);
  FramePool* pool = sys_.pool_if_created();
  if (!page.present || !pool) return nullptr;
  return static_cast<uint8_t*>(pool->Address(page.pfn));
}

Result<uint8_t*> Inode::GetHugePage(PgOff first) {
  if (first.value() % kHugeFrames || first.value() + kHugeFrames > nr_pages_) return Error::kInvalid;
  base::MutexGuard g(pages_lock_);
  if (memfd_backed()) return MemfdPage(first);
  TRY_ASSIGN(FramePool * pool, sys_.pool());
  TRY_ASSIGN(Pfn pfn, pages_.PopulateHuge(first, *pool));
  for (uint64_t i = 0; i < kHugeFrames; i++) {
    PageStore::Page page = pages_.Lookup(first + i);
    if (page.hwpoison) return Error::kAgain;
    UptodateFrame(first + i, page, *pool);
  }
  return static_cast<uint8_t*>(pool->Address(pfn));
}

Status Inode::PoisonAndInvalidate(PgOff off) {
  base::WriteGuard inv(invalidate_lock_);
  InvalidationScope scope(*this, {off, off + 1});
  base::MutexGuard g(pages_lock_);
  if (memfd_backed() || !pages_.Lookup(off).present) return Error::kNotFound;
  pages_.SetHwPoison(off);
  return Status::Ok();
}

uint64_t Inode::nr_present() const {
  if (!memfd_backed()) {
    base::MutexGuard g(pages_lock_);
    return pages_.nr_present();
  }
  // st_blocks counts the memfd's pages, allocated or touched (mincore would
  // miss pages that were fallocated but never touched).
  struct stat st;
  if (fstat(own_fd_.get(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_blocks) * 512 / base::kPageSize;
}

}  // namespace gmem
