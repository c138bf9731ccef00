// PhysAccess: the one path from an instruction to guest-physical memory and
// to I/O ports. Accesses arrive split at 4 KiB boundaries (Machine splits
// them) and each piece goes through GuestMemory::Translate; a piece's host
// pointer is used at once and never kept. Accesses that need the VMM become
// stops:
//  - MMIO and port reads stop the run without retiring (Flow::kStop) unless
//    PendingReads holds their completion;
//  - MMIO writes and OUT record their stop and let the instruction retire
//    (stop_after_retire());
//  - kExit stops with kMemExit, kRetry abandons the attempt (Flow::kRetry).
//
// Lives for one Run; not thread-safe.
#pragma once

#include <cstdint>
#include <cstring>

#include "base/types.h"
#include "kvmlike/x86/cpu_state.h"
#include "kvmlike/x86/flow.h"
#include "kvmlike/x86/guest_memory.h"
#include "kvmlike/x86/interpreter.h"
#include "kvmlike/x86/pending_reads.h"

namespace kvmlike::x86 {

// Little-endian values of 1..8 bytes. Whole loads and stores for the common
// sizes: building a value byte by byte in memory and reading it back wider
// stalls on store forwarding.
inline uint64_t LoadLe(const uint8_t* p, uint32_t size) {
  uint64_t v = 0;
  switch (size) {
    case 1: return p[0];
    case 2: { uint16_t w; std::memcpy(&w, p, 2); return w; }
    case 4: { uint32_t d; std::memcpy(&d, p, 4); return d; }
    case 8: std::memcpy(&v, p, 8); return v;
    default:
      for (uint32_t i = size; i-- > 0;) v = (v << 8) | p[i];
      return v;
  }
}

inline void StoreLe(uint8_t* p, uint32_t size, uint64_t v) {
  switch (size) {
    case 1: p[0] = static_cast<uint8_t>(v); return;
    case 2: { uint16_t w = static_cast<uint16_t>(v); std::memcpy(p, &w, 2); return; }
    case 4: { uint32_t d = static_cast<uint32_t>(v); std::memcpy(p, &d, 4); return; }
    case 8: std::memcpy(p, &v, 8); return;
    default:
      for (uint32_t i = 0; i < size; ++i, v >>= 8) p[i] = static_cast<uint8_t>(v);
  }
}

class PhysAccess {
 public:
  // cpu's RIP names the instruction whose reads are matched with completions:
  // it stays on the instruction until it completes.
  PhysAccess(GuestMemory& mem, PendingReads& pending, Stop& stop, const CpuState& cpu)
      : mem_(mem), pending_(pending), stop_(stop), cpu_(cpu) {}

  // Starts an attempt at the instruction at RIP after a Run begins or an
  // attempt was abandoned (kRetry): its reads are matched from the first and
  // no stop is pending. After an instruction completes there is nothing to
  // reset, as Run stops on stop_after_retire() and clears the reads it
  // consumed; so this is not called per instruction.
  void BeginAttempt() {
    stop_after_retire_ = false;
    pending_.Rewind();
  }

  // A REP element committed: the reads it consumed are done with.
  void ElementCommitted() { pending_.Clear(); }

  // One piece of an access: [gpa, gpa + len) lies in one 4 KiB page (callers
  // split; see Machine::ReadLinear).
  [[nodiscard]] Flow Read(base::Gpa gpa, uint8_t* dst, uint32_t len);
  [[nodiscard]] Flow Write(base::Gpa gpa, const uint8_t* src, uint32_t len);
  // The same for one value of size (1..8) bytes. Inline with RAM first:
  // nearly every data access is one of these.
  [[nodiscard]] Flow ReadValue(base::Gpa gpa, uint32_t size, uint64_t& value) {
    Translation t = mem_.Translate(gpa, AccessKind::kRead);
    if (t.outcome != MemOutcome::kOk) [[unlikely]] return ReadValueElsewhere(gpa, t, size, value);
    value = LoadLe(t.host, size);
    return Flow::kOk;
  }
  [[nodiscard]] Flow WriteValue(base::Gpa gpa, uint32_t size, uint64_t value) {
    Translation t = mem_.Translate(gpa, AccessKind::kWrite);
    if (t.outcome != MemOutcome::kOk) [[unlikely]] return WriteValueElsewhere(gpa, t, size, value);
    StoreLe(t.host, size, value);
    return Flow::kOk;
  }
  // host = gpa's byte when gpa is RAM (for an atomic update of an operand
  // within its page, used at once), nullptr when it is MMIO.
  [[nodiscard]] Flow RamPointer(base::Gpa gpa, uint8_t*& host);
  // ORs bits into the byte at gpa when it is RAM (descriptor accessed bits);
  // a byte in MMIO is left alone, without an exit.
  [[nodiscard]] Flow SetBitsInRam(base::Gpa gpa, uint8_t bits);
  // Translates gpa for an instruction fetch: host = gpa's byte, readable up
  // to the end of its page until the next access. Code in MMIO is outside the
  // subset (internal error). Inline: it runs once per instruction.
  [[nodiscard]] Flow Fetch(base::Gpa gpa, const uint8_t*& host) {
    Translation t = mem_.Translate(gpa, AccessKind::kFetch);
    if (t.outcome != MemOutcome::kOk) [[unlikely]] return FetchFailed(t.outcome);
    host = t.host;
    return Flow::kOk;
  }

  // IN: value from the completion of this read, or a kIo stop.
  [[nodiscard]] Flow PortIn(uint16_t port, uint8_t size, uint32_t& value);
  // OUT: the instruction retires, then the run stops with kIo.
  void PortOut(uint16_t port, uint8_t size, uint32_t value);
  // The instruction retires, then the run stops with reason (HLT).
  void StopAfterRetire(StopReason reason);
  // Stops the run at once with an internal error (bytes filled by the caller).
  [[nodiscard]] Flow Unsupported();

  bool stop_after_retire() const { return stop_after_retire_; }
  // The stop being built, for stops whose payload the caller fills (hypercall,
  // shutdown).
  Stop& stop() { return stop_; }

 private:
  Flow ReadMmio(base::Gpa gpa, uint8_t* dst, uint32_t len);
  Flow WriteMmio(base::Gpa gpa, const uint8_t* src, uint32_t len);
  Flow ReadValueElsewhere(base::Gpa gpa, Translation t, uint32_t size, uint64_t& value);
  Flow WriteValueElsewhere(base::Gpa gpa, Translation t, uint32_t size, uint64_t value);
  Flow Failed(MemOutcome outcome);
  Flow FetchFailed(MemOutcome outcome);

  GuestMemory& mem_;
  PendingReads& pending_;
  Stop& stop_;
  const CpuState& cpu_;
  bool stop_after_retire_ = false;
};

}  // namespace kvmlike::x86
