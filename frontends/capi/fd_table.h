// FdTable: the process's kvmlike fds, keyed by the kernel fd numbers that back
// them, and the host mappings of kvmlike objects. Shared by the C ABI and the
// interposer; owned by the Frontend.
//
// Each fd entry holds one reference and one user of its object; each host
// mapping holds one reference and one user for as long as any part of it
// stays mapped. Owns(fd) is lock-free (the interposer asks it on every call).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>

#include "base/mutex.h"
#include "kvmlike/fd_object.h"

namespace frontend {

using kvmlike::FdObject;

class FdTable final : public kvmlike::FdDirectory {
 public:
  FdTable();
  ~FdTable();

  // kvmlike::FdDirectory
  int Install(base::UniqueFd fd, base::RefPtr<FdObject> obj) override;
  base::RefPtr<FdObject> Lookup(int fd) override;

  bool Owns(int fd) const;
  // fd was duplicated by the kernel to newfd: newfd names the same object.
  void Duplicated(int oldfd, int newfd);
  // fd no longer names its object (closed). Drops the entry's user and ref.
  void Forget(int fd);

  // A host mapping [addr, addr+len) of obj was created.
  void AddMapping(void* addr, size_t len, base::RefPtr<FdObject> obj);
  // [addr, addr+len) is no longer mapped (munmap, or replaced by MAP_FIXED):
  // mappings lose those pieces; a mapping with no piece left drops its user.
  void RemoveMappings(void* addr, size_t len);
  bool OwnsRange(const void* addr, size_t len);
  // The kernel moved [old, +old_len) to [to, +new_len): the mapping uses found
  // there now cover the new range.
  void MoveMappings(void* old, size_t old_len, void* to, size_t new_len);
  // Forget every fd in [first, last].
  void ForgetRange(unsigned int first, unsigned int last);

 private:
  static constexpr int kChunkShift = 10;
  static constexpr int kChunkSize = 1 << kChunkShift;
  static constexpr int kMaxChunks = 1 << 10;  // fds below 1M
  struct Chunk {
    std::atomic<FdObject*> e[kChunkSize];
  };
  std::atomic<FdObject*>* Entry(int fd, bool create);
  void Set(int fd, base::RefPtr<FdObject> obj);

  std::atomic<Chunk*> chunks_[kMaxChunks];
  base::SharedMutex lock_{base::LockClass::kLeaf};

  // A user of an object held by a mapping; dropped when the last piece goes.
  struct MappingUse {
    explicit MappingUse(base::RefPtr<FdObject> o) : obj(std::move(o)) {}
    ~MappingUse() { obj->DropUser(); }
    base::RefPtr<FdObject> obj;
  };
  struct Piece {
    uintptr_t end;
    std::shared_ptr<MappingUse> use;
  };
  base::Mutex map_lock_{base::LockClass::kLeaf};
  std::map<uintptr_t, Piece> pieces_ TA_GUARDED_BY(map_lock_);  // start -> piece
  std::atomic<size_t> nr_pieces_{0};
};

}  // namespace frontend
