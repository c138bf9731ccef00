#include "kvmlike/x86/translator/block_compiler.h"

#include <cstddef>
#include <deque>
#include <type_traits>

#include "base/types.h"
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

constexpr uint64_t kArithFlags = kFlagCf | kFlagPf | kFlagAf | kFlagZf | kFlagSf | kFlagOf;

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
  if (op < 0x40 && (op & 7) <= 5 && (op & 7) != 0 && (op & 7) != 2 && (op & 7) != 4) {
    if ((op & 7) == 1) return Form::kAluRmReg;
    if ((op & 7) == 3) return Form::kAluRegRm;
    return Form::kAluAccImm;
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

// Where the guest status flags are at a point of the host code.
enum class FlagsAt : uint8_t { kHostFlags, kAx };

class BlockCompiler {
 public:
  BlockCompiler(uint32_t eip, const std::vector<Insn>& insns) : eip_(eip), insns_(insns) {}

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

  void Prologue();
  void Head();
  void Instruction(const Insn& i, uint32_t index, uint32_t eip, uint32_t next);
  void Exits();
  void Epilogue();

  // Flag bookkeeping before code that clobbers host flags / reads guest flags.
  void FlagsToAx();
  void FlagsToHost();

  MemOperand GuestAddress(const MemForm& m) const;
  // Leaves kHost = the host address of the access, or leaves the block before
  // instruction index (at eip) on a miss.
  void Lookup(const Insn& i, uint8_t size, bool write, uint32_t eip, uint32_t index);
  void LookupIn(int32_t array, uint32_t index_shift, uint32_t entries, uint32_t offset_mask,
                bool write, Assembler::Label& miss, Assembler::Label* next);
  // After a store of size bytes: leave the block if it wrote the block's bytes.
  void CheckSelfModify(uint8_t size, uint32_t index, uint32_t next);
  void BackEdge();
  void Written(uint8_t guest_reg) { written_ |= 1u << guest_reg; }

  void Alu(const Insn& i, uint32_t index, uint32_t eip, uint32_t next, uint8_t op, bool rm_dst);
  void AluImm(const Insn& i, uint32_t index, uint32_t eip, uint32_t next);
  void Mov(const Insn& i, Form f, uint32_t index, uint32_t eip, uint32_t next);
  void Branch(const Insn& i, Form f, uint32_t next);

  const uint32_t eip_;
  const std::vector<Insn>& insns_;
  Assembler a_;
  Assembler::Label head_, epilogue_;
  std::deque<Exit> exits_;  // deque: labels stay where they are while exits are added
  FlagsAt flags_ = FlagsAt::kAx;
  uint32_t written_ = 0;  // guest registers some instruction writes
  uint32_t guest_bytes_ = 0;
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
  a_.AluRI(Width::k32, 4, HostReg::kRax, 1);  // AL = OF
  a_.MovAhDl();                               // AH = flags 7..0
  a_.MovImm32(kRetired, 0);
}

// Each pass starts here with the flags in AX.
void BlockCompiler::Head() {
  a_.Bind(head_);
  flags_ = FlagsAt::kAx;
  Assembler::Label& out = ExitTo(eip_, 0);
  a_.Load(Width::k64, kTmp, At(kCtx, Off(offsetof(BlockContext, generation))));
  a_.Load(Width::k64, kTmp, At(kTmp));
  a_.AluRM(Width::k64, 7, kTmp, At(kCtx, Off(offsetof(BlockContext, acknowledged))));
  a_.Jcc(kCondNe, out);
  a_.AluRM(Width::k64, 7, kRetired, At(kCtx, Off(offsetof(BlockContext, limit))));
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

// One direct-mapped array (at that offset of the context): index = address >> index_shift; the key is that
// index with the tag; host = entry host + (address & offset_mask). With next,
// a key mismatch or forbidden write goes there instead of to miss.
void BlockCompiler::LookupIn(int32_t array, uint32_t index_shift, uint32_t entries,
                             uint32_t offset_mask, bool write, Assembler::Label& miss,
                             Assembler::Label* next) {
  Assembler::Label& fail = next ? *next : miss;
  a_.MovRR(Width::k32, kTmp, kAddr);
  a_.Shr(Width::k32, kTmp, static_cast<uint8_t>(index_shift));
  a_.MovRR(Width::k32, kEntry, kTmp);
  a_.AluRI(Width::k32, 4, kEntry, static_cast<int32_t>(entries - 1));
  a_.ImulRI(kEntry, kEntry, static_cast<int32_t>(inline_tlb::kEntrySize));
  a_.AluRM(Width::k64, 0, kEntry, At(kCtx, array));
  a_.AluRM(Width::k64, 1, kTmp, At(kCtx, Off(offsetof(BlockContext, tag_bits))));
  a_.AluRM(Width::k64, 7, kTmp, At(kEntry, static_cast<int32_t>(inline_tlb::kKeyOffset)));
  a_.Jcc(kCondNe, fail);
  if (write) {
    a_.CmpMemImm8(At(kEntry, static_cast<int32_t>(inline_tlb::kWritableOffset)), 0);
    a_.Jcc(kCondE, fail);
  }
  a_.Load(Width::k64, kHost, At(kEntry, static_cast<int32_t>(inline_tlb::kHostOffset)));
  a_.MovRR(Width::k32, kTmp, kAddr);
  a_.AluRI(Width::k32, 4, kTmp, static_cast<int32_t>(offset_mask));
  a_.AluRR(Width::k64, 0, kHost, kTmp);
}

// The 4 KiB array first, then the 2 MiB one, as SoftTlb looks up. The
// address is the guest-physical one: flat segments and no guest paging.
void BlockCompiler::Lookup(const Insn& i, uint8_t size, bool write, uint32_t eip,
                           uint32_t index) {
  FlagsToAx();  // before the exit is made: it finds the flags in AX
  Assembler::Label& miss = ExitTo(eip, index);
  a_.Lea(Width::k32, kAddr, GuestAddress(i.mem));
  if (size > 1) {  // an access that straddles a page is the interpreter's
    a_.MovRR(Width::k32, kTmp, kAddr);
    a_.AluRI(Width::k32, 4, kTmp, static_cast<int32_t>(base::kPageSize - 1));
    a_.AluRI(Width::k32, 7, kTmp, static_cast<int32_t>(base::kPageSize - size));
    a_.Jcc(kCondA, miss);
  }
  Assembler::Label large, done;
  LookupIn(Off(offsetof(BlockContext, small)), base::kPageShift, inline_tlb::kSmallEntries,
           base::kPageSize - 1, write, miss, &large);
  a_.Jmp(done);
  a_.Bind(large);
  LookupIn(Off(offsetof(BlockContext, large)), base::kPageShift + 9, inline_tlb::kLargeEntries,
           (base::kPageSize << 9) - 1, write, miss, nullptr);
  a_.Bind(done);
}

// Overlap of [host, host + size) with the block's bytes [code, code + len):
// host + size - 1 - code, unsigned, below len + size - 1.
void BlockCompiler::CheckSelfModify(uint8_t size, uint32_t index, uint32_t next) {
  FlagsToAx();
  a_.Lea(Width::k64, kTmp, At(kHost, size - 1));
  a_.AluRM(Width::k64, 5, kTmp, At(kCtx, Off(offsetof(BlockContext, code))));
  a_.AluRI(Width::k64, 7, kTmp, static_cast<int32_t>(guest_bytes_ + size - 1));
  a_.Jcc(0x2 /* below */, ExitTo(next, index + 1));
}

void BlockCompiler::BackEdge() {
  FlagsToAx();
  a_.Lea(Width::k64, kRetired, At(kRetired, static_cast<int32_t>(insns_.size())));
  a_.Jmp(head_);
}

// ALU op (0..7) between a register and r/m; rm_dst: the r/m operand is the
// destination (form 01), else the register (form 03).
void BlockCompiler::Alu(const Insn& i, uint32_t index, uint32_t eip, uint32_t next, uint8_t op,
                        bool rm_dst) {
  bool reads_cf = op == 2 || op == 3;  // ADC, SBB
  bool writes = op != 7;
  if (!i.has_mem) {
    if (reads_cf) FlagsToHost();
    if (rm_dst) {
      a_.AluRR(Width::k32, op, G(i.rm), G(i.reg));
      if (writes) Written(i.rm);
    } else {
      a_.AluRR(Width::k32, op, G(i.reg), G(i.rm));
      if (writes) Written(i.reg);
    }
    flags_ = FlagsAt::kHostFlags;
    return;
  }
  bool store = rm_dst && writes;
  Lookup(i, 4, store, eip, index);
  if (reads_cf) FlagsToHost();
  if (rm_dst) {
    a_.Rm(Width::k32, {static_cast<uint8_t>(op << 3 | 1)}, Assembler::Num(G(i.reg)), At(kHost));
  } else {
    a_.AluRM(Width::k32, op, G(i.reg), At(kHost));
    if (writes) Written(i.reg);
  }
  flags_ = FlagsAt::kHostFlags;
  if (store) CheckSelfModify(4, index, next);
}

void BlockCompiler::AluImm(const Insn& i, uint32_t index, uint32_t eip, uint32_t next) {
  uint8_t op = i.reg;
  uint32_t imm = i.opcode == 0x83 ? SignExtend(i.imm, 1) : i.imm;
  bool reads_cf = op == 2 || op == 3;
  bool writes = op != 7;
  if (!i.has_mem) {
    if (reads_cf) FlagsToHost();
    a_.AluRI(Width::k32, op, G(i.rm), static_cast<int32_t>(imm));
    if (writes) Written(i.rm);
    flags_ = FlagsAt::kHostFlags;
    return;
  }
  Lookup(i, 4, writes, eip, index);
  if (reads_cf) FlagsToHost();
  a_.Rm(Width::k32, {0x81}, op, At(kHost));
  a_.Imm32(imm);
  flags_ = FlagsAt::kHostFlags;
  if (writes) CheckSelfModify(4, index, next);
}

void BlockCompiler::Mov(const Insn& i, Form f, uint32_t index, uint32_t eip, uint32_t next) {
  switch (f) {
    case Form::kMovRmReg:
    case Form::kMovRmReg8: {
      Width w = f == Form::kMovRmReg ? Width::k32 : Width::k8;
      if (!i.has_mem) {
        if (w == Width::k32) a_.MovRR(w, G(i.rm), G(i.reg));
        else a_.Rm(w, {0x88}, Assembler::Num(G(i.reg)), G(i.rm));
        Written(i.rm);
        return;
      }
      uint8_t size = w == Width::k32 ? 4 : 1;
      Lookup(i, size, true, eip, index);
      a_.Store(w, At(kHost), G(i.reg));
      CheckSelfModify(size, index, next);
      return;
    }
    case Form::kMovRegRm:
      if (!i.has_mem) {
        a_.MovRR(Width::k32, G(i.reg), G(i.rm));
      } else {
        Lookup(i, 4, false, eip, index);
        a_.Load(Width::k32, G(i.reg), At(kHost));
      }
      Written(i.reg);
      return;
    case Form::kMovRegImm:
      a_.MovImm32(G(i.opcode & 7), i.imm);
      Written(i.opcode & 7);
      return;
    case Form::kMovRmImm8:
    case Form::kMovRmImm: {
      bool byte = f == Form::kMovRmImm8;
      if (!i.has_mem) {
        if (byte) {
          a_.Rm(Width::k8, {0xc6}, 0, G(i.rm));
          a_.Byte(static_cast<uint8_t>(i.imm));
        } else {
          a_.MovImm32(G(i.rm), i.imm);
        }
        Written(i.rm);
        return;
      }
      uint8_t size = byte ? 1 : 4;
      Lookup(i, size, true, eip, index);
      if (byte) {
        a_.Rm(Width::k32, {0xc6}, 0, At(kHost));  // C6 /0 ib is byte-sized by its opcode
        a_.Byte(static_cast<uint8_t>(i.imm));
      } else {
        a_.Rm(Width::k32, {0xc7}, 0, At(kHost));
        a_.Imm32(i.imm);
      }
      CheckSelfModify(size, index, next);
      return;
    }
    default: return;
  }
}

// A jump back to the block's start loops; any other target leaves the block.
void BlockCompiler::Branch(const Insn& i, Form f, uint32_t next) {
  uint32_t n = static_cast<uint32_t>(insns_.size());
  uint32_t target = next + SignExtend(i.imm, i.imm_size);
  if (f == Form::kJmp) {
    if (target == eip_) {
      BackEdge();
    } else {
      a_.Jmp(ExitTo(target, n));
    }
    return;
  }
  FlagsToHost();
  Cond cc = static_cast<Cond>(i.opcode & 0xf);
  if (target == eip_) {
    a_.Jcc(cc ^ 1, ExitTo(next, n));
    BackEdge();
    return;
  }
  a_.Jcc(cc, ExitTo(target, n));
  a_.Jmp(ExitTo(next, n));
}

void BlockCompiler::Instruction(const Insn& i, uint32_t index, uint32_t eip, uint32_t next) {
  Form f = Classify(i);
  switch (f) {
    case Form::kAluRmReg: Alu(i, index, eip, next, static_cast<uint8_t>(i.opcode >> 3), true); return;
    case Form::kAluRegRm: Alu(i, index, eip, next, static_cast<uint8_t>(i.opcode >> 3), false); return;
    case Form::kAluAccImm: {
      uint8_t op = static_cast<uint8_t>(i.opcode >> 3);
      if (op == 2 || op == 3) FlagsToHost();
      a_.AluRI(Width::k32, op, G(kRax), static_cast<int32_t>(i.imm));
      if (op != 7) Written(kRax);
      flags_ = FlagsAt::kHostFlags;
      return;
    }
    case Form::kAluRmImm: AluImm(i, index, eip, next); return;
    case Form::kTestRmReg:
      if (i.has_mem) {
        Lookup(i, 4, false, eip, index);
        a_.Rm(Width::k32, {0x85}, Assembler::Num(G(i.reg)), At(kHost));
      } else {
        a_.Rm(Width::k32, {0x85}, Assembler::Num(G(i.reg)), G(i.rm));
      }
      flags_ = FlagsAt::kHostFlags;
      return;
    case Form::kTestAccImm:
      a_.Rm(Width::k32, {0xf7}, 0, G(kRax));
      a_.Imm32(i.imm);
      flags_ = FlagsAt::kHostFlags;
      return;
    case Form::kIncDec: {
      // INC/DEC keep CF: the host's CF must be the guest's first.
      FlagsToHost();
      uint8_t r = i.opcode & 7;
      a_.Rm(Width::k32, {0xff}, (i.opcode & 8) ? 1 : 0, G(r));
      Written(r);
      return;
    }
    case Form::kMovRmReg:
    case Form::kMovRmReg8:
    case Form::kMovRegRm:
    case Form::kMovRegImm:
    case Form::kMovRmImm8:
    case Form::kMovRmImm: Mov(i, f, index, eip, next); return;
    case Form::kLea:
      a_.Lea(Width::k32, G(i.reg), GuestAddress(i.mem));
      Written(i.reg);
      return;
    case Form::kNop: return;
    case Form::kJcc:
    case Form::kJmp: Branch(i, f, next); return;
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
  a_.AluRI(Width::k32, 4, HostReg::kRdx, static_cast<int32_t>(kArithFlags & 0xff));
  a_.MovzxEaxAl();
  a_.Shl(Width::k32, HostReg::kRax, 11);
  a_.AluRR(Width::k32, 1, HostReg::kRdx, HostReg::kRax);
  a_.Load(Width::k64, HostReg::kRax, At(HostReg::kRcx, Off(offsetof(CpuState, rflags))));
  a_.AluRI(Width::k64, 4, HostReg::kRax, static_cast<int32_t>(~kArithFlags));
  a_.AluRR(Width::k64, 1, HostReg::kRax, HostReg::kRdx);
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
  for (const Insn& i : insns_) guest_bytes_ += i.len;
  Prologue();
  Head();
  uint32_t eip = eip_;
  for (uint32_t index = 0; index < insns_.size(); ++index) {
    uint32_t next = eip + insns_[index].len;
    Instruction(insns_[index], index, eip, next);
    eip = next;
  }
  if (!EndsBlock(Classify(insns_.back())))
    a_.Jmp(ExitTo(eip, static_cast<uint32_t>(insns_.size())));
  Exits();
  Epilogue();
  return {a_.code(), guest_bytes_, static_cast<uint32_t>(insns_.size())};
}

}  // namespace

std::optional<CompiledBlock> CompileBlock(uint32_t eip, const uint8_t* bytes, uint32_t avail) {
  std::vector<Insn> insns;
  uint32_t off = 0;
  while (insns.size() < kMaxBlockInsns && off < avail) {
    Insn i;
    if (Decode(bytes + off, avail - off, /*default32=*/true, i) != DecodeStatus::kOk) break;
    Form f = Classify(i);
    if (f == Form::kUnsupported || off + i.len > kMaxBlockBytes) break;
    insns.push_back(i);
    off += i.len;
    if (EndsBlock(f)) break;
  }
  if (insns.empty()) return std::nullopt;
  return BlockCompiler(eip, insns).Compile();
}

}  // namespace kvmlike::x86::translator
