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
#include "kvmlike/x86/registers.h"

namespace kvmlike::x86 {

// ALU operation of the 00-3F rows and the 80-83 groups, in encoding order.
enum class AluOp : uint8_t { kAdd, kOr, kAdc, kSbb, kAnd, kSub, kXor, kCmp };
// Shift/rotate of the C0/C1/D0-D3 groups, in ModRM.reg order (6 is SHL's alias).
enum class ShiftOp : uint8_t { kRol, kRor, kRcl, kRcr, kShl, kShr, kSal, kSar };

inline constexpr uint64_t kStatusFlags = kFlagCf | kFlagPf | kFlagAf | kFlagZf | kFlagSf | kFlagOf;

// a op b for an operand of size bytes (1, 2, 4). CMP returns a - b (the
// caller does not store it). AND/OR/XOR: CF = OF = 0, AF (undefined) = 0.
// Inline (below): it runs for most guest instructions, and inlined it keeps
// RFLAGS in a register.
inline uint32_t Alu(AluOp op, uint32_t a, uint32_t b, uint8_t size, uint64_t& flags);

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
// Inline (below) for the same reason as Alu.
inline bool Condition(uint8_t cc, uint64_t flags);

namespace alu_detail {

inline uint64_t Bit(bool on, uint64_t flag) { return on ? flag : 0; }

// A result of size bytes (masked) and the carries and overflow it produced.
struct Outcome {
  uint32_t r;
  bool cf = false, af = false, of = false;
};

// Operands masked to size bytes.
inline Outcome AddOf(uint32_t a, uint32_t b, uint32_t carry, uint8_t size) {
  uint64_t wide = uint64_t{a} + b + carry;
  uint32_t r = static_cast<uint32_t>(wide) & SizeMask(size);
  return {r, ((wide >> (size * 8)) & 1) != 0, ((a ^ b ^ r) & 0x10) != 0,
          ((a ^ r) & (b ^ r) & SignBit(size)) != 0};
}

inline Outcome SubOf(uint32_t a, uint32_t b, uint32_t borrow, uint8_t size) {
  uint32_t r = (a - b - borrow) & SizeMask(size);
  return {r, uint64_t{a} < uint64_t{b} + borrow, ((a ^ b ^ r) & 0x10) != 0,
          ((a ^ b) & (a ^ r) & SignBit(size)) != 0};
}

// flags with CF, AF, OF from o and SF, ZF, PF of its result.
inline uint64_t WithStatus(uint64_t flags, Outcome o, uint8_t size) {
  bool even_parity = (__builtin_popcount(o.r & 0xff) & 1) == 0;
  return (flags & ~kStatusFlags) | Bit(o.cf, kFlagCf) | Bit(even_parity, kFlagPf) |
         Bit(o.af, kFlagAf) | Bit(o.r == 0, kFlagZf) | Bit((o.r & SignBit(size)) != 0, kFlagSf) |
         Bit(o.of, kFlagOf);
}

}  // namespace alu_detail

// One flags computation after the switch keeps the inlined code small.
inline uint32_t Alu(AluOp op, uint32_t a, uint32_t b, uint8_t size, uint64_t& flags) {
  a &= SizeMask(size);
  b &= SizeMask(size);
  uint32_t carry = (op == AluOp::kAdc || op == AluOp::kSbb) && (flags & kFlagCf) ? 1 : 0;
  alu_detail::Outcome o{};
  switch (op) {
    case AluOp::kAdd:
    case AluOp::kAdc: o = alu_detail::AddOf(a, b, carry, size); break;
    case AluOp::kSub:
    case AluOp::kSbb:
    case AluOp::kCmp: o = alu_detail::SubOf(a, b, carry, size); break;
    case AluOp::kOr: o = {a | b}; break;
    case AluOp::kAnd: o = {a & b}; break;
    case AluOp::kXor: o = {a ^ b}; break;
  }
  flags = alu_detail::WithStatus(flags, o, size);
  return o.r;
}

inline bool Condition(uint8_t cc, uint64_t flags) {
  bool cf = flags & kFlagCf, zf = flags & kFlagZf, sf = flags & kFlagSf, of = flags & kFlagOf,
       pf = flags & kFlagPf;
  bool r = false;
  switch (cc >> 1) {
    case 0: r = of; break;
    case 1: r = cf; break;
    case 2: r = zf; break;
    case 3: r = cf || zf; break;
    case 4: r = sf; break;
    case 5: r = pf; break;
    case 6: r = sf != of; break;
    case 7: r = zf || (sf != of); break;
  }
  return (cc & 1) ? !r : r;
}

}  // namespace kvmlike::x86
