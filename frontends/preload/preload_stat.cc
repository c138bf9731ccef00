// Metadata of kvmlike fds: what Linux reports for a /dev/kvm, VM or guest_memfd fd, not
// what the kernel says about the memfd that backs it. Only the fd forms are interposed
// (fstat, and the *at forms with AT_EMPTY_PATH and an empty path); stat("/dev/kvm") by
// name still reaches the kernel.
//
// statx and the legacy __fxstat* first let the kernel answer for the backing fd, which
// validates the caller's buffer and version argument and fills what struct stat does not
// carry, then overwrite every field struct stat does carry with kvmlike's answer.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "frontends/preload/preload_abi.h"
#include "frontends/preload/preload_hooks.h"
#include "frontends/preload/preload_libc.h"

namespace preload {

namespace {

struct statx_timestamp ToStatx(const struct timespec& ts) {
  struct statx_timestamp t = {};
  t.tv_sec = ts.tv_sec;
  t.tv_nsec = static_cast<__u32>(ts.tv_nsec);
  return t;
}

void CopyStatToStatx(const struct stat& st, struct statx* stx) {
  stx->stx_mode = static_cast<__u16>(st.st_mode);
  stx->stx_ino = st.st_ino;
  stx->stx_nlink = static_cast<__u32>(st.st_nlink);
  stx->stx_uid = st.st_uid;
  stx->stx_gid = st.st_gid;
  stx->stx_size = static_cast<__u64>(st.st_size);
  stx->stx_blksize = static_cast<__u32>(st.st_blksize);
  stx->stx_blocks = static_cast<__u64>(st.st_blocks);
  stx->stx_atime = ToStatx(st.st_atim);
  stx->stx_mtime = ToStatx(st.st_mtim);
  stx->stx_ctime = ToStatx(st.st_ctim);
  stx->stx_rdev_major = major(st.st_rdev);
  stx->stx_rdev_minor = minor(st.st_rdev);
  stx->stx_dev_major = major(st.st_dev);
  stx->stx_dev_minor = minor(st.st_dev);
}

// The kernel has filled *st for the backing fd (`ret` == 0): replace it with kvmlike's.
int OverwriteWithKvmlike(int ret, int fd, struct stat* st) {
  return ret != 0 ? ret : kvmlike_fstat(fd, st);
}

}  // namespace

bool StatsOwnedFd(int dirfd, const char* path, int flags) {
  path = Opaque(path);
  bool empty = path == nullptr || path[0] == '\0';
  return (flags & AT_EMPTY_PATH) != 0 && empty && kvmlike_owns_fd(dirfd);
}

int StatxOwned(int fd, const char* path, int flags, unsigned int mask, struct statx* stx,
               StatxFn* kernel) {
  int ret = kernel(fd, path, flags, mask, stx);
  if (ret != 0) return ret;
  struct stat st;
  if (kvmlike_fstat(fd, &st) != 0) return -1;
  CopyStatToStatx(st, stx);
  return 0;
}

}  // namespace preload

namespace libc = preload::libc;
using preload::OverwriteWithKvmlike;
using preload::StatsOwnedFd;

PRELOAD_EXPORT int fstat(int fd, struct stat* st) {
  if (kvmlike_owns_fd(fd)) return kvmlike_fstat(fd, st);
  return libc::fstat(fd, st);
}

PRELOAD_EXPORT int fstat64(int fd, struct stat64* st) {
  if (kvmlike_owns_fd(fd)) return kvmlike_fstat(fd, reinterpret_cast<struct stat*>(st));
  return libc::fstat64(fd, st);
}

PRELOAD_EXPORT int fstatat(int dirfd, const char* path, struct stat* st, int flags) {
  if (StatsOwnedFd(dirfd, path, flags)) return kvmlike_fstat(dirfd, st);
  return libc::fstatat(dirfd, path, st, flags);
}

PRELOAD_EXPORT int fstatat64(int dirfd, const char* path, struct stat64* st, int flags) {
  if (StatsOwnedFd(dirfd, path, flags)) {
    return kvmlike_fstat(dirfd, reinterpret_cast<struct stat*>(st));
  }
  return libc::fstatat64(dirfd, path, st, flags);
}

PRELOAD_EXPORT int statx(int dirfd, const char* path, int flags, unsigned int mask,
                         struct statx* stx) {
  if (StatsOwnedFd(dirfd, path, flags)) {
    return preload::StatxOwned(dirfd, path, flags, mask, stx, libc::statx);
  }
  return libc::statx(dirfd, path, flags, mask, stx);
}

PRELOAD_EXPORT int __fxstat(int ver, int fd, struct stat* st) {
  int ret = libc::fxstat(ver, fd, st);
  if (!kvmlike_owns_fd(fd)) return ret;
  return OverwriteWithKvmlike(ret, fd, st);
}

PRELOAD_EXPORT int __fxstat64(int ver, int fd, struct stat64* st) {
  int ret = libc::fxstat64(ver, fd, st);
  if (!kvmlike_owns_fd(fd)) return ret;
  return OverwriteWithKvmlike(ret, fd, reinterpret_cast<struct stat*>(st));
}

PRELOAD_EXPORT int __fxstatat(int ver, int dirfd, const char* path, struct stat* st,
                              int flags) {
  int ret = libc::fxstatat(ver, dirfd, path, st, flags);
  if (!StatsOwnedFd(dirfd, path, flags)) return ret;
  return OverwriteWithKvmlike(ret, dirfd, st);
}

PRELOAD_EXPORT int __fxstatat64(int ver, int dirfd, const char* path, struct stat64* st,
                                int flags) {
  int ret = libc::fxstatat64(ver, dirfd, path, st, flags);
  if (!StatsOwnedFd(dirfd, path, flags)) return ret;
  return OverwriteWithKvmlike(ret, dirfd, reinterpret_cast<struct stat*>(st));
}
