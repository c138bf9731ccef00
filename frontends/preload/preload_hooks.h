// What the interposer does for kvmlike's fds, mappings and paths, shared by the exported
// libc wrappers and by the syscall() wrapper (preload_syscall.cc). Every exported wrapper
// is "is it kvmlike's? then a hook below, else libc"; kvmlike_owns_fd() is the lock-free
// check that keeps foreign fds off kvmlike entirely.
//
// The notes (After*) run after the kernel has already acted on the real fds and keep
// kvmlike's fd table in step with it. They allocate nothing and take no lock of their own,
// so they are as async-signal-safe as the kvmlike entry points they call.
#ifndef KVMLIKE_FRONTENDS_PRELOAD_PRELOAD_HOOKS_H
#define KVMLIKE_FRONTENDS_PRELOAD_PRELOAD_HOOKS_H

#include <sys/stat.h>
#include <sys/types.h>

#include "frontends/capi/kvmlike.h"

namespace preload {

// glibc declares path arguments nonnull, which lets the compiler drop a null check inside
// a definition of the same function; the empty asm hides where the pointer came from.
inline const char* Opaque(const char* p) {
  __asm__("" : "+r"(p));
  return p;
}

// kvmlike_fcntl()'s answer for "not mine: give the command to the kernel".
inline constexpr int kPassToKernel = -2;

// --- open (preload_open.cc) -------------------------------------------------------------

// Does `path` name /dev/kvm? Absolute paths only, compared lexically: repeated slashes and
// "." components are ignored, ".." and symlinks are not resolved.
bool IsDevKvm(const char* path);

// open("/dev/kvm", flags): Linux's answer for flags that cannot open a character device
// node, else kvmlike_open_dev(flags).
int OpenDevKvm(int flags);

// --- fd lifetime (preload_fd.cc) --------------------------------------------------------

// The kernel answered `result` to dup(oldfd) or fcntl(oldfd, F_DUPFD*); returns `result`.
int AfterDup(int oldfd, int result);

// The kernel answered `result` to dup2/dup3(oldfd, newfd); returns `result`.
int AfterDupOver(int oldfd, int newfd, int result);

// The kernel answered `result` to close_range(first, last, flags); returns `result`.
int AfterCloseRange(unsigned int first, unsigned int last, int flags, int result);

// Forgets every kvmlike fd >= lowfd (after closefrom, which cannot fail).
void AfterCloseFrom(int lowfd);

using FcntlFn = int(int fd, int cmd, unsigned long arg);

// fcntl on a kvmlike fd: dups go to the kernel and are noted, the rest is offered to
// kvmlike first and given to `kernel` when kvmlike passes.
int FcntlOwned(int fd, int cmd, unsigned long arg, FcntlFn* kernel);

// --- memory (preload_mem.cc) ------------------------------------------------------------

// Does mmap(..., flags, fd, ...) map a kvmlike fd? (MAP_ANONYMOUS ignores the fd.)
bool MapsKvmlikeFd(int flags, int fd);

// Brackets a kernel call that unmaps, moves, replaces or protects the program's memory in
// a range, so that guest memory slots stop using it first (KVM's MMU notifier;
// kvmlike_host_range_change). The bracket ends when the object dies, after the call.
class HostRangeBracket {
 public:
  HostRangeBracket(const void* addr, size_t len) : token_(kvmlike_host_range_change(addr, len)) {}
  ~HostRangeBracket() { kvmlike_host_range_done(token_); }
  HostRangeBracket(const HostRangeBracket&) = delete;
  HostRangeBracket& operator=(const HostRangeBracket&) = delete;

 private:
  void* token_;
};

// munmap, mremap and mprotect as the interposer does them, for the exported wrappers and
// for syscall(): kvmlike mappings are kvmlike's business, and the kernel's call on any
// range is bracketed (HostRangeBracket). new_addr counts only with MREMAP_FIXED.
int Munmap(void* addr, size_t len);
void* Mremap(void* old_addr, size_t old_len, size_t new_len, int flags, void* new_addr);
int Mprotect(void* addr, size_t len, int prot);

// --- file operations (preload_io.cc) ----------------------------------------------------

// pread/pwrite/preadv/pwritev on a kvmlike fd; `op` is KVMLIKE_OP_PREAD or _PWRITE.
ssize_t PositionalOwned(int fd, off_t offset, enum kvmlike_file_op op);

// preadv2/pwritev2 on a kvmlike fd: offset -1 means "at the file position".
ssize_t PositionalV2Owned(int fd, off_t offset, enum kvmlike_file_op sequential,
                          enum kvmlike_file_op positional);

off_t LseekOwned(int fd, int whence);

// posix_fallocate on a kvmlike fd: the error number, errno untouched.
int PosixFallocateOwned(int fd, off_t offset, off_t len);

// --- metadata (preload_stat.cc) ---------------------------------------------------------

// Does an *at() stat call with (dirfd, path, flags) describe dirfd itself, a kvmlike fd?
bool StatsOwnedFd(int dirfd, const char* path, int flags);

using StatxFn = int(int dirfd, const char* path, int flags, unsigned int mask,
                    struct statx* stx);

// statx on a kvmlike fd: the kernel's answer for the backing fd (`kernel`), with every
// field struct stat carries replaced by kvmlike_fstat()'s.
int StatxOwned(int fd, const char* path, int flags, unsigned int mask, struct statx* stx,
               StatxFn* kernel);

// --- process (preload_process.cc) -------------------------------------------------------

// Runs kvmlike_atfork_child() once in a freshly forked child, however many of the fork
// paths (pthread_atfork handler, fork and _Fork wrappers) report the same fork.
void ChildAfterFork();

}  // namespace preload

#endif  // KVMLIKE_FRONTENDS_PRELOAD_PRELOAD_HOOKS_H
