// Copies from and to the caller's memory the way the kernel's copy_from_user
// does: a plain copy whose faults are fixed up. The copy is one `rep movsb`
// at a known address; SIGSEGV/SIGBUS handlers that find the faulting RIP on
// that instruction resume at a fixup label that reports failure, and pass
// every other fault on to whatever handler was installed before (or to the
// default action). No system call happens on the successful path.
#include "base/user_copy.h"

#include <signal.h>
#include <ucontext.h>

#include <atomic>
#include <mutex>

namespace base {

extern "C" {
// Returns 0 when all n bytes were copied, 1 when the copy faulted.
long kvmlike_user_copy(void* dst, const void* src, size_t n);
extern const char kvmlike_user_copy_insn[];
extern const char kvmlike_user_copy_fixup[];
// Returns 0 when the byte at p is writable, 1 when the write faulted.
long kvmlike_user_probe_write(void* p);
extern const char kvmlike_user_probe_insn[];
extern const char kvmlike_user_probe_fixup[];
}

asm(R"(
  .text
  .p2align 4
  .globl kvmlike_user_copy
  .hidden kvmlike_user_copy
  .type kvmlike_user_copy, @function
kvmlike_user_copy:
  mov %rdx, %rcx
  .globl kvmlike_user_copy_insn
  .hidden kvmlike_user_copy_insn
kvmlike_user_copy_insn:
  rep movsb
  xor %eax, %eax
  ret
  .globl kvmlike_user_copy_fixup
  .hidden kvmlike_user_copy_fixup
kvmlike_user_copy_fixup:
  mov $1, %eax
  ret
  .size kvmlike_user_copy, .-kvmlike_user_copy

  .p2align 4
  .globl kvmlike_user_probe_write
  .hidden kvmlike_user_probe_write
  .type kvmlike_user_probe_write, @function
kvmlike_user_probe_write:
  .globl kvmlike_user_probe_insn
  .hidden kvmlike_user_probe_insn
kvmlike_user_probe_insn:
  lock orb $0, (%rdi)
  xor %eax, %eax
  ret
  .globl kvmlike_user_probe_fixup
  .hidden kvmlike_user_probe_fixup
kvmlike_user_probe_fixup:
  mov $1, %eax
  ret
  .size kvmlike_user_probe_write, .-kvmlike_user_probe_write
)");

namespace {

// SIGSEGV, SIGBUS: the handlers foreign faults go to (found at install time,
// or set later through ChainFaultSigaction).
struct sigaction g_prev[2];
std::once_flag g_once;
std::atomic<bool> g_installed{false};

int Index(int sig) { return sig == SIGBUS ? 1 : 0; }

// A fault that is not ours goes where it would have gone without kvmlike.
void Chain(int sig, siginfo_t* info, void* uc) {
  const struct sigaction& prev = g_prev[Index(sig)];
  if (prev.sa_flags & SA_SIGINFO) {
    prev.sa_sigaction(sig, info, uc);
    return;
  }
  if (prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN) {
    prev.sa_handler(sig);
    return;
  }
  // Default action: reinstall it and return; the faulting instruction runs
  // again and the kernel delivers the signal with its default effect.
  signal(sig, SIG_DFL);
}

void OnFault(int sig, siginfo_t* info, void* ucv) {
  auto* uc = static_cast<ucontext_t*>(ucv);
  greg_t& rip = uc->uc_mcontext.gregs[REG_RIP];
  if (rip == reinterpret_cast<greg_t>(kvmlike_user_copy_insn)) {
    rip = reinterpret_cast<greg_t>(kvmlike_user_copy_fixup);
    return;
  }
  if (rip == reinterpret_cast<greg_t>(kvmlike_user_probe_insn)) {
    rip = reinterpret_cast<greg_t>(kvmlike_user_probe_fixup);
    return;
  }
  Chain(sig, info, ucv);
}

// Puts OnFault in front of whatever handles sig now (unless it already is).
void InstallFor(int sig) {
  struct sigaction cur {};
  sigaction(sig, nullptr, &cur);
  if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == OnFault) return;
  struct sigaction sa {};
  sa.sa_sigaction = OnFault;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  sigaction(sig, &sa, &g_prev[Index(sig)]);
}

void InstallOnce() {
  InstallFor(SIGSEGV);
  InstallFor(SIGBUS);
  g_installed.store(true, std::memory_order_release);
}

bool Copy(void* dst, const void* src, size_t len, uint64_t user) {
  if (len == 0) return true;
  if (user == 0 || !UserRangeOk(user, len)) return false;
  std::call_once(g_once, InstallOnce);
  return kvmlike_user_copy(dst, src, len) == 0;
}

}  // namespace

void InstallUserCopyFaultHandler() {
  std::call_once(g_once, [] {});  // later lazy installs are no-ops
  InstallOnce();
}

// The previous-action slots are written while a fault could be in flight on
// another thread; signals are blocked around the swap on this thread only,
// which is what sigaction(2) itself guarantees too.
bool ChainFaultSigaction(int sig, const struct sigaction* act, struct sigaction* oldact) {
  if ((sig != SIGSEGV && sig != SIGBUS) || !g_installed.load(std::memory_order_acquire)) return false;
  struct sigaction& prev = g_prev[Index(sig)];
  if (oldact) *oldact = prev;
  if (act) prev = *act;
  return true;
}

Status ProbeUserWrite(uint64_t user_addr) {
  if (user_addr == 0 || !UserRangeOk(user_addr, 1)) return Error::kFault;
  std::call_once(g_once, InstallOnce);
  if (kvmlike_user_probe_write(reinterpret_cast<void*>(user_addr)) != 0) return Error::kFault;
  return Status::Ok();
}

Status CopyFromUser(void* dst, uint64_t user_src, size_t len) {
  if (!Copy(dst, reinterpret_cast<const void*>(user_src), len, user_src)) return Error::kFault;
  return Status::Ok();
}

Status CopyToUser(uint64_t user_dst, const void* src, size_t len) {
  if (!Copy(reinterpret_cast<void*>(user_dst), src, len, user_dst)) return Error::kFault;
  return Status::Ok();
}

uint64_t UserAddressLimit() {
  // 47-bit user space unless the process has mappings above it (LA57).
  static const uint64_t limit = [] {
    auto probe = reinterpret_cast<uint64_t>(&limit);
    return probe >= (uint64_t{1} << 47) ? (uint64_t{1} << 56) - 4096 : (uint64_t{1} << 47) - 4096;
  }();
  return limit;
}

bool UserRangeOk(uint64_t addr, uint64_t len) {
  uint64_t limit = UserAddressLimit();
  return addr <= limit && len <= limit - addr;
}

}  // namespace base
