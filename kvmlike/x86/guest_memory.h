// GuestMemory: how the interpreter reaches guest-physical memory. Every access
// — instruction fetch, data, stack, descriptor-table reads — goes through it,
// and so through the vCPU's MMU (software TLB, then the two-dimensional fault
// path). The interpreter never holds a host pointer across instructions.
#pragma once

#include <atomic>
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

// The software TLB as translated code reads it inline (see
// translator/translator.h): two direct-mapped arrays of entries with the
// layout below, keyed by (tag << kTagShift) | index, where the index is the
// GFN (4 KiB entries) or GFN / 512 (2 MiB entries, host = the block's first
// byte). An entry the lookup does not find, or that forbids a write, is a
// miss: the access goes to Translate. The memory that offers it promises that
// a hit gives what Translate would give for a read or write, for as long as
// *generation equals the value acknowledged when the run entered translated
// code; a change of the generation means "call Translate before any access".
namespace inline_tlb {
inline constexpr uint32_t kEntrySize = 24, kKeyOffset = 0, kHostOffset = 8, kWritableOffset = 16;
inline constexpr uint32_t kSmallEntries = 4096, kLargeEntries = 256, kTagShift = 48;
}  // namespace inline_tlb

struct InlineTlb {
  const uint8_t* small = nullptr;  // kSmallEntries entries
  const uint8_t* large = nullptr;  // kLargeEntries entries
  uint64_t tag_bits = 0;           // this vCPU's tag << kTagShift
  const std::atomic<uint64_t>* generation = nullptr;
  const std::atomic<uint64_t>* acknowledged = nullptr;  // written only by Translate
};

class GuestMemory {
 public:
  // Translates one guest-physical byte address for an access of kind; the
  // caller splits accesses at 4 KiB page boundaries.
  virtual Translation Translate(base::Gpa gpa, AccessKind kind) = 0;

  // The software TLB translated code may read, or nullptr when this memory
  // has none (everything then goes through Translate). Stable for the
  // memory's lifetime.
  virtual const InlineTlb* inline_tlb() const { return nullptr; }

 protected:
  ~GuestMemory() = default;
};

}  // namespace kvmlike::x86
