#include "kvmlike/gmem_fd.h"

#include <sys/mman.h>

#include "gmem/inode.h"
#include "kvmlike/system.h"

namespace kvmlike {

using base::Error;
using base::Result;

GmemFd::~GmemFd() = default;

// guest_memfd has no ioctls (the file has no unlocked_ioctl).
Result<long> GmemFd::Ioctl(unsigned long, unsigned long) { return Error::kNoTty; }

// kvm_gmem_mmap: only with GUEST_MEMFD_FLAG_MMAP (else ENODEV), only shared
// mappings (else EINVAL); the gmem pseudo-filesystem is noexec (PROT_EXEC:
// EPERM). Host faults then succeed only on INIT_SHARED files and inside the
// file: an INIT_SHARED file maps the memfd itself (SIGBUS past the end, as
// Linux); any other file maps the memfd beyond its sealed end, so every
// access raises SIGBUS and no private byte is ever reachable.
Result<void*> GmemFd::Mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  if (!(file_->flags() & gmem::kFlagMmap)) return Error::kNoDevice;
  int type = flags & MAP_TYPE;
  if (type != MAP_SHARED && type != MAP_SHARED_VALIDATE) return Error::kInvalid;
  if (prot & PROT_EXEC) return Error::kPermission;
  bool faultable = (file_->flags() & gmem::kFlagInitShared) != 0;
  off_t where = faultable ? off : static_cast<off_t>(file_->size()) + off;
  void* p = mmap(addr, len, prot, flags | MAP_NORESERVE, fd, where);
  if (p == MAP_FAILED) return base::FromErrno(errno);
  return p;
}

// The memfd gives the identity (device, inode, owner, times); mode, size and
// block counts are guest_memfd's: a 0600 regular file whose pages are not
// accounted as blocks.
base::Status GmemFd::Fstat(int fd, struct stat* st) const {
  if (fstat(fd, st) != 0) return base::FromErrno(errno);
  st->st_mode = S_IFREG | 0600;
  st->st_size = static_cast<off_t>(file_->size());
  st->st_blksize = static_cast<blksize_t>(base::kPageSize);
  st->st_blocks = 0;
  return base::Status::Ok();
}

}  // namespace kvmlike
