// syscall(2): the system calls a program may issue by number on kvmlike fds are routed like
// the libc functions of the same name; everything else, and every call on a foreign fd, is
// passed to libc's syscall() with all six argument words.
#include <sys/mman.h>
#include <sys/syscall.h>

#include <array>
#include <cstdarg>

#include "frontends/preload/preload_abi.h"
#include "frontends/preload/preload_hooks.h"
#include "frontends/preload/preload_libc.h"

namespace preload {

namespace {

using SyscallArgs = std::array<long, 6>;

long PassThrough(long nr, const SyscallArgs& a) {
  return libc::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

int Int(long word) { return static_cast<int>(word); }
unsigned int Uint(long word) { return static_cast<unsigned int>(word); }

template <typename T>
T* Ptr(long word) {
  return reinterpret_cast<T*>(word);
}

int KernelFcntl(int fd, int cmd, unsigned long arg) {
  return Int(libc::syscall(SYS_fcntl, fd, cmd, static_cast<long>(arg), 0, 0, 0));
}

int KernelStatx(int dirfd, const char* path, int flags, unsigned int mask, struct statx* stx) {
  return Int(libc::syscall(SYS_statx, dirfd, reinterpret_cast<long>(path), flags, mask,
                           reinterpret_cast<long>(stx), 0));
}

bool Owns(long fd_word) { return kvmlike_owns_fd(Int(fd_word)); }
bool AnswersIo(long fd_word) { return kvmlike_answers_file_io(Int(fd_word)); }

// The kvmlike route for `nr`, or PassThrough when the call does not concern kvmlike.
long Route(long nr, const SyscallArgs& a) {
  switch (nr) {
#ifdef SYS_open
    case SYS_open:
      if (IsDevKvm(Ptr<const char>(a[0]))) return OpenDevKvm(Int(a[1]));
      break;
#endif
    case SYS_openat:
      if (IsDevKvm(Ptr<const char>(a[1]))) return OpenDevKvm(Int(a[2]));
      break;
    case SYS_ioctl:
      if (Owns(a[0])) return kvmlike_ioctl(Int(a[0]), static_cast<unsigned long>(a[1]),
                                           static_cast<unsigned long>(a[2]));
      break;
    case SYS_close:
      if (Owns(a[0])) return kvmlike_close(Int(a[0]));
      break;
    case SYS_close_range:
      return AfterCloseRange(Uint(a[0]), Uint(a[1]), Int(a[2]), Int(PassThrough(nr, a)));
    case SYS_dup:
      return AfterDup(Int(a[0]), Int(PassThrough(nr, a)));
#ifdef SYS_dup2
    case SYS_dup2:
#endif
    case SYS_dup3:
      return AfterDupOver(Int(a[0]), Int(a[1]), Int(PassThrough(nr, a)));
    case SYS_fcntl:
      if (Owns(a[0])) return FcntlOwned(Int(a[0]), Int(a[1]), static_cast<unsigned long>(a[2]),
                                        KernelFcntl);
      break;
    case SYS_mmap:
      if (MapsKvmlikeFd(Int(a[3]), Int(a[4]))) {
        return reinterpret_cast<long>(kvmlike_mmap(Ptr<void>(a[0]), static_cast<size_t>(a[1]),
                                                   Int(a[2]), Int(a[3]), Int(a[4]), a[5]));
      }
      if (Int(a[3]) & MAP_FIXED) {  // replaces whatever was mapped there, as in mmap
        HostRangeBracket change(Ptr<void>(a[0]), static_cast<size_t>(a[1]));
        return PassThrough(nr, a);
      }
      break;
    case SYS_munmap:
      return Munmap(Ptr<void>(a[0]), static_cast<size_t>(a[1]));
    case SYS_mremap:
      return reinterpret_cast<long>(Mremap(Ptr<void>(a[0]), static_cast<size_t>(a[1]),
                                           static_cast<size_t>(a[2]), Int(a[3]), Ptr<void>(a[4])));
    case SYS_mprotect:
      return Mprotect(Ptr<void>(a[0]), static_cast<size_t>(a[1]), Int(a[2]));
    case SYS_fallocate:
      if (Owns(a[0])) return kvmlike_fallocate(Int(a[0]), Int(a[1]), a[2], a[3]);
      break;
    case SYS_ftruncate:
      if (Owns(a[0])) return kvmlike_ftruncate(Int(a[0]), a[1]);
      break;
    case SYS_fstat:
      if (Owns(a[0])) return kvmlike_fstat(Int(a[0]), Ptr<struct stat>(a[1]));
      break;
    case SYS_newfstatat:
      if (StatsOwnedFd(Int(a[0]), Ptr<const char>(a[1]), Int(a[3]))) {
        return kvmlike_fstat(Int(a[0]), Ptr<struct stat>(a[2]));
      }
      break;
    case SYS_statx:
      if (StatsOwnedFd(Int(a[0]), Ptr<const char>(a[1]), Int(a[2]))) {
        return StatxOwned(Int(a[0]), Ptr<const char>(a[1]), Int(a[2]), Uint(a[3]),
                          Ptr<struct statx>(a[4]), KernelStatx);
      }
      break;
    case SYS_read:
      if (AnswersIo(a[0])) return kvmlike_file_op(Int(a[0]), KVMLIKE_OP_READ);
      break;
    case SYS_write:
      if (AnswersIo(a[0])) return kvmlike_file_op(Int(a[0]), KVMLIKE_OP_WRITE);
      break;
    case SYS_pread64:
      if (AnswersIo(a[0])) return PositionalOwned(Int(a[0]), a[3], KVMLIKE_OP_PREAD);
      break;
    case SYS_pwrite64:
      if (AnswersIo(a[0])) return PositionalOwned(Int(a[0]), a[3], KVMLIKE_OP_PWRITE);
      break;
    case SYS_lseek:
      if (AnswersIo(a[0])) return LseekOwned(Int(a[0]), Int(a[2]));
      break;
    default:
      break;
  }
  return PassThrough(nr, a);
}

}  // namespace

}  // namespace preload

// Reads six argument words whatever the call takes, as glibc's own syscall() does.
PRELOAD_EXPORT long syscall(long nr, ...) {
  va_list ap;
  va_start(ap, nr);
  std::array<long, 6> args;
  for (long& word : args) word = va_arg(ap, long);
  va_end(ap);
  return preload::Route(nr, args);
}
