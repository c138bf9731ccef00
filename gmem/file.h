// File: one VM's view of a guest_memfd inode — what an fd returned by
// KVM_CREATE_GUEST_MEMFD names. It records which ranges of the inode are bound
// to which memslots (BindingSet) and carries two counts:
//   users — open fds and host mappings. When it drops to zero the file is
//           released, exactly when Linux releases it: every binding is
//           invalidated and unlinked (later faults on those slots fail with
//           EFAULT), the file leaves the inode and drops its inode reference.
//   refs  — object lifetime (base::RefCounted): the creator's handle and one
//           per Binding. After release, bindings keep only the husk.
// The file never references its VM: vm_id() is a weak identity used to refuse
// binding another VM's file.
//
// Pinned by: fd-table entries and host mappings (users + one ref each, held by
// the front-end), Bindings (refs). Thread safety: all methods are thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include <boost/intrusive/list.hpp>

#include "base/mutex.h"
#include "base/refptr.h"
#include "base/result.h"
#include "base/types.h"
#include "gmem/binding.h"

namespace gmem {

class Inode;
class Subsystem;
namespace bi = boost::intrusive;
using SafeListHook = bi::list_member_hook<bi::link_mode<bi::safe_link>>;

class File : public base::RefCounted<File> {
 public:
  // A new file on inode for VM vm_id, with one user (the creating fd).
  static base::RefPtr<File> Create(base::RefPtr<Inode> inode, uint64_t vm_id);
  ~File();

  uint32_t id() const { return id_; }
  uint64_t vm_id() const { return vm_id_; }
  uint64_t size() const { return size_; }
  uint64_t flags() const { return flags_; }
  uint32_t inode_id() const { return inode_id_; }
  Subsystem& subsystem() const { return sys_; }

  void AddUser();
  void DropUser();  // the last one releases the file
  int64_t users() const { return users_.load(std::memory_order_relaxed); }
  bool released() const { return released_.load(std::memory_order_acquire); }

  // The inode while the file is not released (a new reference), else null.
  base::RefPtr<Inode> inode() const TA_EXCLUDES(lock_);

  // Binds [range) of the file to target. kInvalid when the file is released, the
  // range does not fit in the file, or it overlaps an existing binding (kExists
  // with CONFIG_GMEM_OVERLAP_EEXIST, as Linux 7.2).
  base::Result<std::unique_ptr<Binding>> Bind(PgOffRange range, BindingTarget& target)
      TA_EXCLUDES(lock_);

  // The guest_memfd fallocate(2) file operation. fd is the caller's fd, whose
  // mtime/ctime a successful call updates. Mode and range rules are Linux's
  // (VFS, then guest_memfd).
  base::Status Fallocate(int fd, int mode, int64_t offset, int64_t len);

  SafeListHook inode_hook_;     // Inode::files_, under the inode's invalidate lock
  SafeListHook registry_hook_;  // Subsystem's list of files (its lock)

 private:
  friend class Binding;
  friend class Inode;
  File(base::RefPtr<Inode> inode, uint64_t vm_id);
  void ReleaseFile();
  void Unbind(Binding& b);
  // Invalidation of the bindings over range (ReleaseFile, Inode's
  // InvalidationScope), with the inode's invalidate lock held exclusively.
  // Begin tells each binding and appends its target to begun, for the caller
  // to SyncInvalidation once no file lock is held; the pointers stay valid
  // while the invalidate lock is held, since unbinding needs it.
  void BeginInvalidation(PgOffRange range, std::vector<BindingTarget*>& begun) TA_EXCLUDES(lock_);
  void EndInvalidation(PgOffRange range) TA_EXCLUDES(lock_);

  Subsystem& sys_;
  const uint32_t id_;
  const uint64_t vm_id_;
  const uint64_t size_;
  const uint64_t flags_;
  const uint32_t inode_id_;
  std::atomic<int64_t> users_{1};
  std::atomic<bool> released_{false};

  mutable base::Mutex lock_{base::LockClass::kFile};
  base::RefPtr<Inode> inode_ TA_GUARDED_BY(lock_);  // null once released
  BindingSet bindings_ TA_GUARDED_BY(lock_);

  // Bindings overlapping range (inode invalidate lock held exclusively, file
  // lock taken inside).
  template <typename Fn>
  void ForEachBinding(PgOffRange range, Fn&& fn) TA_EXCLUDES(lock_) {
    base::MutexGuard g(lock_);
    auto it = bindings_.upper_bound(range.begin.value());
    if (it != bindings_.begin()) --it;
    for (; it != bindings_.end() && it->range().begin < range.end; ++it) {
      PgOffRange r = it->range().Intersect(range);
      if (!r.empty()) fn(*it, r);
    }
  }
};

}  // namespace gmem
