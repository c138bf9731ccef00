#include "kvmlike/x86/translator/assembler.h"

#include <cassert>
#include <cstring>

namespace kvmlike::x86::translator {

void Assembler::Imm32(uint32_t v) {
  for (int i = 0; i < 4; ++i) Byte(static_cast<uint8_t>(v >> (8 * i)));
}

// A byte-width instruction always carries REX, so that register numbers
// 4..7 name SPL..DIL and never AH..BH.
void Assembler::Rex(Width w, uint8_t reg, uint8_t index, uint8_t base) {
  uint8_t rex = static_cast<uint8_t>((w == Width::k64 ? 8 : 0) | ((reg >> 3) & 1) << 2 |
                                     ((index >> 3) & 1) << 1 | ((base >> 3) & 1));
  if (rex || w == Width::k8) Byte(0x40 | rex);
}

void Assembler::Rm(Width w, uint8_t opcode, uint8_t reg, HostReg rm) {
  Rex(w, reg, 0, Num(rm));
  Byte(opcode);
  Byte(static_cast<uint8_t>(0xc0 | (reg & 7) << 3 | (Num(rm) & 7)));
}

// Always a SIB byte and (with a base) a 32-bit displacement: one form for
// every register.
void Assembler::Rm(Width w, uint8_t opcode, uint8_t reg, const MemOperand& m) {
  uint8_t index = m.has_index ? Num(m.index) : 4;  // 4 without REX.X: no index
  assert(!m.has_index || m.index != HostReg::kRsp);
  uint8_t base = m.has_base ? Num(m.base) : 5;     // 5 with mod 0: disp32, no base
  Rex(w, reg, m.has_index ? index : 0, m.has_base ? base : 0);
  Byte(opcode);
  uint8_t mod = m.has_base ? 2 : 0;
  Byte(static_cast<uint8_t>(mod << 6 | (reg & 7) << 3 | 4));
  Byte(static_cast<uint8_t>(m.scale << 6 | (index & 7) << 3 | (base & 7)));
  Imm32(static_cast<uint32_t>(m.disp));
}

void Assembler::Bind(Label& l) {
  assert(l.bound < 0);
  l.bound = static_cast<int32_t>(size());
  for (uint32_t at : l.uses) {
    int32_t rel = l.bound - static_cast<int32_t>(at + 4);
    std::memcpy(&code_[at], &rel, 4);
  }
  l.uses.clear();
}

void Assembler::Rel32To(Label& l) {
  if (l.bound >= 0) {
    Imm32(static_cast<uint32_t>(l.bound - static_cast<int32_t>(size() + 4)));
    return;
  }
  l.uses.push_back(size());
  Imm32(0);
}

void Assembler::Jmp(Label& l) {
  Byte(0xe9);
  Rel32To(l);
}

void Assembler::Jcc(Cond cc, Label& l) {
  Bytes({0x0f, static_cast<uint8_t>(0x80 | (cc & 0xf))});
  Rel32To(l);
}

void Assembler::Push(HostReg r) {
  if (Num(r) >= 8) Byte(0x41);
  Byte(static_cast<uint8_t>(0x50 | (Num(r) & 7)));
}

void Assembler::Pop(HostReg r) {
  if (Num(r) >= 8) Byte(0x41);
  Byte(static_cast<uint8_t>(0x58 | (Num(r) & 7)));
}

void Assembler::MovImm32(HostReg dst, uint32_t imm) {
  if (Num(dst) >= 8) Byte(0x41);
  Byte(static_cast<uint8_t>(0xb8 | (Num(dst) & 7)));
  Imm32(imm);
}

void Assembler::AluRI(Width w, AluOp op, HostReg dst, int32_t imm) {
  Rm(Full(w), 0x81, static_cast<uint8_t>(op), dst);
  Imm32(static_cast<uint32_t>(imm));
}

void Assembler::CmpMemImm8(const MemOperand& m, uint8_t imm) {
  Rm(Width::k32, 0x80, static_cast<uint8_t>(AluOp::kCmp), m);  // 80 /7 ib: byte-sized, no REX
  Byte(imm);
}

void Assembler::ShiftRI(Width w, ShiftOp op, HostReg r, uint8_t count) {
  Rm(Full(w), 0xc1, static_cast<uint8_t>(op), r);
  Byte(count);
}

void Assembler::ImulRI(HostReg dst, HostReg src, int32_t imm) {
  Rm(Width::k64, 0x69, Num(dst), src);
  Imm32(static_cast<uint32_t>(imm));
}

void Assembler::SaveFlagsToAx() { Bytes({0x9f, 0x0f, 0x90, 0xc0}); }

void Assembler::RestoreFlagsFromAx() { Bytes({0x04, 0x7f, 0x9e}); }

}  // namespace kvmlike::x86::translator
