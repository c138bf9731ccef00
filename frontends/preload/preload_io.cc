// File operations on kvmlike fds: fallocate and ftruncate are kvmlike's to implement;
// read, write, lseek and their positional and vectored forms are refused the way Linux
// refuses them on these files (kvmlike_file_op knows the errno for each kind of file).
//
// The checks Linux makes before it looks at the file at all (a negative offset, an unknown
// whence) are made here, because kvmlike_file_op is not given the offset or whence.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "frontends/preload/preload_abi.h"
#include "frontends/preload/preload_hooks.h"
#include "frontends/preload/preload_libc.h"

namespace preload {

namespace {

// The largest whence Linux's lseek accepts.
constexpr int kSeekMax = SEEK_HOLE;

// Block size glibc's posix_fallocate emulation steps by on these files (it caps the file
// system's block size at 4096, and the pseudo file systems report PAGE_SIZE).
constexpr off_t kEmulationStep = 4096;

ssize_t Fail(int err) {
  errno = err;
  return -1;
}

// glibc's posix_fallocate falls back to emulating allocation by reading and writing one
// byte per block when fallocate(mode 0) answers EOPNOTSUPP, as it does on guest_memfd.
// Every read and write of a kvmlike file fails, so the emulation can only end with the
// error of its first check that fails; this computes that error without writing anything.
// (offset, len) were already validated by fallocate, which checks them first.
int EmulatedAllocationError(int fd, off_t offset, off_t len) {
  int flags = FcntlOwned(fd, F_GETFL, 0, libc::fcntl);
  if (flags < 0 || (flags & O_APPEND) != 0) return EBADF;
  struct stat st;
  if (kvmlike_fstat(fd, &st) != 0) return EBADF;
  if (S_ISFIFO(st.st_mode)) return ESPIPE;
  if (!S_ISREG(st.st_mode)) return ENODEV;
  off_t first = offset + (len - 1) % kEmulationStep;
  auto op = first < st.st_size ? KVMLIKE_OP_PREAD : KVMLIKE_OP_PWRITE;
  return kvmlike_file_op(fd, op) < 0 ? errno : 0;
}

}  // namespace

ssize_t PositionalOwned(int fd, off_t offset, enum kvmlike_file_op op) {
  if (offset < 0) return Fail(EINVAL);
  return kvmlike_file_op(fd, op);
}

ssize_t PositionalV2Owned(int fd, off_t offset, enum kvmlike_file_op sequential,
                          enum kvmlike_file_op positional) {
  if (offset == -1) return kvmlike_file_op(fd, sequential);
  return PositionalOwned(fd, offset, positional);
}

off_t LseekOwned(int fd, int whence) {
  if (whence < 0 || whence > kSeekMax) return Fail(EINVAL);
  return kvmlike_file_op(fd, KVMLIKE_OP_LSEEK);
}

int PosixFallocateOwned(int fd, off_t offset, off_t len) {
  int saved_errno = errno;
  int err = kvmlike_fallocate(fd, 0, offset, len) == 0 ? 0 : errno;
  if (err == EOPNOTSUPP) err = EmulatedAllocationError(fd, offset, len);
  errno = saved_errno;
  return err;
}

}  // namespace preload

namespace libc = preload::libc;
using preload::PositionalOwned;
using preload::PositionalV2Owned;

PRELOAD_EXPORT int fallocate(int fd, int mode, off_t offset, off_t len) {
  if (kvmlike_owns_fd(fd)) return kvmlike_fallocate(fd, mode, offset, len);
  return libc::fallocate(fd, mode, offset, len);
}

PRELOAD_EXPORT int fallocate64(int fd, int mode, off64_t offset, off64_t len) {
  if (kvmlike_owns_fd(fd)) return kvmlike_fallocate(fd, mode, offset, len);
  return libc::fallocate64(fd, mode, offset, len);
}

PRELOAD_EXPORT int posix_fallocate(int fd, off_t offset, off_t len) {
  if (kvmlike_owns_fd(fd)) return preload::PosixFallocateOwned(fd, offset, len);
  return libc::posix_fallocate(fd, offset, len);
}

PRELOAD_EXPORT int posix_fallocate64(int fd, off64_t offset, off64_t len) {
  if (kvmlike_owns_fd(fd)) return preload::PosixFallocateOwned(fd, offset, len);
  return libc::posix_fallocate64(fd, offset, len);
}

