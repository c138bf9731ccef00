// Host mappings: mmap of a kvmlike fd and munmap of a range that holds kvmlike mappings go
// to kvmlike, which counts each mapping as a use of its file (a guest_memfd stays in use
// while it is mapped, as in Linux).
//
// mremap of a kvmlike mapping moves its use with it; madvise answers what Linux refuses on
// guest_memfd mappings (MADV_COLLAPSE). munmap, mremap, mmap(MAP_FIXED) and mprotect of
// any other memory first make guest memory slots stop using it (kvmlike_host_range_change).
#include <sys/mman.h>

#include <cstdarg>
#include <optional>

#include "frontends/preload/preload_abi.h"
#include "frontends/preload/preload_hooks.h"
#include "frontends/preload/preload_libc.h"

namespace libc = preload::libc;

namespace preload {

bool MapsKvmlikeFd(int flags, int fd) {
  return (flags & MAP_ANONYMOUS) == 0 && kvmlike_owns_fd(fd);
}

int Munmap(void* addr, size_t len) {
  if (kvmlike_owns_range(addr, len)) return kvmlike_munmap(addr, len);
  HostRangeBracket change(addr, len);
  return libc::munmap(addr, len);
}

void* Mremap(void* old_addr, size_t old_len, size_t new_len, int flags, void* new_addr) {
  bool owned = kvmlike_owns_range(old_addr, old_len);
  void* r;
  {
    // MREMAP_FIXED also replaces whatever was mapped at the target.
    HostRangeBracket change(old_addr, old_len);
    std::optional<HostRangeBracket> target;
    if (flags & MREMAP_FIXED) target.emplace(new_addr, new_len);
    r = libc::mremap(old_addr, old_len, new_len, flags, new_addr);
  }
  if (owned && r != MAP_FAILED) kvmlike_mremapped(old_addr, old_len, r, new_len);
  return r;
}

// Taking permissions away from memory behind a guest slot must take its
// mappings down first, as for munmap.
int Mprotect(void* addr, size_t len, int prot) {
  HostRangeBracket change(addr, len);
  return libc::mprotect(addr, len, prot);
}

}  // namespace preload

using preload::HostRangeBracket;

// MAP_FIXED replaces whatever was mapped at addr.
PRELOAD_EXPORT void* mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  if (preload::MapsKvmlikeFd(flags, fd)) return kvmlike_mmap(addr, len, prot, flags, fd, off);
  if (!(flags & MAP_FIXED)) return libc::mmap(addr, len, prot, flags, fd, off);
  HostRangeBracket change(addr, len);
  return libc::mmap(addr, len, prot, flags, fd, off);
}

PRELOAD_EXPORT void* mmap64(void* addr, size_t len, int prot, int flags, int fd, off64_t off) {
  if (preload::MapsKvmlikeFd(flags, fd)) return kvmlike_mmap(addr, len, prot, flags, fd, off);
  if (!(flags & MAP_FIXED)) return libc::mmap64(addr, len, prot, flags, fd, off);
  HostRangeBracket change(addr, len);
  return libc::mmap64(addr, len, prot, flags, fd, off);
}

PRELOAD_EXPORT int munmap(void* addr, size_t len) { return preload::Munmap(addr, len); }

PRELOAD_EXPORT void* mremap(void* old_addr, size_t old_len, size_t new_len, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  void* new_addr = (flags & MREMAP_FIXED) ? va_arg(ap, void*) : nullptr;
  va_end(ap);
  return preload::Mremap(old_addr, old_len, new_len, flags, new_addr);
}

PRELOAD_EXPORT int mprotect(void* addr, size_t len, int prot) {
  return preload::Mprotect(addr, len, prot);
}

PRELOAD_EXPORT int madvise(void* addr, size_t len, int advice) {
  if (kvmlike_owns_range(addr, len)) {
    int r = kvmlike_madvise(addr, len, advice);
    if (r != preload::kPassToKernel) return r;
  }
  return libc::madvise(addr, len, advice);
}
