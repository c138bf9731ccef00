#include "base/user_copy.h"

#include <sys/uio.h>
#include <unistd.h>

#include <cstring>

namespace base {
namespace {

// process_vm_readv/writev on ourselves: the kernel does the access checks and
// answers EFAULT for any hole, so a bad pointer never becomes a SIGSEGV here.
bool Transfer(void* local, uint64_t remote, size_t len, bool to_user) {
  if (len == 0) return true;
  if (remote == 0 || remote + len < remote) return false;
  struct iovec l = {local, len};
  struct iovec r = {reinterpret_cast<void*>(remote), len};
  ssize_t n = to_user ? process_vm_writev(getpid(), &l, 1, &r, 1, 0)
                      : process_vm_readv(getpid(), &l, 1, &r, 1, 0);
  return n == static_cast<ssize_t>(len);
}

}  // namespace

Status CopyFromUser(void* dst, uint64_t user_src, size_t len) {
  if (!Transfer(dst, user_src, len, false)) return Error::kFault;
  return Status::Ok();
}

Status CopyToUser(uint64_t user_dst, const void* src, size_t len) {
  if (!Transfer(const_cast<void*>(src), user_dst, len, true)) return Error::kFault;
  return Status::Ok();
}

uint64_t UserAddressLimit() {
  // 47-bit user space unless the process has mappings above it (LA57).
  static const uint64_t limit = [] {
    uint64_t probe = reinterpret_cast<uint64_t>(&limit);
    return probe >= (uint64_t{1} << 47) ? (uint64_t{1} << 56) - 4096
                                        : (uint64_t{1} << 47) - 4096;
  }();
  return limit;
}

bool UserRangeOk(uint64_t addr, uint64_t len) {
  uint64_t limit = UserAddressLimit();
  return addr <= limit && len <= limit - addr;
}

}  // namespace base