PRELOAD_EXPORT int ftruncate(int fd, off_t len) {
  if (kvmlike_owns_fd(fd)) return kvmlike_ftruncate(fd, len);
  return libc::ftruncate(fd, len);
}

PRELOAD_EXPORT int ftruncate64(int fd, off64_t len) {
  if (kvmlike_owns_fd(fd)) return kvmlike_ftruncate(fd, len);
  return libc::ftruncate64(fd, len);
}

// Attribute changes: guest_memfd refuses every setattr; other kvmlike files
// let the kernel answer.
PRELOAD_EXPORT int fchmod(int fd, mode_t mode) {
  if (kvmlike_owns_fd(fd)) {
    int r = kvmlike_setattr(fd);
    if (r != preload::kPassToKernel) return r;
  }
  return libc::fchmod(fd, mode);
}

PRELOAD_EXPORT int fchown(int fd, uid_t owner, gid_t group) {
  if (kvmlike_owns_fd(fd)) {
    int r = kvmlike_setattr(fd);
    if (r != preload::kPassToKernel) return r;
  }
  return libc::fchown(fd, owner, group);
}

PRELOAD_EXPORT int futimens(int fd, const struct timespec times[2]) {
  if (kvmlike_owns_fd(fd)) {
    int r = kvmlike_setattr(fd);
    if (r != preload::kPassToKernel) return r;
  }
  return libc::futimens(fd, times);
}

PRELOAD_EXPORT off_t lseek(int fd, off_t offset, int whence) {
  if (kvmlike_answers_file_io(fd)) return preload::LseekOwned(fd, whence);
  return libc::lseek(fd, offset, whence);
}

PRELOAD_EXPORT off64_t lseek64(int fd, off64_t offset, int whence) {
  if (kvmlike_answers_file_io(fd)) return preload::LseekOwned(fd, whence);
  return libc::lseek64(fd, offset, whence);
}

PRELOAD_EXPORT ssize_t read(int fd, void* buf, size_t count) {
  if (kvmlike_answers_file_io(fd)) return kvmlike_file_op(fd, KVMLIKE_OP_READ);
  return libc::read(fd, buf, count);
}

PRELOAD_EXPORT ssize_t write(int fd, const void* buf, size_t count) {
  if (kvmlike_answers_file_io(fd)) return kvmlike_file_op(fd, KVMLIKE_OP_WRITE);
  return libc::write(fd, buf, count);
}

PRELOAD_EXPORT ssize_t pread(int fd, void* buf, size_t count, off_t offset) {
  if (kvmlike_answers_file_io(fd)) return PositionalOwned(fd, offset, KVMLIKE_OP_PREAD);
  return libc::pread(fd, buf, count, offset);
}

PRELOAD_EXPORT ssize_t pread64(int fd, void* buf, size_t count, off64_t offset) {
  if (kvmlike_answers_file_io(fd)) return PositionalOwned(fd, offset, KVMLIKE_OP_PREAD);
  return libc::pread64(fd, buf, count, offset);
}

PRELOAD_EXPORT ssize_t pwrite(int fd, const void* buf, size_t count, off_t offset) {
  if (kvmlike_answers_file_io(fd)) return PositionalOwned(fd, offset, KVMLIKE_OP_PWRITE);
  return libc::pwrite(fd, buf, count, offset);
}

PRELOAD_EXPORT ssize_t pwrite64(int fd, const void* buf, size_t count, off64_t offset) {
  if (kvmlike_answers_file_io(fd)) return PositionalOwned(fd, offset, KVMLIKE_OP_PWRITE);
  return libc::pwrite64(fd, buf, count, offset);
}

PRELOAD_EXPORT ssize_t readv(int fd, const struct iovec* iov, int iovcnt) {
  if (kvmlike_answers_file_io(fd)) return kvmlike_file_op(fd, KVMLIKE_OP_READ);
  return libc::readv(fd, iov, iovcnt);
}

PRELOAD_EXPORT ssize_t writev(int fd, const struct iovec* iov, int iovcnt) {
  if (kvmlike_answers_file_io(fd)) return kvmlike_file_op(fd, KVMLIKE_OP_WRITE);
  return libc::writev(fd, iov, iovcnt);
}

