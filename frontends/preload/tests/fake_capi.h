// A fake of the C ABI (frontends/capi/kvmlike.h) for testing the interposer alone: it owns
// the memfds it creates for "/dev/kvm" and KVM_CREATE_VM, answers a few ioctls, and records
// every call in a log the test reads through the two symbols below (the only ones the fake
// library exports besides the interposed libc names).
#ifndef KVMLIKE_FRONTENDS_PRELOAD_TESTS_FAKE_CAPI_H
#define KVMLIKE_FRONTENDS_PRELOAD_TESTS_FAKE_CAPI_H

enum FakeFdKind : unsigned char {
  kFakeNone = 0,
  kFakeSystem = 1,  // reports itself as the /dev/kvm character device
  kFakeVm = 2,      // reports itself as a regular file of kFakeVmSize bytes
};

inline constexpr long kFakeVmSize = 64 * 1024;
inline constexpr int kFakeApiVersion = 12;
inline constexpr int kFakeSeals = 0x42;
inline constexpr int kFakeMaxClosed = 16;

// One counter per C ABI entry point, plus the arguments of the latest call.
struct FakeCapiLog {
  int open_dev, open_dev_flags;
  int ioctl, ioctl_fd;
  unsigned long ioctl_request, ioctl_arg;
  int close, close_fd;
  int duplicated, dup_old, dup_new, dup_replaced_owned;
  int closed, closed_fds[kFakeMaxClosed];
  int mmap, munmap;
  int fallocate, fallocate_mode;
  int fstat, ftruncate;
  int fcntl, fcntl_cmd;
  int file_op, file_op_op;
  int atfork_child;
  // kvmlike_host_range_change / _done: calls (done counts tokens that came back), the
  // latest range, and whether its first page was mapped when the change began and when
  // the latest change was done (so a test can tell the bracket enclosed the kernel call).
  int host_range_change, host_range_done;
  unsigned long host_range_addr, host_range_len;
  bool host_range_mapped_at_change, host_range_mapped_at_done;
};

extern "C" {
FakeCapiLog* kvmlike_fake_log(void);
FakeFdKind kvmlike_fake_kind(int fd);
}

#endif  // KVMLIKE_FRONTENDS_PRELOAD_TESTS_FAKE_CAPI_H
