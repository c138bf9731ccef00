// InterruptibleSection: the userspace counterpart of a kernel loop that checks
// signal_pending() and returns EINTR. Signals are held back for the section;
// Pending() tells whether one the caller had not blocked arrived meanwhile.
// Leaving the section restores the mask, so the handler runs right then —
// just after the operation returned EINTR, as it would with the kernel.
#pragma once

#include <signal.h>

namespace base {

class InterruptibleSection {
 public:
  InterruptibleSection();
  ~InterruptibleSection();
  InterruptibleSection(const InterruptibleSection&) = delete;
  InterruptibleSection& operator=(const InterruptibleSection&) = delete;

  bool Pending() const;

 private:
  sigset_t saved_;
};

}  // namespace base
