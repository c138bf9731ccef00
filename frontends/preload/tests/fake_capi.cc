// The fake C ABI behind libkvmlike-preload-fake.so. Its own libc calls (memfd setup, close,
// mmap, ...) are on fds it owns: they only reach libc because the library is linked with
// --wrap, so the tests that pass here also show that kvmlike code cannot re-enter the
// interposer. Single-threaded by design, like the test that drives it.
#include "frontends/preload/tests/fake_capi.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>

#include "frontends/capi/kvmlike.h"

namespace {

constexpr int kMaxFd = 1024;
constexpr int kMaxMappings = 16;

struct Mapping {
  uintptr_t start = 0;
  uintptr_t end = 0;
};

FakeCapiLog g_log;
std::atomic<FakeFdKind> g_kind[kMaxFd];
Mapping g_mappings[kMaxMappings];

FakeFdKind Kind(int fd) {
  if (fd < 0 || fd >= kMaxFd) return kFakeNone;
  return g_kind[fd].load(std::memory_order_relaxed);
}

void SetKind(int fd, FakeFdKind kind) {
  if (fd >= 0 && fd < kMaxFd) g_kind[fd].store(kind, std::memory_order_relaxed);
}

int Fail(int err) {
  errno = err;
  return -1;
}

int NewObject(const char* name, FakeFdKind kind, unsigned int memfd_flags) {
  int fd = memfd_create(name, memfd_flags);
  if (fd < 0) return -1;
  if (ftruncate(fd, kFakeVmSize) != 0 || fd >= kMaxFd) {
    close(fd);
    return Fail(EMFILE);
  }
  SetKind(fd, kind);
  return fd;
}

bool Overlaps(const Mapping& m, uintptr_t start, uintptr_t end) {
  return m.start < end && start < m.end;
}

// Is the page at addr mapped? (mincore fails with ENOMEM on an unmapped one.)
bool PageMapped(unsigned long addr) {
  unsigned char vec;
  int saved = errno;
  bool mapped = mincore(reinterpret_cast<void*>(addr & ~4095ul), 1, &vec) == 0;
  errno = saved;
  return mapped;
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) FakeCapiLog* kvmlike_fake_log(void) { return &g_log; }

__attribute__((visibility("default"))) FakeFdKind kvmlike_fake_kind(int fd) { return Kind(fd); }

bool kvmlike_owns_fd(int fd) { return Kind(fd) != kFakeNone; }

bool kvmlike_owns_range(const void* addr, size_t len) {
  auto start = reinterpret_cast<uintptr_t>(addr);
  for (const Mapping& m : g_mappings) {
    if (Overlaps(m, start, start + len)) return true;
  }
  return false;
}

int kvmlike_open_dev(int flags) {
  ++g_log.open_dev;
  g_log.open_dev_flags = flags;
  return NewObject("kvmlike-fake-dev", kFakeSystem, (flags & O_CLOEXEC) ? MFD_CLOEXEC : 0);
}

int kvmlike_ioctl(int fd, unsigned long request, unsigned long arg) {
  ++g_log.ioctl;
  g_log.ioctl_fd = fd;
  g_log.ioctl_request = request;
  g_log.ioctl_arg = arg;
  switch (request) {
    case KVM_GET_API_VERSION:
      return kFakeApiVersion;
    case KVM_CREATE_VM:
      return NewObject("kvmlike-fake-vm", kFakeVm, MFD_CLOEXEC);
    default:
      return Fail(ENOTTY);
  }
}

int kvmlike_close(int fd) {
  ++g_log.close;
  g_log.close_fd = fd;
  SetKind(fd, kFakeNone);
  return close(fd);
}

void kvmlike_fd_duplicated(int oldfd, int newfd) {
  ++g_log.duplicated;
  g_log.dup_old = oldfd;
  g_log.dup_new = newfd;
  if (Kind(newfd) != kFakeNone) ++g_log.dup_replaced_owned;
  SetKind(newfd, Kind(oldfd));
}

void kvmlike_fd_closed(int fd) {
  if (g_log.closed < kFakeMaxClosed) g_log.closed_fds[g_log.closed] = fd;
  ++g_log.closed;
  SetKind(fd, kFakeNone);
}

void* kvmlike_mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  ++g_log.mmap;
  void* p = mmap(addr, len, prot, flags, fd, off);
  if (p == MAP_FAILED) return p;
  for (Mapping& m : g_mappings) {
    if (m.start == m.end) {
      m.start = reinterpret_cast<uintptr_t>(p);
      m.end = m.start + len;
      break;
    }
  }
  return p;
}

int kvmlike_munmap(void* addr, size_t len) {
  ++g_log.munmap;
  auto start = reinterpret_cast<uintptr_t>(addr);
  for (Mapping& m : g_mappings) {
    if (Overlaps(m, start, start + len)) m = Mapping{};
  }
  return munmap(addr, len);
}

// Like guest_memfd, mode 0 (allocate and extend) is not supported.
int kvmlike_fallocate(int fd, int mode, off_t offset, off_t len) {
  ++g_log.fallocate;
  g_log.fallocate_mode = mode;
  if (mode == 0) return Fail(EOPNOTSUPP);
  return fallocate(fd, mode, offset, len);
}

int kvmlike_fstat(int fd, struct stat* st) {
  ++g_log.fstat;
  if (fstat(fd, st) != 0) return -1;
  if (Kind(fd) == kFakeSystem) {
    st->st_mode = S_IFCHR | 0600;
    st->st_rdev = makedev(10, 232);
    st->st_size = 0;
  }
  return 0;
}

int kvmlike_ftruncate(int fd, off_t len) {
  ++g_log.ftruncate;
  return ftruncate(fd, len);
}

int kvmlike_fcntl(int fd, int cmd, unsigned long arg) {
  static_cast<void>(fd);
  static_cast<void>(arg);
  ++g_log.fcntl;
  g_log.fcntl_cmd = cmd;
  return cmd == F_GET_SEALS ? kFakeSeals : -2;
}

long kvmlike_file_op(int fd, enum kvmlike_file_op op) {
  static_cast<void>(fd);
  ++g_log.file_op;
  g_log.file_op_op = op;
  bool sequential = op == KVMLIKE_OP_READ || op == KVMLIKE_OP_WRITE;
  return Fail(sequential ? EINVAL : ESPIPE);
}

void kvmlike_atfork_child(void) { ++g_log.atfork_child; }

int kvmlike_setattr(int) { return -2; }
bool kvmlike_answers_file_io(int fd) { return kvmlike_owns_fd(fd); }
int kvmlike_sigaction(int, const struct sigaction*, struct sigaction*) { return -2; }
int kvmlike_madvise(void*, size_t, int) { return -2; }
void kvmlike_mremapped(void*, size_t, void*, size_t) {}
void* kvmlike_host_range_change(const void* addr, size_t len) {
  ++g_log.host_range_change;
  g_log.host_range_addr = reinterpret_cast<unsigned long>(addr);
  g_log.host_range_len = len;
  g_log.host_range_mapped_at_change = PageMapped(g_log.host_range_addr);
  return &g_log;  // any non-null token
}
void kvmlike_host_range_done(void* token) {
  if (token == &g_log) ++g_log.host_range_done;
  g_log.host_range_mapped_at_done = PageMapped(g_log.host_range_addr);
}
void kvmlike_fds_closed(unsigned int first, unsigned int last) {
  for (unsigned int fd = first; fd <= last && fd < 65536; fd++)
    if (kvmlike_owns_fd(static_cast<int>(fd))) kvmlike_fd_closed(static_cast<int>(fd));
}

}  // extern "C"
