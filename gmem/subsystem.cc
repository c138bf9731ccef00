#include "gmem/subsystem.h"

#include <cassert>
#include <vector>

namespace gmem {

using base::MutexGuard;

Subsystem::~Subsystem() {
  MutexGuard g(lock_);
  assert(inodes_.empty() && files_.empty());
  // In a forked child the pool cannot be torn down (FramePool::OnForkChild).
  if (pool_ && pool_->forked()) (void)pool_.release();
}

base::Result<FramePool*> Subsystem::pool() {
  if (FramePool* p = pool_ptr_.load(std::memory_order_acquire)) return p;
  MutexGuard g(lock_);
  if (!pool_) {
    TRY_ASSIGN(pool_, FramePool::Create(pool_reserve_));
    pool_ptr_.store(pool_.get(), std::memory_order_release);
  }
  return pool_.get();
}

uint32_t Subsystem::Register(Inode& i) {
  MutexGuard g(lock_);
  inodes_.push_back(i);
  return next_inode_id_++;
}

void Subsystem::Unregister(Inode& i) {
  MutexGuard g(lock_);
  inodes_.erase(inodes_.iterator_to(i));
}

uint32_t Subsystem::Register(File& f) {
  MutexGuard g(lock_);
  files_.push_back(f);
  return next_file_id_++;
}

void Subsystem::Unregister(File& f) {
  MutexGuard g(lock_);
  files_.erase(files_.iterator_to(f));
}

namespace {

// Snapshots take references (unless the object is dying) under the registry
// lock and report outside it: reporting may take the objects' own locks,
// which come before this leaf lock in the lock order.
template <typename T, typename List>
std::vector<base::RefPtr<T>> Snapshot(List& list) {
  std::vector<base::RefPtr<T>> snap;
  for (T& obj : list)
    if (auto r = base::RefPtr<T>::TryFromRaw(&obj)) snap.push_back(std::move(r));
  return snap;
}

}  // namespace

void Subsystem::ForEachInode(const std::function<void(const InodeInfo&)>& fn) {
  std::vector<base::RefPtr<Inode>> snap;
  {
    MutexGuard g(lock_);
    snap = Snapshot<Inode>(inodes_);
  }
  for (auto& i : snap) fn({i->id(), i->ref_count() - 1, i->nr_present()});
}

void Subsystem::ForEachFile(const std::function<void(const FileInfo&)>& fn) {
  std::vector<base::RefPtr<File>> snap;
  {
    MutexGuard g(lock_);
    snap = Snapshot<File>(files_);
  }
  for (auto& f : snap)
    fn({f->id(), f->inode_id(), f->vm_id(), f->users(), f->ref_count() - 1, f->released()});
}

}  // namespace gmem
