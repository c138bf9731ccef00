// System calls issued with the syscall instruction itself, for the one moment the interposer
// cannot use libc: while dlsym() is resolving a libc function on this thread, any call it
// makes into an interposed function must not re-enter dlsym(). Nothing here goes through
// the PLT, so these are safe before constructors run, inside dlsym() and in a fork child.
#ifndef KVMLIKE_FRONTENDS_PRELOAD_PRELOAD_RAW_H
#define KVMLIKE_FRONTENDS_PRELOAD_PRELOAD_RAW_H

#include <cerrno>
#include <sys/syscall.h>
#include <type_traits>

namespace preload::raw {

#if defined(__x86_64__)
inline long Syscall6(long nr, long a0, long a1, long a2, long a3, long a4, long a5) {
  long ret;
  register long r10 __asm__("r10") = a3;
  register long r8 __asm__("r8") = a4;
  register long r9 __asm__("r9") = a5;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(nr), "D"(a0), "S"(a1), "d"(a2), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
}
#elif defined(__aarch64__)
inline long Syscall6(long nr, long a0, long a1, long a2, long a3, long a4, long a5) {
  register long x8 __asm__("x8") = nr;
  register long x0 __asm__("x0") = a0;
  register long x1 __asm__("x1") = a1;
  register long x2 __asm__("x2") = a2;
  register long x3 __asm__("x3") = a3;
  register long x4 __asm__("x4") = a4;
  register long x5 __asm__("x5") = a5;
  __asm__ volatile("svc 0"
                   : "+r"(x0)
                   : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                   : "memory");
  return x0;
}
#else
#error "preload::raw::Syscall6 is not implemented for this architecture"
#endif

// One syscall argument register, from an integer or a pointer.
template <typename T>
long Arg(T v) {
  if constexpr (std::is_pointer_v<T>) {
    return reinterpret_cast<long>(v);
  } else {
    return static_cast<long>(v);
  }
}

// The kernel's -errno convention turned into libc's (-1, errno).
inline long Result(long ret) {
  if (ret < 0 && ret > -4096) {
    errno = static_cast<int>(-ret);
    return -1;
  }
  return ret;
}

// syscall(2) semantics without libc: Syscall(SYS_close, fd) == -1 with errno on failure.
template <typename... Args>
long Syscall(long nr, Args... args) {
  static_assert(sizeof...(Args) <= 6);
  long a[6] = {Arg(args)...};
  return Result(Syscall6(nr, a[0], a[1], a[2], a[3], a[4], a[5]));
}

}  // namespace preload::raw

#endif  // KVMLIKE_FRONTENDS_PRELOAD_PRELOAD_RAW_H
