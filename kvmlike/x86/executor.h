// Executor: the semantics of one decoded instruction. Execute is one flat
// switch over the opcode with one call per instruction family; the families
// live in exec_arith.cc, exec_data.cc, exec_control.cc, exec_string.cc and
// exec_system.cc.
//
// The commit rule every family follows: read all operands first (memory,
// descriptors, port data), then write memory, then registers and RIP. An
// instruction that faults or stops part-way has therefore changed no
// register, and re-running it reads the same values again.
//
// Lives for one Run, one instruction (one attempt) at a time; not thread-safe.
#pragma once

#include <cstdint>

#include "kvmlike/x86/atomic_rmw.h"
#include "kvmlike/x86/decoder.h"
#include "kvmlike/x86/flow.h"
#include "kvmlike/x86/machine.h"
#include "kvmlike/x86/registers.h"
#include "kvmlike/x86/segmentation.h"

namespace kvmlike::x86 {

class Executor {
 public:
  explicit Executor(Machine& m) : m_(m), cpu_(m.cpu) {}

  // Starts an attempt at insn, the instruction at EIP ip (the CPU's RIP,
  // which stays there during the attempt); insn must outlive the attempt.
  // It runs once per instruction, so it stores only what changes.
  void Begin(const Insn& insn, uint32_t ip) {
    insn_ = &insn;
    next_ip_ = (ip + insn.len) & (cpu_.seg[kCs].db ? 0xffffffffu : 0xffffu);
    if (!retired_) [[unlikely]] retired_ = true;
  }

  [[nodiscard]] Flow Execute();

  // Where RIP goes when Execute returned kOk.
  uint32_t next_ip() const { return next_ip_; }
  // False when a REP string instruction paused between iterations: its
  // completed iterations are committed and RIP stays on it.
  bool retired() const { return retired_; }

 private:
  // A ModRM r/m operand: a register, or an offset in a segment.
  struct Rm {
    bool is_reg;
    uint8_t reg;
    SegReg seg;
    uint32_t offset;
  };

  // --- operands (executor.cc)
  uint8_t ByteOrOpSize() const { return (insn_->opcode & 1) ? insn_->op_size : 1; }
  uint32_t AddrMask() const { return insn_->addr_size == 4 ? 0xffffffffu : 0xffffu; }
  uint32_t EffectiveOffset() const {
    const MemForm& f = insn_->mem;
    uint32_t ea = f.disp;
    if (f.base != kNoReg) ea += static_cast<uint32_t>(cpu_.gpr[f.base]);
    if (f.index != kNoReg) ea += static_cast<uint32_t>(cpu_.gpr[f.index]) << f.scale;
    return ea & AddrMask();
  }
  SegReg DataSeg(SegReg dflt) const {
    return insn_->seg_override == kNoSeg ? dflt : static_cast<SegReg>(insn_->seg_override);
  }
  // Inline so callers keep the operand in registers.
  Rm RmOperand() const {
    if (!insn_->has_mem) return {true, insn_->rm, kDs, 0};
    return {false, 0, DataSeg(static_cast<SegReg>(insn_->mem.seg)), EffectiveOffset()};
  }
  Rm RegOperand() const { return {true, insn_->reg, kDs, 0}; }
  // Inline, and operands by value, so that they stay in registers.
  Flow Read(Rm op, uint8_t size, uint32_t& value) {
    if (!op.is_reg) return ReadSeg(m_, op.seg, op.offset, size, value);
    value = ReadGpr(cpu_, op.reg, size);
    return Flow::kOk;
  }
  Flow Write(Rm op, uint8_t size, uint32_t value) {
    if (!op.is_reg) return WriteSeg(m_, op.seg, op.offset, size, value);
    WriteGpr(cpu_, op.reg, size, value);
    return Flow::kOk;
  }
  // A near jump to target (truncated to the operand size): #GP(0) beyond CS's limit.
  Flow Jump(uint32_t target);
  bool Lockable() const;

