// Process life: the library constructor, and the fork paths that must tell kvmlike it now
// runs in a child (where VM and vCPU ioctls answer EIO, as KVM's do).
//
// A fork is reported by glibc's pthread_atfork child handler for fork(), and by the _Fork
// wrapper for _Fork(), which runs no handlers. fork() is wrapped as well, so a fork made
// before the constructor registered the handler is not missed; ChildAfterFork() makes the
// paths that see the same fork report it once. vfork() is not interposed: its child shares
// the parent's stack and memory until it execs, and must not run kvmlike code.
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>

#include "frontends/preload/preload_abi.h"
#include "frontends/preload/preload_hooks.h"
#include "frontends/preload/preload_libc.h"
#include "frontends/preload/preload_raw.h"
#include "frontends/preload/preload_real.h"

namespace preload {

namespace {

// The pid ChildAfterFork() last ran in, or 0. A child inherits its parent's value, which is
// never the child's own pid, so each new process runs kvmlike_atfork_child() exactly once.
std::atomic<pid_t> g_reported_pid{0};

void AtforkChild() { ChildAfterFork(); }

// Runs before the program's own constructors. Resolving every libc symbol now turns each
// later libc call into one atomic load, including calls from signal handlers and from the
// child of a multithreaded fork, where dlsym() must not run.
__attribute__((constructor)) void InitPreload() {
  real::ResolveAll();
  pthread_atfork(nullptr, nullptr, AtforkChild);
}

}  // namespace

// getpid through the raw system call: async-signal-safe in the child of any fork path.
void ChildAfterFork() {
  auto self = static_cast<pid_t>(raw::Syscall(SYS_getpid));
  if (g_reported_pid.exchange(self, std::memory_order_relaxed) == self) return;
  kvmlike_atfork_child();
}

}  // namespace preload

PRELOAD_EXPORT pid_t fork() {
  pid_t pid = preload::libc::fork();
  if (pid == 0) preload::ChildAfterFork();
  return pid;
}

PRELOAD_EXPORT pid_t _Fork() {
  pid_t pid = preload::libc::Fork();
  if (pid == 0) preload::ChildAfterFork();
  return pid;
}

// SIGSEGV and SIGBUS: once kvmlike's fault handlers are in front (they turn a
// bad ioctl argument pointer into EFAULT), a program's handler is chained
// behind them instead of replacing them; every other signal goes to libc.
PRELOAD_EXPORT int sigaction(int sig, const struct sigaction* act, struct sigaction* oldact) {
  int r = kvmlike_sigaction(sig, act, oldact);
  if (r != preload::kPassToKernel) return r;
  return preload::libc::sigaction(sig, act, oldact);
}

// glibc's signal() has BSD semantics: the handler stays installed and
// interrupted calls restart.
PRELOAD_EXPORT sighandler_t signal(int sig, sighandler_t handler) {
  struct sigaction act {};
  act.sa_handler = handler;
  act.sa_flags = SA_RESTART;
  sigemptyset(&act.sa_mask);
  sigaddset(&act.sa_mask, sig);
  struct sigaction old {};
  if (kvmlike_sigaction(sig, &act, &old) == 0) return old.sa_handler;
  return preload::libc::signal(sig, handler);
}
