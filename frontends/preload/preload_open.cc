// The open family: "/dev/kvm" becomes kvmlike_open_dev(), every other path goes to libc.
// The answers Linux gives before any driver code runs (O_DIRECTORY on a device node,
// O_CREAT | O_EXCL on an existing one, ...) are given here, so that they do not depend on
// whether the host has a /dev/kvm.
//
// fopen("/dev/kvm") is not interposed: glibc's fopen opens through an internal entry point
// that no preloaded library can replace. dirfd-relative spellings ("kvm" relative to an fd
// or working directory on /dev) are not recognised either; see README.md.
#include <fcntl.h>

#include <cerrno>
#include <cstdarg>
#include <string_view>

#include "frontends/preload/preload_abi.h"
#include "frontends/preload/preload_hooks.h"
#include "frontends/preload/preload_libc.h"

namespace preload {

namespace {

// The next path component, skipping slashes and "." components; empty at the end.
std::string_view NextComponent(const char*& p) {
  for (;;) {
    while (*p == '/') ++p;
    const char* start = p;
    while (*p != '\0' && *p != '/') ++p;
    std::string_view c(start, static_cast<size_t>(p - start));
    if (c != ".") return c;
  }
}

int Fail(int err) {
  errno = err;
  return -1;
}

}  // namespace

// Linux's order: flag combinations it rejects outright, then what the path walk finds at a
// character device node (it exists, and it is not a directory).
int OpenDevKvm(int flags) {
  constexpr int kTmpfileBit = O_TMPFILE & ~O_DIRECTORY;  // glibc's O_TMPFILE has both
  constexpr int kTmpfileMask = O_TMPFILE | O_CREAT;
  if ((flags & O_PATH) != 0) {
    return (flags & O_DIRECTORY) != 0 ? Fail(ENOTDIR) : kvmlike_open_dev(flags);
  }
  if ((flags & (O_DIRECTORY | O_CREAT)) == (O_DIRECTORY | O_CREAT)) return Fail(EINVAL);
  if ((flags & kTmpfileBit) != 0) {
    bool writable = (flags & O_ACCMODE) == O_WRONLY || (flags & O_ACCMODE) == O_RDWR;
    if ((flags & kTmpfileMask) != O_TMPFILE || !writable) return Fail(EINVAL);
    return Fail(ENOTDIR);  // an O_TMPFILE path must be a directory
  }
  if ((flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL)) return Fail(EEXIST);
  if ((flags & O_DIRECTORY) != 0) return Fail(ENOTDIR);
  return kvmlike_open_dev(flags);
}

bool IsDevKvm(const char* path) {
  path = Opaque(path);
  if (path == nullptr || path[0] != '/') return false;
  if (NextComponent(path) != "dev") return false;
  if (NextComponent(path) != "kvm") return false;
  // "/dev/kvm/" and "/dev/kvm/." ask for a directory: let the kernel refuse them.
  return *path == '\0';
}

namespace {

// open's mode argument exists only when the flags create a file.
bool NeedsMode(int flags) {
  return (flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE;
}

// Reads open's optional mode argument from `ap` (positioned after the flags).
mode_t ModeArg(int flags, va_list ap) {
  return NeedsMode(flags) ? va_arg(ap, mode_t) : 0;
}

using OpenFn = int(const char* path, int flags, mode_t mode);
using OpenAtFn = int(int dirfd, const char* path, int flags, mode_t mode);
using OpenChkFn = int(const char* path, int flags);
using OpenAtChkFn = int(int dirfd, const char* path, int flags);

int Open(const char* path, int flags, mode_t mode, OpenFn* next) {
  if (IsDevKvm(path)) return OpenDevKvm(flags);
  return next(path, flags, mode);
}

// An absolute path ignores dirfd, so /dev/kvm is recognised whatever dirfd is.
int OpenAt(int dirfd, const char* path, int flags, mode_t mode, OpenAtFn* next) {
  if (IsDevKvm(path)) return OpenDevKvm(flags);
  return next(dirfd, path, flags, mode);
}

// The fortify entry points abort on flags that need a mode; libc's copy does that.
int OpenChk(const char* path, int flags, OpenChkFn* next) {
  if (!NeedsMode(flags) && IsDevKvm(path)) return OpenDevKvm(flags);
  return next(path, flags);
}

int OpenAtChk(int dirfd, const char* path, int flags, OpenAtChkFn* next) {
  if (!NeedsMode(flags) && IsDevKvm(path)) return OpenDevKvm(flags);
  return next(dirfd, path, flags);
}

}  // namespace

}  // namespace preload

namespace libc = preload::libc;
using preload::IsDevKvm;
using preload::ModeArg;

PRELOAD_EXPORT int open(const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = ModeArg(flags, ap);
  va_end(ap);
  return preload::Open(path, flags, mode, libc::open);
}

PRELOAD_EXPORT int open64(const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = ModeArg(flags, ap);
  va_end(ap);
  return preload::Open(path, flags, mode, libc::open64);
}

PRELOAD_EXPORT int openat(int dirfd, const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = ModeArg(flags, ap);
  va_end(ap);
  return preload::OpenAt(dirfd, path, flags, mode, libc::openat);
}

PRELOAD_EXPORT int openat64(int dirfd, const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = ModeArg(flags, ap);
  va_end(ap);
  return preload::OpenAt(dirfd, path, flags, mode, libc::openat64);
}

PRELOAD_EXPORT int __open_2(const char* path, int flags) {
  return preload::OpenChk(path, flags, libc::open_2);
}

PRELOAD_EXPORT int __open64_2(const char* path, int flags) {
  return preload::OpenChk(path, flags, libc::open64_2);
}

PRELOAD_EXPORT int __openat_2(int dirfd, const char* path, int flags) {
  return preload::OpenAtChk(dirfd, path, flags, libc::openat_2);
}

PRELOAD_EXPORT int __openat64_2(int dirfd, const char* path, int flags) {
  return preload::OpenAtChk(dirfd, path, flags, libc::openat64_2);
}

// creat(path, mode) is open(path, O_CREAT | O_WRONLY | O_TRUNC, mode).
PRELOAD_EXPORT int creat(const char* path, mode_t mode) {
  if (IsDevKvm(path)) return preload::OpenDevKvm(O_CREAT | O_WRONLY | O_TRUNC);
  return libc::creat(path, mode);
}

PRELOAD_EXPORT int creat64(const char* path, mode_t mode) {
  if (IsDevKvm(path)) return preload::OpenDevKvm(O_CREAT | O_WRONLY | O_TRUNC);
  return libc::creat64(path, mode);
}

