#include "kvmlike/x86/translator/block_compiler.h"

#include <cstddef>
#include <deque>
#include <type_traits>

#include "base/types.h"
#include "kvmlike/x86/alu.h"
#include "kvmlike/x86/decoder.h"
#include "kvmlike/x86/guest_memory.h"
#include "kvmlike/x86/registers.h"
#include "kvmlike/x86/translator/assembler.h"

namespace kvmlike::x86::translator {

namespace {

static_assert(std::is_standard_layout_v<CpuState> && std::is_standard_layout_v<BlockContext>);

constexpr int32_t Off(size_t offset) { return static_cast<int32_t>(offset); }

// Register roles in translated code. R8..R15 hold guest EAX..EDI; RAX holds
// saved flags (AH, AL); RCX, RDX, RSI, RDI are scratch.
constexpr HostReg kCtx = HostReg::kRbx;      // the BlockContext
constexpr HostReg kRetired = HostReg::kRbp;  // instructions retired by completed passes
constexpr HostReg kAddr = HostReg::kRcx;     // a data access's guest address
constexpr HostReg kHost = HostReg::kRdx;     // ... and its host address
constexpr HostReg kTmp = HostReg::kRsi;
constexpr HostReg kEntry = HostReg::kRdi;

HostReg G(uint8_t guest_reg) { return static_cast<HostReg>(8 + guest_reg); }

// How a supported instruction is translated.
enum class Form : uint8_t {
  kUnsupported,
  kAluRmReg,   // 01 09 11 19 21 29 31 39: r/m32 op= r32
  kAluRegRm,   // 03 0b ... 3b: r32 op= r/m32
  kAluAccImm,  // 05 0d ... 3d: eax op= imm32
  kAluRmImm,   // 81 /op imm32, 83 /op imm8
  kTestRmReg,  // 85
  kTestAccImm, // a9
  kIncDec,     // 40..4f
  kMovRmReg,   // 89
  kMovRmReg8,  // 88 (AL..BL only)
  kMovRegRm,   // 8b
  kMovRegImm,  // b8..bf
  kMovRmImm8,  // c6 /0
  kMovRmImm,   // c7 /0
  kLea,        // 8d
  kNop,        // 90
  kJcc,        // 70..7f, 0f 80..8f
  kJmp,        // eb, e9
};

bool PlainForm(const Insn& i) {
  return i.op_size == 4 && i.addr_size == 4 && i.rep == 0 && i.seg_override == kNoSeg && !i.lock;
}

// An 8-bit register operand the host can name as R8B..R11B: AL..BL.
bool LowByteReg(uint8_t r) { return r < 4; }

Form Classify(const Insn& i) {
  if (!PlainForm(i)) return Form::kUnsupported;
  uint16_t op = i.opcode;
  if (op < 0x40) {
    switch (op & 7) {
      case 1: return Form::kAluRmReg;
      case 3: return Form::kAluRegRm;
      case 5: return Form::kAluAccImm;
      default: return Form::kUnsupported;
    }
  }
  if (op >= 0x40 && op <= 0x4f) return Form::kIncDec;
  if (op >= 0x70 && op <= 0x7f) return Form::kJcc;
  if (op >= (kTwoByte | 0x80) && op <= (kTwoByte | 0x8f)) return Form::kJcc;
  if (op >= 0xb8 && op <= 0xbf) return Form::kMovRegImm;
  switch (op) {
    case 0x81:
    case 0x83: return Form::kAluRmImm;
    case 0x85: return Form::kTestRmReg;
    case 0xa9: return Form::kTestAccImm;
    case 0x88:
      return LowByteReg(i.reg) && (i.has_mem || LowByteReg(i.rm)) ? Form::kMovRmReg8
                                                                   : Form::kUnsupported;
    case 0x89: return Form::kMovRmReg;
    case 0x8b: return Form::kMovRegRm;
    case 0x8d: return i.has_mem ? Form::kLea : Form::kUnsupported;
    case 0x90: return Form::kNop;
    case 0xc6:
      return i.reg == 0 && (i.has_mem || LowByteReg(i.rm)) ? Form::kMovRmImm8 : Form::kUnsupported;
    case 0xc7: return i.reg == 0 ? Form::kMovRmImm : Form::kUnsupported;
    case 0xe9:
    case 0xeb: return Form::kJmp;
    default: return Form::kUnsupported;
  }
}

bool EndsBlock(Form f) { return f == Form::kJcc || f == Form::kJmp; }

// An instruction of the block, classified once.
struct BlockInsn {
  Insn insn;
  Form form;
};

// Where the guest status flags are at a point of the host code.
enum class FlagsAt : uint8_t { kHostFlags, kAx };

// What a translated instruction does with the guest's status flags.
enum class FlagUse : uint8_t {
  kNone,    // MOV: neither reads nor writes them
  kWrite,   // sets them
  kUpdate,  // sets them from the old ones (ADC/SBB read CF, INC/DEC keep it)
};

FlagUse AluFlags(AluOp op) {
  return op == AluOp::kAdc || op == AluOp::kSbb ? FlagUse::kUpdate : FlagUse::kWrite;
}

// The host instruction that stands for a guest one: the same operation, on
// R8..R15 for the guest's registers and [kHost] for its memory operand.
struct HostInsn {
  Width width = Width::k32;
  uint8_t opcode;
  uint8_t reg;              // ModRM reg: a host register number or /digit
  uint8_t imm_size = 0;     // 0, 1 or 4 bytes of imm after the operand
  uint32_t imm = 0;
  bool writes_rm = false;   // the r/m operand is the destination
  FlagUse flags = FlagUse::kNone;
};

class BlockCompiler {
 public:
  BlockCompiler(uint32_t start, const std::vector<BlockInsn>& insns)
      : start_(start), insns_(insns) {}

