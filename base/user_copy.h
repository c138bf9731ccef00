// Copies between kvmlike and the caller's memory that fail instead of crashing:
// an ioctl argument pointer that is NULL, unmapped, partly unmapped, outside
// user space or (for writes) read-only gives Error::kFault (EFAULT), as
// copy_from_user does in the kernel. Each ioctl reads its argument once into a
// kernel-side copy and works only on that copy.
//
// The first copy installs SIGSEGV and SIGBUS handlers that fix up faults of
// the copy instruction and pass every other fault to the handler installed
// before them. A program that later replaces those handlers must keep calling
// the previous ones (as signal-chaining libraries do); the interposer keeps
// kvmlike's in front (see frontends/preload).
#pragma once

#include <cstddef>
#include <signal.h>

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

// Checks that the byte at user_addr can be written, without changing it
// (an atomic OR of zero): kFault otherwise.
Status ProbeUserWrite(uint64_t user_addr);

// The highest user address + 1 of this process (TASK_SIZE_MAX on x86-64 with
// 4- or 5-level paging), for access_ok-style range checks.
uint64_t UserAddressLimit();

// Puts the fault handlers in front now, also if something replaced them since
// (the interposer does this at load time; copies install them lazily).
void InstallUserCopyFaultHandler();

// sigaction(2) for SIGSEGV or SIGBUS once the handlers are installed: the
// caller's handler becomes the one kvmlike's passes foreign faults to, and
// oldact reports the caller's previous one, so kvmlike stays in front.
// Returns false (nothing done) for other signals or before installation.
bool ChainFaultSigaction(int sig, const struct sigaction* act, struct sigaction* oldact);
bool UserRangeOk(uint64_t addr, uint64_t len);

}  // namespace base
