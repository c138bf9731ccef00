#include "base/interruptible.h"

#include <pthread.h>

namespace base {

InterruptibleSection::InterruptibleSection() {
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &saved_);
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