  CompiledBlock Compile();

 private:
  struct Exit {
    Assembler::Label label;
    uint32_t rip;
    uint32_t retired;  // instructions of this pass retired before the exit
    FlagsAt flags;
  };

  // An exit to the interpreter at rip with flags where they are now.
  Assembler::Label& ExitTo(uint32_t rip, uint32_t retired) {
    exits_.push_back({{}, rip, retired, flags_});
    return exits_.back().label;
  }
  // ... before the instruction being compiled, or after it (at rip).
  Assembler::Label& ExitBefore() { return ExitTo(eip_, index_); }
  Assembler::Label& ExitAfter(uint32_t rip) { return ExitTo(rip, index_ + 1); }

  void Prologue();
  void Head();
  void Instruction(const BlockInsn& b);
  void Exits();
  void Epilogue();

  // Flag bookkeeping before code that clobbers host flags / reads guest flags.
  void FlagsToAx();
  void FlagsToHost();

  MemOperand GuestAddress(const MemForm& m) const;
  // Leaves kHost = the host address of the access, or leaves the block
  // before the instruction on a miss.
  void Lookup(const Insn& i, uint8_t size, bool write);
  void LookupIn(int32_t array, uint32_t index_shift, uint32_t entries, uint32_t offset_mask,
                bool write, Assembler::Label& fail);
  // After a store of size bytes: leave the block if it wrote the block's bytes.
  void CheckSelfModify(uint8_t size);
  void BackEdge();
  void Written(uint8_t guest_reg) { written_ |= 1u << guest_reg; }

  // h on the guest register, or on i's r/m operand (register or memory).
  void OnReg(uint8_t guest_reg, const HostInsn& h);
  void OnRm(const Insn& i, const HostInsn& h);
  template <typename Operand>
  void Emit(const HostInsn& h, const Operand& rm);
  void Branch(const Insn& i, Form f);

