// ALU: integer results and the status flags (CF PF AF ZF SF OF) exactly as
// hardware defines them. Each function takes the operands and the current
// RFLAGS and updates only the flags the instruction defines or is known to
// write; the caller commits the returned flags with the result.
//
// Flags the SDM leaves undefined get a fixed choice, noted per function;
// guest code must not depend on them and the tests mask them.
#pragma once

#include <cstdint>

#include "kvmlike/x86/cpu_state.h"

namespace kvmlike::x86 {

// ALU operation of the 00-3F rows and the 80-83 groups, in encoding order.
enum class AluOp : uint8_t { kAdd, kOr, kAdc, kSbb, kAnd, kSub, kXor, kCmp };
// Shift/rotate of the C0/C1/D0-D3 groups, in ModRM.reg order (6 is SHL's alias).
enum class ShiftOp : uint8_t { kRol, kRor, kRcl, kRcr, kShl, kShr, kSal, kSar };

inline constexpr uint64_t kStatusFlags = kFlagCf | kFlagPf | kFlagAf | kFlagZf | kFlagSf | kFlagOf;

// a op b for an operand of size bytes (1, 2, 4). CMP returns a - b (the
// caller does not store it). AND/OR/XOR: CF = OF = 0, AF (undefined) = 0.
uint32_t Alu(AluOp op, uint32_t a, uint32_t b, uint8_t size, uint64_t& flags);

// INC/DEC: as ADD/SUB of 1 with CF kept.
uint32_t Inc(uint32_t a, uint8_t size, uint64_t& flags);
uint32_t Dec(uint32_t a, uint8_t size, uint64_t& flags);
// NEG: 0 - a, CF = (a != 0).
uint32_t Neg(uint32_t a, uint8_t size, uint64_t& flags);

// count is the CL/imm8 value before masking (masked to 5 bits here). A masked
// count of 0 changes nothing. OF for counts other than 1 (undefined) is the
// count-1 formula applied to the original operand, as Intel processors give
// it; AF (undefined) = 0 for SHL/SHR/SAR; rotates touch only CF and OF.
uint32_t Shift(ShiftOp op, uint32_t v, uint8_t count, uint8_t size, uint64_t& flags);

// MUL/IMUL of the F6/F7 group: returns the double-width product (low half in
// the low size*8 bits). CF = OF = upper half significant. The undefined ones
// as Intel processors leave them: SF and PF from the low half, ZF = AF = 0.
uint64_t Mul(uint32_t a, uint32_t b, uint8_t size, uint64_t& flags);
uint64_t IMul(uint32_t a, uint32_t b, uint8_t size, uint64_t& flags);

// DIV/IDIV of the double-width dividend (AX, DX:AX, EDX:EAX) by divisor.
// False means #DE (divisor 0 or quotient out of range). Flags (undefined)
// are left alone.
struct DivResult {
  uint32_t quotient;
  uint32_t remainder;
};
bool Div(uint64_t dividend, uint32_t divisor, uint8_t size, DivResult& out);
bool IDiv(uint64_t dividend, uint32_t divisor, uint8_t size, DivResult& out);

// Condition cc (0..15, the low nibble of Jcc/SETcc/CMOVcc) under flags.
bool Condition(uint8_t cc, uint64_t flags);

}  // namespace kvmlike::x86
