// The interposer's routing, checked against the fake C ABI (fake_capi.cc): this program
// runs with libkvmlike-preload-fake.so preloaded (CTest sets LD_PRELOAD; run by hand, it
// re-executes itself with it) and makes ordinary libc calls, as an unmodified VMM would.
//
// syscall() reads every argument as a long, so sizes and offsets passed to it here are
// longs: an int's upper half is whatever the register or stack slot held.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "frontends/capi/kvmlike.h"
#include "frontends/preload/tests/fake_capi.h"

// Entry points glibc exports but declares only for fortified or pre-2.33 builds.
extern "C" {
int __open_2(const char* path, int flags);
int __open64_2(const char* path, int flags);
int __openat_2(int dirfd, const char* path, int flags);
int __openat64_2(int dirfd, const char* path, int flags);
ssize_t __read_chk(int fd, void* buf, size_t nbytes, size_t buflen);
ssize_t __pread64_chk(int fd, void* buf, size_t nbytes, off64_t offset, size_t buflen);
int __fxstat(int ver, int fd, struct stat* st);
int __fxstatat(int ver, int dirfd, const char* path, struct stat* st, int flags);
}

namespace {

// Buffers for the calls that must fail before touching them.
char sbuf[16];
struct iovec siov = {sbuf, sizeof(sbuf)};

using LogFn = FakeCapiLog*();
using KindFn = FakeFdKind(int);

FakeCapiLog* g_log = nullptr;
KindFn* g_kind = nullptr;

FakeCapiLog& Log() { return *g_log; }
FakeFdKind Kind(int fd) { return g_kind(fd); }

// Each test case starts from an empty log.
struct Fresh {
  Fresh() { Log() = FakeCapiLog{}; }
};

int OpenKvm(int flags = O_RDWR) {
  int fd = open("/dev/kvm", flags);
  REQUIRE(fd >= 0);
  REQUIRE(Kind(fd) == kFakeSystem);
  return fd;
}

bool IsOpen(int fd) { return fcntl(fd, F_GETFD) >= 0; }

int FdFlags(int fd) { return fcntl(fd, F_GETFD); }

// A regular file in the temporary directory, removed on destruction.
struct TempFile {
  std::string path;
  int fd = -1;
  TempFile() {
    const char* dir = getenv("TMPDIR");
    path = std::string(dir != nullptr ? dir : "/tmp") + "/kvmlike-preload-test-" +
           std::to_string(getpid());
    fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    REQUIRE(fd >= 0);
  }
  ~TempFile() {
    close(fd);
    unlink(path.c_str());
  }
};

// Clears the record of kvmlike_host_range_change/_done calls, which every
// munmap makes, for tests that check nothing else reached kvmlike.
void ForgetHostRangeCalls() {
  Log().host_range_change = Log().host_range_done = 0;
  Log().host_range_addr = Log().host_range_len = 0;
  Log().host_range_mapped_at_change = Log().host_range_mapped_at_done = false;
}

// Runs `child` in a forked child and returns its exit status.
template <typename Child>
int InChild(pid_t (*fork_fn)(), Child child) {
  pid_t pid = fork_fn();
  REQUIRE(pid >= 0);
  if (pid == 0) _exit(child());
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  return WEXITSTATUS(status);
}

}  // namespace

TEST_CASE_FIXTURE(Fresh, "every open entry point hands /dev/kvm to kvmlike_open_dev") {
  int fd = -1;
  SUBCASE("open") { fd = open("/dev/kvm", O_RDWR); }
  SUBCASE("open64") { fd = open64("/dev/kvm", O_RDWR); }
  SUBCASE("openat") { fd = openat(AT_FDCWD, "/dev/kvm", O_RDWR); }
  SUBCASE("openat ignores dirfd for an absolute path") { fd = openat(12345, "/dev/kvm", O_RDWR); }
  SUBCASE("openat64") { fd = openat64(AT_FDCWD, "/dev/kvm", O_RDWR); }
  SUBCASE("__open_2") { fd = __open_2("/dev/kvm", O_RDWR); }
  SUBCASE("__open64_2") { fd = __open64_2("/dev/kvm", O_RDWR); }
  SUBCASE("__openat_2") { fd = __openat_2(AT_FDCWD, "/dev/kvm", O_RDWR); }
  SUBCASE("__openat64_2") { fd = __openat64_2(AT_FDCWD, "/dev/kvm", O_RDWR); }
  SUBCASE("creat") { fd = creat("/dev/kvm", 0600); }
  SUBCASE("creat64") { fd = creat64("/dev/kvm", 0600); }
  SUBCASE("/dev/./kvm") { fd = open("/dev/./kvm", O_RDWR); }
  SUBCASE("//dev//kvm") { fd = open("//dev//kvm", O_RDWR); }
  SUBCASE("/./dev/kvm") { fd = open("/./dev/kvm", O_RDWR); }
  SUBCASE("syscall(SYS_openat)") {
    fd = static_cast<int>(syscall(SYS_openat, AT_FDCWD, "/dev/kvm", O_RDWR));
  }
  REQUIRE(fd >= 0);
  CHECK(Kind(fd) == kFakeSystem);
  CHECK(Log().open_dev == 1);
  CHECK(close(fd) == 0);
}

