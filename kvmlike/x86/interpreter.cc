#include "kvmlike/x86/interpreter.h"

#include <algorithm>
#include <cstring>
#include <span>

#include "kvmlike/x86/decoder.h"
#include "kvmlike/x86/exceptions.h"
#include "kvmlike/x86/executor.h"
#include "kvmlike/x86/machine.h"
#include "kvmlike/x86/phys_access.h"

namespace kvmlike::x86 {

namespace {

// What a step fetched, for the emulation-failure exit. Every path through
// Step sets it, so that the common one stores a single pointer.
struct Fetched {
  const DecodeCache::Entry* cached = nullptr;  // the instruction, when the cache has it
  uint32_t count = 0;     // else the bytes copied to copy (0: none)
  uint32_t insn_len = 0;  // with count: their decoded length (0: not decoded)
  uint8_t copy[kMaxInsnLen];
  Insn decoded;

  void Nothing() {
    cached = nullptr;
    count = 0;
  }
};

// States the subset cannot run at all: guest paging, long mode,
// virtual-8086 mode.
bool Emulatable(const CpuState& cpu) {
  return !(cpu.cr0 & kCr0Pg) && !(cpu.efer & kEferLma) && !(cpu.rflags & kFlagVm);
}

// Where the instruction at CS:EIP may be fetched from, EIP within CS's limit.
struct FetchWindow {
  Linear lin;         // its first byte
  uint32_t in_page;   // bytes fetchable before the page end (and CS's limit)
  uint32_t in_limit;  // bytes fetchable before CS's limit (at most 15)
};

FetchWindow WindowAt(const Segment& cs, uint32_t ip) {
  FetchWindow w;
  w.in_limit = static_cast<uint32_t>(std::min<uint64_t>(kMaxInsnLen, uint64_t{cs.limit} - ip + 1));
  uint64_t lin = (cs.base + ip) & 0xffffffff;
  uint32_t to_page_end = static_cast<uint32_t>(base::kPageSize - (lin & (base::kPageSize - 1)));
  w.lin = Linear(lin);
  w.in_page = std::min(w.in_limit, to_page_end);
  return w;
}

// A decode cache miss: copies the bytes the first translation reaches and
// decodes them, translating the next page only when decoding runs past the
// page end. Only a Cacheable instruction goes into the cache.
Flow DecodeAfresh(Machine& m, uint32_t ip, DecodeCache& cache, const uint8_t* host, Fetched& f,
                  const Insn*& insn) {
  const FetchWindow w = WindowAt(m.cpu.seg[kCs], ip);
  bool default32 = m.cpu.seg[kCs].db;
  uint32_t n = w.in_page;
  std::memcpy(f.copy, host, n);
  f.cached = nullptr;
  f.count = n;
  f.insn_len = 0;
  DecodeStatus s = Decode(f.copy, n, default32, f.decoded);
  if (s == DecodeStatus::kOk && DecodeCache::Cacheable(GpaOfLinear(w.lin))) {
    f.cached = &cache.Insert(GpaOfLinear(w.lin), default32, f.copy, f.decoded);
    insn = &f.cached->insn;
    return Flow::kOk;
  }
  if (s == DecodeStatus::kNeedBytes && n < w.in_limit) {
    const uint8_t* rest = nullptr;
    X86_TRY(m.phys.Fetch(GpaOfLinear(Linear((w.lin.value() + n) & 0xffffffff)), rest));
    std::memcpy(f.copy + n, rest, w.in_limit - n);
    f.count = w.in_limit;
    s = Decode(f.copy, w.in_limit, default32, f.decoded);
  }
  switch (s) {
    case DecodeStatus::kOk:
      f.insn_len = f.decoded.len;
      insn = &f.decoded;
      return Flow::kOk;
    case DecodeStatus::kUnknown: return m.Unsupported();
    case DecodeStatus::kNeedBytes:
    case DecodeStatus::kTooLong: break;
  }
  return m.RaiseError(kVecGp, 0);
}

// Bytes past CS's limit are never fetched: an instruction that needs them is
// #GP(0), as is one longer than 15 bytes. Every fetch translates the
// instruction's page, so the MMU sees it; the decode is reused when the bytes
// there are the ones decoded before.
Flow FetchAndDecode(Machine& m, uint32_t ip, DecodeCache& cache, Fetched& f, const Insn*& insn) {
  const Segment& cs = m.cpu.seg[kCs];
  if (ip > cs.limit) [[unlikely]] {
    f.Nothing();
    return m.RaiseError(kVecGp, 0);
  }
  Linear lin((cs.base + ip) & 0xffffffff);
  // Looked up before the translation, so that little lives across its call.
  // A cached instruction lies in its page; only the limit can cut it short.
  const DecodeCache::Entry* e = cache.Find(GpaOfLinear(lin), cs.db);
  if (e && uint64_t{ip} + e->insn.len - 1 > cs.limit) e = nullptr;
  const uint8_t* host = nullptr;
  if (Flow fetched = m.phys.Fetch(GpaOfLinear(lin), host); fetched != Flow::kOk) [[unlikely]] {
    f.Nothing();
    return fetched;
  }
  if (!e || !cache.Matches(*e, host)) [[unlikely]] return DecodeAfresh(m, ip, cache, host, f, insn);
  f.cached = e;
  insn = &e->insn;
  return Flow::kOk;
}

// One attempt at the instruction at RIP. RIP moves only when it completes;
// jumped says whether it went elsewhere than the next instruction.
Flow Step(Machine& m, Executor& ex, DecodeCache& cache, Fetched& f, bool& retired, bool& jumped) {
  uint32_t ip = static_cast<uint32_t>(m.cpu.rip);
  // Single-step traps (#DB after each instruction while TF is set) are not
  // modelled; running on without them would be silently wrong.
  if (m.cpu.rflags & kFlagTf) [[unlikely]] {
    f.Nothing();
    return m.Unsupported();
  }
  const Insn* insn = &f.decoded;
  X86_TRY(FetchAndDecode(m, ip, cache, f, insn));
  ex.Begin(*insn, ip);
  X86_TRY(ex.Execute());
  jumped = ex.next_ip() != ((ip + insn->len) & (m.cpu.seg[kCs].db ? 0xffffffffu : 0xffffu));
  m.cpu.rip = ex.next_ip();
  retired = ex.retired();
  return Flow::kOk;
}

// Runs translated code for the block at RIP once the translator finds it
// hot; ran = 0 when it did not. The block's first byte is fetched through
// the MMU exactly as the interpreter fetches it.
Flow RunTranslated(Machine& m, translator::Translator& t, const InlineTlb& tlb, uint64_t budget,
                   uint64_t& ran) {
  ran = 0;
  if (!translator::Translator::Eligible(m.cpu)) return Flow::kOk;
  base::Gpa gpa = GpaOfLinear(Linear(m.cpu.rip & 0xffffffff));  // CS is flat
  if (!t.Hot(gpa)) return Flow::kOk;
  const uint8_t* host = nullptr;
  X86_TRY(m.phys.Fetch(gpa, host));
  ran = t.Run(gpa, host, m.cpu, tlb, budget);
  return Flow::kOk;
}

// The emulation-failure exit carries the instruction: its decoded bytes, or
// all that was fetched when the decoder did not know the opcode.
std::span<const uint8_t> ExitBytes(const Fetched& f) {
  if (f.cached) return {f.cached->bytes.data(), f.cached->insn.len};
  if (f.count == 0) return {};
  return {f.copy, f.insn_len ? f.insn_len : f.count};
}

void FillInstruction(Stop& stop, const Fetched& f) {
  std::span<const uint8_t> bytes = ExitBytes(f);
  stop.internal.insn_len = static_cast<uint8_t>(bytes.size());
  stop.internal.insn = {};
  if (!bytes.empty()) std::memcpy(stop.internal.insn.data(), bytes.data(), bytes.size());
}

}  // namespace

Stop Interpreter::Run(CpuState& cpu, GuestMemory& mem, uint64_t max_insns) {
  Stop stop;
  PhysAccess phys(mem, pending_, stop, cpu);
  Machine m(cpu, phys);
  if (!Emulatable(cpu)) {
    (void)phys.Unsupported();
    return stop;
  }
  phys.BeginAttempt();
  Executor ex(m);
  Fetched f;
  const InlineTlb* tlb = translator_.enabled() ? mem.inline_tlb() : nullptr;
  bool at_target = true;  // where a block may start: the first instruction, jump targets
  for (uint64_t budget = max_insns; budget > 0; --budget) {
    Flow flow = Flow::kOk;
    if (tlb && at_target && pending_.empty()) {
      at_target = false;
      uint64_t ran = 0;
      flow = RunTranslated(m, translator_, *tlb, budget, ran);
      if (flow == Flow::kOk && ran > 0) {
        // The loop's decrement counts the last of them. The block left
        // before an instruction it does not finish: the interpreter runs it.
        retired_ += ran;
        budget -= ran - 1;
        continue;
      }
      if (flow != Flow::kOk) f.Nothing();
    }
    bool retired = true;
    if (flow == Flow::kOk) flow = Step(m, ex, decode_cache_, f, retired, at_target);
    if (flow == Flow::kOk) [[likely]] {
      retired_ += retired;
      // The completed instruction consumed what it was given; nothing may
      // feed a later one.
      if (!pending_.empty()) [[unlikely]] pending_.Clear();
      if (phys.stop_after_retire()) [[unlikely]] return stop;
      continue;
    }
    if (flow == Flow::kFault) {
      // Pending reads survive until the handler is entered: if delivery
      // stops on an MMIO read, the faulting instruction runs again, consumes
      // its own completed reads and the delivery continues with the next.
      flow = DeliverFault(m, m.fault());
      if (flow == Flow::kOk) {
        at_target = true;
        pending_.Clear();
        if (phys.stop_after_retire()) return stop;  // the frame went to MMIO
        continue;
      }
    }
    if (flow == Flow::kRetry) {
      ++retries_;
      phys.BeginAttempt();
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
