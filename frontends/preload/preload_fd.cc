// fd lifetime and control: ioctl, close, close_range, closefrom, dup*, fcntl.
//
// Every kvmlike fd is a real kernel fd, so the kernel stays the authority on fd numbers:
// dup-like calls always run in the kernel first, and kvmlike is told afterwards what the
// kernel did. Doing it in this order means a number is never in kvmlike's table while the
// kernel could hand it to somebody else, and a failed call changes nothing.
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>  // close_range, CLOSE_RANGE_CLOEXEC

#include <algorithm>
#include <climits>
#include <cstdarg>

#include "frontends/preload/preload_abi.h"
#include "frontends/preload/preload_hooks.h"
#include "frontends/preload/preload_libc.h"

namespace preload {

namespace {

// One past the highest fd the kernel can have handed out: numbers are allocated below the
// soft RLIMIT_NOFILE, which never exceeds the hard one. (Lowering the hard limit below an
// open fd would hide that fd from close_range bookkeeping; see README.md.)
unsigned int FdScanEnd() {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_max > INT_MAX) return INT_MAX;
  return static_cast<unsigned int>(rl.rlim_max);
}

// The kernel closed every fd in [first, last]: forget the kvmlike ones.
void ForgetClosed(unsigned int first, unsigned int last) {
  unsigned int scan_end = FdScanEnd();
  if (scan_end == 0 || first >= scan_end) return;
  kvmlike_fds_closed(first, std::min(last, scan_end - 1));
}

bool IsDupCommand(int cmd) { return cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC; }

}  // namespace

int AfterDup(int oldfd, int result) {
  if (result >= 0 && kvmlike_owns_fd(oldfd)) kvmlike_fd_duplicated(oldfd, result);
  return result;
}

// dup2(fd, fd) succeeds without closing anything, so it must not be noted.
int AfterDupOver(int oldfd, int newfd, int result) {
  if (result < 0 || oldfd == newfd) return result;
  bool old_owned = kvmlike_owns_fd(oldfd);
  if (kvmlike_owns_fd(newfd)) kvmlike_fd_closed(newfd);
  if (old_owned) kvmlike_fd_duplicated(oldfd, newfd);
  return result;
}

// CLOSE_RANGE_CLOEXEC only marks the fds close-on-exec; they stay open and kvmlike's.
int AfterCloseRange(unsigned int first, unsigned int last, int flags, int result) {
  if (result == 0 && (flags & CLOSE_RANGE_CLOEXEC) == 0) ForgetClosed(first, last);
  return result;
}

// closefrom() treats a negative lowfd as 0.
void AfterCloseFrom(int lowfd) {
  ForgetClosed(static_cast<unsigned int>(std::max(lowfd, 0)), UINT_MAX);
}

int FcntlOwned(int fd, int cmd, unsigned long arg, FcntlFn* kernel) {
  if (IsDupCommand(cmd)) return AfterDup(fd, kernel(fd, cmd, arg));
  int ret = kvmlike_fcntl(fd, cmd, arg);
  return ret != kPassToKernel ? ret : kernel(fd, cmd, arg);
}

}  // namespace preload

namespace libc = preload::libc;

// The request is an unsigned long in glibc's prototype; the argument is read as one
// register-sized word, which is how every KVM ioctl passes either an integer or a pointer.
PRELOAD_EXPORT int ioctl(int fd, unsigned long request, ...) {
  va_list ap;
  va_start(ap, request);
  unsigned long arg = va_arg(ap, unsigned long);
  va_end(ap);
  if (kvmlike_owns_fd(fd)) return kvmlike_ioctl(fd, request, arg);
  return libc::ioctl(fd, request, arg);
}

PRELOAD_EXPORT int close(int fd) {
  if (kvmlike_owns_fd(fd)) return kvmlike_close(fd);
  return libc::close(fd);
}

PRELOAD_EXPORT int close_range(unsigned int first, unsigned int last, int flags) {
  return preload::AfterCloseRange(first, last, flags, libc::close_range(first, last, flags));
}

PRELOAD_EXPORT void closefrom(int lowfd) {
  libc::closefrom(lowfd);
  preload::AfterCloseFrom(lowfd);
}

PRELOAD_EXPORT int dup(int fd) { return preload::AfterDup(fd, libc::dup(fd)); }

PRELOAD_EXPORT int dup2(int oldfd, int newfd) {
  return preload::AfterDupOver(oldfd, newfd, libc::dup2(oldfd, newfd));
}

PRELOAD_EXPORT int dup3(int oldfd, int newfd, int flags) {
  return preload::AfterDupOver(oldfd, newfd, libc::dup3(oldfd, newfd, flags));
}

PRELOAD_EXPORT int fcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  unsigned long arg = va_arg(ap, unsigned long);
  va_end(ap);
  if (kvmlike_owns_fd(fd)) return preload::FcntlOwned(fd, cmd, arg, libc::fcntl);
  return libc::fcntl(fd, cmd, arg);
}

PRELOAD_EXPORT int fcntl64(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  unsigned long arg = va_arg(ap, unsigned long);
  va_end(ap);
  if (kvmlike_owns_fd(fd)) return preload::FcntlOwned(fd, cmd, arg, libc::fcntl64);
  return libc::fcntl64(fd, cmd, arg);
}
