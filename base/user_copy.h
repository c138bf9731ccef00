// Copies between kvmlike and the caller's memory that fail instead of crashing:
// an ioctl argument pointer that is NULL, unmapped or partly unmapped gives
// Error::kFault (EFAULT), as copy_from_user does in the kernel. Each ioctl reads
// its argument once into a kernel-side copy and works only on that copy.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/result.h"

namespace base {

Status CopyFromUser(void* dst, uint64_t user_src, size_t len);
Status CopyToUser(uint64_t user_dst, const void* src, size_t len);

template <typename T>
Result<T> ReadUser(uint64_t user_src) {
  T v;
  TRY(CopyFromUser(&v, user_src, sizeof(T)));
  return v;
}

template <typename T>
Status WriteUser(uint64_t user_dst, const T& v) {
  return CopyToUser(user_dst, &v, sizeof(T));
}

// The highest user address + 1 of this process (TASK_SIZE_MAX on x86-64 with
// 4- or 5-level paging), for access_ok-style range checks.
uint64_t UserAddressLimit();
bool UserRangeOk(uint64_t addr, uint64_t len);

}  // namespace base
