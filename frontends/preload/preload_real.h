// The libc definitions behind every interposed name, found with dlsym(RTLD_NEXT) on first
// use (and all at once by the library constructor, so that later calls are one atomic load).
//
// Each RealSymbol is constant-initialised, so it works for calls that arrive before any
// constructor has run. Resolution is idempotent, so racing threads may both resolve a
// symbol and store the same pointer. A thread that re-enters the interposer from inside
// its own dlsym() call (dlsym may allocate, and an allocator may open files) gets nullptr
// and must use the raw system call instead (preload_libc.cc does).
#ifndef KVMLIKE_FRONTENDS_PRELOAD_PRELOAD_REAL_H
#define KVMLIKE_FRONTENDS_PRELOAD_PRELOAD_REAL_H

#include <signal.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>

#include "frontends/preload/preload_abi.h"

namespace preload {

// Returns the libc definition of `name` and caches it in `slot`, or nullptr if this thread
// is already inside dlsym() (not cached) or no later object defines `name` (cached).
void* ResolveReal(const char* name, std::atomic<void*>& slot);

// The address cached for a name no later object defines.
extern char kRealMissing;

template <typename Fn>
class RealSymbol {
 public:
  explicit constexpr RealSymbol(const char* name) : name_(name) {}
  RealSymbol(const RealSymbol&) = delete;
  RealSymbol& operator=(const RealSymbol&) = delete;

  // libc's definition, or nullptr when it cannot be used right now (see above).
  Fn* Get() {
    void* fn = slot_.load(std::memory_order_acquire);
    if (fn == nullptr) fn = ResolveReal(name_, slot_);
    if (fn == nullptr || fn == &kRealMissing) return nullptr;
    return reinterpret_cast<Fn*>(fn);
  }

 private:
  const char* name_;
  std::atomic<void*> slot_{nullptr};
};

// Every interposed name, in interposed.sym order.
#define PRELOAD_REAL_SYMBOLS(X)                                                          \
  X(open) X(open64) X(__open_2) X(__open64_2) X(openat) X(openat64) X(__openat_2)        \
  X(__openat64_2) X(creat) X(creat64)                                                    \
  X(ioctl) X(close) X(close_range) X(closefrom) X(dup) X(dup2) X(dup3) X(fcntl)          \
  X(fcntl64)                                                                             \
  X(mmap) X(mmap64) X(munmap) X(mremap) X(madvise) X(mprotect)                            \
  X(fallocate) X(fallocate64) X(posix_fallocate) X(posix_fallocate64) X(ftruncate)      \
  X(ftruncate64) X(fchmod) X(fchown) X(futimens) X(lseek) X(lseek64) X(read) X(write) X(pread) X(pread64) X(pwrite)      \
  X(pwrite64) X(readv) X(writev) X(preadv) X(preadv64) X(preadv2) X(preadv64v2)          \
  X(pwritev) X(pwritev64) X(pwritev2) X(pwritev64v2) X(__read_chk) X(__pread_chk)        \
  X(__pread64_chk)                                                                       \
  X(fstat) X(fstat64) X(fstatat) X(fstatat64) X(statx) X(__fxstat) X(__fxstat64)         \
  X(__fxstatat) X(__fxstatat64)                                                          \
  X(sigaction) X(signal) X(fork) X(_Fork) X(syscall)

namespace real {
// The function types keep glibc's parameter attributes (nonnull, ...), which a template
// argument cannot carry; dropping them is harmless for a pointer used only to call.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-attributes"
#define PRELOAD_DECLARE_REAL(name) inline RealSymbol<decltype(::name)> name{#name};
PRELOAD_REAL_SYMBOLS(PRELOAD_DECLARE_REAL)
#undef PRELOAD_DECLARE_REAL
#pragma GCC diagnostic pop

// Resolves every symbol now (the library constructor calls this once).
void ResolveAll();
}  // namespace real

}  // namespace preload

#endif  // KVMLIKE_FRONTENDS_PRELOAD_PRELOAD_REAL_H
