#include "kvmlike/x86/exceptions.h"

#include "kvmlike/x86/registers.h"
#include "kvmlike/x86/segmentation.h"
#include "kvmlike/x86/stack.h"

namespace kvmlike::x86 {

namespace {

constexpr uint8_t kGateTask = 0x05, kGateInt16 = 0x06, kGateTrap16 = 0x07, kGateInt32 = 0x0e,
                  kGateTrap32 = 0x0f;

bool Contributory(uint8_t v) { return v == kVecDe || (v >= kVecTs && v <= kVecGp); }

// The double-fault table (SDM vol. 3, "Interrupt 8"): benign exceptions
// never combine into #DF; the second of such a pair is simply delivered.
bool MakesDoubleFault(uint8_t first, uint8_t second) {
  if (Contributory(first)) return Contributory(second);
  if (first == kVecPf) return Contributory(second) || second == kVecPf;
  return false;
}

Flow EnterReal(Machine& m, const Event& ev) {
  uint32_t entry_offset = uint32_t{ev.vector} * 4;
  if (entry_offset + 3 > m.cpu.idt.limit) return m.RaiseError(kVecGp, ev.vector * 8 + kErrIdt);
  uint64_t entry;
  X86_TRY(m.ReadLinear(Linear((m.cpu.idt.base + entry_offset) & 0xffffffff), 4, entry));
  Segment cs;
  X86_TRY(LoadCodeSegment(m, static_cast<uint16_t>(entry >> 16), CodeLoad::kEvent, cs));
  Stack stack(m);
  X86_TRY(stack.Push(static_cast<uint32_t>(m.cpu.rflags), 2));
  X86_TRY(stack.Push(m.cpu.seg[kCs].selector, 2));
  X86_TRY(stack.Push(ev.return_ip, 2));
  stack.Commit();
  m.cpu.seg[kCs] = cs;
  m.cpu.rip = entry & 0xffff;
  m.cpu.rflags &= ~(kFlagIf | kFlagTf | kFlagAc);
  return Flow::kOk;
}

struct Gate {
  uint8_t type;
  uint8_t dpl;
  bool present;
  uint16_t selector;
  uint32_t offset;
};

Gate ParseGate(uint64_t raw) {
  uint32_t lo = static_cast<uint32_t>(raw), hi = static_cast<uint32_t>(raw >> 32);
  Gate g;
  g.type = (hi >> 8) & 0x1f;  // S bit included: gates are system descriptors (S = 0)
  g.dpl = (hi >> 13) & 3;
  g.present = (hi >> 15) & 1;
  g.selector = static_cast<uint16_t>(lo >> 16);
  bool gate32 = g.type == kGateInt32 || g.type == kGateTrap32;
  g.offset = gate32 ? (lo & 0xffff) | (hi & 0xffff0000) : lo & 0xffff;
  return g;
}

Flow ReadGate(Machine& m, const Event& ev, Gate& g) {
  uint16_t idt_error = static_cast<uint16_t>(ev.vector * 8 + kErrIdt);
  uint32_t entry_offset = uint32_t{ev.vector} * 8;
  if (entry_offset + 7 > m.cpu.idt.limit) return m.RaiseError(kVecGp, idt_error);
  uint64_t raw;
  X86_TRY(m.ReadLinear(Linear((m.cpu.idt.base + entry_offset) & 0xffffffff), 8, raw));
  g = ParseGate(raw);
  if (g.type == kGateTask) return m.Unsupported();
  if (g.type != kGateInt16 && g.type != kGateTrap16 && g.type != kGateInt32 &&
      g.type != kGateTrap32)
    return m.RaiseError(kVecGp, idt_error);
  if (ev.kind == EventKind::kSoftware && g.dpl < m.cpl()) return m.RaiseError(kVecGp, idt_error);
  if (!g.present) return m.RaiseError(kVecNp, idt_error);
  return Flow::kOk;
}

// Fault-class exceptions restart the faulting instruction, so the EFLAGS image
// they push has RF set (an instruction breakpoint must not fire again on the
// restart); traps, aborts and software interrupts push EFLAGS as it is.
bool PushesResumeFlag(const Event& ev) {
  if (ev.kind != EventKind::kException) return false;
  switch (ev.vector) {
    case 0: case 5: case 6: case 7: case 10: case 11: case 12: case 13: case 14:
    case 16: case 17: case 19: case 20:
      return true;
    default:
      return false;
  }
}

Flow EnterProtected(Machine& m, const Event& ev) {
  Gate gate;
  X86_TRY(ReadGate(m, ev, gate));
  Segment cs;
  X86_TRY(LoadCodeSegment(m, gate.selector, CodeLoad::kEvent, cs));
  if (gate.offset > cs.limit) return m.RaiseError(kVecGp, 0);
  uint8_t size = (gate.type == kGateInt32 || gate.type == kGateTrap32) ? 4 : 2;
  Stack stack(m);
  uint64_t pushed_flags = m.cpu.rflags | (PushesResumeFlag(ev) ? kFlagRf : 0);
  X86_TRY(stack.Push(static_cast<uint32_t>(pushed_flags), size));
  X86_TRY(stack.Push(m.cpu.seg[kCs].selector, size));
  X86_TRY(stack.Push(ev.return_ip, size));
  if (ev.has_error_code) X86_TRY(stack.Push(ev.error_code, size));
  stack.Commit();
  m.cpu.seg[kCs] = cs;
  m.cpu.rip = gate.offset;
  m.cpu.rflags &= ~(kFlagTf | kFlagNt | kFlagRf | kFlagVm);
  if (gate.type == kGateInt16 || gate.type == kGateInt32) m.cpu.rflags &= ~kFlagIf;
  return Flow::kOk;
}

Flow Shutdown(Machine& m) {
  m.phys.stop().reason = StopReason::kShutdown;
  return Flow::kStop;
}

}  // namespace

Flow EnterHandler(Machine& m, const Event& ev) {
  m.set_ext(ev.kind == EventKind::kException);
  Flow f = m.protected_mode() ? EnterProtected(m, ev) : EnterReal(m, ev);
  m.set_ext(false);
  return f;
}

Flow DeliverFault(Machine& m, Fault f) {
  uint32_t ip = static_cast<uint32_t>(m.cpu.rip);
  for (;;) {
    Event ev{f.vector, EventKind::kException, f.has_error_code, f.error_code, ip};
    Flow r = EnterHandler(m, ev);
    if (r != Flow::kFault) return r;
    const Fault& next = m.fault();
    if (f.vector == kVecDf) return Shutdown(m);
    f = MakesDoubleFault(f.vector, next.vector) ? Fault{kVecDf, true, 0} : next;
  }
}

}  // namespace kvmlike::x86