TEST_CASE_FIXTURE(Fresh, "open flags reach kvmlike_open_dev unchanged") {
  int fd = OpenKvm(O_RDWR | O_CLOEXEC);
  CHECK(Log().open_dev_flags == (O_RDWR | O_CLOEXEC));
  CHECK((FdFlags(fd) & FD_CLOEXEC) != 0);
  close(fd);
  fd = creat("/dev/kvm", 0600);
  CHECK(Log().open_dev_flags == (O_CREAT | O_WRONLY | O_TRUNC));
  close(fd);
}

// /dev/null is the oracle: a character device node, so the kernel's answer for it is the
// answer for /dev/kvm wherever the answer comes before the driver.
TEST_CASE_FIXTURE(Fresh, "flags that cannot open a device node fail as they do on /dev/null") {
  const int table[] = {
      O_RDWR,
      O_RDONLY,
      O_WRONLY | O_TRUNC,
      O_RDWR | O_CREAT,
      O_RDWR | O_NOFOLLOW,
      O_RDWR | O_DIRECTORY,
      O_RDWR | O_CREAT | O_EXCL,
      O_RDWR | O_CREAT | O_DIRECTORY,
      O_RDWR | O_CREAT | O_EXCL | O_DIRECTORY,
      O_RDWR | O_TMPFILE,
      O_RDONLY | O_TMPFILE,
      O_RDWR | O_TMPFILE | O_CREAT,
      O_RDWR | (O_TMPFILE & ~O_DIRECTORY),
      O_PATH | O_DIRECTORY,
  };
  for (int flags : table) {
    CAPTURE(flags);
    errno = 0;
    int null_fd = open("/dev/null", flags, 0600);
    int null_errno = errno;
    errno = 0;
    int kvm_fd = open("/dev/kvm", flags, 0600);
    CHECK((kvm_fd >= 0) == (null_fd >= 0));
    if (null_fd < 0) CHECK(errno == null_errno);
    if (null_fd >= 0) close(null_fd);
    if (kvm_fd >= 0) close(kvm_fd);
  }
}

TEST_CASE_FIXTURE(Fresh, "paths that are not /dev/kvm go to libc") {
  const char* paths[] = {"/dev/kvm/", "/dev/kvm/.", "dev/kvm", "/dev/kvmx", "/dev/kv",
                         "/dev", "/devkvm", "/nonexistent/kvm"};
  for (const char* path : paths) {
    CAPTURE(path);
    int fd = open(path, O_RDONLY);
    if (fd >= 0) {
      CHECK(Kind(fd) == kFakeNone);
      close(fd);
    }
  }
  CHECK(Log().open_dev == 0);
  // A null path is the kernel's to refuse, not a crash in the interposer. (Called through
  // a plain pointer: the declaration says nonnull, and sanitizers check call sites.)
  using OpenFn = int(const char*, int, ...);
  auto* open_fn = reinterpret_cast<OpenFn*>(dlsym(RTLD_DEFAULT, "open"));
  REQUIRE(reinterpret_cast<void*>(open_fn) != nullptr);
  errno = 0;
  CHECK(open_fn(nullptr, O_RDONLY) == -1);
  CHECK(errno == EFAULT);
}

TEST_CASE_FIXTURE(Fresh, "ioctl on a kvmlike fd reaches kvmlike_ioctl") {
  int kvm = OpenKvm();
  CHECK(ioctl(kvm, KVM_GET_API_VERSION, 0) == kFakeApiVersion);
  CHECK(Log().ioctl == 1);
  CHECK(Log().ioctl_fd == kvm);
  CHECK(Log().ioctl_request == KVM_GET_API_VERSION);

  int vm = ioctl(kvm, KVM_CREATE_VM, 7UL);
  REQUIRE(vm >= 0);
  CHECK(Log().ioctl_arg == 7UL);
  CHECK(Kind(vm) == kFakeVm);

  SUBCASE("a pointer argument arrives as the same word") {
    kvm_userspace_memory_region region{};
    errno = 0;
    CHECK(ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) == -1);
    CHECK(errno == ENOTTY);
    CHECK(Log().ioctl_arg == reinterpret_cast<unsigned long>(&region));
  }
  SUBCASE("syscall(SYS_ioctl) is routed too") {
    CHECK(syscall(SYS_ioctl, kvm, KVM_GET_API_VERSION, 0L) == kFakeApiVersion);
    CHECK(Log().ioctl == 3);
  }
  SUBCASE("a foreign fd is not") {
    int pipefd[2];
    REQUIRE(pipe(pipefd) == 0);
    int pending = -1;
    CHECK(ioctl(pipefd[0], FIONREAD, &pending) == 0);
    CHECK(pending == 0);
    CHECK(Log().ioctl == 2);
    close(pipefd[0]);
    close(pipefd[1]);
  }
  close(vm);
  close(kvm);
}

