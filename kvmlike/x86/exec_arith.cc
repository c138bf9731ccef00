// Integer arithmetic: the ALU rows and groups, INC/DEC, the F6/F7 group
// (TEST, NOT, NEG, MUL, IMUL, DIV, IDIV), shifts and rotates, IMUL r, r/m.
#include "kvmlike/x86/alu.h"
#include "kvmlike/x86/executor.h"
#include "kvmlike/x86/registers.h"

namespace kvmlike::x86 {

// Rows 00-3F, forms 0-3: Eb,Gb / Ev,Gv / Gb,Eb / Gv,Ev; and the group
// 80 Eb,Ib / 81 Ev,Iz / 82 Eb,Ib (alias of 80) / 83 Ev,Ib sign-extended.
// One function for both, so that they share the CMP/modify tail without a
// call: as a helper, even force-inlined, that tail made these (the hottest
// instructions) markedly slower.
Flow Executor::AluRm() {
  AluOp op;
  uint8_t size;
  Rm dst;
  uint32_t b;
  if (insn_->opcode < 0x40) {
    op = static_cast<AluOp>((insn_->opcode >> 3) & 7);
    size = ByteOrOpSize();
    bool to_reg = insn_->opcode & 2;
    Rm rm = RmOperand(), reg = RegOperand();
    dst = to_reg ? reg : rm;
    X86_TRY(Read(to_reg ? rm : reg, size, b));
  } else {
    op = static_cast<AluOp>(insn_->reg);
    size = (insn_->opcode == 0x81 || insn_->opcode == 0x83) ? insn_->op_size : 1;
    b = insn_->opcode == 0x83 ? SignExtend(insn_->imm, 1) : insn_->imm;
    dst = RmOperand();
  }
  if (op == AluOp::kCmp) {
    uint32_t a;
    X86_TRY(Read(dst, size, a));
    uint64_t flags = cpu_.rflags;
    (void)Alu(op, a, b, size, flags);
    cpu_.rflags = flags;
    return Flow::kOk;
  }
  return Modify(dst, size, insn_->lock,
                [&](uint32_t a, uint64_t& flags) { return Alu(op, a, b, size, flags); });
}

// Rows 00-3F, forms 4-5: AL,Ib / eAX,Iz.
Flow Executor::AluAcc() {
  AluOp op = static_cast<AluOp>((insn_->opcode >> 3) & 7);
  uint8_t size = ByteOrOpSize();
  uint64_t flags = cpu_.rflags;
  uint32_t r = Alu(op, ReadGpr(cpu_, kRax, size), insn_->imm, size, flags);
  if (op != AluOp::kCmp) WriteGpr(cpu_, kRax, size, r);
  cpu_.rflags = flags;
  return Flow::kOk;
}

Flow Executor::TestRm() {
  uint8_t size = ByteOrOpSize();
  uint32_t a;
  X86_TRY(Read(RmOperand(), size, a));
  uint64_t flags = cpu_.rflags;
  (void)Alu(AluOp::kAnd, a, ReadGpr(cpu_, insn_->reg, size), size, flags);
  cpu_.rflags = flags;
  return Flow::kOk;
}

Flow Executor::TestAcc() {
  uint8_t size = ByteOrOpSize();
  uint64_t flags = cpu_.rflags;
  (void)Alu(AluOp::kAnd, ReadGpr(cpu_, kRax, size), insn_->imm, size, flags);
  cpu_.rflags = flags;
  return Flow::kOk;
}

// 40-47 INC r, 48-4F DEC r.
Flow Executor::IncDecReg() {
  uint8_t reg = insn_->opcode & 7, size = insn_->op_size;
  uint64_t flags = cpu_.rflags;
  uint32_t v = ReadGpr(cpu_, reg, size);
  uint32_t r = insn_->opcode < 0x48 ? Inc(v, size, flags) : Dec(v, size, flags);
  WriteGpr(cpu_, reg, size, r);
  cpu_.rflags = flags;
  return Flow::kOk;
}

Flow Executor::IncDecRm(uint8_t size) {
  bool inc = insn_->reg == 0;
  return Modify(RmOperand(), size, insn_->lock, [&](uint32_t v, uint64_t& flags) {
    return inc ? Inc(v, size, flags) : Dec(v, size, flags);
  });
}

// F6/F7: /0 /1 TEST, /2 NOT, /3 NEG, /4 MUL, /5 IMUL, /6 DIV, /7 IDIV.
Flow Executor::Group3() {
  uint8_t size = ByteOrOpSize();
  Rm op = RmOperand();
  if (insn_->reg == 2)
    return Modify(op, size, insn_->lock, [](uint32_t v, uint64_t&) { return ~v; });
  if (insn_->reg == 3)
    return Modify(op, size, insn_->lock,
                  [size](uint32_t v, uint64_t& flags) { return Neg(v, size, flags); });
  uint32_t v;
  X86_TRY(Read(op, size, v));
  if (insn_->reg >= 4) return MulDiv(v, size);
  uint64_t flags = cpu_.rflags;
  (void)Alu(AluOp::kAnd, v, insn_->imm, size, flags);
  cpu_.rflags = flags;
  return Flow::kOk;
}

// The accumulator pair: AX for bytes, DX:AX for words, EDX:EAX for dwords.
Flow Executor::MulDiv(uint32_t src, uint8_t size) {
  uint64_t flags = cpu_.rflags;
  if (insn_->reg == 4 || insn_->reg == 5) {
    uint32_t a = ReadGpr(cpu_, kRax, size);
    uint64_t p = insn_->reg == 4 ? Mul(a, src, size, flags) : IMul(a, src, size, flags);
    if (size == 1) {
      WriteGpr(cpu_, kRax, 2, static_cast<uint32_t>(p));
    } else {
      WriteGpr(cpu_, kRax, size, static_cast<uint32_t>(p));
      WriteGpr(cpu_, kRdx, size, static_cast<uint32_t>(p >> (size * 8)));
    }
    cpu_.rflags = flags;
    return Flow::kOk;
  }
  uint64_t dividend = size == 1 ? ReadGpr(cpu_, kRax, 2)
                                : (uint64_t{ReadGpr(cpu_, kRdx, size)} << (size * 8)) |
                                      ReadGpr(cpu_, kRax, size);
  DivResult d;
  bool ok = insn_->reg == 6 ? Div(dividend, src, size, d) : IDiv(dividend, src, size, d);
  if (!ok) return m_.Raise(kVecDe);
  if (size == 1) {
    WriteGpr(cpu_, kRax, 2, (d.quotient & 0xff) | ((d.remainder & 0xff) << 8));
  } else {
    WriteGpr(cpu_, kRax, size, d.quotient);
    WriteGpr(cpu_, kRdx, size, d.remainder);
  }
  return Flow::kOk;
}

// FE: /0 INC Eb, /1 DEC Eb.
Flow Executor::Group4() {
  if (insn_->reg > 1) return RaiseUd();
  return IncDecRm(1);
}

// FF: /0 INC, /1 DEC, /2 CALL near, /3 CALL far, /4 JMP near, /5 JMP far, /6 PUSH.
Flow Executor::Group5() {
  uint8_t size = insn_->op_size;
  uint32_t v;
  switch (insn_->reg) {
    case 0:
    case 1: return IncDecRm(size);
    case 2:
      X86_TRY(Read(RmOperand(), size, v));
      return CallNear(v);
    case 3: return FarIndirect(true);
    case 4:
      X86_TRY(Read(RmOperand(), size, v));
      return Jump(v);
    case 5: return FarIndirect(false);
    case 6:
      X86_TRY(Read(RmOperand(), size, v));
      return PushValue(v);
    default: return RaiseUd();
  }
}

// C0/C1 by imm8, D0/D1 by 1, D2/D3 by CL.
Flow Executor::ShiftGroup() {
  uint8_t size = ByteOrOpSize();
  uint8_t op = insn_->opcode;
  uint8_t count = op <= 0xc1 ? static_cast<uint8_t>(insn_->imm)
                  : op <= 0xd1 ? 1
                               : static_cast<uint8_t>(cpu_.gpr[kRcx]);
  Rm dst = RmOperand();
  if ((count & 0x1f) == 0) {  // no result, no flags; the operand is still read
    uint32_t v;
    return Read(dst, size, v);
  }
  ShiftOp shift = static_cast<ShiftOp>(insn_->reg);
  return Modify(dst, size, false,
                [&](uint32_t v, uint64_t& flags) { return Shift(shift, v, count, size, flags); });
}

// 0F AF IMUL Gv,Ev; 69 IMUL Gv,Ev,Iz; 6B IMUL Gv,Ev,Ib (sign-extended).
Flow Executor::IMulReg() {
  uint8_t size = insn_->op_size;
  uint32_t src;
  X86_TRY(Read(RmOperand(), size, src));
  uint32_t other = insn_->opcode == 0x69   ? insn_->imm
                   : insn_->opcode == 0x6b ? SignExtend(insn_->imm, 1)
                                          : ReadGpr(cpu_, insn_->reg, size);
  uint64_t flags = cpu_.rflags;
  uint64_t p = IMul(src, other, size, flags);
  WriteGpr(cpu_, insn_->reg, size, static_cast<uint32_t>(p));
  cpu_.rflags = flags;
  return Flow::kOk;
}

}  // namespace kvmlike::x86