  // --- exec_arith.cc
  Flow AluRm();
  Flow AluAcc();
  Flow TestRm();
  Flow TestAcc();
  Flow IncDecReg();
  Flow Group3();
  Flow MulDiv(uint32_t src, uint8_t size);
  Flow Group4();
  Flow Group5();
  Flow IncDecRm(uint8_t size);
  Flow ShiftGroup();
  Flow IMulReg();
  // Memory before flags: a destination write that faults or exits must leave
  // RFLAGS untouched as well.
  Flow Commit(Rm dst, uint8_t size, uint32_t value, uint64_t flags) {
    X86_TRY(Write(dst, size, value));
    cpu_.rflags = flags;
    return Flow::kOk;
  }
  // Read-modify-write of dst: fn(old, flags) returns the new value and
  // updates flags (a copy of RFLAGS). With atomic (LOCK, XCHG) a memory
  // operand is updated with AtomicModify where it can be.
  template <typename Fn>
  Flow Modify(Rm dst, uint8_t size, bool atomic, Fn fn);

  // --- exec_data.cc
  Flow MovRm();
  Flow MovImmReg();
  Flow MovImmRm();
  Flow MovMoffs();
  Flow MovFromSreg();
  Flow MovToSreg();
  Flow MovExtend();
  Flow Lea();
  Flow Xchg();
  Flow XchgAcc();
  Flow ConvertAcc();   // CBW/CWDE
  Flow ConvertDx();    // CWD/CDQ
  Flow Setcc();
  Flow Cmovcc();
  Flow Lahf();
  Flow Sahf();
  Flow PushReg();
  Flow PopReg();
  Flow PushImm();
  Flow PushValue(uint32_t value);
  Flow PopRm();
  Flow PushSreg(SegReg s);
  Flow PopSreg(SegReg s);
  Flow Pusha();
  Flow Popa();
  Flow Pushf();
  Flow Popf();
  Flow Leave();

  // --- exec_control.cc
  Flow JmpRel();
  Flow Jcc();
  Flow Loop();
  Flow CallRel();
  Flow CallNear(uint32_t target);
  Flow RetNear();
  Flow JmpFarImm();
  Flow CallFarImm();
  Flow FarIndirect(bool call);
  Flow JmpFar(uint16_t selector, uint32_t offset);
  Flow CallFar(uint16_t selector, uint32_t offset);
  Flow RetFar();
  Flow Iret();
  Flow Int(uint8_t vector);
  Flow Into();

  // --- exec_string.cc
  Flow StringOp();
  Flow StringElement();
  Flow Movs();
  Flow Cmps();
  Flow Stos();
  Flow Lods();
  Flow Scas();
  Flow Ins();
  Flow Outs();
  void AdvanceIndexes(bool si, bool di, uint8_t size);
  Flow CheckIoPrivilege();

  // --- exec_system.cc
  Flow InOut();
  Flow Hlt();
  Flow FlagOp();
  Flow CliSti();
  Flow Group7();
  Flow DescriptorTableOp();
  Flow Hypercall();
  Flow MovCr();
  Flow MovToCr(uint8_t cr, uint32_t value);
  Flow RaiseUd();

  Machine& m_;
  CpuState& cpu_;
  // The attempt's instruction, set by Begin.
  const Insn* insn_ = nullptr;
  uint32_t next_ip_ = 0;  // sequential EIP, or a branch target
  bool retired_ = true;
};

template <typename Fn>
Flow Executor::Modify(Rm dst, uint8_t size, bool atomic, Fn fn) {
  uint64_t flags = cpu_.rflags;
  if (atomic && !dst.is_reg) {
    bool done;
    auto apply = [&](uint32_t old) {
      flags = cpu_.rflags;
      return fn(old, flags);
    };
    X86_TRY(AtomicModify(m_, dst.seg, dst.offset, size, apply, done));
    if (done) {
      cpu_.rflags = flags;
      return Flow::kOk;
    }
  }
  uint32_t v;
  X86_TRY(Read(dst, size, v));
  uint32_t r = fn(v, flags);
  return Commit(dst, size, r, flags);
}

}  // namespace kvmlike::x86
