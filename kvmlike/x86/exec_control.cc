// Control transfer: JMP/Jcc/LOOP/JCXZ, near and far CALL/RET, IRET, INT n.
// Targets are checked against the (new) CS limit before anything is pushed
// or committed; far transfers load CS through LoadCodeSegment.
#include "kvmlike/x86/alu.h"
#include "kvmlike/x86/exceptions.h"
#include "kvmlike/x86/executor.h"
#include "kvmlike/x86/registers.h"
#include "kvmlike/x86/segmentation.h"
#include "kvmlike/x86/stack.h"

namespace kvmlike::x86 {

namespace {

// Relative displacement of a Jcc/JMP/CALL: 1 byte, or the operand size.
uint32_t Displacement(const Insn& insn) { return SignExtend(insn.imm, insn.imm_size); }

}  // namespace

// EB rel8 / E9 rel16/32.
Flow Executor::JmpRel() { return Jump(next_ip_ + Displacement(*insn_)); }

// 70-7F rel8 / 0F 80-8F rel16/32.
Flow Executor::Jcc() {
  if (!Condition(insn_->opcode & 0xf, cpu_.rflags)) return Flow::kOk;
  return Jump(next_ip_ + Displacement(*insn_));
}

// E0 LOOPNE, E1 LOOPE, E2 LOOP, E3 JCXZ/JECXZ. The count register is CX or
// ECX by address size; it is decremented only once the jump is known good.
Flow Executor::Loop() {
  uint8_t as = insn_->addr_size;
  uint32_t count = ReadGpr(cpu_, kRcx, as);
  uint32_t target = next_ip_ + Displacement(*insn_);
  if (insn_->opcode == 0xe3) return count == 0 ? Jump(target) : Flow::kOk;
  count = (count - 1) & SizeMask(as);
  bool zf = cpu_.rflags & kFlagZf;
  bool take = count != 0 && (insn_->opcode == 0xe2 || (insn_->opcode == 0xe1) == zf);
  if (take) X86_TRY(Jump(target));
  WriteGpr(cpu_, kRcx, as, count);
  return Flow::kOk;
}

Flow Executor::CallRel() { return CallNear(next_ip_ + Displacement(*insn_)); }

Flow Executor::CallNear(uint32_t target) {
  uint32_t return_ip = next_ip_;
  X86_TRY(Jump(target));
  return PushValue(return_ip);
}

// C3 RET; C2 RET imm16 (then releases imm16 bytes of arguments).
Flow Executor::RetNear() {
  Stack stack(m_);
  uint32_t ip;
  X86_TRY(stack.Pop(insn_->op_size, ip));
  if (insn_->opcode == 0xc2) stack.Release(insn_->imm);
  X86_TRY(Jump(ip));
  stack.Commit();
  return Flow::kOk;
}

// EA ptr16:16/32 (the selector is the second immediate).
Flow Executor::JmpFarImm() {
  return JmpFar(static_cast<uint16_t>(insn_->imm2), insn_->imm);
}

// 9A ptr16:16/32.
Flow Executor::CallFarImm() {
  return CallFar(static_cast<uint16_t>(insn_->imm2), insn_->imm);
}

// FF /3, FF /5: the far pointer m16:16/32 in memory, offset first.
Flow Executor::FarIndirect(bool call) {
  if (!insn_->has_mem) return RaiseUd();
  Rm ptr = RmOperand();
  uint32_t offset, selector;
  X86_TRY(Read(ptr, insn_->op_size, offset));
  Rm sel{false, 0, ptr.seg, (ptr.offset + insn_->op_size) & AddrMask()};
  X86_TRY(Read(sel, 2, selector));
  return call ? CallFar(static_cast<uint16_t>(selector), offset)
              : JmpFar(static_cast<uint16_t>(selector), offset);
}

// The far JMP that follows setting CR0.PE is what enters protected mode: it
// replaces the real-mode CS with a descriptor from the GDT.
Flow Executor::JmpFar(uint16_t selector, uint32_t offset) {
  Segment cs;
  X86_TRY(LoadCodeSegment(m_, selector, CodeLoad::kJump, cs));
  if (!WithinLimit(cs, offset)) return m_.RaiseError(kVecGp, 0);
  cpu_.seg[kCs] = cs;
  next_ip_ = offset;
  return Flow::kOk;
}

Flow Executor::CallFar(uint16_t selector, uint32_t offset) {
  Segment cs;
  X86_TRY(LoadCodeSegment(m_, selector, CodeLoad::kJump, cs));
  if (!WithinLimit(cs, offset)) return m_.RaiseError(kVecGp, 0);
  Stack stack(m_);
  X86_TRY(stack.Push(cpu_.seg[kCs].selector, insn_->op_size));
  X86_TRY(stack.Push(next_ip_, insn_->op_size));
  stack.Commit();
  cpu_.seg[kCs] = cs;
  next_ip_ = offset;
  return Flow::kOk;
}

// CB RETF; CA RETF imm16. Same privilege level only.
Flow Executor::RetFar() {
  Stack stack(m_);
  uint32_t ip, selector;
  X86_TRY(stack.Pop(insn_->op_size, ip));
  X86_TRY(stack.Pop(insn_->op_size, selector));
  if (insn_->opcode == 0xca) stack.Release(insn_->imm);
  Segment cs;
  X86_TRY(LoadCodeSegment(m_, static_cast<uint16_t>(selector), CodeLoad::kReturn, cs));
  if (!WithinLimit(cs, ip)) return m_.RaiseError(kVecGp, 0);
  stack.Commit();
  cpu_.seg[kCs] = cs;
  next_ip_ = ip;
  return Flow::kOk;
}

// CF IRET/IRETD: pops IP, CS, FLAGS. Protected mode returns to the same
// privilege level only; a nested-task return (NT) or a return to virtual-8086
// mode is outside the subset.
Flow Executor::Iret() {
  bool pm = m_.protected_mode();
  if (pm && (cpu_.rflags & kFlagNt)) return m_.Unsupported();
  uint8_t size = insn_->op_size;
  Stack stack(m_);
  uint32_t ip, selector, flags;
  X86_TRY(stack.Pop(size, ip));
  X86_TRY(stack.Pop(size, selector));
  X86_TRY(stack.Pop(size, flags));
  if (pm && size == 4 && (flags & kFlagVm)) return m_.Unsupported();
  Segment cs;
  X86_TRY(LoadCodeSegment(m_, static_cast<uint16_t>(selector), CodeLoad::kReturn, cs));
  if (!WithinLimit(cs, ip)) return m_.RaiseError(kVecGp, 0);
  uint64_t changeable = kFlagCf | kFlagPf | kFlagAf | kFlagZf | kFlagSf | kFlagTf | kFlagDf |
                        kFlagOf | kFlagNt | kFlagRf | kFlagAc | kFlagId;
  uint8_t cpl = m_.cpl();
  if (cpl == 0) changeable |= kFlagIopl;
  if (pm && cpl == 0 && size == 4) changeable |= kFlagVif | kFlagVip;
  if (cpl <= m_.iopl()) changeable |= kFlagIf;
  if (size == 2) changeable &= 0xffff;
  stack.Commit();
  cpu_.seg[kCs] = cs;
  cpu_.rflags = (cpu_.rflags & ~changeable) | (flags & changeable) | kFlagsFixed;
  next_ip_ = ip;
  return Flow::kOk;
}

// CD INT n, CC INT3. The handler is entered (registers committed) by
// EnterHandler; a fault while entering it is this instruction's fault.
Flow Executor::Int(uint8_t vector) {
  Event ev{vector, EventKind::kSoftware, false, 0, next_ip_};
  X86_TRY(EnterHandler(m_, ev));
  next_ip_ = static_cast<uint32_t>(cpu_.rip);
  return Flow::kOk;
}

Flow Executor::Into() {
  if (!(cpu_.rflags & kFlagOf)) return Flow::kOk;
  return Int(kVecOf);
}

}  // namespace kvmlike::x86
