#include "frontends/preload/preload_libc.h"

#include <fcntl.h>
#include <sys/syscall.h>

#include <cerrno>
#include <climits>

#include "frontends/preload/preload_raw.h"
#include "frontends/preload/preload_real.h"

namespace preload::libc {

namespace {

// libc's `real`, or system call `nr` with the same arguments while `real` is unusable.
template <typename Fn, typename... Args>
long CallOrSyscall(RealSymbol<Fn>& real, long nr, Args... args) {
  if (Fn* fn = real.Get()) return fn(args...);
  return raw::Syscall(nr, args...);
}

template <typename Fn>
int CallOrOpenAt(RealSymbol<Fn>& real, int dirfd, const char* path, int flags,
                 mode_t mode) {
  if (Fn* fn = real.Get()) return fn(dirfd, path, flags, mode);
  return static_cast<int>(raw::Syscall(SYS_openat, dirfd, path, flags, mode));
}

template <typename Fn>
int CallOrOpen(RealSymbol<Fn>& real, const char* path, int flags, mode_t mode) {
  if (Fn* fn = real.Get()) return fn(path, flags, mode);
  return static_cast<int>(raw::Syscall(SYS_openat, AT_FDCWD, path, flags, mode));
}

template <typename Fn>
int CallOrOpenChk(RealSymbol<Fn>& real, const char* path, int flags) {
  if (Fn* fn = real.Get()) return fn(path, flags);
  return static_cast<int>(raw::Syscall(SYS_openat, AT_FDCWD, path, flags, 0));
}

template <typename Fn>
int CallOrOpenAtChk(RealSymbol<Fn>& real, int dirfd, const char* path, int flags) {
  if (Fn* fn = real.Get()) return fn(dirfd, path, flags);
  return static_cast<int>(raw::Syscall(SYS_openat, dirfd, path, flags, 0));
}

// posix_fallocate reports failure as its return value and leaves errno alone. The raw
// path never emulates allocation by writing blocks, unlike glibc's fallback.
template <typename Fn>
int CallOrPosixFallocate(RealSymbol<Fn>& real, int fd, off_t offset, off_t len) {
  if (Fn* fn = real.Get()) return fn(fd, offset, len);
  long ret = raw::Syscall6(SYS_fallocate, fd, 0, offset, len, 0, 0);
  return ret < 0 ? static_cast<int>(-ret) : 0;
}

template <typename Fn>
ssize_t CallOrRead(RealSymbol<Fn>& real, int fd, void* buf, size_t count, size_t buflen) {
  if (Fn* fn = real.Get()) return fn(fd, buf, count, buflen);
  if (count > buflen) __chk_fail();
  return raw::Syscall(SYS_read, fd, buf, count);
}

template <typename Fn>
ssize_t CallOrPread(RealSymbol<Fn>& real, int fd, void* buf, size_t count, off_t offset,
                    size_t buflen) {
  if (Fn* fn = real.Get()) return fn(fd, buf, count, offset, buflen);
  if (count > buflen) __chk_fail();
  return raw::Syscall(SYS_pread64, fd, buf, count, offset);
}

// Functions with no system call behind them cannot run without libc; reaching one of
// these from inside dlsym() would need a fork from inside the dynamic loader.
template <typename Fn>
pid_t CallOrEnosys(RealSymbol<Fn>& real) {
  if (Fn* fn = real.Get()) return fn();
  errno = ENOSYS;
  return -1;
}

template <typename T>
int Int(T v) {
  return static_cast<int>(v);
}

}  // namespace


int open(const char* path, int flags, mode_t mode) {
  return CallOrOpen(real::open, path, flags, mode);
}
int open64(const char* path, int flags, mode_t mode) {
  return CallOrOpen(real::open64, path, flags, mode);
}
int open_2(const char* path, int flags) { return CallOrOpenChk(real::__open_2, path, flags); }
int open64_2(const char* path, int flags) {
  return CallOrOpenChk(real::__open64_2, path, flags);
}
int openat(int dirfd, const char* path, int flags, mode_t mode) {
  return CallOrOpenAt(real::openat, dirfd, path, flags, mode);
}
int openat64(int dirfd, const char* path, int flags, mode_t mode) {
  return CallOrOpenAt(real::openat64, dirfd, path, flags, mode);
}
int openat_2(int dirfd, const char* path, int flags) {
  return CallOrOpenAtChk(real::__openat_2, dirfd, path, flags);
}
int openat64_2(int dirfd, const char* path, int flags) {
  return CallOrOpenAtChk(real::__openat64_2, dirfd, path, flags);
}
int creat(const char* path, mode_t mode) {
  if (auto* fn = real::creat.Get()) return fn(path, mode);
  return CallOrOpen(real::open, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}
int creat64(const char* path, mode_t mode) {
  if (auto* fn = real::creat64.Get()) return fn(path, mode);
  return CallOrOpen(real::open64, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}

int ioctl(int fd, unsigned long request, unsigned long arg) {
  return Int(CallOrSyscall(real::ioctl, SYS_ioctl, fd, request, arg));
}
int close(int fd) { return Int(CallOrSyscall(real::close, SYS_close, fd)); }
int close_range(unsigned int first, unsigned int last, int flags) {
  return Int(CallOrSyscall(real::close_range, SYS_close_range, first, last, flags));
}
void closefrom(int lowfd) {
  if (auto* fn = real::closefrom.Get()) return fn(lowfd);
  raw::Syscall(SYS_close_range, lowfd, UINT_MAX, 0);
}
int dup(int fd) { return Int(CallOrSyscall(real::dup, SYS_dup, fd)); }
int dup2(int oldfd, int newfd) {
  if (auto* fn = real::dup2.Get()) return fn(oldfd, newfd);
#ifdef SYS_dup2
  return Int(raw::Syscall(SYS_dup2, oldfd, newfd));
#else
  if (oldfd == newfd) return raw::Syscall(SYS_fcntl, oldfd, F_GETFD) < 0 ? -1 : newfd;
  return Int(raw::Syscall(SYS_dup3, oldfd, newfd, 0));
#endif
}
int dup3(int oldfd, int newfd, int flags) {
  return Int(CallOrSyscall(real::dup3, SYS_dup3, oldfd, newfd, flags));
}
int fcntl(int fd, int cmd, unsigned long arg) {
  return Int(CallOrSyscall(real::fcntl, SYS_fcntl, fd, cmd, arg));
}
int fcntl64(int fd, int cmd, unsigned long arg) {
  return Int(CallOrSyscall(real::fcntl64, SYS_fcntl, fd, cmd, arg));
}

// A failed raw mmap returns -1, which is MAP_FAILED.
void* mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  if (auto* fn = real::mmap.Get()) return fn(addr, len, prot, flags, fd, off);
  return reinterpret_cast<void*>(raw::Syscall(SYS_mmap, addr, len, prot, flags, fd, off));
}
void* mmap64(void* addr, size_t len, int prot, int flags, int fd, off64_t off) {
  if (auto* fn = real::mmap64.Get()) return fn(addr, len, prot, flags, fd, off);
  return reinterpret_cast<void*>(raw::Syscall(SYS_mmap, addr, len, prot, flags, fd, off));
}
int munmap(void* addr, size_t len) {
  return Int(CallOrSyscall(real::munmap, SYS_munmap, addr, len));
}
void* mremap(void* old_addr, size_t old_len, size_t new_len, int flags, void* new_addr) {
  if (auto* fn = real::mremap.Get()) return fn(old_addr, old_len, new_len, flags, new_addr);
  return reinterpret_cast<void*>(
      raw::Syscall(SYS_mremap, old_addr, old_len, new_len, flags, new_addr));
}
int madvise(void* addr, size_t len, int advice) {
  return Int(CallOrSyscall(real::madvise, SYS_madvise, addr, len, advice));
}
int mprotect(void* addr, size_t len, int prot) {
  return Int(CallOrSyscall(real::mprotect, SYS_mprotect, addr, len, prot));
}

int fallocate(int fd, int mode, off_t offset, off_t len) {
  return Int(CallOrSyscall(real::fallocate, SYS_fallocate, fd, mode, offset, len));
}
int fallocate64(int fd, int mode, off64_t offset, off64_t len) {
  return Int(CallOrSyscall(real::fallocate64, SYS_fallocate, fd, mode, offset, len));
}
int posix_fallocate(int fd, off_t offset, off_t len) {
  return CallOrPosixFallocate(real::posix_fallocate, fd, offset, len);
}
int posix_fallocate64(int fd, off64_t offset, off64_t len) {
  return CallOrPosixFallocate(real::posix_fallocate64, fd, offset, len);
}
int ftruncate(int fd, off_t len) {
  return Int(CallOrSyscall(real::ftruncate, SYS_ftruncate, fd, len));
}
int ftruncate64(int fd, off64_t len) {
  return Int(CallOrSyscall(real::ftruncate64, SYS_ftruncate, fd, len));
}
int fchmod(int fd, mode_t mode) { return Int(CallOrSyscall(real::fchmod, SYS_fchmod, fd, mode)); }
int fchown(int fd, uid_t owner, gid_t group) {
  return Int(CallOrSyscall(real::fchown, SYS_fchown, fd, owner, group));
}
int futimens(int fd, const struct timespec times[2]) {
  if (auto* fn = real::futimens.Get()) return fn(fd, times);
  return Int(raw::Syscall(SYS_utimensat, fd, static_cast<const char*>(nullptr), times, 0));
}
off_t lseek(int fd, off_t offset, int whence) {
  return CallOrSyscall(real::lseek, SYS_lseek, fd, offset, whence);
}
off64_t lseek64(int fd, off64_t offset, int whence) {
  return CallOrSyscall(real::lseek64, SYS_lseek, fd, offset, whence);
}
ssize_t read(int fd, void* buf, size_t count) {
  return CallOrSyscall(real::read, SYS_read, fd, buf, count);
}
ssize_t write(int fd, const void* buf, size_t count) {
  return CallOrSyscall(real::write, SYS_write, fd, buf, count);
}
ssize_t pread(int fd, void* buf, size_t count, off_t offset) {
  return CallOrSyscall(real::pread, SYS_pread64, fd, buf, count, offset);
}
ssize_t pread64(int fd, void* buf, size_t count, off64_t offset) {
  return CallOrSyscall(real::pread64, SYS_pread64, fd, buf, count, offset);
}
ssize_t pwrite(int fd, const void* buf, size_t count, off_t offset) {
  return CallOrSyscall(real::pwrite, SYS_pwrite64, fd, buf, count, offset);
}
ssize_t pwrite64(int fd, const void* buf, size_t count, off64_t offset) {
  return CallOrSyscall(real::pwrite64, SYS_pwrite64, fd, buf, count, offset);
}
ssize_t readv(int fd, const struct iovec* iov, int iovcnt) {
  return CallOrSyscall(real::readv, SYS_readv, fd, iov, iovcnt);
}
ssize_t writev(int fd, const struct iovec* iov, int iovcnt) {
  return CallOrSyscall(real::writev, SYS_writev, fd, iov, iovcnt);
}

// The vectored positional calls split the offset into (low, high) words; a 64-bit kernel
// takes the whole offset from the low word.
ssize_t preadv(int fd, const struct iovec* iov, int iovcnt, off_t offset) {
  if (auto* fn = real::preadv.Get()) return fn(fd, iov, iovcnt, offset);
  return raw::Syscall(SYS_preadv, fd, iov, iovcnt, offset, 0);
}
ssize_t preadv64(int fd, const struct iovec* iov, int iovcnt, off64_t offset) {
  if (auto* fn = real::preadv64.Get()) return fn(fd, iov, iovcnt, offset);
  return raw::Syscall(SYS_preadv, fd, iov, iovcnt, offset, 0);
}
ssize_t preadv2(int fd, const struct iovec* iov, int iovcnt, off_t offset, int flags) {
  if (auto* fn = real::preadv2.Get()) return fn(fd, iov, iovcnt, offset, flags);
  return raw::Syscall(SYS_preadv2, fd, iov, iovcnt, offset, 0, flags);
}
ssize_t preadv64v2(int fd, const struct iovec* iov, int iovcnt, off64_t offset, int flags) {
  if (auto* fn = real::preadv64v2.Get()) return fn(fd, iov, iovcnt, offset, flags);
  return raw::Syscall(SYS_preadv2, fd, iov, iovcnt, offset, 0, flags);
}
ssize_t pwritev(int fd, const struct iovec* iov, int iovcnt, off_t offset) {
  if (auto* fn = real::pwritev.Get()) return fn(fd, iov, iovcnt, offset);
  return raw::Syscall(SYS_pwritev, fd, iov, iovcnt, offset, 0);
}
ssize_t pwritev64(int fd, const struct iovec* iov, int iovcnt, off64_t offset) {
  if (auto* fn = real::pwritev64.Get()) return fn(fd, iov, iovcnt, offset);
  return raw::Syscall(SYS_pwritev, fd, iov, iovcnt, offset, 0);
}
ssize_t pwritev2(int fd, const struct iovec* iov, int iovcnt, off_t offset, int flags) {
  if (auto* fn = real::pwritev2.Get()) return fn(fd, iov, iovcnt, offset, flags);
  return raw::Syscall(SYS_pwritev2, fd, iov, iovcnt, offset, 0, flags);
}
ssize_t pwritev64v2(int fd, const struct iovec* iov, int iovcnt, off64_t offset, int flags) {
  if (auto* fn = real::pwritev64v2.Get()) return fn(fd, iov, iovcnt, offset, flags);
  return raw::Syscall(SYS_pwritev2, fd, iov, iovcnt, offset, 0, flags);
}
ssize_t read_chk(int fd, void* buf, size_t count, size_t buflen) {
  return CallOrRead(real::__read_chk, fd, buf, count, buflen);
}
ssize_t pread_chk(int fd, void* buf, size_t count, off_t offset, size_t buflen) {
  return CallOrPread(real::__pread_chk, fd, buf, count, offset, buflen);
}
ssize_t pread64_chk(int fd, void* buf, size_t count, off64_t offset, size_t buflen) {
  return CallOrPread(real::__pread64_chk, fd, buf, count, offset, buflen);
}

int fstat(int fd, struct stat* st) { return Int(CallOrSyscall(real::fstat, SYS_fstat, fd, st)); }
int fstat64(int fd, struct stat64* st) {
  return Int(CallOrSyscall(real::fstat64, SYS_fstat, fd, st));
}
int fstatat(int dirfd, const char* path, struct stat* st, int flags) {
  return Int(CallOrSyscall(real::fstatat, SYS_newfstatat, dirfd, path, st, flags));
}
int fstatat64(int dirfd, const char* path, struct stat64* st, int flags) {
  return Int(CallOrSyscall(real::fstatat64, SYS_newfstatat, dirfd, path, st, flags));
}
int statx(int dirfd, const char* path, int flags, unsigned int mask, struct statx* stx) {
  return Int(CallOrSyscall(real::statx, SYS_statx, dirfd, path, flags, mask, stx));
}

// The legacy stat entry points take a struct-version argument the kernel never sees; on
// LP64 every accepted version has the kernel's layout.
int fxstat(int ver, int fd, struct stat* st) {
  if (auto* fn = real::__fxstat.Get()) return fn(ver, fd, st);
  return Int(raw::Syscall(SYS_fstat, fd, st));
}
int fxstat64(int ver, int fd, struct stat64* st) {
  if (auto* fn = real::__fxstat64.Get()) return fn(ver, fd, st);
  return Int(raw::Syscall(SYS_fstat, fd, st));
}
int fxstatat(int ver, int dirfd, const char* path, struct stat* st, int flags) {
  if (auto* fn = real::__fxstatat.Get()) return fn(ver, dirfd, path, st, flags);
  return Int(raw::Syscall(SYS_newfstatat, dirfd, path, st, flags));
}
int fxstatat64(int ver, int dirfd, const char* path, struct stat64* st, int flags) {
  if (auto* fn = real::__fxstatat64.Get()) return fn(ver, dirfd, path, st, flags);
  return Int(raw::Syscall(SYS_newfstatat, dirfd, path, st, flags));
}

pid_t fork() { return CallOrEnosys(real::fork); }
pid_t Fork() { return CallOrEnosys(real::_Fork); }

long syscall(long nr, long a0, long a1, long a2, long a3, long a4, long a5) {
  if (auto* fn = real::syscall.Get()) return fn(nr, a0, a1, a2, a3, a4, a5);
  return raw::Result(raw::Syscall6(nr, a0, a1, a2, a3, a4, a5));
}

// Before dlsym has resolved them there is nothing to chain; the raw
// rt_sigaction needs the kernel's struct layout, which glibc's differs from,
// so these two have no raw fallback and fail with ENOSYS instead.
int sigaction(int sig, const struct sigaction* act, struct sigaction* oldact) {
  if (auto* fn = real::sigaction.Get()) return fn(sig, act, oldact);
  errno = ENOSYS;
  return -1;
}
sighandler_t signal(int sig, sighandler_t handler) {
  if (auto* fn = real::signal.Get()) return fn(sig, handler);
  errno = ENOSYS;
  return SIG_ERR;
}

}  // namespace preload::libc
