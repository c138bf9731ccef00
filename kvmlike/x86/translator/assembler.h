// Assembler: the x86-64 instruction forms the translator emits, as bytes in
// a growing buffer, with labels for forward and backward jumps (always rel32,
// so a label's fixups never change the code size).
//
// Memory operands are base + index << scale + disp32 in their longest form
// (ModRM mod = 2 or a SIB byte), so no register needs a special case (RSP/R12
// as base, RBP/R13 without a displacement).
//
// Plain value type; not thread-safe.
#pragma once

#include <cassert>
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "kvmlike/x86/alu.h"

namespace kvmlike::x86::translator {

enum class HostReg : uint8_t {
  kRax, kRcx, kRdx, kRbx, kRsp, kRbp, kRsi, kRdi,
  kR8, kR9, kR10, kR11, kR12, kR13, kR14, kR15,
};

// [base + index << scale + disp]; no base means disp alone (plus the index).
struct MemOperand {
  HostReg base = HostReg::kRax;
  bool has_base = true;
  HostReg index = HostReg::kRax;
  bool has_index = false;
  uint8_t scale = 0;  // shift count 0..3
  int32_t disp = 0;
};

inline MemOperand At(HostReg base, int32_t disp = 0) { return {.base = base, .disp = disp}; }

// Operand size of an emitted instruction: 8-bit (byte registers are the
// low bytes of any register, so a REX prefix is always present), 32-bit
// (zero-extends into the 64-bit register) or 64-bit. An 8-bit instruction
// needs its own opcode: only Rm (opcode given) and Store have byte forms.
enum class Width : uint8_t { k8, k32, k64 };

// Condition codes in their x86 encoding (the low nibble of Jcc).
using Cond = uint8_t;
inline constexpr Cond kCondB = 0x2, kCondE = 0x4, kCondNe = 0x5, kCondA = 0x7;

class Assembler {
 public:
  struct Label {
    int32_t bound = -1;          // offset in the code, once bound
    std::vector<uint32_t> uses;  // offsets of rel32 fields that jump to it
  };

  const std::vector<uint8_t>& code() const { return code_; }
  uint32_t size() const { return static_cast<uint32_t>(code_.size()); }

  void Bind(Label& l);
  // Every label jumped to must be bound before the code is used.
  void Jmp(Label& l);
  void Jcc(Cond cc, Label& l);

  void Push(HostReg r);
  void Pop(HostReg r);
  void Ret() { Byte(0xc3); }

  // mov dst, src / [mem] / imm and stores, at width.
  void MovRR(Width w, HostReg dst, HostReg src) { Rm(Full(w), 0x8b, Num(dst), src); }
  void Load(Width w, HostReg dst, const MemOperand& m) { Rm(Full(w), 0x8b, Num(dst), m); }
  void Store(Width w, const MemOperand& m, HostReg src) {
    Rm(w, w == Width::k8 ? uint8_t{0x88} : uint8_t{0x89}, Num(src), m);
  }
  void MovImm32(HostReg dst, uint32_t imm);  // zero-extends
  void Lea(Width w, HostReg dst, const MemOperand& m) { Rm(Full(w), 0x8d, Num(dst), m); }

  // ALU group 1, in AluOp's (the encoding's) order.
  void AluRR(Width w, AluOp op, HostReg dst, HostReg src) {
    Rm(Full(w), Op1(op, 1), Num(src), dst);
  }
  void AluRM(Width w, AluOp op, HostReg dst, const MemOperand& m) {
    Rm(Full(w), Op1(op, 3), Num(dst), m);
  }
  void AluRI(Width w, AluOp op, HostReg dst, int32_t imm);
  void CmpMemImm8(const MemOperand& m, uint8_t imm);  // cmp byte [m], imm
  void Shl(Width w, HostReg r, uint8_t n) { ShiftRI(w, ShiftOp::kShl, r, n); }
  void Shr(Width w, HostReg r, uint8_t n) { ShiftRI(w, ShiftOp::kShr, r, n); }
  void ImulRI(HostReg dst, HostReg src, int32_t imm);  // 64-bit

  // Guest flags kept in AX: AH = SF ZF 0 AF 0 PF 1 CF (EFLAGS bits 7..0, as
  // LAHF gives them), AL = OF.
  void SaveFlagsToAx();     // lahf; seto al
  void RestoreFlagsFromAx();  // add al, 0x7f; sahf (AX is clobbered)
  void MovzxEdxAh() { Bytes({0x0f, 0xb6, 0xd4}); }
  void MovzxEaxAl() { Bytes({0x0f, 0xb6, 0xc0}); }
  void MovAhDl() { Bytes({0x88, 0xd4}); }

  // An instruction in general form: [REX] opcode ModRM [SIB disp32], reg
  // being a register number or an opcode extension (/digit).
  void Rm(Width w, uint8_t opcode, uint8_t reg, HostReg rm);
  void Rm(Width w, uint8_t opcode, uint8_t reg, const MemOperand& m);

  void Byte(uint8_t b) { code_.push_back(b); }
  void Imm32(uint32_t v);

  static uint8_t Num(HostReg r) { return static_cast<uint8_t>(r); }

 private:
  // The named forms use their 32/64-bit opcodes: at k8 they would emit a
  // full-width instruction.
  static Width Full(Width w) {
    assert(w != Width::k8);
    return w;
  }
  static uint8_t Op1(AluOp op, uint8_t form) {
    return static_cast<uint8_t>(static_cast<uint8_t>(op) << 3 | form);
  }
  void Bytes(std::initializer_list<uint8_t> bs) { code_.insert(code_.end(), bs); }
  void ShiftRI(Width w, ShiftOp op, HostReg r, uint8_t count);
  void Rex(Width w, uint8_t reg, uint8_t index, uint8_t base);
  void Rel32To(Label& l);

  std::vector<uint8_t> code_;
};

}  // namespace kvmlike::x86::translator
