/* SPDX-License-Identifier: MIT */
/*
 * kvmlike's C ABI: ioctl-shaped entry points for programs that link kvmlike
 * directly, and the layer the LD_PRELOAD interposer routes intercepted libc
 * calls to. One fd table per process, keyed by the real kernel fd numbers that
 * back every kvmlike object (the /dev/kvm fd, VM fds and guest_memfd fds are
 * all real fds; guest_memfd fds are memfds of the guest_memfd's size).
 *
 * Conventions: every function returns what the corresponding syscall returns
 * (-1 with errno set on failure). Functions taking an fd that kvmlike does not
 * own fail with EBADF; callers that interpose libc test kvmlike_owns_fd() first
 * and pass foreign fds to libc.
 *
 * Thread safety: every entry point may be called from any thread.
 */
#ifndef KVMLIKE_FRONTENDS_CAPI_KVMLIKE_H
#define KVMLIKE_FRONTENDS_CAPI_KVMLIKE_H

#include <stdbool.h>
#include <signal.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Does fd name a kvmlike object (system, VM, guest_memfd, ...)? Lock-free. */
bool kvmlike_owns_fd(int fd);

/* Is any address in [addr, addr+len) mapped through kvmlike_mmap? Lock-free fast path. */
bool kvmlike_owns_range(const void *addr, size_t len);

/* open("/dev/kvm", flags): a new system fd. O_CLOEXEC in flags is honoured. */
int kvmlike_open_dev(int flags);

/* ioctl(2) on a kvmlike fd. */
int kvmlike_ioctl(int fd, unsigned long request, unsigned long arg);

/* close(2) of a kvmlike fd: drops the object's use and closes the kernel fd. */
int kvmlike_close(int fd);

/*
 * The kernel already duplicated oldfd to newfd (dup, dup2, dup3, F_DUPFD*):
 * record that newfd names the same object. If newfd named a kvmlike object
 * before (dup2 over it), that use is dropped first.
 */
void kvmlike_fd_duplicated(int oldfd, int newfd);

/* The kernel closed fd behind our back (close_range, dup2 target): forget it. */
void kvmlike_fd_closed(int fd);

/* mmap(2) of a kvmlike fd; (void *)-1 with errno on failure. */
void *kvmlike_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);

/* munmap(2) of a range that may hold kvmlike mappings (drops their uses). */
int kvmlike_munmap(void *addr, size_t len);

/*
 * The program's memory in [addr, addr+len) is about to be unmapped, moved or
 * replaced (munmap, mremap, mmap with MAP_FIXED) by a call kvmlike does not
 * make itself: memslots backed by it stop using it first, as KVM's MMU
 * notifier does. Returns a token for kvmlike_host_range_done, to be called
 * once the kernel call returned (NULL: nothing to end).
 */
void *kvmlike_host_range_change(const void *addr, size_t len);
void kvmlike_host_range_done(void *token);

/*
 * The kernel moved or resized [old_addr, +old_len) to [new_addr, +new_len)
 * (mremap): kvmlike mappings there follow it.
 */
void kvmlike_mremapped(void *old_addr, size_t old_len, void *new_addr, size_t new_len);

/* The kernel closed every fd in [first, last] (close_range, closefrom). */
void kvmlike_fds_closed(unsigned int first, unsigned int last);

/* fallocate(2) on a kvmlike fd. */
int kvmlike_fallocate(int fd, int mode, off_t offset, off_t len);

/* fstat(2) on a kvmlike fd: what Linux reports for that kind of file. */
int kvmlike_fstat(int fd, struct stat *st);

/* ftruncate(2) on a kvmlike fd. */
int kvmlike_ftruncate(int fd, off_t len);

/* fcntl(2) on a kvmlike fd for commands kvmlike answers itself (seals); returns
 * -2 when the command should go to the kernel unchanged. */
int kvmlike_fcntl(int fd, int cmd, unsigned long arg);

/*
 * Does kvmlike answer read/write/lseek-family calls on fd? False for fds it
 * does not own and for stats fds, whose reads the kernel serves (the stats
 * data lives in the memfd behind them).
 */
bool kvmlike_answers_file_io(int fd);

/*
 * Operations Linux refuses on these files: read, write, pread, pwrite, lseek,
 * readv/writev and friends. Returns -1 with the errno Linux gives.
 */
enum kvmlike_file_op {
	KVMLIKE_OP_READ,   /* read, readv: EINVAL on guest_memfd */
	KVMLIKE_OP_WRITE,  /* write, writev: EINVAL on guest_memfd */
	KVMLIKE_OP_PREAD,  /* pread, preadv*: ESPIPE */
	KVMLIKE_OP_PWRITE, /* pwrite, pwritev*: ESPIPE */
	KVMLIKE_OP_LSEEK,  /* lseek: ESPIPE */
};
long kvmlike_file_op(int fd, enum kvmlike_file_op op);

/*
 * fchmod/fchown/futimens (any attribute change) on a kvmlike fd: -1 with the
 * errno Linux gives (EINVAL on guest_memfd), or -2 when the call should go
 * to the kernel unchanged.
 */
int kvmlike_setattr(int fd);

/*
 * madvise(2) over a range that holds kvmlike mappings: -1 with errno for
 * advice Linux refuses there (MADV_COLLAPSE on guest_memfd: EINVAL), or -2
 * when the call should go to the kernel unchanged.
 */
int kvmlike_madvise(void *addr, size_t len, int advice);

/*
 * sigaction(2) for SIGSEGV and SIGBUS while kvmlike's fault handlers are in
 * front (they turn faults on bad ioctl argument pointers into EFAULT): the
 * caller's handler is chained behind kvmlike's and 0 returned. -2 when the
 * call should go to the kernel unchanged.
 */
int kvmlike_sigaction(int sig, const struct sigaction *act, struct sigaction *oldact);

/* After fork() in the child: VM and vCPU ioctls answer EIO from now on. */
void kvmlike_atfork_child(void);

#ifdef __cplusplus
}
#endif

#endif /* KVMLIKE_FRONTENDS_CAPI_KVMLIKE_H */
