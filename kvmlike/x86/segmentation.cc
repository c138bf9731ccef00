#include "kvmlike/x86/segmentation.h"

namespace kvmlike::x86 {

namespace {

using segmentation_detail::kTypeCode;
using segmentation_detail::kTypeExpandDown;
using segmentation_detail::kTypeWritable;
constexpr uint8_t kTypeAccessed = 1;
constexpr uint16_t kSelectorTi = 4;     // LDT

uint16_t SelectorError(uint16_t selector) { return selector & 0xfffc; }
bool IsNull(uint16_t selector) { return (selector & 0xfffc) == 0; }

// Real mode keeps the hidden limit and attributes (which is what lets
// "unreal mode" code use 4 GiB limits loaded in protected mode).
Segment RealModeLoad(const Segment& old, uint16_t selector) {
  Segment s = old;
  s.selector = selector;
  s.base = uint64_t{selector} << 4;
  s.unusable = 0;
  s.present = 1;
  return s;
}

Segment NullSegment(uint16_t selector) {
  Segment s;
  s.selector = selector;
  s.base = 0;
  s.limit = 0;
  s.type = 0;
  s.present = 0;
  s.s = 0;
  s.unusable = 1;
  return s;
}

// Setting the accessed bit is an idempotent update of the descriptor's type
// byte, which hardware makes on every load of a descriptor that lacks it; a
// fault or stop later in the instruction does not need it undone.
Flow SetAccessed(Machine& m, uint16_t selector, uint64_t raw) {
  if ((raw >> 40) & kTypeAccessed) return Flow::kOk;
  uint64_t base = (selector & kSelectorTi) ? m.cpu.ldt.base : m.cpu.gdt.base;
  Linear type_byte((base + (selector & 0xfff8) + 5) & 0xffffffff);
  return m.phys.SetBitsInRam(GpaOfLinear(type_byte), kTypeAccessed);
}

Flow CheckDataDescriptor(Machine& m, SegReg s, uint16_t selector, const Segment& d) {
  uint16_t err = SelectorError(selector);
  uint8_t rpl = selector & 3, cpl = m.cpl();
  if (!d.s) return m.RaiseError(kVecGp, err);
  if (s == kSs) {
    bool writable_data = !(d.type & kTypeCode) && (d.type & kTypeWritable);
    if (!writable_data || rpl != cpl || d.dpl != cpl) return m.RaiseError(kVecGp, err);
    if (!d.present) return m.RaiseError(kVecSs, err);
    return Flow::kOk;
  }
  bool code = d.type & kTypeCode;
  if (code && !(d.type & kTypeWritable)) return m.RaiseError(kVecGp, err);
  bool conforming_code = code && (d.type & kTypeExpandDown);
  if (!conforming_code && d.dpl < (rpl > cpl ? rpl : cpl)) return m.RaiseError(kVecGp, err);
  if (!d.present) return m.RaiseError(kVecNp, err);
  return Flow::kOk;
}

Flow CheckCodeDescriptor(Machine& m, uint16_t selector, CodeLoad how, const Segment& d) {
  uint16_t err = SelectorError(selector);
  uint8_t rpl = selector & 3, cpl = m.cpl();
  if (!d.s && how == CodeLoad::kJump) return m.Unsupported();  // call/task gate, TSS
  if (!d.s || !(d.type & kTypeCode)) return m.RaiseError(kVecGp, err);
  bool conforming = d.type & kTypeExpandDown;
  switch (how) {
    case CodeLoad::kJump:
      if (conforming ? d.dpl > cpl : (rpl > cpl || d.dpl != cpl)) return m.RaiseError(kVecGp, err);
      break;
    case CodeLoad::kReturn:
      if (rpl < cpl) return m.RaiseError(kVecGp, err);
      if (rpl > cpl) return m.Unsupported();  // return to an outer ring
      if (conforming ? d.dpl > rpl : d.dpl != rpl) return m.RaiseError(kVecGp, err);
      break;
    case CodeLoad::kEvent:
      if (d.dpl > cpl) return m.RaiseError(kVecGp, err);
      if (!conforming && d.dpl < cpl) return m.Unsupported();  // inner ring: TSS stack switch
      break;
  }
  if (!d.present) return m.RaiseError(kVecNp, err);
  return Flow::kOk;
}

// The descriptor selector names, read, checked and marked accessed; out is
// written only when all of that succeeds.
template <typename Check>
Flow LoadDescriptor(Machine& m, uint16_t selector, Segment& out, Check check) {
  uint64_t raw;
  X86_TRY(ReadDescriptor(m, selector, raw));
  Segment d = SegmentFromDescriptor(raw, selector);
  X86_TRY(check(d));
  X86_TRY(SetAccessed(m, selector, raw));
  d.type |= kTypeAccessed;
  out = d;
  return Flow::kOk;
}

}  // namespace

Flow ReadDescriptor(Machine& m, uint16_t selector, uint64_t& raw) {
  uint64_t base;
  uint32_t limit;
  if (selector & kSelectorTi) {
    if (m.cpu.ldt.unusable || !m.cpu.ldt.present) return m.RaiseError(kVecGp, SelectorError(selector));
    base = m.cpu.ldt.base;
    limit = m.cpu.ldt.limit;
  } else {
    base = m.cpu.gdt.base;
    limit = m.cpu.gdt.limit;
  }
  uint32_t offset = selector & 0xfff8;
  if (offset + 7 > limit) return m.RaiseError(kVecGp, SelectorError(selector));
  return m.ReadLinear(Linear((base + offset) & 0xffffffff), 8, raw);
}

Segment SegmentFromDescriptor(uint64_t raw, uint16_t selector) {
  uint32_t lo = static_cast<uint32_t>(raw), hi = static_cast<uint32_t>(raw >> 32);
  Segment s;
  s.selector = selector;
  s.base = (lo >> 16) | ((hi & 0xff) << 16) | (hi & 0xff000000);
  uint32_t limit = (lo & 0xffff) | (hi & 0xf0000);
  s.g = (hi >> 23) & 1;
  s.limit = s.g ? (limit << 12) | 0xfff : limit;
  s.type = (hi >> 8) & 0xf;
  s.s = (hi >> 12) & 1;
  s.dpl = (hi >> 13) & 3;
  s.present = (hi >> 15) & 1;
  s.avl = (hi >> 20) & 1;
  s.l = (hi >> 21) & 1;
  s.db = (hi >> 22) & 1;
  s.unusable = 0;
  return s;
}

Flow LoadDataSegment(Machine& m, SegReg s, uint16_t selector, Segment& out) {
  if (!m.protected_mode()) {
    out = RealModeLoad(m.cpu.seg[s], selector);
    return Flow::kOk;
  }
  if (IsNull(selector)) {
    if (s == kSs) return m.RaiseError(kVecGp, 0);
    out = NullSegment(selector);
    return Flow::kOk;
  }
  return LoadDescriptor(m, selector, out, [&](const Segment& d) {
    return CheckDataDescriptor(m, s, selector, d);
  });
}

Flow LoadCodeSegment(Machine& m, uint16_t selector, CodeLoad how, Segment& out) {
  if (!m.protected_mode()) {
    out = RealModeLoad(m.cpu.seg[kCs], selector);
    return Flow::kOk;
  }
  if (IsNull(selector)) return m.RaiseError(kVecGp, 0);
  X86_TRY(LoadDescriptor(m, selector, out, [&](const Segment& d) {
    return CheckCodeDescriptor(m, selector, how, d);
  }));
  out.selector = static_cast<uint16_t>((selector & 0xfffc) | m.cpl());
  return Flow::kOk;
}

}  // namespace kvmlike::x86
