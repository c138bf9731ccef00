#include "kvmlike/x86/interpreter.h"

#include <algorithm>
#include <cstring>

#include "kvmlike/x86/decoder.h"
#include "kvmlike/x86/exceptions.h"
#include "kvmlike/x86/executor.h"
#include "kvmlike/x86/machine.h"
#include "kvmlike/x86/phys_access.h"

namespace kvmlike::x86 {

namespace {

struct Fetched {
  uint8_t bytes[kMaxInsnLen];
  uint32_t count = 0;     // bytes copied from guest memory
  uint32_t insn_len = 0;  // the decoded length, 0 until decoded
};

// States the subset cannot run at all: guest paging, long mode,
// virtual-8086 mode.
bool Emulatable(const CpuState& cpu) {
  return !(cpu.cr0 & kCr0Pg) && !(cpu.efer & kEferLma) && !(cpu.rflags & kFlagVm);
}

// Copies the instruction's bytes with one Translate when they lie in one
// page (the common case), and a second one only when decoding runs past the
// page end. Bytes past CS's limit are never fetched: an instruction that
// needs them is #GP(0), as is one longer than 15 bytes.
Flow FetchAndDecode(Machine& m, Insn& insn, Fetched& f) {
  const Segment& cs = m.cpu.seg[kCs];
  uint32_t ip = static_cast<uint32_t>(m.cpu.rip);
  if (ip > cs.limit) return m.RaiseError(kVecGp, 0);
  uint32_t in_limit = static_cast<uint32_t>(std::min<uint64_t>(kMaxInsnLen, uint64_t{cs.limit} - ip + 1));
  uint64_t lin = (cs.base + ip) & 0xffffffff;
  uint32_t in_page = static_cast<uint32_t>(base::kPageSize - (lin & (base::kPageSize - 1)));
  uint32_t n = std::min(in_limit, in_page);
  X86_TRY(m.phys.Fetch(GpaOfLinear(Linear(lin)), f.bytes, n));
  f.count = n;
  DecodeStatus s = Decode(f.bytes, n, cs.db, insn);
  if (s == DecodeStatus::kNeedBytes && n < in_limit) {
    X86_TRY(m.phys.Fetch(GpaOfLinear(Linear((lin + n) & 0xffffffff)), f.bytes + n, in_limit - n));
    f.count = in_limit;
    s = Decode(f.bytes, in_limit, cs.db, insn);
  }
  switch (s) {
    case DecodeStatus::kOk:
      f.insn_len = insn.len;
      return Flow::kOk;
    case DecodeStatus::kUnknown: return m.Unsupported();
    case DecodeStatus::kNeedBytes:
    case DecodeStatus::kTooLong: break;
  }
  return m.RaiseError(kVecGp, 0);
}

// One attempt at the instruction at RIP. RIP moves only when it completes.
Flow Step(Machine& m, Insn& insn, Fetched& f, bool& retired) {
  m.phys.BeginAttempt(m.cpu.rip);
  f.count = 0;
  f.insn_len = 0;
  // Single-step traps (#DB after each instruction while TF is set) are not
  // modelled; running on without them would be silently wrong.
  if (m.cpu.rflags & kFlagTf) [[unlikely]] return m.Unsupported();
  X86_TRY(FetchAndDecode(m, insn, f));
  Executor ex(m, insn);
  X86_TRY(ex.Execute());
  m.cpu.rip = ex.next_ip();
  retired = ex.retired();
  return Flow::kOk;
}

// The emulation-failure exit carries the instruction: its decoded bytes, or
// all that was fetched when the decoder did not know the opcode.
void FillInstruction(Stop& stop, const Fetched& f) {
  uint32_t len = f.insn_len ? f.insn_len : f.count;
  stop.internal.insn_len = static_cast<uint8_t>(len);
  stop.internal.insn = {};
  std::memcpy(stop.internal.insn.data(), f.bytes, len);
}

}  // namespace

Stop Interpreter::Run(CpuState& cpu, GuestMemory& mem, uint64_t max_insns) {
  Stop stop;
  PhysAccess phys(mem, pending_, stop);
  Machine m(cpu, phys);
  if (!Emulatable(cpu)) {
    (void)phys.Unsupported();
    return stop;
  }
  Insn insn;
  Fetched f;
  for (uint64_t n = 0; n < max_insns; ++n) {
    bool retired = true;
    Flow flow = Step(m, insn, f, retired);
    if (flow == Flow::kOk) [[likely]] {
      retired_ += retired;
      // The completed instruction consumed what it was given; nothing may
      // feed a later one.
      if (!pending_.empty()) pending_.Clear();
      if (phys.stop_after_retire()) return stop;
      continue;
    }
    if (flow == Flow::kFault) {
      // Pending reads survive until the handler is entered: if delivery
      // stops on an MMIO read, the faulting instruction runs again, consumes
      // its own completed reads and the delivery continues with the next.
      flow = DeliverFault(m, m.fault());
      if (flow == Flow::kOk) {
        pending_.Clear();
        if (phys.stop_after_retire()) return stop;  // the frame went to MMIO
        continue;
      }
    }
    if (flow == Flow::kRetry) {
      ++retries_;
      continue;
    }
    if (stop.reason == StopReason::kInternalError)
      FillInstruction(stop, f);
    return stop;
  }
  stop = Stop{};
  stop.reason = StopReason::kBudget;
  return stop;
}

void Interpreter::CompleteHypercall(CpuState& cpu, uint64_t ret) {
  bool long_mode = (cpu.efer & kEferLma) && cpu.seg[kCs].l;
  cpu.gpr[kRax] = long_mode ? ret : static_cast<uint32_t>(ret);
  cpu.rip = long_mode ? cpu.rip + 3 : (cpu.rip + 3) & 0xffffffff;
}

}  // namespace kvmlike::x86
