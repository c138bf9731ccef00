// Decoder: turns instruction bytes into an Insn — prefixes (66, 67, F0, F2,
// F3, segment overrides), the opcode (one byte or 0F escape), ModRM with SIB
// and displacement for 16- and 32-bit addressing, and immediates. It reads
// only the bytes it is given and no vCPU state besides the default operand /
// address size; register values are combined into addresses at execution.
#pragma once

#include <array>
#include <cstdint>

#include "kvmlike/x86/cpu_state.h"

namespace kvmlike::x86 {

inline constexpr uint32_t kMaxInsnLen = 15;
inline constexpr uint8_t kNoSeg = 0xff;    // no segment override
inline constexpr int8_t kNoReg = -1;
inline constexpr uint16_t kTwoByte = 0x100;  // opcode space of 0F xx

// A memory operand's form: base + (index << scale) + disp, truncated to the
// address size, in segment seg unless overridden.
struct MemForm {
  int8_t base = kNoReg;   // Gpr or kNoReg
  int8_t index = kNoReg;  // Gpr or kNoReg
  uint8_t scale = 0;      // shift count 0..3
  uint8_t seg = kDs;      // default segment (SS for BP/EBP/ESP-based forms)
  uint32_t disp = 0;
};

struct Insn {
  uint16_t opcode = 0;     // 0x00..0xff, or kTwoByte | byte for 0F xx
  uint8_t len = 0;         // bytes including prefixes
  uint8_t op_size = 4;     // 2 or 4
  uint8_t addr_size = 4;   // 2 or 4
  uint8_t rep = 0;         // 0, 0xf2 (REPNE) or 0xf3 (REP/REPE)
  uint8_t seg_override = kNoSeg;
  bool lock = false;
  bool has_modrm = false;
  bool has_mem = false;    // mem is valid: ModRM with mod != 3, or a moffs operand
  uint8_t mod = 0, reg = 0, rm = 0;
  MemForm mem;
  uint32_t imm = 0;        // first immediate, zero-extended from its size
  uint32_t imm2 = 0;       // second immediate: far-pointer selector, ENTER's level
  uint8_t imm_size = 0;    // size in bytes of imm
};

enum class DecodeStatus : uint8_t {
  kOk,
  kNeedBytes,  // the instruction continues past the bytes given
  kTooLong,    // longer than 15 bytes (#GP)
  kUnknown,    // opcode outside the decoder's tables: its length is unknown
};

// Decodes one instruction from bytes[0, avail). default32 is CS.D. On
// kUnknown, out.len is the number of bytes examined.
DecodeStatus Decode(const uint8_t* bytes, uint32_t avail, bool default32, Insn& out);

}  // namespace kvmlike::x86
