// FdObject: anything a kvmlike fd names — the system device, a VM, a
// guest_memfd, a vCPU — and FdDirectory, the process's fd table as kvmlike sees it.
//
// Every object is backed by a real kernel fd (a memfd), so fd numbers stay
// the kernel's. The front-end owns the table: each fd entry and each host
// mapping of an object holds one reference and one user (AddUser/DropUser);
// what "user" means is the object's (VM fds keep a VM alive; guest_memfd fds
// and mappings keep a guest_memfd file from being released).
#pragma once

#include <cstdint>

#include "base/refptr.h"
#include "base/result.h"
#include "base/unique_fd.h"

namespace kvmlike {

class FdObject : public base::RefCounted<FdObject> {
 public:
  enum class Kind : uint8_t { kSystem, kVm, kGmem, kVcpu, kStats };

  virtual ~FdObject() = default;
  virtual Kind kind() const = 0;
  virtual void AddUser() {}
  virtual void DropUser() {}
  // ioctl(2): the result (>= 0) or an error.
  virtual base::Result<long> Ioctl(unsigned long cmd, unsigned long arg) = 0;
};

class FdDirectory {
 public:
  // Makes fd name obj (the entry holds a reference and a user, which the
  // caller hands over: obj arrives with its user already counted). Returns
  // the fd number.
  virtual int Install(base::UniqueFd fd, base::RefPtr<FdObject> obj) = 0;
  // The object fd names, or null for fds that are not kvmlike's.
  virtual base::RefPtr<FdObject> Lookup(int fd) = 0;

 protected:
  ~FdDirectory() = default;
};

// A long from a Result<long>, errors as -errno (the ioctl boundary).
inline long ToSyscallReturn(const base::Result<long>& r) {
  return r.ok() ? r.value() : -base::ToErrno(r.error());
}

}  // namespace kvmlike