PRELOAD_EXPORT ssize_t preadv(int fd, const struct iovec* iov, int iovcnt, off_t offset) {
  if (kvmlike_answers_file_io(fd)) return PositionalOwned(fd, offset, KVMLIKE_OP_PREAD);
  return libc::preadv(fd, iov, iovcnt, offset);
}

PRELOAD_EXPORT ssize_t preadv64(int fd, const struct iovec* iov, int iovcnt, off64_t offset) {
  if (kvmlike_answers_file_io(fd)) return PositionalOwned(fd, offset, KVMLIKE_OP_PREAD);
  return libc::preadv64(fd, iov, iovcnt, offset);
}

PRELOAD_EXPORT ssize_t preadv2(int fd, const struct iovec* iov, int iovcnt, off_t offset,
                               int flags) {
  if (kvmlike_answers_file_io(fd)) {
    return PositionalV2Owned(fd, offset, KVMLIKE_OP_READ, KVMLIKE_OP_PREAD);
  }
  return libc::preadv2(fd, iov, iovcnt, offset, flags);
}

PRELOAD_EXPORT ssize_t preadv64v2(int fd, const struct iovec* iov, int iovcnt,
                                  off64_t offset, int flags) {
  if (kvmlike_answers_file_io(fd)) {
    return PositionalV2Owned(fd, offset, KVMLIKE_OP_READ, KVMLIKE_OP_PREAD);
  }
  return libc::preadv64v2(fd, iov, iovcnt, offset, flags);
}

PRELOAD_EXPORT ssize_t pwritev(int fd, const struct iovec* iov, int iovcnt, off_t offset) {
  if (kvmlike_answers_file_io(fd)) return PositionalOwned(fd, offset, KVMLIKE_OP_PWRITE);
  return libc::pwritev(fd, iov, iovcnt, offset);
}

PRELOAD_EXPORT ssize_t pwritev64(int fd, const struct iovec* iov, int iovcnt, off64_t offset) {
  if (kvmlike_answers_file_io(fd)) return PositionalOwned(fd, offset, KVMLIKE_OP_PWRITE);
  return libc::pwritev64(fd, iov, iovcnt, offset);
}

PRELOAD_EXPORT ssize_t pwritev2(int fd, const struct iovec* iov, int iovcnt, off_t offset,
                                int flags) {
  if (kvmlike_answers_file_io(fd)) {
    return PositionalV2Owned(fd, offset, KVMLIKE_OP_WRITE, KVMLIKE_OP_PWRITE);
  }
  return libc::pwritev2(fd, iov, iovcnt, offset, flags);
}

PRELOAD_EXPORT ssize_t pwritev64v2(int fd, const struct iovec* iov, int iovcnt,
                                   off64_t offset, int flags) {
  if (kvmlike_answers_file_io(fd)) {
    return PositionalV2Owned(fd, offset, KVMLIKE_OP_WRITE, KVMLIKE_OP_PWRITE);
  }
  return libc::pwritev64v2(fd, iov, iovcnt, offset, flags);
}

// The _chk entry points keep their buffer-overflow check for kvmlike fds too.
PRELOAD_EXPORT ssize_t __read_chk(int fd, void* buf, size_t count, size_t buflen) {
  if (!kvmlike_answers_file_io(fd)) return libc::read_chk(fd, buf, count, buflen);
  if (count > buflen) __chk_fail();
  return kvmlike_file_op(fd, KVMLIKE_OP_READ);
}

PRELOAD_EXPORT ssize_t __pread_chk(int fd, void* buf, size_t count, off_t offset,
                                   size_t buflen) {
  if (!kvmlike_answers_file_io(fd)) return libc::pread_chk(fd, buf, count, offset, buflen);
  if (count > buflen) __chk_fail();
  return PositionalOwned(fd, offset, KVMLIKE_OP_PREAD);
}

PRELOAD_EXPORT ssize_t __pread64_chk(int fd, void* buf, size_t count, off64_t offset,
                                     size_t buflen) {
  if (!kvmlike_answers_file_io(fd)) return libc::pread64_chk(fd, buf, count, offset, buflen);
  if (count > buflen) __chk_fail();
  return PositionalOwned(fd, offset, KVMLIKE_OP_PREAD);
}
