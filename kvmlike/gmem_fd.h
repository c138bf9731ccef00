// GmemFd: the object a guest_memfd fd names (one per gmem::File). Every fd
// entry and host mapping of it is a user of the file; the file's release
// happens when the last one goes. It answers what Linux's guest_memfd file
// operations answer: no ioctls, fallocate, mmap only with FLAG_MMAP and
// MAP_SHARED, fstat of an S_IFREG 0600 file of the creation size.
#pragma once

#include <sys/stat.h>

#include "base/refptr.h"
#include "gmem/file.h"
#include "kvmlike/fd_object.h"

namespace kvmlike {

class System;

class GmemFd final : public FdObject {
 public:
  GmemFd(System& sys, base::RefPtr<gmem::File> file) : sys_(sys), file_(std::move(file)) {}
  ~GmemFd() override;

  Kind kind() const override { return Kind::kGmem; }
  void AddUser() override { file_->AddUser(); }
  void DropUser() override { file_->DropUser(); }
  base::Result<long> Ioctl(unsigned long cmd, unsigned long arg) override;

  gmem::File& file() const { return *file_; }

  base::Status Fallocate(int fd, int mode, int64_t offset, int64_t len) {
    return file_->Fallocate(fd, mode, offset, len);
  }
  // mmap(2) of fd (which names this object). On success the mapping is a
  // user of the file; the caller drops it when the mapping is gone.
  base::Result<void*> Mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off);
  // fstat(2): the memfd's identity (dev, ino, times) with guest_memfd's mode,
  // size and block counts.
  base::Status Fstat(int fd, struct stat* st) const;

 private:
  System& sys_;
  base::RefPtr<gmem::File> file_;
};

}  // namespace kvmlike
