// Segmentation: offsets become linear addresses through the segment
// registers' hidden parts (base, limit, attributes), with the checks hardware
// makes on each access; and segment registers are loaded — in real mode from
// the selector alone (base = selector << 4), in protected mode from the
// GDT/LDT descriptor read through guest memory.
//
// Loads only check and build the new Segment; the caller stores it when the
// instruction commits, so a later fault leaves the register as it was.
#pragma once

#include <cstdint>

#include "kvmlike/x86/cpu_state.h"
#include "kvmlike/x86/flow.h"
#include "kvmlike/x86/guest_memory.h"
#include "kvmlike/x86/machine.h"

namespace kvmlike::x86 {

// Segment s + offset for an access of len bytes of kind. Protected mode:
// unusable segment, wrong type (write to code or read-only data, read of
// execute-only code) and limit (expand-up or expand-down) violations raise
// #GP(0), or #SS(0) for SS. Real mode checks the cached limit only.
[[nodiscard]] inline Flow Linearize(Machine& m, SegReg s, uint32_t offset, uint32_t len,
                                    AccessKind kind, Linear& out);

// A value of size (1, 2 or 4) bytes through segment s.
[[nodiscard]] inline Flow ReadSeg(Machine& m, SegReg s, uint32_t offset, uint8_t size,
                                  uint32_t& value);
[[nodiscard]] inline Flow WriteSeg(Machine& m, SegReg s, uint32_t offset, uint8_t size,
                                   uint32_t value);

// The 8 bytes of the descriptor selector names in the GDT or LDT. Beyond the
// table's limit (or TI = 1 with an unusable LDT): #GP(selector).
[[nodiscard]] Flow ReadDescriptor(Machine& m, uint16_t selector, uint64_t& raw);

// The hidden part a descriptor loads.
Segment SegmentFromDescriptor(uint64_t raw, uint16_t selector);

// DS/ES/FS/GS/SS (not CS) loaded with selector, as MOV Sreg / POP Sreg do.
// Real mode: base = selector << 4, other attributes kept. Protected mode: a
// null selector makes DS..GS unusable and is #GP(0) for SS; otherwise the
// descriptor must be (SS) writable data with RPL = DPL = CPL, or (others) data
// or readable code within privilege: else #GP(sel), not present #NP(sel)
// (#SS(sel) for SS). Sets the descriptor's accessed bit.
[[nodiscard]] Flow LoadDataSegment(Machine& m, SegReg s, uint16_t selector, Segment& out);

// What loads CS; each has its own privilege rules.
enum class CodeLoad : uint8_t {
  kJump,    // far JMP/CALL: non-conforming needs RPL <= CPL and DPL = CPL; conforming DPL <= CPL
  kReturn,  // far RET/IRET: RPL = CPL; non-conforming DPL = RPL, conforming DPL <= RPL
  kEvent,   // interrupt/trap gate target: DPL <= CPL (RPL ignored)
};

// CS loaded with selector (real mode: base = selector << 4, selector kept).
// Protected mode: null selector #GP(0); outside the table, not code or
// privilege rules broken #GP(sel); not present #NP(sel). A call gate, task gate
// or TSS, and any change of privilege level (return to an outer ring, event
// into an inner one) are outside the subset: internal error. The loaded
// selector's RPL is the CPL.
[[nodiscard]] Flow LoadCodeSegment(Machine& m, uint16_t selector, CodeLoad how, Segment& out);

// Whether offset (after a jump) lies within code segment seg's limit.
inline bool WithinLimit(const Segment& seg, uint32_t offset) { return offset <= seg.limit; }

// Linearize, ReadSeg and WriteSeg are inline: every memory operand passes
// through them.
namespace segmentation_detail {

inline constexpr uint8_t kTypeCode = 8;        // code segment (S = 1)
inline constexpr uint8_t kTypeWritable = 2;    // data: writable; code: readable
inline constexpr uint8_t kTypeExpandDown = 4;  // data: expand-down; code: conforming

inline bool TypeAllows(uint8_t type, AccessKind kind) {
  if (kind == AccessKind::kFetch) return true;
  if (type & kTypeCode) return kind == AccessKind::kRead && (type & kTypeWritable);
  return kind == AccessKind::kRead || (type & kTypeWritable);
}

inline bool WithinSegment(const Segment& seg, uint32_t offset, uint32_t len) {
  uint64_t last = uint64_t{offset} + len - 1;
  bool expand_down = !(seg.type & kTypeCode) && (seg.type & kTypeExpandDown);
  if (!expand_down) return last <= seg.limit;
  uint64_t upper = seg.db ? 0xffffffffu : 0xffffu;
  return offset > seg.limit && last <= upper;
}

}  // namespace segmentation_detail

inline Flow Linearize(Machine& m, SegReg s, uint32_t offset, uint32_t len, AccessKind kind,
                      Linear& out) {
  using namespace segmentation_detail;
  const Segment& seg = m.cpu.seg[s];
  if (m.protected_mode() && (seg.unusable || !TypeAllows(seg.type, kind))) [[unlikely]]
    return m.RaiseError(s == kSs ? kVecSs : kVecGp, 0);
  if (!WithinSegment(seg, offset, len)) [[unlikely]]
    return m.RaiseError(s == kSs ? kVecSs : kVecGp, 0);
  out = Linear((seg.base + offset) & 0xffffffff);
  return Flow::kOk;
}

inline Flow ReadSeg(Machine& m, SegReg s, uint32_t offset, uint8_t size, uint32_t& value) {
  Linear lin;
  X86_TRY(Linearize(m, s, offset, size, AccessKind::kRead, lin));
  uint64_t v;
  X86_TRY(m.ReadLinear(lin, size, v));
  value = static_cast<uint32_t>(v);
  return Flow::kOk;
}

inline Flow WriteSeg(Machine& m, SegReg s, uint32_t offset, uint8_t size, uint32_t value) {
  Linear lin;
  X86_TRY(Linearize(m, s, offset, size, AccessKind::kWrite, lin));
  return m.WriteLinear(lin, size, value);
}

}  // namespace kvmlike::x86
