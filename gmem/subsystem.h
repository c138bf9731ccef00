// Subsystem: one instance of the guest_memfd memory-file subsystem (one per
// kvmlike System, i.e. per process). Owns the private-page FramePool and
// registries of live inodes and files for the debug query (leak oracle).
//
// Pinned by: the kvmlike System, which outlives every inode and file.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include <boost/intrusive/list.hpp>

#include "base/mutex.h"
#include "base/result.h"
#include "gmem/file.h"
#include "gmem/frame_pool.h"
#include "gmem/inode.h"

namespace gmem {

class Subsystem {
 public:
  explicit Subsystem(uint64_t pool_reserve_bytes) : pool_reserve_(pool_reserve_bytes) {}
  ~Subsystem();  // every inode and file must be gone
  Subsystem(const Subsystem&) = delete;
  Subsystem& operator=(const Subsystem&) = delete;

  // The pool, reserved on first use.
  base::Result<FramePool*> pool() TA_EXCLUDES(lock_);
  // The pool if it exists (for statistics), else null.
  FramePool* pool_if_created() const { return pool_ptr_.load(std::memory_order_acquire); }

  struct InodeInfo { uint32_t id; int64_t files; uint64_t pages; };
  struct FileInfo { uint32_t id; uint32_t inode_id; uint64_t vm_id; int64_t users; int64_t refs; bool released; };
  void ForEachInode(const std::function<void(const InodeInfo&)>& fn) TA_EXCLUDES(lock_);
  void ForEachFile(const std::function<void(const FileInfo&)>& fn) TA_EXCLUDES(lock_);

  // Registry maintenance (Inode and File constructors/destructors).
  uint32_t Register(Inode& i) TA_EXCLUDES(lock_);
  void Unregister(Inode& i) TA_EXCLUDES(lock_);
  uint32_t Register(File& f) TA_EXCLUDES(lock_);
  void Unregister(File& f) TA_EXCLUDES(lock_);

 private:
  const uint64_t pool_reserve_;
  base::Mutex lock_{base::LockClass::kLeaf};
  std::unique_ptr<FramePool> pool_ TA_GUARDED_BY(lock_);
  std::atomic<FramePool*> pool_ptr_{nullptr};
  uint32_t next_inode_id_ TA_GUARDED_BY(lock_) = 1;
  uint32_t next_file_id_ TA_GUARDED_BY(lock_) = 1;
  bi::list<Inode, bi::member_hook<Inode, SafeListHook, &Inode::registry_hook_>,
           bi::constant_time_size<false>> inodes_ TA_GUARDED_BY(lock_);
  bi::list<File, bi::member_hook<File, SafeListHook, &File::registry_hook_>,
           bi::constant_time_size<false>> files_ TA_GUARDED_BY(lock_);
};

}  // namespace gmem
