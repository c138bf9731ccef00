#include "base/interruptible.h"

#include <pthread.h>

#include <initializer_list>

namespace base {

// Synchronous signals stay deliverable: a fault the kernel cannot deliver
// (blocked) kills the process, and kvmlike's fault-safe copies rely on them.
InterruptibleSection::InterruptibleSection() {
  sigset_t held;
  sigfillset(&held);
  for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS}) sigdelset(&held, sig);
  pthread_sigmask(SIG_BLOCK, &held, &saved_);
}

InterruptibleSection::~InterruptibleSection() { pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }

bool InterruptibleSection::Pending() const {
  sigset_t pending;
  if (sigpending(&pending) != 0) return false;
  for (int sig = 1; sig < NSIG; sig++)
    if (sigismember(&pending, sig) == 1 && sigismember(&saved_, sig) == 0) return true;
  return false;
}

}  // namespace base
