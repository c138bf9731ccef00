#include "kvmlike/x86/executor.h"

#include "kvmlike/x86/registers.h"
#include "kvmlike/x86/segmentation.h"

namespace kvmlike::x86 {

// One case per opcode (or run of opcodes) of the subset; anything else is an
// internal error, never a silent skip.
Flow Executor::Execute() {
  if (insn_->lock && !Lockable()) return RaiseUd();
  switch (insn_->opcode) {
    case 0x00: case 0x01: case 0x02: case 0x03: case 0x08: case 0x09: case 0x0a: case 0x0b:
    case 0x10: case 0x11: case 0x12: case 0x13: case 0x18: case 0x19: case 0x1a: case 0x1b:
    case 0x20: case 0x21: case 0x22: case 0x23: case 0x28: case 0x29: case 0x2a: case 0x2b:
    case 0x30: case 0x31: case 0x32: case 0x33: case 0x38: case 0x39: case 0x3a: case 0x3b:
      return AluRm();
    case 0x04: case 0x05: case 0x0c: case 0x0d: case 0x14: case 0x15: case 0x1c: case 0x1d:
    case 0x24: case 0x25: case 0x2c: case 0x2d: case 0x34: case 0x35: case 0x3c: case 0x3d:
      return AluAcc();
    case 0x06: return PushSreg(kEs);
    case 0x07: return PopSreg(kEs);
    case 0x0e: return PushSreg(kCs);
    case 0x16: return PushSreg(kSs);
    case 0x17: return PopSreg(kSs);
    case 0x1e: return PushSreg(kDs);
    case 0x1f: return PopSreg(kDs);
    case 0x40: case 0x41: case 0x42: case 0x43: case 0x44: case 0x45: case 0x46: case 0x47:
    case 0x48: case 0x49: case 0x4a: case 0x4b: case 0x4c: case 0x4d: case 0x4e: case 0x4f:
      return IncDecReg();
    case 0x50: case 0x51: case 0x52: case 0x53: case 0x54: case 0x55: case 0x56: case 0x57:
      return PushReg();
    case 0x58: case 0x59: case 0x5a: case 0x5b: case 0x5c: case 0x5d: case 0x5e: case 0x5f:
      return PopReg();
    case 0x60: return Pusha();
    case 0x61: return Popa();
    case 0x68: case 0x6a: return PushImm();
    case 0x69: case 0x6b: return IMulReg();
    case 0x6c: case 0x6d: case 0x6e: case 0x6f: return StringOp();
    case 0x70: case 0x71: case 0x72: case 0x73: case 0x74: case 0x75: case 0x76: case 0x77:
    case 0x78: case 0x79: case 0x7a: case 0x7b: case 0x7c: case 0x7d: case 0x7e: case 0x7f:
      return Jcc();
    case 0x80: case 0x81: case 0x82: case 0x83: return AluRm();
    case 0x84: case 0x85: return TestRm();
    case 0x86: case 0x87: return Xchg();
    case 0x88: case 0x89: case 0x8a: case 0x8b: return MovRm();
    case 0x8c: return MovFromSreg();
    case 0x8d: return Lea();
    case 0x8e: return MovToSreg();
    case 0x8f: return PopRm();
    case 0x90: return Flow::kOk;  // NOP (and PAUSE with F3)
    case 0x91: case 0x92: case 0x93: case 0x94: case 0x95: case 0x96: case 0x97:
      return XchgAcc();
    case 0x98: return ConvertAcc();
    case 0x99: return ConvertDx();
    case 0x9a: return CallFarImm();
    case 0x9c: return Pushf();
    case 0x9d: return Popf();
    case 0x9e: return Sahf();
    case 0x9f: return Lahf();
    case 0xa0: case 0xa1: case 0xa2: case 0xa3: return MovMoffs();
    case 0xa4: case 0xa5: case 0xa6: case 0xa7: case 0xaa: case 0xab: case 0xac: case 0xad:
    case 0xae: case 0xaf:
      return StringOp();
    case 0xa8: case 0xa9: return TestAcc();
    case 0xb0: case 0xb1: case 0xb2: case 0xb3: case 0xb4: case 0xb5: case 0xb6: case 0xb7:
    case 0xb8: case 0xb9: case 0xba: case 0xbb: case 0xbc: case 0xbd: case 0xbe: case 0xbf:
      return MovImmReg();
    case 0xc0: case 0xc1: case 0xd0: case 0xd1: case 0xd2: case 0xd3: return ShiftGroup();
    case 0xc2: case 0xc3: return RetNear();
    case 0xc6: case 0xc7: return MovImmRm();
    case 0xc9: return Leave();
    case 0xca: case 0xcb: return RetFar();
    case 0xcc: return Int(kVecBp);
    case 0xcd: return Int(static_cast<uint8_t>(insn_->imm));
    case 0xce: return Into();
    case 0xcf: return Iret();
    case 0xe0: case 0xe1: case 0xe2: case 0xe3: return Loop();
    case 0xe4: case 0xe5: case 0xe6: case 0xe7: case 0xec: case 0xed: case 0xee: case 0xef:
      return InOut();
    case 0xe8: return CallRel();
    case 0xe9: case 0xeb: return JmpRel();
    case 0xea: return JmpFarImm();
    case 0xf4: return Hlt();
    case 0xf5: case 0xf8: case 0xf9: case 0xfc: case 0xfd: return FlagOp();
    case 0xfa: case 0xfb: return CliSti();
    case 0xf6: case 0xf7: return Group3();
    case 0xfe: return Group4();
    case 0xff: return Group5();
    case kTwoByte | 0x01: return Group7();
    case kTwoByte | 0x0b: case kTwoByte | 0xb9: case kTwoByte | 0xff:
      return RaiseUd();  // UD2, UD1, UD0
    case kTwoByte | 0x1f: return Flow::kOk;  // NOP r/m: no memory access
    case kTwoByte | 0x20: case kTwoByte | 0x22: return MovCr();
    case kTwoByte | 0x40: case kTwoByte | 0x41: case kTwoByte | 0x42: case kTwoByte | 0x43:
    case kTwoByte | 0x44: case kTwoByte | 0x45: case kTwoByte | 0x46: case kTwoByte | 0x47:
    case kTwoByte | 0x48: case kTwoByte | 0x49: case kTwoByte | 0x4a: case kTwoByte | 0x4b:
    case kTwoByte | 0x4c: case kTwoByte | 0x4d: case kTwoByte | 0x4e: case kTwoByte | 0x4f:
      return Cmovcc();
    case kTwoByte | 0x80: case kTwoByte | 0x81: case kTwoByte | 0x82: case kTwoByte | 0x83:
    case kTwoByte | 0x84: case kTwoByte | 0x85: case kTwoByte | 0x86: case kTwoByte | 0x87:
    case kTwoByte | 0x88: case kTwoByte | 0x89: case kTwoByte | 0x8a: case kTwoByte | 0x8b:
    case kTwoByte | 0x8c: case kTwoByte | 0x8d: case kTwoByte | 0x8e: case kTwoByte | 0x8f:
      return Jcc();
    case kTwoByte | 0x90: case kTwoByte | 0x91: case kTwoByte | 0x92: case kTwoByte | 0x93:
    case kTwoByte | 0x94: case kTwoByte | 0x95: case kTwoByte | 0x96: case kTwoByte | 0x97:
    case kTwoByte | 0x98: case kTwoByte | 0x99: case kTwoByte | 0x9a: case kTwoByte | 0x9b:
    case kTwoByte | 0x9c: case kTwoByte | 0x9d: case kTwoByte | 0x9e: case kTwoByte | 0x9f:
      return Setcc();
    case kTwoByte | 0xa0: return PushSreg(kFs);
    case kTwoByte | 0xa1: return PopSreg(kFs);
    case kTwoByte | 0xa8: return PushSreg(kGs);
    case kTwoByte | 0xa9: return PopSreg(kGs);
    case kTwoByte | 0xaf: return IMulReg();
    case kTwoByte | 0xb6: case kTwoByte | 0xb7: case kTwoByte | 0xbe: case kTwoByte | 0xbf:
      return MovExtend();
    default: return m_.Unsupported();
  }
}

Flow Executor::Jump(uint32_t target) {
  if (insn_->op_size == 2) target &= 0xffff;
  if (!WithinLimit(cpu_.seg[kCs], target)) return m_.RaiseError(kVecGp, 0);
  next_ip_ = target;
  return Flow::kOk;
}

// LOCK is valid only on read-modify-write instructions with a memory
// destination; anywhere else hardware raises #UD. The 0F forms listed are
// lockable but outside the subset: they reach the dispatch default.
bool Executor::Lockable() const {
  if (!insn_->has_modrm || !insn_->has_mem) return false;
  uint16_t op = insn_->opcode;
  if (op < 0x40) return (op & 7) <= 1 && (op & 0x38) != 0x38;  // ALU r/m,reg except CMP
  switch (op) {
    case 0x80: case 0x81: case 0x82: case 0x83: return insn_->reg != 7;
    case 0x86: case 0x87: return true;
    case 0xf6: case 0xf7: return insn_->reg == 2 || insn_->reg == 3;
    case 0xfe: case 0xff: return insn_->reg <= 1;
    case kTwoByte | 0xab: case kTwoByte | 0xb0: case kTwoByte | 0xb1: case kTwoByte | 0xb3:
    case kTwoByte | 0xba: case kTwoByte | 0xbb: case kTwoByte | 0xc0: case kTwoByte | 0xc1:
      return true;
    default: return false;
  }
}

Flow Executor::RaiseUd() { return m_.Raise(kVecUd); }

}  // namespace kvmlike::x86
