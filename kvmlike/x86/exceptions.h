// Exceptions: delivery of exceptions and software interrupts — through the
// IVT in real mode (push FLAGS, CS, IP; clear IF, TF, AC; CS:IP from the
// 4-byte entry), through IDT interrupt/trap gates in protected mode (push
// EFLAGS, CS, EIP and the error code where the vector has one; clear TF, NT,
// RF, VM, and IF for interrupt gates) — and the double-fault rules: an
// exception while delivering another becomes #DF when both are contributory
// (#DE, #TS, #NP, #SS, #GP) or the first is #PF; one while delivering #DF is a
// triple fault (StopReason::kShutdown).
//
// Delivery reads the table and the target descriptor before it pushes
// anything and commits registers last, like any instruction.
#pragma once

#include <cstdint>

#include "kvmlike/x86/flow.h"
#include "kvmlike/x86/machine.h"

namespace kvmlike::x86 {

enum class EventKind : uint8_t {
  kException,  // raised by the processor: error codes of nested faults carry EXT
  kSoftware,   // INT n / INT3 / INTO: the gate's DPL must admit the CPL
};

struct Event {
  uint8_t vector;
  EventKind kind;
  bool has_error_code;  // pushed in protected mode only
  uint16_t error_code;
  uint32_t return_ip;   // EIP pushed: the faulting instruction, or the next one for INT n
};

// Enters the handler of ev. kFault when delivery itself faulted (the caller
// applies the double-fault rules); kStop for an exit or an event outside the
// subset (task gate, ring change).
[[nodiscard]] Flow EnterHandler(Machine& m, const Event& ev);

// Delivers f, raised by the instruction at RIP (which did not retire), with
// the double-fault rules: kOk once a handler is entered, kStop for shutdown or
// another stop, kRetry.
[[nodiscard]] Flow DeliverFault(Machine& m, Fault f);

}  // namespace kvmlike::x86
