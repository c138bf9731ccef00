// Register access by operand size, as instructions name registers: size 1
// selects AL..BL for 0..3 and AH..BH for 4..7 (no REX outside long mode),
// size 2 the low word, size 4 the low doubleword. Writes of 1 and 2 bytes keep
// the other bits; 4-byte writes zero-extend into the 64-bit register, as KVM's
// emulator does.
#pragma once

#include <cstdint>

#include "kvmlike/x86/cpu_state.h"

namespace kvmlike::x86 {

constexpr uint32_t SizeMask(uint8_t size) {
  return size == 4 ? 0xffffffffu : (uint32_t{1} << (size * 8)) - 1;
}
constexpr uint32_t SignBit(uint8_t size) { return uint32_t{1} << (size * 8 - 1); }

// v (of from bytes) sign-extended to 32 bits.
constexpr uint32_t SignExtend(uint32_t v, uint8_t from) {
  if (from == 1) return static_cast<uint32_t>(static_cast<int32_t>(static_cast<int8_t>(v)));
  if (from == 2) return static_cast<uint32_t>(static_cast<int32_t>(static_cast<int16_t>(v)));
  return v;
}

inline uint32_t ReadGpr(const CpuState& c, uint8_t r, uint8_t size) {
  if (size == 1) return r < 4 ? c.gpr[r] & 0xff : (c.gpr[r - 4] >> 8) & 0xff;
  return static_cast<uint32_t>(c.gpr[r]) & SizeMask(size);
}

inline void WriteGpr(CpuState& c, uint8_t r, uint8_t size, uint32_t v) {
  if (size == 4) {
    c.gpr[r] = v;
  } else if (size == 2) {
    c.gpr[r] = (c.gpr[r] & ~uint64_t{0xffff}) | (v & 0xffff);
  } else if (r < 4) {
    c.gpr[r] = (c.gpr[r] & ~uint64_t{0xff}) | (v & 0xff);
  } else {
    c.gpr[r - 4] = (c.gpr[r - 4] & ~uint64_t{0xff00}) | ((v & 0xff) << 8);
  }
}

}  // namespace kvmlike::x86
