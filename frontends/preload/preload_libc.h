// The calls the interposer makes when something is not kvmlike's: the next definition of
// the same libc function (normally glibc's), or, while this thread is inside dlsym(), the
// equivalent raw system call. Each keeps the libc name it forwards to; variadic libc
// functions take their optional argument explicitly (the interposed wrappers have already
// read it with va_arg).
//
// These are also what the statically linked C ABI reaches when it calls libc itself: the
// library is linked with -Wl,--wrap for every interposed name, and __wrap_<name>
// (preload_wrap.cc) forwards here, so kvmlike's own close()/mmap()/... on its backing fds
// never loop back into the interposer.
#ifndef KVMLIKE_FRONTENDS_PRELOAD_PRELOAD_LIBC_H
#define KVMLIKE_FRONTENDS_PRELOAD_PRELOAD_LIBC_H

#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "frontends/preload/preload_abi.h"

namespace preload::libc {

int open(const char* path, int flags, mode_t mode);
int open64(const char* path, int flags, mode_t mode);
int open_2(const char* path, int flags);    // __open_2
int open64_2(const char* path, int flags);  // __open64_2
int openat(int dirfd, const char* path, int flags, mode_t mode);
int openat64(int dirfd, const char* path, int flags, mode_t mode);
int openat_2(int dirfd, const char* path, int flags);    // __openat_2
int openat64_2(int dirfd, const char* path, int flags);  // __openat64_2
int creat(const char* path, mode_t mode);
int creat64(const char* path, mode_t mode);

int ioctl(int fd, unsigned long request, unsigned long arg);
int close(int fd);
int close_range(unsigned int first, unsigned int last, int flags);
void closefrom(int lowfd);
int dup(int fd);
int dup2(int oldfd, int newfd);
int dup3(int oldfd, int newfd, int flags);
int fcntl(int fd, int cmd, unsigned long arg);
int fcntl64(int fd, int cmd, unsigned long arg);

void* mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off);
void* mmap64(void* addr, size_t len, int prot, int flags, int fd, off64_t off);
int munmap(void* addr, size_t len);
void* mremap(void* old_addr, size_t old_len, size_t new_len, int flags, void* new_addr);
int madvise(void* addr, size_t len, int advice);
int mprotect(void* addr, size_t len, int prot);

int fallocate(int fd, int mode, off_t offset, off_t len);
int fallocate64(int fd, int mode, off64_t offset, off64_t len);
int posix_fallocate(int fd, off_t offset, off_t len);
int posix_fallocate64(int fd, off64_t offset, off64_t len);
int ftruncate(int fd, off_t len);
int ftruncate64(int fd, off64_t len);
int fchmod(int fd, mode_t mode);
int fchown(int fd, uid_t owner, gid_t group);
int futimens(int fd, const struct timespec times[2]);
off_t lseek(int fd, off_t offset, int whence);
off64_t lseek64(int fd, off64_t offset, int whence);
ssize_t read(int fd, void* buf, size_t count);
ssize_t write(int fd, const void* buf, size_t count);
ssize_t pread(int fd, void* buf, size_t count, off_t offset);
ssize_t pread64(int fd, void* buf, size_t count, off64_t offset);
ssize_t pwrite(int fd, const void* buf, size_t count, off_t offset);
ssize_t pwrite64(int fd, const void* buf, size_t count, off64_t offset);
ssize_t readv(int fd, const struct iovec* iov, int iovcnt);
ssize_t writev(int fd, const struct iovec* iov, int iovcnt);
ssize_t preadv(int fd, const struct iovec* iov, int iovcnt, off_t offset);
ssize_t preadv64(int fd, const struct iovec* iov, int iovcnt, off64_t offset);
ssize_t preadv2(int fd, const struct iovec* iov, int iovcnt, off_t offset, int flags);
ssize_t preadv64v2(int fd, const struct iovec* iov, int iovcnt, off64_t offset, int flags);
ssize_t pwritev(int fd, const struct iovec* iov, int iovcnt, off_t offset);
ssize_t pwritev64(int fd, const struct iovec* iov, int iovcnt, off64_t offset);
ssize_t pwritev2(int fd, const struct iovec* iov, int iovcnt, off_t offset, int flags);
ssize_t pwritev64v2(int fd, const struct iovec* iov, int iovcnt, off64_t offset, int flags);
ssize_t read_chk(int fd, void* buf, size_t count, size_t buflen);  // __read_chk
ssize_t pread_chk(int fd, void* buf, size_t count, off_t offset, size_t buflen);
ssize_t pread64_chk(int fd, void* buf, size_t count, off64_t offset, size_t buflen);

int fstat(int fd, struct stat* st);
int fstat64(int fd, struct stat64* st);
int fstatat(int dirfd, const char* path, struct stat* st, int flags);
int fstatat64(int dirfd, const char* path, struct stat64* st, int flags);
int statx(int dirfd, const char* path, int flags, unsigned int mask, struct statx* stx);
int fxstat(int ver, int fd, struct stat* st);  // __fxstat
int fxstat64(int ver, int fd, struct stat64* st);
int fxstatat(int ver, int dirfd, const char* path, struct stat* st, int flags);
int fxstatat64(int ver, int dirfd, const char* path, struct stat64* st, int flags);

int sigaction(int sig, const struct sigaction* act, struct sigaction* oldact);
sighandler_t signal(int sig, sighandler_t handler);
pid_t fork();
pid_t Fork();  // _Fork
long syscall(long nr, long a0, long a1, long a2, long a3, long a4, long a5);

}  // namespace preload::libc

#endif  // KVMLIKE_FRONTENDS_PRELOAD_PRELOAD_LIBC_H
