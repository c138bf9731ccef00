// GuestMemory: how the interpreter reaches guest-physical memory. Every access
// — instruction fetch, data, stack, descriptor-table reads — goes through it,
// and so through the vCPU's MMU (software TLB, then the two-dimensional fault
// path). The interpreter never holds a host pointer across instructions.
#pragma once

#include <cstdint>

#include "base/types.h"

namespace kvmlike::x86 {

enum class AccessKind : uint8_t { kRead, kWrite, kFetch };

// Why an access could not be satisfied from guest memory.
enum class MemOutcome : uint8_t {
  kOk,           // host points at the page's bytes
  kMmio,         // no memslot: the access becomes a KVM_EXIT_MMIO
  kExit,         // the MMU already filled the run area (e.g. memory-fault exit); stop now
  kRetry,        // an invalidation raced the fault: run the instruction again
};

struct Translation {
  MemOutcome outcome;
  uint8_t* host;  // kOk: host address of gpa's byte; valid until the next Translate
};

class GuestMemory {
 public:
  // Translates one guest-physical byte address for an access of kind; the
  // caller splits accesses at 4 KiB page boundaries.
  virtual Translation Translate(base::Gpa gpa, AccessKind kind) = 0;

 protected:
  ~GuestMemory() = default;
};

}  // namespace kvmlike::x86
