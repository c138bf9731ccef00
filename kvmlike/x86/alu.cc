#include "kvmlike/x86/alu.h"

#include "kvmlike/x86/cpu_state.h"
#include "kvmlike/x86/registers.h"

namespace kvmlike::x86 {

namespace {

using alu_detail::Bit;

// SF, ZF, PF of result r (size bytes), merged into flags with the given CF,
// AF and OF.
void SetFlags(uint64_t& flags, uint32_t r, uint8_t size, bool cf, bool af, bool of) {
  flags = alu_detail::WithStatus(flags, {r & SizeMask(size), cf, af, of}, size);
}

uint32_t Add(uint32_t a, uint32_t b, uint32_t carry, uint8_t size, uint64_t& flags) {
  alu_detail::Outcome o = alu_detail::AddOf(a, b, carry, size);
  flags = alu_detail::WithStatus(flags, o, size);
  return o.r;
}

uint32_t Sub(uint32_t a, uint32_t b, uint32_t borrow, uint8_t size, uint64_t& flags) {
  alu_detail::Outcome o = alu_detail::SubOf(a, b, borrow, size);
  flags = alu_detail::WithStatus(flags, o, size);
  return o.r;
}

bool Msb(uint32_t v, uint8_t size) { return (v & SignBit(size)) != 0; }
bool Msb2(uint32_t v, uint8_t size) { return (v & (SignBit(size) >> 1)) != 0; }

void SetCfOf(uint64_t& flags, bool cf, bool of) {
  flags = (flags & ~(kFlagCf | kFlagOf)) | Bit(cf, kFlagCf) | Bit(of, kFlagOf);
}

// OF of shifts and rotates is defined for a count of 1 only. For larger
// counts this takes the count-1 formula applied to the original operand,
// which is what Intel processors produce (checked against hardware).

// Rotates through CF: a (bits + 1)-bit quantity CF:v. A count that is a
// multiple of bits + 1 changes nothing.
uint32_t RotateCarry(bool left, uint32_t v, uint32_t count, uint8_t size, uint64_t& flags) {
  uint32_t bits = size * 8;
  uint32_t n = size == 4 ? count : count % (bits + 1);
  if (n == 0) return v;
  bool cf_in = flags & kFlagCf;
  uint64_t mask = (uint64_t{1} << (bits + 1)) - 1;
  uint64_t x = (uint64_t{cf_in} << bits) | v;
  x = left ? ((x << n) | (x >> (bits + 1 - n))) & mask : ((x >> n) | (x << (bits + 1 - n))) & mask;
  bool of = left ? Msb(v, size) != Msb2(v, size) : Msb(v, size) != cf_in;
  SetCfOf(flags, (x >> bits) & 1, of);
  return static_cast<uint32_t>(x) & SizeMask(size);
}

// A count that is a multiple of the width leaves the value but still sets CF.
uint32_t Rotate(bool left, uint32_t v, uint32_t count, uint8_t size, uint64_t& flags) {
  uint32_t bits = size * 8;
  uint32_t n = count % bits;
  uint32_t r = n == 0 ? v : left ? ((v << n) | (v >> (bits - n))) : ((v >> n) | (v << (bits - n)));
  r &= SizeMask(size);
  bool cf = left ? (r & 1) != 0 : Msb(r, size);
  bool of = left ? Msb(v, size) != Msb2(v, size) : Msb(v, size) != ((v & 1) != 0);
  SetCfOf(flags, cf, of);
  return r;
}

// CF is the last bit shifted out (0 once the count passes the width).
uint32_t ShiftLeft(uint32_t v, uint32_t count, uint8_t size, uint64_t& flags) {
  uint64_t wide = uint64_t{v} << count;
  uint32_t r = static_cast<uint32_t>(wide) & SizeMask(size);
  bool cf = (wide >> (size * 8)) & 1;
  SetFlags(flags, r, size, cf, false, Msb(v, size) != Msb2(v, size));
  return r;
}

uint32_t ShiftRight(uint32_t v, uint32_t count, uint8_t size, uint64_t& flags) {
  uint32_t r = v >> count;
  bool cf = (v >> (count - 1)) & 1;
  SetFlags(flags, r, size, cf, false, Msb(v, size));
  return r;
}

uint32_t ShiftArith(uint32_t v, uint32_t count, uint8_t size, uint64_t& flags) {
  int32_t sv = static_cast<int32_t>(SignExtend(v, size));
  uint32_t r = static_cast<uint32_t>(sv >> count) & SizeMask(size);
  bool cf = ((sv >> (count - 1)) & 1) != 0;
  SetFlags(flags, r, size, cf, false, false);
  return r;
}

}  // namespace

uint32_t Inc(uint32_t a, uint8_t size, uint64_t& flags) {
  uint64_t cf = flags & kFlagCf;
  uint32_t r = Add(a & SizeMask(size), 1, 0, size, flags);
  flags = (flags & ~kFlagCf) | cf;
  return r;
}

uint32_t Dec(uint32_t a, uint8_t size, uint64_t& flags) {
  uint64_t cf = flags & kFlagCf;
  uint32_t r = Sub(a & SizeMask(size), 1, 0, size, flags);
  flags = (flags & ~kFlagCf) | cf;
  return r;
}

uint32_t Neg(uint32_t a, uint8_t size, uint64_t& flags) {
  return Sub(0, a & SizeMask(size), 0, size, flags);
}

uint32_t Shift(ShiftOp op, uint32_t v, uint8_t count, uint8_t size, uint64_t& flags) {
  v &= SizeMask(size);
  uint32_t n = count & 0x1f;
  if (n == 0) return v;
  switch (op) {
    case ShiftOp::kRol: return Rotate(true, v, n, size, flags);
    case ShiftOp::kRor: return Rotate(false, v, n, size, flags);
    case ShiftOp::kRcl: return RotateCarry(true, v, n, size, flags);
    case ShiftOp::kRcr: return RotateCarry(false, v, n, size, flags);
    case ShiftOp::kShl:
    case ShiftOp::kSal: return ShiftLeft(v, n, size, flags);
    case ShiftOp::kShr: return ShiftRight(v, n, size, flags);
    case ShiftOp::kSar: return ShiftArith(v, n, size, flags);
  }
  return v;
}

uint64_t Mul(uint32_t a, uint32_t b, uint8_t size, uint64_t& flags) {
  uint64_t p = uint64_t{a & SizeMask(size)} * (b & SizeMask(size));
  bool upper = (p >> (size * 8)) != 0;
  SetFlags(flags, static_cast<uint32_t>(p), size, upper, false, upper);
  flags &= ~kFlagZf;
  return p;
}

uint64_t IMul(uint32_t a, uint32_t b, uint8_t size, uint64_t& flags) {
  int64_t p = int64_t{static_cast<int32_t>(SignExtend(a, size))} *
              static_cast<int32_t>(SignExtend(b, size));
  uint32_t low = static_cast<uint32_t>(p) & SizeMask(size);
  bool upper = p != static_cast<int32_t>(SignExtend(low, size));
  SetFlags(flags, low, size, upper, false, upper);
  flags &= ~kFlagZf;
  return static_cast<uint64_t>(p);
}

bool Div(uint64_t dividend, uint32_t divisor, uint8_t size, DivResult& out) {
  divisor &= SizeMask(size);
  if (divisor == 0) return false;
  uint64_t q = dividend / divisor;
  if (q > SizeMask(size)) return false;
  out = {static_cast<uint32_t>(q), static_cast<uint32_t>(dividend % divisor)};
  return true;
}

bool IDiv(uint64_t dividend, uint32_t divisor, uint8_t size, DivResult& out) {
  int64_t d = static_cast<int32_t>(SignExtend(divisor & SizeMask(size), size));
  if (d == 0) return false;
  // The dividend is sign-extended from twice the operand size; 2 * 32 bits is
  // the whole int64_t. INT64_MIN / -1 would trap on the host, and its
  // quotient is out of range anyway.
  int64_t n = size == 4 ? static_cast<int64_t>(dividend)
                        : (static_cast<int64_t>(dividend << (64 - size * 16)) >> (64 - size * 16));
  if (n == INT64_MIN && d == -1) return false;
  int64_t q = n / d;
  int64_t lo = -(int64_t{1} << (size * 8 - 1)), hi = (int64_t{1} << (size * 8 - 1)) - 1;
  if (q < lo || q > hi) return false;
  out = {static_cast<uint32_t>(q) & SizeMask(size), static_cast<uint32_t>(n % d) & SizeMask(size)};
  return true;
}

}  // namespace kvmlike::x86
