// Machine: what an instruction reaches while it executes — the vCPU state,
// guest memory and ports through PhysAccess, and the exception it raises.
// Linear addresses are segment base + offset; without guest paging a linear
// address is a guest-physical one truncated to 32 bits (GpaOfLinear, the only
// place the conversion happens).
//
// Lives for one Run; not thread-safe.
#pragma once

#include <bit>
#include <cstdint>

#include "base/types.h"
#include "kvmlike/x86/cpu_state.h"
#include "kvmlike/x86/flow.h"
#include "kvmlike/x86/phys_access.h"

namespace kvmlike::x86 {

static_assert(std::endian::native == std::endian::little,
              "guest values are copied to and from host integers as they are");

struct LinearTag {};
using Linear = base::StrongU64<LinearTag>;  // segment base + offset, 32 bits

constexpr base::Gpa GpaOfLinear(Linear lin) { return base::Gpa(lin.value() & 0xffffffff); }

// Error-code bits of a selector-related fault.
inline constexpr uint16_t kErrExt = 1;  // raised while delivering an external event / exception
inline constexpr uint16_t kErrIdt = 2;  // the index names an IDT entry

class Machine {
 public:
  Machine(CpuState& cpu_state, PhysAccess& phys_access) : cpu(cpu_state), phys(phys_access) {}

  CpuState& cpu;
  PhysAccess& phys;

  bool protected_mode() const { return (cpu.cr0 & kCr0Pe) != 0; }
  // CPL is SS.DPL in protected mode (as KVM reads it), 0 in real mode.
  uint8_t cpl() const { return protected_mode() ? cpu.seg[kSs].dpl : 0; }
  uint8_t iopl() const { return (cpu.rflags >> 12) & 3; }

  // Raise an exception without / with an error code. While an exception is
  // being delivered, error codes carry EXT.
  Flow Raise(uint8_t vector) {
    fault_ = {vector, false, 0};
    return Flow::kFault;
  }
  Flow RaiseError(uint8_t vector, uint16_t code) {
    fault_ = {vector, true, static_cast<uint16_t>(code | ext_)};
    return Flow::kFault;
  }
  Flow Unsupported() { return phys.Unsupported(); }
  const Fault& fault() const { return fault_; }

  // Marks faults raised from now on as caused by the delivery of an exception
  // (EXT = 1) or of INT n (EXT = 0).
  void set_ext(bool ext) { ext_ = ext ? kErrExt : 0; }

  // A value of size (1..8) bytes at lin, little-endian, split at a page
  // boundary when it straddles one (linear space wraps at 4 GiB).
  Flow ReadLinear(Linear lin, uint32_t size, uint64_t& value);
  Flow WriteLinear(Linear lin, uint32_t size, uint64_t value);

 private:
  Fault fault_;
  uint16_t ext_ = 0;
};

inline Flow Machine::ReadLinear(Linear lin, uint32_t size, uint64_t& value) {
  uint64_t addr = lin.value() & 0xffffffff;
  uint32_t room = static_cast<uint32_t>(base::kPageSize - (addr & (base::kPageSize - 1)));
  if (size <= room) [[likely]] return phys.ReadValue(GpaOfLinear(lin), size, value);
  uint8_t bytes[8];
  X86_TRY(phys.Read(GpaOfLinear(lin), bytes, room));
  X86_TRY(phys.Read(GpaOfLinear(Linear(addr + room)), bytes + room, size - room));
  value = LoadLe(bytes, size);
  return Flow::kOk;
}

// A write that straddles a page is two writes. If the second one exits or
// asks for a retry, the first has happened while no register has changed:
// running the instruction again writes the same bytes, so nothing is lost.
inline Flow Machine::WriteLinear(Linear lin, uint32_t size, uint64_t value) {
  uint64_t addr = lin.value() & 0xffffffff;
  uint32_t room = static_cast<uint32_t>(base::kPageSize - (addr & (base::kPageSize - 1)));
  if (size <= room) [[likely]] return phys.WriteValue(GpaOfLinear(lin), size, value);
  uint8_t bytes[8];
  StoreLe(bytes, size, value);
  X86_TRY(phys.Write(GpaOfLinear(lin), bytes, room));
  return phys.Write(GpaOfLinear(Linear(addr + room)), bytes + room, size - room);
}

}  // namespace kvmlike::x86