TEST_CASE_FIXTURE(Fresh, "close of a kvmlike fd reaches kvmlike_close, which closes it") {
  int kvm = OpenKvm();
  SUBCASE("close") { CHECK(close(kvm) == 0); }
  SUBCASE("syscall(SYS_close)") { CHECK(syscall(SYS_close, kvm) == 0); }
  CHECK(Log().close == 1);
  CHECK(Log().close_fd == kvm);
  CHECK(Kind(kvm) == kFakeNone);
  CHECK_FALSE(IsOpen(kvm));
}

TEST_CASE_FIXTURE(Fresh, "dup, dup3 and F_DUPFD report the new fd") {
  int kvm = OpenKvm();
  int copy = -1;
  SUBCASE("dup") { copy = dup(kvm); }
  SUBCASE("dup3") { copy = dup3(kvm, 300, O_CLOEXEC); }
  SUBCASE("fcntl(F_DUPFD)") { copy = fcntl(kvm, F_DUPFD, 200); }
  SUBCASE("fcntl(F_DUPFD_CLOEXEC)") { copy = fcntl(kvm, F_DUPFD_CLOEXEC, 200); }
  SUBCASE("fcntl64(F_DUPFD)") { copy = fcntl64(kvm, F_DUPFD, 200); }
  SUBCASE("syscall(SYS_dup)") { copy = static_cast<int>(syscall(SYS_dup, kvm)); }
  REQUIRE(copy >= 0);
  CHECK(Log().duplicated == 1);
  CHECK(Log().dup_old == kvm);
  CHECK(Log().dup_new == copy);
  CHECK(Log().fcntl == 0);
  CHECK(Kind(copy) == kFakeSystem);
  close(copy);
  close(kvm);
}

TEST_CASE_FIXTURE(Fresh, "dup2 over a kvmlike fd reports that fd closed first") {
  int kvm = OpenKvm();
  int other = OpenKvm();
  SUBCASE("kvmlike over kvmlike") {
    CHECK(dup2(kvm, other) == other);
    CHECK(Log().closed == 1);
    CHECK(Log().closed_fds[0] == other);
    CHECK(Log().duplicated == 1);
    CHECK(Log().dup_replaced_owned == 0);
    CHECK(Kind(other) == kFakeSystem);
  }
  SUBCASE("foreign over kvmlike") {
    int devnull = open("/dev/null", O_RDONLY);
    REQUIRE(devnull >= 0);
    CHECK(dup2(devnull, other) == other);
    CHECK(Log().closed == 1);
    CHECK(Log().duplicated == 0);
    CHECK(Kind(other) == kFakeNone);
    close(devnull);
  }
  SUBCASE("onto itself changes nothing") {
    CHECK(dup2(kvm, kvm) == kvm);
    CHECK(Log().closed == 0);
    CHECK(Log().duplicated == 0);
    CHECK(Kind(kvm) == kFakeSystem);
  }
  SUBCASE("a failed dup2 changes nothing") {
    CHECK(dup2(kvm, -1) == -1);
    CHECK(dup3(kvm, kvm, 0) == -1);
    CHECK(Log().closed == 0);
    CHECK(Log().duplicated == 0);
  }
  close(other);
  close(kvm);
}

TEST_CASE_FIXTURE(Fresh, "close_range and closefrom report the kvmlike fds they close") {
  int kvm = OpenKvm();
  REQUIRE(dup2(kvm, 500) == 500);
  REQUIRE(dup2(kvm, 502) == 502);
  Log() = FakeCapiLog{};

  SUBCASE("CLOSE_RANGE_CLOEXEC keeps them") {
    CHECK(close_range(500, 502, CLOSE_RANGE_CLOEXEC) == 0);
    CHECK(Log().closed == 0);
    CHECK((FdFlags(500) & FD_CLOEXEC) != 0);
    CHECK(Kind(500) == kFakeSystem);
    close(500);
    close(502);
  }
  SUBCASE("close_range") {
    CHECK(close_range(500, UINT_MAX, 0) == 0);
    CHECK(Log().closed == 2);
    CHECK(Log().closed_fds[0] == 500);
    CHECK(Log().closed_fds[1] == 502);
  }
  SUBCASE("syscall(SYS_close_range)") {
    CHECK(syscall(SYS_close_range, 500, 502, 0) == 0);
    CHECK(Log().closed == 2);
  }
  SUBCASE("closefrom") {
    closefrom(500);
    CHECK(Log().closed == 2);
  }
  CHECK_FALSE(IsOpen(500));
  CHECK_FALSE(IsOpen(502));
  CHECK(Kind(500) == kFakeNone);
  CHECK(Kind(kvm) == kFakeSystem);
  close(kvm);
}

