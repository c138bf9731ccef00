// System instructions: IN/OUT, HLT, flag instructions, CLI/STI, LGDT/LIDT/
// SGDT/SIDT, VMCALL/VMMCALL, MOV to/from CR0/CR2/CR3/CR4.
#include "kvmlike/x86/executor.h"
#include "kvmlike/x86/registers.h"
#include "kvmlike/x86/segmentation.h"

namespace kvmlike::x86 {

namespace {

constexpr uint64_t kCr0Mp = 1u << 1, kCr0Em = 1u << 2, kCr0Ts = 1u << 3, kCr0Et = 1u << 4,
                   kCr0Ne = 1u << 5, kCr0Wp = 1u << 16, kCr0Am = 1u << 18, kCr0Nw = 1u << 29,
                   kCr0Cd = 1u << 30;
constexpr uint64_t kCr0Defined = kCr0Pe | kCr0Mp | kCr0Em | kCr0Ts | kCr0Et | kCr0Ne | kCr0Wp |
                                 kCr0Am | kCr0Nw | kCr0Cd | kCr0Pg;
// CR4 bits that mean something without long mode and without VMX/SMX/PKS:
// VME..UMIP, LA57 (settable before long mode), FSGSBASE, OSXSAVE, SMEP, SMAP.
constexpr uint64_t kCr4Allowed = 0x1fff | (1u << 16) | (1u << 18) | (1u << 20) | (1u << 21);

constexpr uint32_t kKvmEperm = 1;  // hypercall result -KVM_EPERM

}  // namespace

// Protected mode with CPL > IOPL consults the TSS I/O permission bitmap,
// which the subset does not model.
Flow Executor::CheckIoPrivilege() {
  if (m_.protected_mode() && m_.cpl() > m_.iopl()) return m_.Unsupported();
  return Flow::kOk;
}

// E4/E5 IN from imm8, E6/E7 OUT to imm8, EC/ED IN from DX, EE/EF OUT to DX.
// IN stops for its data unless it is being executed again with it; OUT
// retires and then stops.
Flow Executor::InOut() {
  uint8_t size = ByteOrOpSize();
  uint16_t port = insn_->opcode < 0xec ? static_cast<uint16_t>(insn_->imm)
                                      : static_cast<uint16_t>(cpu_.gpr[kRdx]);
  X86_TRY(CheckIoPrivilege());
  if (insn_->opcode & 2) {
    m_.phys.PortOut(port, size, ReadGpr(cpu_, kRax, size));
    return Flow::kOk;
  }
  uint32_t v;
  X86_TRY(m_.phys.PortIn(port, size, v));
  WriteGpr(cpu_, kRax, size, v);
  return Flow::kOk;
}

Flow Executor::Hlt() {
  if (m_.cpl() != 0) return m_.RaiseError(kVecGp, 0);
  m_.phys.StopAfterRetire(StopReason::kHlt);
  return Flow::kOk;
}

// F5 CMC, F8 CLC, F9 STC, FC CLD, FD STD.
Flow Executor::FlagOp() {
  switch (insn_->opcode) {
    case 0xf5: cpu_.rflags ^= kFlagCf; break;
    case 0xf8: cpu_.rflags &= ~kFlagCf; break;
    case 0xf9: cpu_.rflags |= kFlagCf; break;
    case 0xfc: cpu_.rflags &= ~kFlagDf; break;
    default: cpu_.rflags |= kFlagDf; break;
  }
  return Flow::kOk;
}

// FA CLI, FB STI. No interrupts are injected by the interpreter, so STI's
// one-instruction shadow has nothing to delay.
Flow Executor::CliSti() {
  if (m_.protected_mode() && m_.cpl() > m_.iopl()) return m_.RaiseError(kVecGp, 0);
  if (insn_->opcode == 0xfa) {
    cpu_.rflags &= ~kFlagIf;
  } else {
    cpu_.rflags |= kFlagIf;
  }
  return Flow::kOk;
}

// 0F 01: memory forms /0 SGDT, /1 SIDT, /2 LGDT, /3 LIDT; register forms C1
// VMCALL and D9 VMMCALL. REP VMMCALL is VMGEXIT (SEV-ES), not a hypercall.
Flow Executor::Group7() {
  if (insn_->has_mem) {
    if (insn_->reg <= 3) return DescriptorTableOp();
    return m_.Unsupported();
  }
  bool vmcall = insn_->reg == 0 && insn_->rm == 1;
  bool vmmcall = insn_->reg == 3 && insn_->rm == 1;
  if ((vmcall || vmmcall) && !insn_->rep) return Hypercall();
  return m_.Unsupported();
}

// The 6-byte operand: limit (2 bytes), then base (4 bytes; LGDT/LIDT with a
// 16-bit operand size use 24 bits of it).
Flow Executor::DescriptorTableOp() {
  DescriptorTable& table = (insn_->reg & 1) ? cpu_.idt : cpu_.gdt;
  Rm mem = RmOperand();
  Rm base_part{false, 0, mem.seg, (mem.offset + 2) & AddrMask()};
  if (insn_->reg <= 1) {  // SGDT / SIDT
    X86_TRY(Write(mem, 2, table.limit));
    return Write(base_part, 4, static_cast<uint32_t>(table.base));
  }
  if (m_.cpl() != 0) return m_.RaiseError(kVecGp, 0);
  uint32_t limit, base;
  X86_TRY(Read(mem, 2, limit));
  X86_TRY(Read(base_part, 4, base));
  if (insn_->op_size == 2) base &= 0x00ffffff;
  table.base = base;
  table.limit = static_cast<uint16_t>(limit);
  return Flow::kOk;
}

// The run stops with the hypercall unretired; the VMM answers through
// Interpreter::CompleteHypercall, which also steps RIP past it. Outside long
// mode every register is truncated to 32 bits. From CPL > 0, KVM answers
// -KVM_EPERM itself without an exit.
Flow Executor::Hypercall() {
  if (m_.cpl() != 0) {
    WriteGpr(cpu_, kRax, 4, 0u - kKvmEperm);
    return Flow::kOk;
  }
  HypercallStop& hc = m_.phys.stop().hypercall;
  hc.nr = static_cast<uint32_t>(cpu_.gpr[kRax]);
  hc.args = {static_cast<uint32_t>(cpu_.gpr[kRbx]), static_cast<uint32_t>(cpu_.gpr[kRcx]),
             static_cast<uint32_t>(cpu_.gpr[kRdx]), static_cast<uint32_t>(cpu_.gpr[kRsi]), 0, 0};
  hc.long_mode = false;
  m_.phys.stop().reason = StopReason::kHypercall;
  return Flow::kStop;
}

// 0F 20 MOV r32,CRn / 0F 22 MOV CRn,r32. The ModRM mod field is ignored:
// the operand is always a register. CR1, CR5-CR7 are #UD.
Flow Executor::MovCr() {
  uint8_t cr = insn_->reg;
  if (cr != 0 && cr != 2 && cr != 3 && cr != 4) return RaiseUd();
  if (m_.cpl() != 0) return m_.RaiseError(kVecGp, 0);
  if (insn_->opcode == (kTwoByte | 0x22)) return MovToCr(cr, ReadGpr(cpu_, insn_->rm, 4));
  uint64_t v = cr == 0 ? cpu_.cr0 : cr == 2 ? cpu_.cr2 : cr == 3 ? cpu_.cr3 : cpu_.cr4;
  WriteGpr(cpu_, insn_->rm, 4, static_cast<uint32_t>(v));
  return Flow::kOk;
}

// Setting or clearing CR0.PE switches between real and protected mode for
// the next instruction; CS keeps its hidden part until a far jump reloads
// it. Paging (CR0.PG) is outside the subset. Undefined CR0 bits are dropped
// and ET reads as 1, as KVM does.
Flow Executor::MovToCr(uint8_t cr, uint32_t value) {
  switch (cr) {
    case 0: {
      uint64_t v = (value & kCr0Defined) | kCr0Et;
      if ((v & kCr0Nw) && !(v & kCr0Cd)) return m_.RaiseError(kVecGp, 0);
      if ((v & kCr0Pg) && !(v & kCr0Pe)) return m_.RaiseError(kVecGp, 0);
      if (v & kCr0Pg) return m_.Unsupported();
      cpu_.cr0 = v;
      return Flow::kOk;
    }
    case 2: cpu_.cr2 = value; return Flow::kOk;
    case 3: cpu_.cr3 = value; return Flow::kOk;
    default:
      if (value & ~kCr4Allowed) return m_.RaiseError(kVecGp, 0);
      cpu_.cr4 = value;
      return Flow::kOk;
  }
}

}  // namespace kvmlike::x86
