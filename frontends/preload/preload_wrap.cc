// The libc calls of the code linked into this library (the C ABI and everything below it).
//
// The library is linked with -Wl,--wrap=<name> for every interposed name, which renames
// the undefined references to <name> in the statically linked objects to __wrap_<name>.
// Without that, kvmlike's own close() of a backing fd would bind to the exported close()
// wrapper above and come straight back into kvmlike_close(). With it, kvmlike reaches
// libc directly, on any thread, without a reentrancy flag. These definitions are hidden.
#include <sys/mman.h>

#include <cstdarg>

#include "frontends/preload/preload_abi.h"
#include "frontends/preload/preload_libc.h"

namespace libc = preload::libc;

namespace {

mode_t ModeArg(int flags, va_list ap) {
  bool needs_mode = (flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE;
  return needs_mode ? va_arg(ap, mode_t) : 0;
}

}  // namespace

extern "C" {

int __wrap_open(const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = ModeArg(flags, ap);
  va_end(ap);
  return libc::open(path, flags, mode);
}
int __wrap_open64(const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = ModeArg(flags, ap);
  va_end(ap);
  return libc::open64(path, flags, mode);
}
int __wrap_openat(int dirfd, const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = ModeArg(flags, ap);
  va_end(ap);
  return libc::openat(dirfd, path, flags, mode);
}
int __wrap_openat64(int dirfd, const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = ModeArg(flags, ap);
  va_end(ap);
  return libc::openat64(dirfd, path, flags, mode);
}
int __wrap___open_2(const char* path, int flags) { return libc::open_2(path, flags); }
int __wrap___open64_2(const char* path, int flags) { return libc::open64_2(path, flags); }
int __wrap___openat_2(int dirfd, const char* path, int flags) {
  return libc::openat_2(dirfd, path, flags);
}
int __wrap___openat64_2(int dirfd, const char* path, int flags) {
  return libc::openat64_2(dirfd, path, flags);
}
int __wrap_creat(const char* path, mode_t mode) { return libc::creat(path, mode); }
int __wrap_creat64(const char* path, mode_t mode) { return libc::creat64(path, mode); }

int __wrap_ioctl(int fd, unsigned long request, ...) {
  va_list ap;
  va_start(ap, request);
  unsigned long arg = va_arg(ap, unsigned long);
  va_end(ap);
  return libc::ioctl(fd, request, arg);
}
int __wrap_close(int fd) { return libc::close(fd); }
int __wrap_close_range(unsigned int first, unsigned int last, int flags) {
  return libc::close_range(first, last, flags);
}
void __wrap_closefrom(int lowfd) { libc::closefrom(lowfd); }
int __wrap_dup(int fd) { return libc::dup(fd); }
int __wrap_dup2(int oldfd, int newfd) { return libc::dup2(oldfd, newfd); }
int __wrap_dup3(int oldfd, int newfd, int flags) { return libc::dup3(oldfd, newfd, flags); }
int __wrap_fcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  unsigned long arg = va_arg(ap, unsigned long);
  va_end(ap);
  return libc::fcntl(fd, cmd, arg);
}
int __wrap_fcntl64(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  unsigned long arg = va_arg(ap, unsigned long);
  va_end(ap);
  return libc::fcntl64(fd, cmd, arg);
}

void* __wrap_mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  return libc::mmap(addr, len, prot, flags, fd, off);
}
void* __wrap_mmap64(void* addr, size_t len, int prot, int flags, int fd, off64_t off) {
  return libc::mmap64(addr, len, prot, flags, fd, off);
}
int __wrap_munmap(void* addr, size_t len) { return libc::munmap(addr, len); }
void* __wrap_mremap(void* old_addr, size_t old_len, size_t new_len, int flags, ...);
void* __wrap_mremap(void* old_addr, size_t old_len, size_t new_len, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  void* new_addr = (flags & MREMAP_FIXED) ? va_arg(ap, void*) : nullptr;
  va_end(ap);
  return libc::mremap(old_addr, old_len, new_len, flags, new_addr);
}
int __wrap_madvise(void* addr, size_t len, int advice) { return libc::madvise(addr, len, advice); }
int __wrap_mprotect(void* addr, size_t len, int prot) { return libc::mprotect(addr, len, prot); }
int __wrap_sigaction(int sig, const struct sigaction* act, struct sigaction* oldact) {
  return libc::sigaction(sig, act, oldact);
}
sighandler_t __wrap_signal(int sig, sighandler_t handler) { return libc::signal(sig, handler); }
int __wrap_fchmod(int fd, mode_t mode) { return libc::fchmod(fd, mode); }
int __wrap_fchown(int fd, uid_t owner, gid_t group) { return libc::fchown(fd, owner, group); }
int __wrap_futimens(int fd, const struct timespec times[2]) { return libc::futimens(fd, times); }

