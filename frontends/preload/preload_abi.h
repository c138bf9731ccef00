// The libc ABI the interposer replaces. Every exported definition is one of the names in
// interposed.sym; everything else in the library is hidden (-fvisibility=hidden plus a
// version script), so the statically linked C ABI never becomes visible to the program.
//
// Built without _FORTIFY_SOURCE and without _FILE_OFFSET_BITS=64, so that open/open64,
// fstat/fstat64, ... are distinct declarations and none is an inline fortify wrapper.
#ifndef KVMLIKE_FRONTENDS_PRELOAD_PRELOAD_ABI_H
#define KVMLIKE_FRONTENDS_PRELOAD_PRELOAD_ABI_H

#if defined(_FORTIFY_SOURCE) && _FORTIFY_SOURCE > 0
#error "the interposer must be compiled with -U_FORTIFY_SOURCE"
#endif
#if defined(_FILE_OFFSET_BITS) && _FILE_OFFSET_BITS == 64
#error "the interposer must be compiled without _FILE_OFFSET_BITS=64"
#endif

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>

// A definition that replaces the libc function of the same name for the whole process.
#define PRELOAD_EXPORT extern "C" __attribute__((visibility("default")))

// The interposer relies on the 64-bit ABI, where every *64 variant is layout-identical
// to its base function (off_t == off64_t, struct stat == struct stat64).
static_assert(sizeof(off_t) == 8 && sizeof(off64_t) == 8, "LP64 only");
static_assert(sizeof(struct stat) == sizeof(struct stat64), "LP64 only");

// Entry points glibc exports but declares only under _FORTIFY_SOURCE (fortify wrappers)
// or no longer declares at all (the pre-2.33 stat ABI).
extern "C" {
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);
ssize_t __read_chk(int fd, void *buf, size_t nbytes, size_t buflen);
ssize_t __pread_chk(int fd, void *buf, size_t nbytes, off_t offset, size_t buflen);
ssize_t __pread64_chk(int fd, void *buf, size_t nbytes, off64_t offset, size_t buflen);
int __fxstat(int ver, int fd, struct stat *st);
int __fxstat64(int ver, int fd, struct stat64 *st);
int __fxstatat(int ver, int dirfd, const char *path, struct stat *st, int flags);
int __fxstatat64(int ver, int dirfd, const char *path, struct stat64 *st, int flags);
[[noreturn]] void __chk_fail(void);
}

#endif  // KVMLIKE_FRONTENDS_PRELOAD_PRELOAD_ABI_H
