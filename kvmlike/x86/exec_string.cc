// String instructions: MOVS, CMPS, STOS, LODS, SCAS, INS, OUTS, with REP,
// REPE and REPNE. Each element commits on its own (memory, then ESI/EDI/ECX,
// flags), as hardware retires REP iterations: a fault, exit or stop in
// element k leaves elements before k done and RIP on the instruction.
#include "kvmlike/x86/alu.h"
#include "kvmlike/x86/executor.h"
#include "kvmlike/x86/registers.h"
#include "kvmlike/x86/segmentation.h"

namespace kvmlike::x86 {

namespace {

// Elements run per step before the instruction pauses (RIP kept, ECX
// counting on) so Run returns within its budget whatever ECX holds.
constexpr uint32_t kRepChunk = 4096;

bool IsCompare(uint16_t opcode) {
  return opcode == 0xa6 || opcode == 0xa7 || opcode == 0xae || opcode == 0xaf;
}

}  // namespace

Flow Executor::StringOp() {
  if (!insn_->rep) return StringElement();
  uint8_t as = insn_->addr_size;
  for (uint32_t done = 0;; ++done) {
    if (ReadGpr(cpu_, kRcx, as) == 0) return Flow::kOk;
    if (done == kRepChunk) break;
    X86_TRY(StringElement());
    m_.phys.ElementCommitted();
    if (IsCompare(insn_->opcode)) {
      bool zf = cpu_.rflags & kFlagZf;
      if ((insn_->rep == 0xf3) != zf) return Flow::kOk;  // REPE ends on ZF=0, REPNE on ZF=1
    }
    if (m_.phys.stop_after_retire()) break;  // OUTS or an MMIO write: one element per exit
  }
  if (ReadGpr(cpu_, kRcx, as) == 0) return Flow::kOk;
  retired_ = false;
  next_ip_ = static_cast<uint32_t>(cpu_.rip);  // RIP stays on the instruction
  return Flow::kOk;
}

Flow Executor::StringElement() {
  switch (insn_->opcode) {
    case 0xa4: case 0xa5: return Movs();
    case 0xa6: case 0xa7: return Cmps();
    case 0xaa: case 0xab: return Stos();
    case 0xac: case 0xad: return Lods();
    case 0xae: case 0xaf: return Scas();
    case 0x6c: case 0x6d: return Ins();
    default: return Outs();
  }
}

// Steps ESI and/or EDI by the element size (down when DF is set) and counts
// ECX down under REP; index and count widths follow the address size.
void Executor::AdvanceIndexes(bool si, bool di, uint8_t size) {
  uint8_t as = insn_->addr_size;
  uint32_t delta = (cpu_.rflags & kFlagDf) ? 0u - size : size;
  if (si) WriteGpr(cpu_, kRsi, as, ReadGpr(cpu_, kRsi, as) + delta);
  if (di) WriteGpr(cpu_, kRdi, as, ReadGpr(cpu_, kRdi, as) + delta);
  if (insn_->rep) WriteGpr(cpu_, kRcx, as, ReadGpr(cpu_, kRcx, as) - 1);
}

// The source is DS:ESI (overridable), the destination ES:EDI (never).
Flow Executor::Movs() {
  uint8_t size = ByteOrOpSize(), as = insn_->addr_size;
  uint32_t v;
  X86_TRY(Read({false, 0, DataSeg(kDs), ReadGpr(cpu_, kRsi, as)}, size, v));
  X86_TRY(Write({false, 0, kEs, ReadGpr(cpu_, kRdi, as)}, size, v));
  AdvanceIndexes(true, true, size);
  return Flow::kOk;
}

Flow Executor::Cmps() {
  uint8_t size = ByteOrOpSize(), as = insn_->addr_size;
  uint32_t a, b;
  X86_TRY(Read({false, 0, DataSeg(kDs), ReadGpr(cpu_, kRsi, as)}, size, a));
  X86_TRY(Read({false, 0, kEs, ReadGpr(cpu_, kRdi, as)}, size, b));
  uint64_t flags = cpu_.rflags;
  (void)Alu(AluOp::kCmp, a, b, size, flags);
  cpu_.rflags = flags;
  AdvanceIndexes(true, true, size);
  return Flow::kOk;
}

Flow Executor::Stos() {
  uint8_t size = ByteOrOpSize();
  X86_TRY(Write({false, 0, kEs, ReadGpr(cpu_, kRdi, insn_->addr_size)}, size,
                ReadGpr(cpu_, kRax, size)));
  AdvanceIndexes(false, true, size);
  return Flow::kOk;
}

Flow Executor::Lods() {
  uint8_t size = ByteOrOpSize();
  uint32_t v;
  X86_TRY(Read({false, 0, DataSeg(kDs), ReadGpr(cpu_, kRsi, insn_->addr_size)}, size, v));
  WriteGpr(cpu_, kRax, size, v);
  AdvanceIndexes(true, false, size);
  return Flow::kOk;
}

Flow Executor::Scas() {
  uint8_t size = ByteOrOpSize();
  uint32_t v;
  X86_TRY(Read({false, 0, kEs, ReadGpr(cpu_, kRdi, insn_->addr_size)}, size, v));
  uint64_t flags = cpu_.rflags;
  (void)Alu(AluOp::kCmp, ReadGpr(cpu_, kRax, size), v, size, flags);
  cpu_.rflags = flags;
  AdvanceIndexes(false, true, size);
  return Flow::kOk;
}

// INS: the port read comes first (it may stop the run for data); the element
// then stores it at ES:EDI.
Flow Executor::Ins() {
  uint8_t size = ByteOrOpSize();
  X86_TRY(CheckIoPrivilege());
  uint32_t v;
  X86_TRY(m_.phys.PortIn(static_cast<uint16_t>(cpu_.gpr[kRdx]), size, v));
  X86_TRY(Write({false, 0, kEs, ReadGpr(cpu_, kRdi, insn_->addr_size)}, size, v));
  AdvanceIndexes(false, true, size);
  return Flow::kOk;
}

Flow Executor::Outs() {
  uint8_t size = ByteOrOpSize();
  X86_TRY(CheckIoPrivilege());
  uint32_t v;
  X86_TRY(Read({false, 0, DataSeg(kDs), ReadGpr(cpu_, kRsi, insn_->addr_size)}, size, v));
  m_.phys.PortOut(static_cast<uint16_t>(cpu_.gpr[kRdx]), size, v);
  AdvanceIndexes(true, false, size);
  return Flow::kOk;
}

}  // namespace kvmlike::x86
