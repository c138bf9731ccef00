// Flow: how each step of an instruction ended, and the exception it raised.
// Every function on the execution path returns a Flow; X86_TRY propagates
// anything but kOk, so an instruction abandons its work at the first fault or
// stop with nothing committed.
#pragma once

#include <cstdint>

namespace kvmlike::x86 {

enum class [[nodiscard]] Flow : uint8_t {
  kOk,     // go on
  kFault,  // an exception was raised: Machine::fault() says which
  kStop,   // the run stops now; the Stop is filled; the instruction did not retire
  kRetry,  // GuestMemory answered kRetry: run the instruction again from its start
};

#define X86_TRY(expr)                                   \
  do {                                                  \
    ::kvmlike::x86::Flow x86_try_flow_ = (expr);        \
    if (x86_try_flow_ != ::kvmlike::x86::Flow::kOk)     \
      [[unlikely]] return x86_try_flow_;                \
  } while (0)

// Exception vectors the interpreter raises.
inline constexpr uint8_t kVecDe = 0;   // divide error
inline constexpr uint8_t kVecDb = 1;   // debug
inline constexpr uint8_t kVecBp = 3;   // INT3
inline constexpr uint8_t kVecOf = 4;   // INTO
inline constexpr uint8_t kVecUd = 6;   // invalid opcode
inline constexpr uint8_t kVecDf = 8;   // double fault
inline constexpr uint8_t kVecTs = 10;  // invalid TSS
inline constexpr uint8_t kVecNp = 11;  // segment not present
inline constexpr uint8_t kVecSs = 12;  // stack-segment fault
inline constexpr uint8_t kVecGp = 13;  // general protection
inline constexpr uint8_t kVecPf = 14;  // page fault
inline constexpr uint8_t kVecAc = 17;  // alignment check

struct Fault {
  uint8_t vector = 0;
  bool has_error_code = false;
  uint16_t error_code = 0;
};

}  // namespace kvmlike::x86