TEST_CASE_FIXTURE(Fresh, "mmap of a kvmlike fd and munmap of its range reach kvmlike") {
  int kvm = OpenKvm();
  int vm = ioctl(kvm, KVM_CREATE_VM, 0);
  REQUIRE(vm >= 0);
  void* p = MAP_FAILED;
  SUBCASE("mmap") { p = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, vm, 0); }
  SUBCASE("mmap64") { p = mmap64(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, vm, 0); }
  SUBCASE("syscall(SYS_mmap)") {
    p = reinterpret_cast<void*>(
        syscall(SYS_mmap, nullptr, 4096L, PROT_READ | PROT_WRITE, MAP_SHARED, vm, 0L));
  }
  REQUIRE(p != MAP_FAILED);
  CHECK(Log().mmap == 1);
  static_cast<char*>(p)[0] = 1;
  CHECK(munmap(p, 4096) == 0);
  CHECK(Log().munmap == 1);

  // MAP_ANONYMOUS ignores the fd, so a kvmlike fd number there is not a kvmlike mapping.
  void* anon = mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, vm, 0);
  REQUIRE(anon != MAP_FAILED);
  CHECK(munmap(anon, 4096) == 0);
  CHECK(Log().mmap == 1);
  CHECK(Log().munmap == 1);
  close(vm);
  close(kvm);
}