int __wrap_fallocate(int fd, int mode, off_t offset, off_t len) {
  return libc::fallocate(fd, mode, offset, len);
}
int __wrap_fallocate64(int fd, int mode, off64_t offset, off64_t len) {
  return libc::fallocate64(fd, mode, offset, len);
}
int __wrap_posix_fallocate(int fd, off_t offset, off_t len) {
  return libc::posix_fallocate(fd, offset, len);
}
int __wrap_posix_fallocate64(int fd, off64_t offset, off64_t len) {
  return libc::posix_fallocate64(fd, offset, len);
}
int __wrap_ftruncate(int fd, off_t len) { return libc::ftruncate(fd, len); }
int __wrap_ftruncate64(int fd, off64_t len) { return libc::ftruncate64(fd, len); }
off_t __wrap_lseek(int fd, off_t offset, int whence) { return libc::lseek(fd, offset, whence); }
off64_t __wrap_lseek64(int fd, off64_t offset, int whence) {
  return libc::lseek64(fd, offset, whence);
}
ssize_t __wrap_read(int fd, void* buf, size_t count) { return libc::read(fd, buf, count); }
ssize_t __wrap_write(int fd, const void* buf, size_t count) {
  return libc::write(fd, buf, count);
}
ssize_t __wrap_pread(int fd, void* buf, size_t count, off_t offset) {
  return libc::pread(fd, buf, count, offset);
}
ssize_t __wrap_pread64(int fd, void* buf, size_t count, off64_t offset) {
  return libc::pread64(fd, buf, count, offset);
}
ssize_t __wrap_pwrite(int fd, const void* buf, size_t count, off_t offset) {
  return libc::pwrite(fd, buf, count, offset);
}
ssize_t __wrap_pwrite64(int fd, const void* buf, size_t count, off64_t offset) {
  return libc::pwrite64(fd, buf, count, offset);
}
ssize_t __wrap_readv(int fd, const struct iovec* iov, int iovcnt) {
  return libc::readv(fd, iov, iovcnt);
}
ssize_t __wrap_writev(int fd, const struct iovec* iov, int iovcnt) {
  return libc::writev(fd, iov, iovcnt);
}
ssize_t __wrap_preadv(int fd, const struct iovec* iov, int iovcnt, off_t offset) {
  return libc::preadv(fd, iov, iovcnt, offset);
}
ssize_t __wrap_preadv64(int fd, const struct iovec* iov, int iovcnt, off64_t offset) {
  return libc::preadv64(fd, iov, iovcnt, offset);
}
ssize_t __wrap_preadv2(int fd, const struct iovec* iov, int iovcnt, off_t offset, int flags) {
  return libc::preadv2(fd, iov, iovcnt, offset, flags);
}
ssize_t __wrap_preadv64v2(int fd, const struct iovec* iov, int iovcnt, off64_t offset,
                          int flags) {
  return libc::preadv64v2(fd, iov, iovcnt, offset, flags);
}
ssize_t __wrap_pwritev(int fd, const struct iovec* iov, int iovcnt, off_t offset) {
  return libc::pwritev(fd, iov, iovcnt, offset);
}
ssize_t __wrap_pwritev64(int fd, const struct iovec* iov, int iovcnt, off64_t offset) {
  return libc::pwritev64(fd, iov, iovcnt, offset);
}
ssize_t __wrap_pwritev2(int fd, const struct iovec* iov, int iovcnt, off_t offset, int flags) {
  return libc::pwritev2(fd, iov, iovcnt, offset, flags);
}
ssize_t __wrap_pwritev64v2(int fd, const struct iovec* iov, int iovcnt, off64_t offset,
                           int flags) {
  return libc::pwritev64v2(fd, iov, iovcnt, offset, flags);
}
ssize_t __wrap___read_chk(int fd, void* buf, size_t count, size_t buflen) {
  return libc::read_chk(fd, buf, count, buflen);
}
ssize_t __wrap___pread_chk(int fd, void* buf, size_t count, off_t offset, size_t buflen) {
  return libc::pread_chk(fd, buf, count, offset, buflen);
}
ssize_t __wrap___pread64_chk(int fd, void* buf, size_t count, off64_t offset, size_t buflen) {
  return libc::pread64_chk(fd, buf, count, offset, buflen);
}

int __wrap_fstat(int fd, struct stat* st) { return libc::fstat(fd, st); }
int __wrap_fstat64(int fd, struct stat64* st) { return libc::fstat64(fd, st); }
int __wrap_fstatat(int dirfd, const char* path, struct stat* st, int flags) {
  return libc::fstatat(dirfd, path, st, flags);
}
int __wrap_fstatat64(int dirfd, const char* path, struct stat64* st, int flags) {
  return libc::fstatat64(dirfd, path, st, flags);
}
int __wrap_statx(int dirfd, const char* path, int flags, unsigned int mask, struct statx* stx) {
  return libc::statx(dirfd, path, flags, mask, stx);
}
int __wrap___fxstat(int ver, int fd, struct stat* st) { return libc::fxstat(ver, fd, st); }
int __wrap___fxstat64(int ver, int fd, struct stat64* st) {
  return libc::fxstat64(ver, fd, st);
}
int __wrap___fxstatat(int ver, int dirfd, const char* path, struct stat* st, int flags) {
  return libc::fxstatat(ver, dirfd, path, st, flags);
}
int __wrap___fxstatat64(int ver, int dirfd, const char* path, struct stat64* st, int flags) {
  return libc::fxstatat64(ver, dirfd, path, st, flags);
}

pid_t __wrap_fork() { return libc::fork(); }
pid_t __wrap__Fork() { return libc::Fork(); }
long __wrap_syscall(long nr, ...) {
  va_list ap;
  va_start(ap, nr);
  long a[6];
  for (long& word : a) word = va_arg(ap, long);
  va_end(ap);
  return libc::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

}  // extern "C"
