#include "kvmlike/x86/phys_access.h"

#include <cstring>

namespace kvmlike::x86 {

using base::Gpa;

Flow PhysAccess::Read(Gpa gpa, uint8_t* dst, uint32_t len) {
  Translation t = mem_.Translate(gpa, AccessKind::kRead);
  if (t.outcome == MemOutcome::kOk) [[likely]] {
    std::memcpy(dst, t.host, len);
    return Flow::kOk;
  }
  if (t.outcome == MemOutcome::kMmio) return ReadMmio(gpa, dst, len);
  return Failed(t.outcome);
}

Flow PhysAccess::Write(Gpa gpa, const uint8_t* src, uint32_t len) {
  Translation t = mem_.Translate(gpa, AccessKind::kWrite);
  if (t.outcome == MemOutcome::kOk) [[likely]] {
    std::memcpy(t.host, src, len);
    return Flow::kOk;
  }
  if (t.outcome == MemOutcome::kMmio) return WriteMmio(gpa, src, len);
  return Failed(t.outcome);
}

// ReadValue and WriteValue when gpa is not RAM.
Flow PhysAccess::ReadValueElsewhere(Gpa gpa, Translation t, uint32_t size, uint64_t& value) {
  if (t.outcome != MemOutcome::kMmio) return Failed(t.outcome);
  uint8_t bytes[8];
  X86_TRY(ReadMmio(gpa, bytes, size));
  value = LoadLe(bytes, size);
  return Flow::kOk;
}

Flow PhysAccess::WriteValueElsewhere(Gpa gpa, Translation t, uint32_t size, uint64_t value) {
  if (t.outcome != MemOutcome::kMmio) return Failed(t.outcome);
  uint8_t bytes[8];
  StoreLe(bytes, size, value);
  return WriteMmio(gpa, bytes, size);
}

Flow PhysAccess::RamPointer(Gpa gpa, uint8_t*& host) {
  Translation t = mem_.Translate(gpa, AccessKind::kWrite);
  host = t.outcome == MemOutcome::kOk ? t.host : nullptr;
  if (t.outcome == MemOutcome::kOk || t.outcome == MemOutcome::kMmio) return Flow::kOk;
  return Failed(t.outcome);
}

Flow PhysAccess::SetBitsInRam(Gpa gpa, uint8_t bits) {
  Translation t = mem_.Translate(gpa, AccessKind::kWrite);
  if (t.outcome == MemOutcome::kOk) *t.host |= bits;
  if (t.outcome == MemOutcome::kOk || t.outcome == MemOutcome::kMmio) return Flow::kOk;
  return Failed(t.outcome);
}

Flow PhysAccess::FetchFailed(MemOutcome outcome) {
  // KVM cannot run code that lives in MMIO either; its emulator gives up.
  if (outcome == MemOutcome::kMmio) return Unsupported();
  return Failed(outcome);
}

// A read the VMM must satisfy stops the run without retiring; the instruction
// runs again from its start on the next Run and finds the data in pending_.
// Reads happen before any write of the same instruction, so nothing the
// instruction did is visible when it stops here.
Flow PhysAccess::ReadMmio(Gpa gpa, uint8_t* dst, uint32_t len) {
  if (len > 8) return Unsupported();
  ReadKey key{ReadSpace::kMmio, static_cast<uint8_t>(len), gpa.value(), cpu_.rip};
  if (pending_.Take(key, dst)) return Flow::kOk;
  if (!pending_.Await(key)) return Unsupported();
  stop_.reason = StopReason::kMmio;
  stop_.mmio = {gpa.value(), len, false, {}};
  return Flow::kStop;
}

// The write is the instruction's last memory effect (executors write after
// all their reads), so the instruction can retire and the exit report it. One
// kvm_run carries one MMIO write: a second one in the same instruction (a
// write split across two MMIO pages, a stack frame pushed into MMIO) is
// outside the subset.
Flow PhysAccess::WriteMmio(Gpa gpa, const uint8_t* src, uint32_t len) {
  if (len > 8 || stop_after_retire_) return Unsupported();
  stop_.reason = StopReason::kMmio;
  stop_.mmio = {gpa.value(), len, true, {}};
  std::memcpy(stop_.mmio.data.data(), src, len);
  stop_after_retire_ = true;
  return Flow::kOk;
}

Flow PhysAccess::PortIn(uint16_t port, uint8_t size, uint32_t& value) {
  ReadKey key{ReadSpace::kPort, size, port, cpu_.rip};
  uint8_t data[8] = {};
  if (pending_.Take(key, data)) {
    value = 0;
    std::memcpy(&value, data, size);
    return Flow::kOk;
  }
  if (!pending_.Await(key)) return Unsupported();
  stop_.reason = StopReason::kIo;
  stop_.io = {false, size, port, 1, {}};
  return Flow::kStop;
}

void PhysAccess::PortOut(uint16_t port, uint8_t size, uint32_t value) {
  stop_.reason = StopReason::kIo;
  stop_.io = {true, size, port, 1, {}};
  std::memcpy(stop_.io.data.data(), &value, size);
  stop_after_retire_ = true;
}

void PhysAccess::StopAfterRetire(StopReason reason) {
  stop_.reason = reason;
  stop_after_retire_ = true;
}

Flow PhysAccess::Unsupported() {
  stop_.reason = StopReason::kInternalError;
  stop_.internal = {kInternalErrorEmulation, 0, {}};
  return Flow::kStop;
}

Flow PhysAccess::Failed(MemOutcome outcome) {
  if (outcome == MemOutcome::kRetry) return Flow::kRetry;
  stop_.reason = StopReason::kMemExit;
  return Flow::kStop;
}

}  // namespace kvmlike::x86
