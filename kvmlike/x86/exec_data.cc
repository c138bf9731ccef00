// Data movement: MOV forms, MOVZX/MOVSX, LEA, XCHG, CBW/CWD families, SETcc,
// CMOVcc, LAHF/SAHF, and the stack: PUSH/POP of registers, immediates, r/m,
// segment registers and flags, PUSHA/POPA, LEAVE.
#include "kvmlike/x86/alu.h"
#include "kvmlike/x86/executor.h"
#include "kvmlike/x86/registers.h"
#include "kvmlike/x86/segmentation.h"
#include "kvmlike/x86/stack.h"

namespace kvmlike::x86 {

// 88 Eb,Gb / 89 Ev,Gv / 8A Gb,Eb / 8B Gv,Ev.
Flow Executor::MovRm() {
  uint8_t size = ByteOrOpSize();
  bool to_reg = insn_->opcode & 2;
  uint32_t v;
  X86_TRY(Read(to_reg ? RmOperand() : RegOperand(), size, v));
  return Write(to_reg ? RegOperand() : RmOperand(), size, v);
}

// B0-B7 MOV r8,Ib; B8-BF MOV r,Iz.
Flow Executor::MovImmReg() {
  uint8_t size = insn_->opcode < 0xb8 ? 1 : insn_->op_size;
  WriteGpr(cpu_, insn_->opcode & 7, size, insn_->imm);
  return Flow::kOk;
}

// C6 /0 MOV Eb,Ib; C7 /0 MOV Ev,Iz.
Flow Executor::MovImmRm() {
  if (insn_->reg != 0) return RaiseUd();
  return Write(RmOperand(), ByteOrOpSize(), insn_->imm);
}

// A0 AL,[moffs] / A1 eAX,[moffs] / A2 [moffs],AL / A3 [moffs],eAX.
Flow Executor::MovMoffs() {
  uint8_t size = ByteOrOpSize();
  Rm mem{false, 0, DataSeg(kDs), insn_->imm & AddrMask()};
  if (insn_->opcode >= 0xa2) return Write(mem, size, ReadGpr(cpu_, kRax, size));
  uint32_t v;
  X86_TRY(Read(mem, size, v));
  WriteGpr(cpu_, kRax, size, v);
  return Flow::kOk;
}

// 8C MOV Ev,Sreg: a register destination takes the zero-extended selector,
// a memory one always 16 bits.
Flow Executor::MovFromSreg() {
  if (insn_->reg > kGs) return RaiseUd();
  Rm dst = RmOperand();
  return Write(dst, dst.is_reg ? insn_->op_size : 2, cpu_.seg[insn_->reg].selector);
}

// 8E MOV Sreg,Ew. Loading CS this way is #UD. The one-instruction interrupt
// shadow after loading SS has nothing to hold off here: the interpreter
// injects no interrupts.
Flow Executor::MovToSreg() {
  if (insn_->reg == kCs || insn_->reg > kGs) return RaiseUd();
  uint32_t selector;
  X86_TRY(Read(RmOperand(), 2, selector));
  SegReg s = static_cast<SegReg>(insn_->reg);
  Segment loaded;
  X86_TRY(LoadDataSegment(m_, s, static_cast<uint16_t>(selector), loaded));
  cpu_.seg[s] = loaded;
  return Flow::kOk;
}

// 0F B6/B7 MOVZX, 0F BE/BF MOVSX (source byte or word).
Flow Executor::MovExtend() {
  uint8_t from = (insn_->opcode & 1) ? 2 : 1;
  uint32_t v;
  X86_TRY(Read(RmOperand(), from, v));
  if (insn_->opcode & 8) v = SignExtend(v, from);
  WriteGpr(cpu_, insn_->reg, insn_->op_size, v);
  return Flow::kOk;
}

Flow Executor::Lea() {
  if (!insn_->has_mem) return RaiseUd();
  WriteGpr(cpu_, insn_->reg, insn_->op_size, EffectiveOffset());
  return Flow::kOk;
}

// 86/87 XCHG Eb,Gb / Ev,Gv: locked by definition when one side is memory.
// The memory side is written before the register, so a write that exits
// leaves the register as it was.
Flow Executor::Xchg() {
  uint8_t size = ByteOrOpSize();
  uint32_t old = 0, reg = ReadGpr(cpu_, insn_->reg, size);
  X86_TRY(Modify(RmOperand(), size, true, [&](uint32_t v, uint64_t&) {
    old = v;
    return reg;
  }));
  WriteGpr(cpu_, insn_->reg, size, old);
  return Flow::kOk;
}

// 91-97 XCHG eAX,r.
Flow Executor::XchgAcc() {
  uint8_t size = insn_->op_size, reg = insn_->opcode & 7;
  uint32_t a = ReadGpr(cpu_, kRax, size), b = ReadGpr(cpu_, reg, size);
  WriteGpr(cpu_, kRax, size, b);
  WriteGpr(cpu_, reg, size, a);
  return Flow::kOk;
}

// 98 CBW (AX = sext AL) / CWDE (EAX = sext AX).
Flow Executor::ConvertAcc() {
  uint8_t half = insn_->op_size / 2;
  WriteGpr(cpu_, kRax, insn_->op_size, SignExtend(ReadGpr(cpu_, kRax, half), half));
  return Flow::kOk;
}

// 99 CWD (DX = sign of AX) / CDQ (EDX = sign of EAX).
Flow Executor::ConvertDx() {
  uint8_t size = insn_->op_size;
  bool negative = ReadGpr(cpu_, kRax, size) & SignBit(size);
  WriteGpr(cpu_, kRdx, size, negative ? 0xffffffffu : 0);
  return Flow::kOk;
}

Flow Executor::Setcc() {
  return Write(RmOperand(), 1, Condition(insn_->opcode & 0xf, cpu_.rflags) ? 1 : 0);
}

// The source is read whatever the condition, as hardware does.
Flow Executor::Cmovcc() {
  uint32_t v;
  X86_TRY(Read(RmOperand(), insn_->op_size, v));
  if (Condition(insn_->opcode & 0xf, cpu_.rflags)) WriteGpr(cpu_, insn_->reg, insn_->op_size, v);
  return Flow::kOk;
}

Flow Executor::Lahf() {
  WriteGpr(cpu_, 4 /* AH */, 1, static_cast<uint32_t>(cpu_.rflags & 0xff));
  return Flow::kOk;
}

Flow Executor::Sahf() {
  constexpr uint64_t kSahfFlags = kFlagCf | kFlagPf | kFlagAf | kFlagZf | kFlagSf;
  uint64_t ah = ReadGpr(cpu_, 4 /* AH */, 1);
  cpu_.rflags = (cpu_.rflags & ~kSahfFlags) | (ah & kSahfFlags) | kFlagsFixed;
  return Flow::kOk;
}

// 50-57: PUSH ESP pushes the value before the push.
Flow Executor::PushReg() { return PushValue(ReadGpr(cpu_, insn_->opcode & 7, insn_->op_size)); }

// 68 PUSH Iz; 6A PUSH Ib sign-extended to the operand size.
Flow Executor::PushImm() {
  return PushValue(insn_->opcode == 0x6a ? SignExtend(insn_->imm, 1) : insn_->imm);
}

Flow Executor::PushValue(uint32_t value) {
  Stack stack(m_);
  X86_TRY(stack.Push(value, insn_->op_size));
  stack.Commit();
  return Flow::kOk;
}

// 58-5F: POP ESP leaves the popped value in ESP (the register write follows
// the stack pointer update).
Flow Executor::PopReg() {
  Stack stack(m_);
  uint32_t v;
  X86_TRY(stack.Pop(insn_->op_size, v));
  stack.Commit();
  WriteGpr(cpu_, insn_->opcode & 7, insn_->op_size, v);
  return Flow::kOk;
}

// 8F /0 POP Ev. An ESP-based destination address uses ESP after the pop.
Flow Executor::PopRm() {
  if (insn_->reg != 0) return RaiseUd();
  Stack stack(m_);
  uint32_t v;
  X86_TRY(stack.Pop(insn_->op_size, v));
  Rm dst = RmOperand();
  if (dst.is_reg) {
    stack.Commit();
    return Write(dst, insn_->op_size, v);
  }
  if (insn_->mem.base == kRsp) dst.offset = (dst.offset + insn_->op_size) & AddrMask();
  X86_TRY(Write(dst, insn_->op_size, v));
  stack.Commit();
  return Flow::kOk;
}

Flow Executor::PushSreg(SegReg s) { return PushValue(cpu_.seg[s].selector); }

Flow Executor::PopSreg(SegReg s) {
  Stack stack(m_);
  uint32_t v;
  X86_TRY(stack.Pop(insn_->op_size, v));
  Segment loaded;
  X86_TRY(LoadDataSegment(m_, s, static_cast<uint16_t>(v), loaded));
  stack.Commit();
  cpu_.seg[s] = loaded;
  return Flow::kOk;
}

// PUSHA: eAX, eCX, eDX, eBX, the original eSP, eBP, eSI, eDI.
Flow Executor::Pusha() {
  uint8_t size = insn_->op_size;
  Stack stack(m_);
  for (uint8_t r = kRax; r <= kRdi; ++r) X86_TRY(stack.Push(ReadGpr(cpu_, r, size), size));
  stack.Commit();
  return Flow::kOk;
}

// POPA: the reverse order; the saved eSP is skipped.
Flow Executor::Popa() {
  uint8_t size = insn_->op_size;
  Stack stack(m_);
  uint32_t v[8] = {};
  for (int r = kRdi; r >= kRax; --r) {
    if (r == kRsp) {
      stack.Release(size);
      continue;
    }
    X86_TRY(stack.Pop(size, v[r]));
  }
  stack.Commit();
  for (uint8_t r = kRax; r <= kRdi; ++r)
    if (r != kRsp) WriteGpr(cpu_, r, size, v[r]);
  return Flow::kOk;
}

// PUSHF stores RF and VM as 0.
Flow Executor::Pushf() {
  return PushValue(static_cast<uint32_t>(cpu_.rflags & ~(kFlagRf | kFlagVm)));
}

// POPF at CPL 0 may change IOPL; IF only when CPL <= IOPL; VM, VIF, VIP never;
// RF is cleared. A 16-bit POPF changes the low word only.
Flow Executor::Popf() {
  Stack stack(m_);
  uint32_t v;
  X86_TRY(stack.Pop(insn_->op_size, v));
  uint64_t changeable = kFlagCf | kFlagPf | kFlagAf | kFlagZf | kFlagSf | kFlagTf | kFlagDf |
                        kFlagOf | kFlagNt | kFlagAc | kFlagId;
  if (m_.cpl() == 0) changeable |= kFlagIopl;
  if (m_.cpl() <= m_.iopl()) changeable |= kFlagIf;
  if (insn_->op_size == 2) changeable &= 0xffff;
  stack.Commit();
  cpu_.rflags = ((cpu_.rflags & ~changeable) | (v & changeable) | kFlagsFixed) & ~kFlagRf;
  return Flow::kOk;
}

// LEAVE: eSP = eBP (by the stack's size), then POP eBP.
Flow Executor::Leave() {
  Stack stack(m_);
  stack.MoveTo(ReadGpr(cpu_, kRbp, stack.pointer_size()));
  uint32_t v;
  X86_TRY(stack.Pop(insn_->op_size, v));
  stack.Commit();
  WriteGpr(cpu_, kRbp, insn_->op_size, v);
  return Flow::kOk;
}

}  // namespace kvmlike::x86
