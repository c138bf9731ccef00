// The C ABI (kvmlike.h) over the Frontend. Errors become -1 with errno here
// and nowhere else.
#include "frontends/capi/kvmlike.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <new>

#include "frontends/capi/frontend.h"
#include "base/user_copy.h"
#include "kvmlike/gmem_fd.h"
#include "kvmlike/vcpu.h"

namespace frontend {
namespace {

std::atomic<Frontend*> g_frontend{nullptr};
std::once_flag g_once;
alignas(Frontend) unsigned char g_storage[sizeof(Frontend)];

}  // namespace

Frontend& Get() {
  std::call_once(g_once, [] { g_frontend.store(new (g_storage) Frontend(), std::memory_order_release); });
  return *g_frontend.load(std::memory_order_acquire);
}

Frontend* GetIfCreated() { return g_frontend.load(std::memory_order_acquire); }

}  // namespace frontend

using frontend::Frontend;
using kvmlike::FdObject;
using kvmlike::GmemFd;

namespace {

int Fail(base::Error e) {
  errno = base::ToErrno(e);
  return -1;
}

base::RefPtr<FdObject> LookupOrEbadf(int fd) {
  Frontend* f = frontend::GetIfCreated();
  base::RefPtr<FdObject> obj = f ? f->fds.Lookup(fd) : nullptr;
  if (!obj) errno = EBADF;
  return obj;
}

GmemFd* AsGmem(const base::RefPtr<FdObject>& obj) {
  return obj && obj->kind() == FdObject::Kind::kGmem ? static_cast<GmemFd*>(obj.get()) : nullptr;
}

// The program's memory in [addr, addr+len) is about to change; the change ends
// when the result dies (null before the front-end exists: no VM to tell).
std::unique_ptr<kvmlike::HostRangeChange> BeginHostRangeChange(const void* addr, size_t len) {
  Frontend* f = frontend::GetIfCreated();
  if (!f) return nullptr;
  auto begin = base::Hva(reinterpret_cast<uintptr_t>(addr));
  // A length the kernel will refuse changes nothing; clamp rather than wrap.
  uint64_t room = ~uint64_t{0} - begin.value();
  return f->system.BeginHostRangeChange(base::HvaRange::FromCount(begin, std::min<uint64_t>(len, room)));
}

}  // namespace

extern "C" {

bool kvmlike_owns_fd(int fd) {
  Frontend* f = frontend::GetIfCreated();
  return f && f->fds.Owns(fd);
}

bool kvmlike_owns_range(const void* addr, size_t len) {
  Frontend* f = frontend::GetIfCreated();
  return f && f->fds.OwnsRange(addr, len);
}

int kvmlike_open_dev(int flags) {
  auto r = frontend::Get().system.OpenDevice(flags);
  return r.ok() ? r.value() : Fail(r.error());
}

int kvmlike_ioctl(int fd, unsigned long request, unsigned long arg) {
  base::RefPtr<FdObject> obj = LookupOrEbadf(fd);
  if (!obj) return -1;
  // The VFS answers these for every file before the file's own ioctl.
  if (request == FIOCLEX || request == FIONCLEX || request == FIONBIO || request == FIOASYNC)
    return ioctl(fd, request, arg);
  base::Result<long> r = obj->Ioctl(request, arg);
  return r.ok() ? static_cast<int>(r.value()) : Fail(r.error());
}

int kvmlike_close(int fd) {
  Frontend* f = frontend::GetIfCreated();
  if (!f || !f->fds.Owns(fd)) {
    errno = EBADF;
    return -1;
  }
  // The kernel fd goes first, so the number cannot be reused while it still
  // names our object; then the object loses this fd's use.
  int r = close(fd);
  int saved = errno;
  f->fds.Forget(fd);
  errno = saved;
  return r;
}

void kvmlike_fd_duplicated(int oldfd, int newfd) {
  if (Frontend* f = frontend::GetIfCreated()) f->fds.Duplicated(oldfd, newfd);
}

void kvmlike_fd_closed(int fd) {
  if (Frontend* f = frontend::GetIfCreated()) f->fds.Forget(fd);
}

void* kvmlike_mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  base::RefPtr<FdObject> obj = LookupOrEbadf(fd);
  if (!obj) return MAP_FAILED;
  base::Result<void*> r = base::Error::kNoDevice;  // /dev/kvm and VM fds have no mmap
  if (GmemFd* gmem = AsGmem(obj))
    r = gmem->Mmap(addr, len, prot, flags, fd, off);
  else if (obj->kind() == FdObject::Kind::kVcpu)
    r = static_cast<kvmlike::Vcpu&>(*obj).Mmap(addr, len, prot, flags, fd, off);
  if (!r.ok()) {
    Fail(r.error());
    return MAP_FAILED;
  }
  Frontend& f = frontend::Get();
  if (flags & MAP_FIXED) f.fds.RemoveMappings(r.value(), len);
  obj->AddUser();
  f.fds.AddMapping(r.value(), len, std::move(obj));
  return r.value();
}

int kvmlike_munmap(void* addr, size_t len) {
  int r;
  {
    auto change = BeginHostRangeChange(addr, len);
    r = munmap(addr, len);
  }
  if (r == 0)
    if (Frontend* f = frontend::GetIfCreated()) f->fds.RemoveMappings(addr, len);
  return r;
}