TEST_CASE_FIXTURE(Fresh, "munmap, mremap, MAP_FIXED and mprotect of other memory are bracketed for guest slots") {
  auto* p = static_cast<char*>(mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  REQUIRE(p != MAP_FAILED);
  CHECK(Log().host_range_change == 0);  // a new mapping replaces nothing
  REQUIRE(mmap(p, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == p);
  CHECK(Log().host_range_change == 1);
  CHECK(Log().host_range_addr == reinterpret_cast<unsigned long>(p));
  CHECK(Log().host_range_len == 4096);
  CHECK(mprotect(p, 8192, PROT_READ) == 0);
  CHECK(Log().host_range_change == 2);
  CHECK(Log().host_range_len == 8192);
  CHECK(munmap(p, 8192) == 0);
  CHECK(Log().host_range_change == 3);
  CHECK(Log().host_range_len == 8192);
  CHECK(Log().host_range_mapped_at_change);  // begun before the kernel unmapped it ...
  CHECK_FALSE(Log().host_range_mapped_at_done);  // ... and done after
  p = static_cast<char*>(mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  REQUIRE(p != MAP_FAILED);
  void* moved = mremap(p, 8192, 16384, MREMAP_MAYMOVE);
  REQUIRE(moved != MAP_FAILED);
  CHECK(Log().host_range_change == 4);  // the moved-from range
  CHECK(Log().host_range_addr == reinterpret_cast<unsigned long>(p));
  CHECK(Log().host_range_len == 8192);
  void* target = mmap(nullptr, 16384, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(target != MAP_FAILED);
  REQUIRE(mremap(moved, 16384, 16384, MREMAP_MAYMOVE | MREMAP_FIXED, target) == target);
  CHECK(Log().host_range_change == 6);  // the moved-from range, then the target replaced
  CHECK(Log().host_range_addr == reinterpret_cast<unsigned long>(target));
  CHECK(munmap(target, 16384) == 0);
  CHECK(Log().host_range_change == 7);
  CHECK(Log().host_range_done == 7);  // each ended after its kernel call
  CHECK(Log().munmap == 0);           // not a kvmlike mapping
}

TEST_CASE_FIXTURE(Fresh, "read, write, lseek and friends are refused through kvmlike_file_op") {
  int kvm = OpenKvm();
  struct Call {
    const char* name;
    long (*run)(int fd);
    int err;
    int op;  // -1: Linux refuses the arguments before it looks at the file
  };
  const Call calls[] = {
      {"read", [](int fd) -> long { return read(fd, sbuf, sizeof(sbuf)); }, EINVAL,
       KVMLIKE_OP_READ},
      {"write", [](int fd) -> long { return write(fd, sbuf, sizeof(sbuf)); }, EINVAL,
       KVMLIKE_OP_WRITE},
      {"readv", [](int fd) -> long { return readv(fd, &siov, 1); }, EINVAL, KVMLIKE_OP_READ},
      {"writev", [](int fd) -> long { return writev(fd, &siov, 1); }, EINVAL,
       KVMLIKE_OP_WRITE},
      {"pread", [](int fd) -> long { return pread(fd, sbuf, 1, 0); }, ESPIPE, KVMLIKE_OP_PREAD},
      {"pread64", [](int fd) -> long { return pread64(fd, sbuf, 1, 0); }, ESPIPE,
       KVMLIKE_OP_PREAD},
      {"pwrite", [](int fd) -> long { return pwrite(fd, sbuf, 1, 0); }, ESPIPE,
       KVMLIKE_OP_PWRITE},
      {"pwrite64", [](int fd) -> long { return pwrite64(fd, sbuf, 1, 0); }, ESPIPE,
       KVMLIKE_OP_PWRITE},
      {"preadv", [](int fd) -> long { return preadv(fd, &siov, 1, 0); }, ESPIPE,
       KVMLIKE_OP_PREAD},
      {"preadv64", [](int fd) -> long { return preadv64(fd, &siov, 1, 0); }, ESPIPE,
       KVMLIKE_OP_PREAD},
      {"pwritev", [](int fd) -> long { return pwritev(fd, &siov, 1, 0); }, ESPIPE,
       KVMLIKE_OP_PWRITE},
      {"preadv2 at -1", [](int fd) -> long { return preadv2(fd, &siov, 1, -1, 0); }, EINVAL,
       KVMLIKE_OP_READ},
      {"preadv2 at 0", [](int fd) -> long { return preadv2(fd, &siov, 1, 0, 0); }, ESPIPE,
       KVMLIKE_OP_PREAD},
      {"pwritev2 at -1", [](int fd) -> long { return pwritev2(fd, &siov, 1, -1, 0); }, EINVAL,
       KVMLIKE_OP_WRITE},
      {"pwritev2 at 0", [](int fd) -> long { return pwritev2(fd, &siov, 1, 0, 0); }, ESPIPE,
       KVMLIKE_OP_PWRITE},
      {"__read_chk", [](int fd) -> long { return __read_chk(fd, sbuf, 4, sizeof(sbuf)); },
       EINVAL, KVMLIKE_OP_READ},
      {"__pread64_chk",
       [](int fd) -> long { return __pread64_chk(fd, sbuf, 4, 0, sizeof(sbuf)); }, ESPIPE,
       KVMLIKE_OP_PREAD},
      {"lseek", [](int fd) -> long { return lseek(fd, 0, SEEK_SET); }, ESPIPE,
       KVMLIKE_OP_LSEEK},
      {"lseek64", [](int fd) -> long { return lseek64(fd, 0, SEEK_END); }, ESPIPE,
       KVMLIKE_OP_LSEEK},
      {"syscall(SYS_read)", [](int fd) -> long { return syscall(SYS_read, fd, sbuf, 1L); },
       EINVAL, KVMLIKE_OP_READ},
      {"syscall(SYS_pwrite64)",
       [](int fd) -> long { return syscall(SYS_pwrite64, fd, sbuf, 1L, 0L); }, ESPIPE,
       KVMLIKE_OP_PWRITE},
      {"syscall(SYS_lseek)", [](int fd) -> long { return syscall(SYS_lseek, fd, 0L, SEEK_SET); },
       ESPIPE, KVMLIKE_OP_LSEEK},
      {"pread at -1", [](int fd) -> long { return pread(fd, sbuf, 1, -1); }, EINVAL, -1},
      {"pwritev at -5", [](int fd) -> long { return pwritev(fd, &siov, 1, -5); }, EINVAL, -1},
      {"preadv2 at -2", [](int fd) -> long { return preadv2(fd, &siov, 1, -2, 0); }, EINVAL,
       -1},
      {"lseek whence 99", [](int fd) -> long { return lseek(fd, 0, 99); }, EINVAL, -1},
  };
  for (const Call& call : calls) {
    CAPTURE(call.name);
    Log() = FakeCapiLog{};
    errno = 0;
    CHECK(call.run(kvm) == -1);
    CHECK(errno == call.err);
    CHECK(Log().file_op == (call.op < 0 ? 0 : 1));
    if (call.op >= 0) CHECK(Log().file_op_op == call.op);
  }
  close(kvm);
}

TEST_CASE_FIXTURE(Fresh, "fallocate reaches kvmlike_fallocate") {
  int kvm = OpenKvm();
  int vm = ioctl(kvm, KVM_CREATE_VM, 0);
  REQUIRE(vm >= 0);
  constexpr int kPunch = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
  SUBCASE("fallocate") { CHECK(fallocate(vm, kPunch, 0, 4096) == 0); }
  SUBCASE("fallocate64") { CHECK(fallocate64(vm, kPunch, 0, 4096) == 0); }
  SUBCASE("syscall(SYS_fallocate)") { CHECK(syscall(SYS_fallocate, vm, kPunch, 0L, 4096L) == 0); }
  CHECK(Log().fallocate == 1);
  CHECK(Log().fallocate_mode == kPunch);
  close(vm);
  close(kvm);
}

TEST_CASE_FIXTURE(Fresh, "ftruncate reaches kvmlike_ftruncate") {
  int kvm = OpenKvm();
  int vm = ioctl(kvm, KVM_CREATE_VM, 0);
  REQUIRE(vm >= 0);
  SUBCASE("ftruncate") { CHECK(ftruncate(vm, 8192) == 0); }
  SUBCASE("ftruncate64") { CHECK(ftruncate64(vm, 8192) == 0); }
  SUBCASE("syscall(SYS_ftruncate)") { CHECK(syscall(SYS_ftruncate, vm, 8192L) == 0); }
  CHECK(Log().ftruncate == 1);
  close(vm);
  close(kvm);
}

// The fake answers mode 0 with EOPNOTSUPP, as guest_memfd does; glibc would then emulate
// allocation by writing, which the interposer must not do.
TEST_CASE_FIXTURE(Fresh, "posix_fallocate returns the error and leaves errno alone") {
  int kvm = OpenKvm();
  int vm = ioctl(kvm, KVM_CREATE_VM, 0);
  REQUIRE(vm >= 0);
  errno = 1234;
  SUBCASE("a regular file gets the emulation's error (its first pread)") {
    CHECK(posix_fallocate(vm, 0, 4096) == ESPIPE);
    CHECK(Log().file_op == 1);
    CHECK(Log().file_op_op == KVMLIKE_OP_PREAD);
  }
  SUBCASE("past the end, the emulation's first step is a pwrite") {
    CHECK(posix_fallocate64(vm, kFakeVmSize, 4096) == ESPIPE);
    CHECK(Log().file_op_op == KVMLIKE_OP_PWRITE);
  }
  SUBCASE("a character device gets ENODEV") {
    CHECK(posix_fallocate(kvm, 0, 4096) == ENODEV);
    CHECK(Log().file_op == 0);
  }
  CHECK(errno == 1234);
  CHECK(Log().fallocate == 1);
  CHECK(Log().fallocate_mode == 0);
  close(vm);
  close(kvm);
}

TEST_CASE_FIXTURE(Fresh, "fstat and friends describe the kvmlike object") {
  int kvm = OpenKvm();
  struct stat st = {};
  SUBCASE("fstat") { CHECK(fstat(kvm, &st) == 0); }
  SUBCASE("fstat64") { CHECK(fstat64(kvm, reinterpret_cast<struct stat64*>(&st)) == 0); }
  SUBCASE("fstatat AT_EMPTY_PATH") { CHECK(fstatat(kvm, "", &st, AT_EMPTY_PATH) == 0); }
  SUBCASE("fstatat64 AT_EMPTY_PATH") {
    CHECK(fstatat64(kvm, "", reinterpret_cast<struct stat64*>(&st), AT_EMPTY_PATH) == 0);
  }
  SUBCASE("__fxstat") { CHECK(__fxstat(1, kvm, &st) == 0); }
  SUBCASE("__fxstatat AT_EMPTY_PATH") { CHECK(__fxstatat(1, kvm, "", &st, AT_EMPTY_PATH) == 0); }
  SUBCASE("syscall(SYS_fstat)") { CHECK(syscall(SYS_fstat, kvm, &st) == 0); }
  SUBCASE("syscall(SYS_newfstatat)") {
    CHECK(syscall(SYS_newfstatat, kvm, "", &st, AT_EMPTY_PATH) == 0);
  }
  CHECK(S_ISCHR(st.st_mode));
  CHECK(st.st_rdev == makedev(10, 232));
  CHECK(Log().fstat == 1);
  close(kvm);
}

TEST_CASE_FIXTURE(Fresh, "statx AT_EMPTY_PATH fills the stat fields from kvmlike") {
  int kvm = OpenKvm();
  struct statx stx = {};
  SUBCASE("statx") { CHECK(statx(kvm, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &stx) == 0); }
  SUBCASE("syscall(SYS_statx)") {
    CHECK(syscall(SYS_statx, kvm, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &stx) == 0);
  }
  CHECK(S_ISCHR(stx.stx_mode));
  CHECK(stx.stx_rdev_major == 10);
  CHECK(stx.stx_rdev_minor == 232);
  CHECK((stx.stx_mask & STATX_BASIC_STATS) == STATX_BASIC_STATS);
  CHECK(Log().fstat == 1);
  close(kvm);
}

TEST_CASE_FIXTURE(Fresh, "stat calls that do not name a kvmlike fd itself go to libc") {
  int kvm = OpenKvm();
  struct stat st;
  struct statx stx;
  CHECK(fstatat(kvm, "x", &st, 0) == -1);  // a memfd is not a directory
  CHECK(errno == ENOTDIR);
  CHECK(fstatat(kvm, "", &st, 0) == -1);  // no AT_EMPTY_PATH
  CHECK(errno == ENOENT);
  CHECK(statx(AT_FDCWD, "/", 0, STATX_BASIC_STATS, &stx) == 0);
  CHECK(S_ISDIR(stx.stx_mode));
  CHECK(__fxstat(1, STDIN_FILENO, &st) == 0);
  CHECK(Log().fstat == 0);
  close(kvm);
}

TEST_CASE_FIXTURE(Fresh, "fcntl is offered to kvmlike first") {
  int kvm = OpenKvm();
  SUBCASE("kvmlike answers seals") {
    CHECK(fcntl(kvm, F_GET_SEALS) == kFakeSeals);
    CHECK(syscall(SYS_fcntl, kvm, F_GET_SEALS, 0L) == kFakeSeals);
    CHECK(Log().fcntl == 2);
  }
  SUBCASE("and passes the rest to the kernel") {
    CHECK(fcntl(kvm, F_SETFD, FD_CLOEXEC) == 0);
    CHECK(fcntl64(kvm, F_GETFD) == FD_CLOEXEC);
    CHECK(Log().fcntl == 2);
    CHECK(Log().fcntl_cmd == F_GETFD);
  }
  SUBCASE("foreign fds never reach it") {
    CHECK(fcntl(STDIN_FILENO, F_GETFD) >= 0);
    CHECK(Log().fcntl == 0);
  }
  close(kvm);
}

TEST_CASE_FIXTURE(Fresh, "a regular file is untouched by the interposer") {
  int kvm = OpenKvm();  // kvmlike has fds, the file below is not one of them
  Log() = FakeCapiLog{};
  TempFile file;
  int fd = file.fd;
  const char text[] = "guest_memfd";
  char buf[sizeof(text)] = {};
  struct iovec iov = {buf, sizeof(buf)};

  CHECK(write(fd, text, sizeof(text)) == static_cast<ssize_t>(sizeof(text)));
  CHECK(lseek(fd, 0, SEEK_SET) == 0);
  CHECK(read(fd, buf, sizeof(buf)) == static_cast<ssize_t>(sizeof(buf)));
  CHECK(std::strcmp(buf, text) == 0);
  CHECK(pwrite(fd, "G", 1, 0) == 1);
  CHECK(pread(fd, buf, 1, 0) == 1);
  CHECK(buf[0] == 'G');
  CHECK(preadv(fd, &iov, 1, 0) == static_cast<ssize_t>(sizeof(buf)));
  CHECK(writev(fd, &iov, 1) == static_cast<ssize_t>(sizeof(buf)));
  CHECK(ftruncate(fd, 8192) == 0);
  CHECK(fallocate(fd, 0, 0, 4096) == 0);
  CHECK(posix_fallocate(fd, 0, 12288) == 0);
  struct stat st;
  CHECK(fstat(fd, &st) == 0);
  CHECK(S_ISREG(st.st_mode));
  CHECK(st.st_size == 12288);
  CHECK(fstatat(fd, "", &st, AT_EMPTY_PATH) == 0);
  struct statx stx;
  CHECK(statx(fd, "", AT_EMPTY_PATH, STATX_SIZE, &stx) == 0);
  CHECK(stx.stx_size == 12288);
  CHECK(fcntl(fd, F_GETFL) >= 0);

  void* p = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  REQUIRE(p != MAP_FAILED);
  CHECK(static_cast<char*>(p)[0] == 'G');
  CHECK(munmap(p, 4096) == 0);

  int copy = dup(fd);
  CHECK(copy >= 0);
  CHECK(dup2(fd, copy) == copy);
  CHECK(close(copy) == 0);

  // Unmapping the program's memory is announced (it could back a guest slot).
  CHECK(Log().host_range_change == 1);
  CHECK(Log().host_range_done == 1);
  ForgetHostRangeCalls();
  FakeCapiLog untouched{};
  CHECK(std::memcmp(&Log(), &untouched, sizeof(untouched)) == 0);
  close(kvm);
}

TEST_CASE_FIXTURE(Fresh, "a forked child runs kvmlike_atfork_child once") {
  int kvm = OpenKvm();
  auto child = [] { return Log().atfork_child == 1 ? 0 : 10 + Log().atfork_child; };
  SUBCASE("fork") { CHECK(InChild(fork, child) == 0); }
  SUBCASE("_Fork") { CHECK(InChild(_Fork, child) == 0); }
  SUBCASE("a grandchild reports its own fork") {
    auto parent = [] {
      if (Log().atfork_child != 1) return 20;
      pid_t pid = fork();
      if (pid == 0) _exit(Log().atfork_child == 2 ? 0 : 21);
      int status = 0;
      waitpid(pid, &status, 0);
      return WIFEXITED(status) ? WEXITSTATUS(status) : 22;
    };
    CHECK(InChild(fork, parent) == 0);
  }
  CHECK(Log().atfork_child == 0);
  close(kvm);
}

TEST_CASE_FIXTURE(Fresh, "syscall passes foreign calls through with all six arguments") {
  CHECK(syscall(SYS_getpid) == getpid());
  int fd = static_cast<int>(syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDONLY, 0));
  REQUIRE(fd >= 0);
  CHECK(Kind(fd) == kFakeNone);
  char c;
  CHECK(syscall(SYS_read, fd, &c, 1L) == 0);
  CHECK(syscall(SYS_close, fd) == 0);

  // mmap's offset is the sixth word: page 1 of the file holds 'B'.
  TempFile file;
  REQUIRE(ftruncate(file.fd, 8192) == 0);
  REQUIRE(pwrite(file.fd, "B", 1, 4096) == 1);
  auto* p = reinterpret_cast<char*>(
      syscall(SYS_mmap, nullptr, 4096L, PROT_READ, MAP_SHARED, file.fd, 4096L));
  REQUIRE(p != MAP_FAILED);
  CHECK(p[0] == 'B');
  CHECK(syscall(SYS_munmap, p, 4096L) == 0);
  CHECK(Log().host_range_change == 1);  // as in munmap
  CHECK(Log().host_range_done == 1);
  ForgetHostRangeCalls();
  FakeCapiLog untouched{};
  CHECK(std::memcmp(&Log(), &untouched, sizeof(untouched)) == 0);
}

TEST_CASE_FIXTURE(Fresh, "syscall mprotect, mmap(MAP_FIXED), mremap and munmap are bracketed as in libc") {
  auto* p = static_cast<char*>(mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  REQUIRE(p != MAP_FAILED);
  CHECK(syscall(SYS_mprotect, p, 8192L, PROT_READ) == 0);
  CHECK(Log().host_range_change == 1);
  CHECK(Log().host_range_len == 8192);
  CHECK(syscall(SYS_mmap, p, 4096L, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0L) ==
        reinterpret_cast<long>(p));
  CHECK(Log().host_range_change == 2);
  CHECK(Log().host_range_len == 4096);
  void* target = mmap(nullptr, 8192, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(target != MAP_FAILED);
  CHECK(syscall(SYS_mremap, p, 8192L, 8192L, MREMAP_MAYMOVE | MREMAP_FIXED, target) ==
        reinterpret_cast<long>(target));
  CHECK(Log().host_range_change == 4);  // the moved-from range, then the target replaced
  CHECK(syscall(SYS_munmap, target, 8192L) == 0);
  CHECK(Log().host_range_change == 5);
  CHECK(Log().host_range_done == 5);
  CHECK(Log().munmap == 0);  // not a kvmlike mapping
}

// Finds the fake's log, re-executing this program with the fake interposer preloaded if
// it was started without it (a sanitizer runtime must then be told not to insist on
// coming first).
int main(int argc, char** argv) {
  auto* log_fn = reinterpret_cast<LogFn*>(dlsym(RTLD_DEFAULT, "kvmlike_fake_log"));
  g_kind = reinterpret_cast<KindFn*>(dlsym(RTLD_DEFAULT, "kvmlike_fake_kind"));
  if (log_fn == nullptr || g_kind == nullptr) {
    if (getenv("KVMLIKE_PRELOAD_TEST_REEXEC") != nullptr) {
      fprintf(stderr, "%s: %s did not load\n", argv[0], KVMLIKE_PRELOAD_FAKE);
      return 1;
    }
    setenv("KVMLIKE_PRELOAD_TEST_REEXEC", "1", 1);
    setenv("LD_PRELOAD", KVMLIKE_PRELOAD_FAKE, 1);
    std::string asan = "verify_asan_link_order=0";
    if (const char* old = getenv("ASAN_OPTIONS"); old && *old) asan = std::string(old) + ":" + asan;
    setenv("ASAN_OPTIONS", asan.c_str(), 1);
    execv("/proc/self/exe", argv);
    perror("execv");
    return 1;
  }
  g_log = log_fn();
  doctest::Context context(argc, argv);
  return context.run();
}