  const uint32_t start_;  // EIP of the block's first instruction
  const std::vector<BlockInsn>& insns_;
  Assembler a_;
  Assembler::Label head_, epilogue_;
  std::deque<Exit> exits_;  // deque: labels stay where they are while exits are added
  FlagsAt flags_ = FlagsAt::kAx;
  uint32_t written_ = 0;  // guest registers some instruction writes
  uint32_t guest_bytes_ = 0;
  // The instruction being compiled: its index in the block, EIP and next EIP.
  uint32_t index_ = 0, eip_ = 0, next_ = 0;
};

void BlockCompiler::FlagsToAx() {
  if (flags_ == FlagsAt::kHostFlags) a_.SaveFlagsToAx();
  flags_ = FlagsAt::kAx;
}

void BlockCompiler::FlagsToHost() {
  if (flags_ == FlagsAt::kAx) a_.RestoreFlagsFromAx();
  flags_ = FlagsAt::kHostFlags;
}

// Saves the host registers the SysV ABI asks to keep, loads the guest
// registers and primes AX with the guest flags.
void BlockCompiler::Prologue() {
  for (HostReg r : {HostReg::kRbx, HostReg::kRbp, HostReg::kR12, HostReg::kR13, HostReg::kR14,
                    HostReg::kR15})
    a_.Push(r);
  a_.MovRR(Width::k64, kCtx, HostReg::kRdi);
  a_.Load(Width::k64, HostReg::kRcx, At(kCtx, Off(offsetof(BlockContext, cpu))));
  for (uint8_t g = 0; g < 8; ++g)
    a_.Load(Width::k64, G(g), At(HostReg::kRcx, Off(offsetof(CpuState, gpr) + 8 * g)));
  a_.Load(Width::k64, HostReg::kRdx, At(HostReg::kRcx, Off(offsetof(CpuState, rflags))));
  a_.MovRR(Width::k32, HostReg::kRax, HostReg::kRdx);
  a_.Shr(Width::k32, HostReg::kRax, 11);
  a_.AluRI(Width::k32, AluOp::kAnd, HostReg::kRax, 1);  // AL = OF
  a_.MovAhDl();                                         // AH = flags 7..0
  a_.MovImm32(kRetired, 0);
}

// Each pass starts here with the flags in AX.
void BlockCompiler::Head() {
  a_.Bind(head_);
  flags_ = FlagsAt::kAx;
  Assembler::Label& out = ExitTo(start_, 0);
  a_.Load(Width::k64, kTmp, At(kCtx, Off(offsetof(BlockContext, generation))));
  a_.Load(Width::k64, kTmp, At(kTmp));
  a_.AluRM(Width::k64, AluOp::kCmp, kTmp, At(kCtx, Off(offsetof(BlockContext, acknowledged))));
  a_.Jcc(kCondNe, out);
  a_.AluRM(Width::k64, AluOp::kCmp, kRetired, At(kCtx, Off(offsetof(BlockContext, limit))));
  a_.Jcc(kCondA, out);
}

MemOperand BlockCompiler::GuestAddress(const MemForm& m) const {
  MemOperand op;
  op.has_base = m.base != kNoReg;
  if (op.has_base) op.base = G(static_cast<uint8_t>(m.base));
  op.has_index = m.index != kNoReg;
  if (op.has_index) op.index = G(static_cast<uint8_t>(m.index));
  op.scale = m.scale;
  op.disp = static_cast<int32_t>(m.disp);
  return op;
}

// One direct-mapped array (at that offset of the context): index = address
// >> index_shift; the key is that index with the tag; host = entry host +
// (address & offset_mask). A key mismatch or a forbidden write goes to fail.
void BlockCompiler::LookupIn(int32_t array, uint32_t index_shift, uint32_t entries,
                             uint32_t offset_mask, bool write, Assembler::Label& fail) {
  a_.MovRR(Width::k32, kTmp, kAddr);
  a_.Shr(Width::k32, kTmp, static_cast<uint8_t>(index_shift));
  a_.MovRR(Width::k32, kEntry, kTmp);
  a_.AluRI(Width::k32, AluOp::kAnd, kEntry, static_cast<int32_t>(entries - 1));
  a_.ImulRI(kEntry, kEntry, static_cast<int32_t>(inline_tlb::kEntrySize));
  a_.AluRM(Width::k64, AluOp::kAdd, kEntry, At(kCtx, array));
  a_.AluRM(Width::k64, AluOp::kOr, kTmp, At(kCtx, Off(offsetof(BlockContext, tag_bits))));
  a_.AluRM(Width::k64, AluOp::kCmp, kTmp, At(kEntry, static_cast<int32_t>(inline_tlb::kKeyOffset)));
  a_.Jcc(kCondNe, fail);
  if (write) {
    a_.CmpMemImm8(At(kEntry, static_cast<int32_t>(inline_tlb::kWritableOffset)), 0);
    a_.Jcc(kCondE, fail);
  }
  a_.Load(Width::k64, kHost, At(kEntry, static_cast<int32_t>(inline_tlb::kHostOffset)));
  a_.MovRR(Width::k32, kTmp, kAddr);
  a_.AluRI(Width::k32, AluOp::kAnd, kTmp, static_cast<int32_t>(offset_mask));
  a_.AluRR(Width::k64, AluOp::kAdd, kHost, kTmp);
}

// The 4 KiB array first, then the 2 MiB one, as SoftTlb looks up. The
// address is the guest-physical one: flat segments and no guest paging.
void BlockCompiler::Lookup(const Insn& i, uint8_t size, bool write) {
  FlagsToAx();  // before the exit is made: it finds the flags in AX
  Assembler::Label& miss = ExitBefore();
  a_.Lea(Width::k32, kAddr, GuestAddress(i.mem));
  if (size > 1) {  // an access that straddles a page is the interpreter's
    a_.MovRR(Width::k32, kTmp, kAddr);
    a_.AluRI(Width::k32, AluOp::kAnd, kTmp, static_cast<int32_t>(base::kPageSize - 1));
    a_.AluRI(Width::k32, AluOp::kCmp, kTmp, static_cast<int32_t>(base::kPageSize - size));
    a_.Jcc(kCondA, miss);
  }
  Assembler::Label large, done;
  LookupIn(Off(offsetof(BlockContext, small)), base::kPageShift, inline_tlb::kSmallEntries,
           base::kPageSize - 1, write, large);
  a_.Jmp(done);
  a_.Bind(large);
  LookupIn(Off(offsetof(BlockContext, large)), base::kPageShift + 9, inline_tlb::kLargeEntries,
           (base::kPageSize << 9) - 1, write, miss);
  a_.Bind(done);
}

// Overlap of [host, host + size) with the block's bytes [code, code + len):
// host + size - 1 - code, unsigned, below len + size - 1.
void BlockCompiler::CheckSelfModify(uint8_t size) {
  FlagsToAx();
  a_.Lea(Width::k64, kTmp, At(kHost, size - 1));
  a_.AluRM(Width::k64, AluOp::kSub, kTmp, At(kCtx, Off(offsetof(BlockContext, code))));
  a_.AluRI(Width::k64, AluOp::kCmp, kTmp, static_cast<int32_t>(guest_bytes_ + size - 1));
  a_.Jcc(kCondB, ExitAfter(next_));
}

void BlockCompiler::BackEdge() {
  FlagsToAx();
  a_.Lea(Width::k64, kRetired, At(kRetired, static_cast<int32_t>(insns_.size())));
  a_.Jmp(head_);
}

template <typename Operand>
void BlockCompiler::Emit(const HostInsn& h, const Operand& rm) {
  if (h.flags == FlagUse::kUpdate) FlagsToHost();
  a_.Rm(h.width, h.opcode, h.reg, rm);
  if (h.imm_size == 1) a_.Byte(static_cast<uint8_t>(h.imm));
  if (h.imm_size == 4) a_.Imm32(h.imm);
  if (h.flags != FlagUse::kNone) flags_ = FlagsAt::kHostFlags;
}

void BlockCompiler::OnReg(uint8_t guest_reg, const HostInsn& h) {
  Emit(h, G(guest_reg));
  if (h.writes_rm) Written(guest_reg);
}

// A memory operand is reached through the TLB lookup, which leaves the block
// on a miss; a store then leaves it if it wrote the block's own bytes.
void BlockCompiler::OnRm(const Insn& i, const HostInsn& h) {
  if (!i.has_mem) return OnReg(i.rm, h);
  uint8_t size = h.width == Width::k8 ? 1 : 4;
  Lookup(i, size, h.writes_rm);
  Emit(h, At(kHost));
  if (h.writes_rm) CheckSelfModify(size);
}

// A jump back to the block's start loops; any other target leaves the block.
void BlockCompiler::Branch(const Insn& i, Form f) {
  uint32_t target = next_ + SignExtend(i.imm, i.imm_size);
  if (f == Form::kJmp) {
    if (target == start_) {
      BackEdge();
    } else {
      a_.Jmp(ExitAfter(target));
    }
    return;
  }
  FlagsToHost();
  Cond cc = static_cast<Cond>(i.opcode & 0xf);
  if (target == start_) {
    a_.Jcc(cc ^ 1, ExitAfter(next_));
    BackEdge();
    return;
  }
  a_.Jcc(cc, ExitAfter(target));
  a_.Jmp(ExitAfter(next_));
}

// Each form with a ModRM byte runs as its own opcode with the guest's
// operands; the accumulator forms and INC/DEC as the ModRM form on the
// register.
void BlockCompiler::Instruction(const BlockInsn& b) {
  const Insn& i = b.insn;
  uint8_t reg = Assembler::Num(G(i.reg));  // the ModRM reg operand, as the host names it
  AluOp row_op = static_cast<AluOp>((i.opcode >> 3) & 7);  // the 00-3F rows
  switch (b.form) {
    case Form::kAluRmReg:
      OnRm(i, {.opcode = static_cast<uint8_t>(i.opcode), .reg = reg,
               .writes_rm = row_op != AluOp::kCmp, .flags = AluFlags(row_op)});
      return;
    case Form::kAluRegRm:
      OnRm(i, {.opcode = static_cast<uint8_t>(i.opcode), .reg = reg, .flags = AluFlags(row_op)});
      if (row_op != AluOp::kCmp) Written(i.reg);
      return;
    case Form::kAluAccImm:
      OnReg(kRax, {.opcode = 0x81, .reg = static_cast<uint8_t>(row_op), .imm_size = 4,
                   .imm = i.imm, .writes_rm = row_op != AluOp::kCmp, .flags = AluFlags(row_op)});
      return;
    case Form::kAluRmImm: {
      AluOp op = static_cast<AluOp>(i.reg);
      OnRm(i, {.opcode = static_cast<uint8_t>(i.opcode), .reg = i.reg, .imm_size = i.imm_size,
               .imm = i.imm, .writes_rm = op != AluOp::kCmp, .flags = AluFlags(op)});
      return;
    }
    case Form::kTestRmReg: OnRm(i, {.opcode = 0x85, .reg = reg, .flags = FlagUse::kWrite}); return;
    case Form::kTestAccImm:
      OnReg(kRax,
            {.opcode = 0xf7, .reg = 0, .imm_size = 4, .imm = i.imm, .flags = FlagUse::kWrite});
      return;
    case Form::kIncDec:  // FF /0 INC, FF /1 DEC
      OnReg(i.opcode & 7, {.opcode = 0xff, .reg = static_cast<uint8_t>((i.opcode & 8) ? 1 : 0),
                           .writes_rm = true, .flags = FlagUse::kUpdate});
      return;
    case Form::kMovRmReg: OnRm(i, {.opcode = 0x89, .reg = reg, .writes_rm = true}); return;
    case Form::kMovRmReg8:
      OnRm(i, {.width = Width::k8, .opcode = 0x88, .reg = reg, .writes_rm = true});
      return;
    case Form::kMovRegRm:
      OnRm(i, {.opcode = 0x8b, .reg = reg});
      Written(i.reg);
      return;
    case Form::kMovRegImm:
      a_.MovImm32(G(i.opcode & 7), i.imm);
      Written(i.opcode & 7);
      return;
    case Form::kMovRmImm8:
      OnRm(i, {.width = Width::k8, .opcode = 0xc6, .reg = 0, .imm_size = 1, .imm = i.imm,
               .writes_rm = true});
      return;
    case Form::kMovRmImm:
      OnRm(i, {.opcode = 0xc7, .reg = 0, .imm_size = 4, .imm = i.imm, .writes_rm = true});
      return;
    case Form::kLea:
      a_.Lea(Width::k32, G(i.reg), GuestAddress(i.mem));
      Written(i.reg);
      return;
    case Form::kNop: return;
    case Form::kJcc:
    case Form::kJmp: Branch(i, b.form); return;
    case Form::kUnsupported: return;
  }
}

// Each exit: the flags to AX, RIP to ESI, this pass's retired count to EDI.
void BlockCompiler::Exits() {
  for (Exit& e : exits_) {
    a_.Bind(e.label);
    flags_ = e.flags;
    FlagsToAx();
    a_.MovImm32(kTmp, e.rip);
    a_.MovImm32(kEntry, e.retired);
    a_.Jmp(epilogue_);
  }
}

// Writes RFLAGS (status bits from AX), the written registers and RIP back,
// returns retired + EDI.
void BlockCompiler::Epilogue() {
  a_.Bind(epilogue_);
  a_.Load(Width::k64, HostReg::kRcx, At(kCtx, Off(offsetof(BlockContext, cpu))));
  a_.MovzxEdxAh();
  a_.AluRI(Width::k32, AluOp::kAnd, HostReg::kRdx, static_cast<int32_t>(kStatusFlags & 0xff));
  a_.MovzxEaxAl();
  a_.Shl(Width::k32, HostReg::kRax, 11);
  a_.AluRR(Width::k32, AluOp::kOr, HostReg::kRdx, HostReg::kRax);
  a_.Load(Width::k64, HostReg::kRax, At(HostReg::kRcx, Off(offsetof(CpuState, rflags))));
  a_.AluRI(Width::k64, AluOp::kAnd, HostReg::kRax, static_cast<int32_t>(~kStatusFlags));
  a_.AluRR(Width::k64, AluOp::kOr, HostReg::kRax, HostReg::kRdx);
  a_.Store(Width::k64, At(HostReg::kRcx, Off(offsetof(CpuState, rflags))), HostReg::kRax);
  for (uint8_t g = 0; g < 8; ++g)
    if (written_ & (1u << g))
      a_.Store(Width::k64, At(HostReg::kRcx, Off(offsetof(CpuState, gpr) + 8 * g)), G(g));
  a_.Store(Width::k64, At(HostReg::kRcx, Off(offsetof(CpuState, rip))), kTmp);
  a_.Lea(Width::k64, HostReg::kRax,
         {.base = kRetired, .index = kEntry, .has_index = true, .scale = 0, .disp = 0});
  for (HostReg r : {HostReg::kR15, HostReg::kR14, HostReg::kR13, HostReg::kR12, HostReg::kRbp,
                    HostReg::kRbx})
    a_.Pop(r);
  a_.Ret();
}

CompiledBlock BlockCompiler::Compile() {
  for (const BlockInsn& b : insns_) guest_bytes_ += b.insn.len;
  Prologue();
  Head();
  next_ = start_;
  for (uint32_t k = 0; k < insns_.size(); ++k) {
    index_ = k;
    eip_ = next_;
    next_ = eip_ + insns_[k].insn.len;
    Instruction(insns_[k]);
  }
  // Still at the last instruction: a block that does not end in a jump
  // leaves after it.
  if (!EndsBlock(insns_.back().form)) a_.Jmp(ExitAfter(next_));
  Exits();
  Epilogue();
  return {a_.code(), guest_bytes_, static_cast<uint32_t>(insns_.size())};
}

}  // namespace

std::optional<CompiledBlock> CompileBlock(uint32_t eip, const uint8_t* bytes, uint32_t avail) {
  std::vector<BlockInsn> insns;
  uint32_t off = 0;
  while (insns.size() < kMaxBlockInsns && off < avail) {
    Insn i;
    if (Decode(bytes + off, avail - off, /*default32=*/true, i) != DecodeStatus::kOk) break;
    Form f = Classify(i);
    if (f == Form::kUnsupported || off + i.len > kMaxBlockBytes) break;
    insns.push_back({i, f});
    off += i.len;
    if (EndsBlock(f)) break;
  }
  if (insns.empty()) return std::nullopt;
  return BlockCompiler(eip, insns).Compile();
}

}  // namespace kvmlike::x86::translator