// The token is the HostRangeChange, owned by the caller until it is done.
void* kvmlike_host_range_change(const void* addr, size_t len) {
  return BeginHostRangeChange(addr, len).release();
}

void kvmlike_host_range_done(void* token) { delete static_cast<kvmlike::HostRangeChange*>(token); }

void kvmlike_mremapped(void* old_addr, size_t old_len, void* new_addr, size_t new_len) {
  if (Frontend* f = frontend::GetIfCreated()) f->fds.MoveMappings(old_addr, old_len, new_addr, new_len);
}

void kvmlike_fds_closed(unsigned int first, unsigned int last) {
  if (Frontend* f = frontend::GetIfCreated()) f->fds.ForgetRange(first, last);
}

int kvmlike_fallocate(int fd, int mode, off_t offset, off_t len) {
  base::RefPtr<FdObject> obj = LookupOrEbadf(fd);
  if (!obj) return -1;
  GmemFd* gmem = AsGmem(obj);
  if (!gmem) return Fail(base::Error::kNoDevice);
  base::Status s = gmem->Fallocate(fd, mode, offset, len);
  return s.ok() ? 0 : Fail(s.error());
}

int kvmlike_fstat(int fd, struct stat* st) {
  base::RefPtr<FdObject> obj = LookupOrEbadf(fd);
  if (!obj) return -1;
  if (GmemFd* gmem = AsGmem(obj)) {
    base::Status s = gmem->Fstat(fd, st);
    return s.ok() ? 0 : Fail(s.error());
  }
  // /dev/kvm is the misc character device 10:232; a VM fd is an anonymous
  // inode (mode 0600, no file type). The memfd behind them gives the rest.
  if (fstat(fd, st) != 0) return -1;
  st->st_size = 0;
  st->st_blocks = 0;
  if (obj->kind() == FdObject::Kind::kSystem) {
    st->st_mode = S_IFCHR | 0600;
    st->st_rdev = makedev(10, 232);
  } else {
    st->st_mode = 0600;
  }
  return 0;
}

int kvmlike_ftruncate(int fd, off_t) {
  base::RefPtr<FdObject> obj = LookupOrEbadf(fd);
  if (!obj) return -1;
  return Fail(base::Error::kInvalid);  // guest_memfd size is immutable; others have no setattr
}

int kvmlike_fcntl(int fd, int cmd, unsigned long) {
  base::RefPtr<FdObject> obj = LookupOrEbadf(fd);
  if (!obj) return -1;
  if (AsGmem(obj) && (cmd == F_ADD_SEALS || cmd == F_GET_SEALS)) return Fail(base::Error::kInvalid);
  // A stats fd is a reopened memfd, and open() adds O_LARGEFILE on 64-bit;
  // KVM's stats fds have exactly O_RDONLY.
  if (obj->kind() == FdObject::Kind::kStats && cmd == F_GETFL) {
    int flags = fcntl(fd, F_GETFL);
    return flags < 0 ? flags : flags & ~0100000;  // O_LARGEFILE (x86-64's kernel value)
  }
  return -2;
}

bool kvmlike_answers_file_io(int fd) {
  Frontend* f = frontend::GetIfCreated();
  if (!f || !f->fds.Owns(fd)) return false;
  base::RefPtr<FdObject> obj = f->fds.Lookup(fd);
  return obj && obj->kind() != FdObject::Kind::kStats;
}

long kvmlike_file_op(int fd, enum kvmlike_file_op op) {
  base::RefPtr<FdObject> obj = LookupOrEbadf(fd);
  if (!obj) return -1;
  switch (op) {
    case KVMLIKE_OP_READ:
    case KVMLIKE_OP_WRITE:
      return Fail(base::Error::kInvalid);
    case KVMLIKE_OP_PREAD:
    case KVMLIKE_OP_PWRITE:
    case KVMLIKE_OP_LSEEK:
      if (AsGmem(obj)) return Fail(base::Error::kSeek);
      // /dev/kvm and VM files: noop_llseek answers 0; no pread/pwrite.
      return op == KVMLIKE_OP_LSEEK ? 0 : Fail(base::Error::kSeek);
  }
  return Fail(base::Error::kInvalid);
}

int kvmlike_setattr(int fd) {
  base::RefPtr<FdObject> obj = LookupOrEbadf(fd);
  if (!obj) return -1;
  return AsGmem(obj) ? Fail(base::Error::kInvalid) : -2;  // gmem's setattr refuses all
}

int kvmlike_madvise(void* addr, size_t len, int advice) {
  constexpr int kMadvCollapse = 25;  // MADV_COLLAPSE (Linux 6.1)
  Frontend* f = frontend::GetIfCreated();
  if (advice == kMadvCollapse && f && f->fds.OwnsRange(addr, len)) return Fail(base::Error::kInvalid);
  return -2;
}

int kvmlike_sigaction(int sig, const struct sigaction* act, struct sigaction* oldact) {
  return base::ChainFaultSigaction(sig, act, oldact) ? 0 : -2;
}

void kvmlike_atfork_child(void) {
  if (Frontend* f = frontend::GetIfCreated()) f->system.OnForkChild();
}

}  // extern "C"
