// Inode: guest memory. Owns the pages of one guest_memfd (size and create flags
// fixed at creation) and the list of files (VM views) on it. Where pages live:
//   - MMAP|INIT_SHARED: the guest_memfd fd is a memfd of the inode's size and
//     its page cache is the memory. Host processes map the same pages with
//     plain mmap().
//   - otherwise: pages are frames of the private FramePool, reachable through
//     no fd; the memfd only carries the fd identity (fstat, dup, SCM_RIGHTS).
//
// Pinned by: its files (File::inode_), until the last one is released; pages
// are freed when the inode dies. Lock order: invalidate_lock_ (kInvalidate) →
// File::lock_ (kFile) → [targets take mmu locks] ; pages_lock_ (kPages) is
// taken alone or under invalidate_lock_.
#pragma once

#include <boost/intrusive/list.hpp>

#include <atomic>
#include <cstdint>
#include <utility>

#include "base/mutex.h"
#include "base/refptr.h"
#include "base/result.h"
#include "base/types.h"
#include "base/unique_fd.h"
#include "gmem/file.h"
#include "gmem/page_store.h"

namespace gmem {

class Subsystem;

inline constexpr uint64_t kFlagMmap = 1ull << 0;        // GUEST_MEMFD_FLAG_MMAP
inline constexpr uint64_t kFlagInitShared = 1ull << 1;  // GUEST_MEMFD_FLAG_INIT_SHARED

class Inode : public base::RefCounted<Inode> {
 public:
  struct Created;
  // A new inode of size bytes and its memfd (not close-on-exec). Validation of
  // size and flags against what the VM supports is the caller's (the ioctl).
  static base::Result<Created> Create(Subsystem& sys, uint64_t size, uint64_t flags);
  ~Inode();

  uint32_t id() const { return id_; }
  uint64_t size() const { return base::PagesToBytes(nr_pages_); }
  uint64_t nr_pages() const { return nr_pages_; }
  uint64_t flags() const { return flags_; }
  // Host faults on the memfd mapping succeed (INIT_SHARED with MMAP).
  bool memfd_backed() const { return (flags_ & (kFlagMmap | kFlagInitShared)) == (kFlagMmap | kFlagInitShared); }
  Subsystem& subsystem() const { return sys_; }

  // fallocate(KEEP_SIZE): range must lie inside the file (else kInvalid).
  base::Status Allocate(PgOffRange range);
  // fallocate(PUNCH_HOLE): invalidates every binding of every file over the
  // range, then frees the pages; the part past the end is ignored.
  base::Status Punch(PgOffRange range);

  // Present pages (pool frames or memfd pages resident in the page cache).
  uint64_t nr_present() const;

  // The host address of page off for a guest access (kvm_gmem_get_pfn): a pool
  // frame, allocated and zeroed on first use, or the memfd's page through
  // kvmlike's mapping of it. kHwPoison for a poisoned page; kNoMemory when no
  // frame (or no address space for the mapping) can be had.
  base::Result<uint8_t*> GetPage(PgOff off);
  // Debug/test query (stress test, invariant checks): the host address that
  // GetPage would return for page off right now, without allocating, zeroing
  // or failing — the pool frame of a present page (poisoned or not), the
  // memfd page through kvmlike's mapping once it exists, else null. A snapshot:
  // the answer is stable only while the caller keeps punches and faults of off
  // from running.
  uint8_t* PeekPage(PgOff off) const;
  // The host address of the 2 MiB block of pages at first (512-aligned), for a
  // 2 MiB guest mapping: 512 contiguous, 2 MiB-aligned host pages, allocated
  // and zeroed as GetPage does. kAgain when the block cannot be mapped whole
  // (partly populated on scattered frames, a poisoned page): map 4 KiB pages.
  base::Result<uint8_t*> GetHugePage(PgOff first);

  // Memory failure (a test hook): zaps the guest mappings of page off in every
  // binding, keeps the page, and makes later GetPage calls fail with kHwPoison.
  // kNotFound when the page is not allocated (or lives in the memfd).
  base::Status PoisonAndInvalidate(PgOff off);

  // File list maintenance (File::Create / File::Release).
  void LinkFile(File& f);
  void UnlinkFile(File& f) TA_REQUIRES(invalidate_lock_);

  base::SharedMutex& invalidate_lock() TA_RETURN_CAPABILITY(invalidate_lock_) { return invalidate_lock_; }

  SafeListHook registry_hook_;  // Subsystem's list of inodes (its lock)

 private:
  Inode(Subsystem& sys, uint64_t nr_pages, uint64_t flags, base::UniqueFd own);
  base::Status AllocateChunk(PgOffRange range);
  // memfd_backed(): page off through kvmlike's mapping of the memfd, made at
  // the first call.
  base::Result<uint8_t*> MemfdPage(PgOff off) TA_REQUIRES(pages_lock_);
  // The host address of a present pool page's frame, zeroed first if the page
  // is not uptodate yet (then marked so).
  uint8_t* UptodateFrame(PgOff off, PageStore::Page page, FramePool& pool) TA_REQUIRES(pages_lock_);
  base::Status PunchPages(PgOffRange range);

  // Calls Begin on construction and End on destruction for every binding of
  // every file that overlaps range.
  class InvalidationScope;

  Subsystem& sys_;
  uint32_t id_ = 0;
  const uint64_t nr_pages_;
  const uint64_t flags_;
  // memfd_backed(): kvmlike's own close-on-exec fd of the memfd, for fallocate
  // and for counting pages (fstat st_blocks), independent of the user's fds.
  const base::UniqueFd own_fd_;

  base::SharedMutex invalidate_lock_{base::LockClass::kInvalidate};
  // Files on this inode; a file leaves the list when it is released.
  bi::list<File, bi::member_hook<File, SafeListHook, &File::inode_hook_>,
           bi::constant_time_size<false>> files_ TA_GUARDED_BY(invalidate_lock_);

  mutable base::Mutex pages_lock_{base::LockClass::kPages};
  PageStore pages_ TA_GUARDED_BY(pages_lock_);
  // memfd_backed(): kvmlike's mapping of the whole memfd, made at the first
  // guest access (the VMM's own mappings are separate).
  uint8_t* shared_ TA_GUARDED_BY(pages_lock_) = nullptr;
};

struct Inode::Created {
  base::RefPtr<Inode> inode;
  base::UniqueFd memfd;
};

}  // namespace gmem
