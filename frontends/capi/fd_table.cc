#include "frontends/capi/fd_table.h"

#include <algorithm>
#include <vector>

namespace frontend {

using base::RefPtr;

FdTable::FdTable() {
  for (auto& c : chunks_) c.store(nullptr, std::memory_order_relaxed);
}

FdTable::~FdTable() {
  for (int fd = 0; fd < kMaxChunks * kChunkSize; fd += kChunkSize)
    if (chunks_[fd >> kChunkShift].load()) {
      for (int i = 0; i < kChunkSize; i++) Forget(fd + i);
      delete chunks_[fd >> kChunkShift].load();
    }
}

std::atomic<FdObject*>* FdTable::Entry(int fd, bool create) {
  if (fd < 0 || fd >= kMaxChunks * kChunkSize) return nullptr;
  std::atomic<Chunk*>& slot = chunks_[fd >> kChunkShift];
  Chunk* c = slot.load(std::memory_order_acquire);
  if (!c && create) {
    auto* fresh = new Chunk();
    for (auto& e : fresh->e) e.store(nullptr, std::memory_order_relaxed);
    if (slot.compare_exchange_strong(c, fresh, std::memory_order_acq_rel))
      c = fresh;
    else
      delete fresh;
  }
  return c ? &c->e[fd & (kChunkSize - 1)] : nullptr;
}

bool FdTable::Owns(int fd) const {
  if (fd < 0 || fd >= kMaxChunks * kChunkSize) return false;
  Chunk* c = chunks_[fd >> kChunkShift].load(std::memory_order_acquire);
  return c && c->e[fd & (kChunkSize - 1)].load(std::memory_order_acquire) != nullptr;
}

// The entry takes over obj's reference; a previous occupant (an fd the kernel
// reused without us seeing the close) loses its user and reference.
void FdTable::Set(int fd, RefPtr<FdObject> obj) {
  FdObject* old;
  {
    base::WriteGuard g(lock_);
    std::atomic<FdObject*>* e = Entry(fd, true);
    if (!e) return;
    old = e->exchange(obj.Leak(), std::memory_order_acq_rel);
  }
  if (old) {
    old->DropUser();
    RefPtr<FdObject>::Adopt(old).reset();
  }
}

int FdTable::Install(base::UniqueFd fd, RefPtr<FdObject> obj) {
  int n = fd.release();
  Set(n, std::move(obj));
  return n;
}

RefPtr<FdObject> FdTable::Lookup(int fd) {
  base::SharedGuard g(lock_);
  std::atomic<FdObject*>* e = Entry(fd, false);
  return e ? RefPtr<FdObject>::FromRaw(e->load(std::memory_order_acquire)) : nullptr;
}

void FdTable::Duplicated(int oldfd, int newfd) {
  RefPtr<FdObject> obj = Lookup(oldfd);
  if (!obj) return;
  obj->AddUser();
  Set(newfd, std::move(obj));
}

void FdTable::Forget(int fd) {
  FdObject* old = nullptr;
  {
    base::WriteGuard g(lock_);
    if (std::atomic<FdObject*>* e = Entry(fd, false))
      old = e->exchange(nullptr, std::memory_order_acq_rel);
  }
  if (!old) return;
  // Outside the table lock: the last user of a VM or guest_memfd file tears
  // it down here.
  old->DropUser();
  RefPtr<FdObject>::Adopt(old).reset();
}

void FdTable::AddMapping(void* addr, size_t len, RefPtr<FdObject> obj) {
  auto start = reinterpret_cast<uintptr_t>(addr);
  auto use = std::make_shared<MappingUse>(std::move(obj));
  base::MutexGuard g(map_lock_);
  pieces_[start] = Piece{start + len, std::move(use)};
  nr_pieces_.store(pieces_.size(), std::memory_order_release);
}

void FdTable::RemoveMappings(void* addr, size_t len) {
  if (nr_pieces_.load(std::memory_order_acquire) == 0) return;
  uintptr_t b = reinterpret_cast<uintptr_t>(addr), e = b + len;
  std::vector<std::shared_ptr<MappingUse>> dropped;  // released outside the lock
  {
    base::MutexGuard g(map_lock_);
    auto it = pieces_.upper_bound(b);
    if (it != pieces_.begin()) --it;
    while (it != pieces_.end() && it->first < e) {
      uintptr_t ps = it->first, pe = it->second.end;
      if (pe <= b) {
        ++it;
        continue;
      }
      Piece p = std::move(it->second);
      it = pieces_.erase(it);
      if (ps < b) pieces_[ps] = Piece{b, p.use};
      if (pe > e) it = pieces_.emplace(e, Piece{pe, p.use}).first;
      dropped.push_back(std::move(p.use));
    }
    nr_pieces_.store(pieces_.size(), std::memory_order_release);
  }
}

void FdTable::MoveMappings(void* old, size_t old_len, void* to, size_t new_len) {
  std::shared_ptr<MappingUse> use;
  {
    base::MutexGuard g(map_lock_);
    auto it = pieces_.find(reinterpret_cast<uintptr_t>(old));
    if (it == pieces_.end()) return;
    use = it->second.use;
  }
  RemoveMappings(old, old_len);
  base::MutexGuard g(map_lock_);
  auto start = reinterpret_cast<uintptr_t>(to);
  pieces_[start] = Piece{start + new_len, std::move(use)};
  nr_pieces_.store(pieces_.size(), std::memory_order_release);
}

void FdTable::ForgetRange(unsigned int first, unsigned int last) {
  for (unsigned int chunk = first >> kChunkShift; chunk < kMaxChunks && chunk <= (last >> kChunkShift); chunk++) {
    if (!chunks_[chunk].load(std::memory_order_acquire)) continue;
    unsigned int lo = std::max(first, chunk << kChunkShift);
    unsigned int hi = std::min(last, ((chunk + 1) << kChunkShift) - 1);
    for (unsigned int fd = lo; fd <= hi; fd++)
      if (Owns(static_cast<int>(fd))) Forget(static_cast<int>(fd));
  }
}

bool FdTable::OwnsRange(const void* addr, size_t len) {
  if (nr_pieces_.load(std::memory_order_acquire) == 0) return false;
  uintptr_t b = reinterpret_cast<uintptr_t>(addr), e = b + len;
  base::MutexGuard g(map_lock_);
  auto it = pieces_.upper_bound(b);
  if (it != pieces_.begin()) --it;
  for (; it != pieces_.end() && it->first < e; ++it)
    if (it->second.end > b) return true;
  return false;
}

}  // namespace frontend
