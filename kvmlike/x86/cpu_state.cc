#include "kvmlike/x86/cpu_state.h"

namespace kvmlike::x86 {

namespace {

// Real-mode segment as the reset leaves it: a 64 KiB window at selector << 4.
Segment RealSegment(uint16_t selector, uint8_t type) {
  Segment s;
  s.selector = selector;
  s.base = uint64_t{selector} << 4;
  s.limit = 0xffff;
  s.type = type;
  return s;
}

// TR and LDTR are system segments: present, selector 0, 64 KiB limit.
Segment SystemSegment(uint8_t type) {
  Segment s;
  s.type = type;
  s.s = 0;
  return s;
}

}  // namespace

// Values as KVM reports them after KVM_CREATE_VCPU (kvm_vcpu_reset): RDX holds
// the processor signature that CPUID.1.EAX would give before a CPUID table is
// set (family 6), and CS is the only segment whose base is not selector << 4 —
// the first fetch comes from 0xfffffff0, the top of the 4 GiB space.
CpuState CpuState::Reset() {
  CpuState c;
  c.gpr[kRdx] = 0x600;
  c.rip = 0xfff0;
  c.rflags = kFlagsFixed;
  for (Segment& s : c.seg) s = RealSegment(0, 0x3);
  c.seg[kCs] = RealSegment(0xf000, 0xb);
  c.seg[kCs].base = 0xffff0000;
  c.tr = SystemSegment(0xb);
  c.ldt = SystemSegment(0x2);
  c.gdt = {0, 0xffff};
  c.idt = {0, 0xffff};
  c.cr0 = 0x60000010;
  c.efer = 0;
  c.apic_base = 0xfee00900;
  return c;
}

}  // namespace kvmlike::x86
