// KVM_GET/SET_REGS and KVM_GET/SET_SREGS: conversions between the uAPI
// structs and CpuState. kvm_regs lists GPRs in its own order (rax, rbx, rcx,
// rdx, rsi, rdi, rsp, rbp, r8..r15); CpuState uses the instruction encoding.
#include "base/user_copy.h"
#include "kvm_uapi.h"
#include "kvmlike/vcpu.h"

namespace kvmlike {

using base::Result;
using x86::CpuState;

namespace {

struct GprField {
  __u64 kvm_regs::*field;
  x86::Gpr gpr;
};

constexpr GprField kGprFields[16] = {
    {&kvm_regs::rax, x86::kRax}, {&kvm_regs::rbx, x86::kRbx}, {&kvm_regs::rcx, x86::kRcx},
    {&kvm_regs::rdx, x86::kRdx}, {&kvm_regs::rsi, x86::kRsi}, {&kvm_regs::rdi, x86::kRdi},
    {&kvm_regs::rsp, x86::kRsp}, {&kvm_regs::rbp, x86::kRbp}, {&kvm_regs::r8, x86::kR8},
    {&kvm_regs::r9, x86::kR9},   {&kvm_regs::r10, x86::kR10}, {&kvm_regs::r11, x86::kR11},
    {&kvm_regs::r12, x86::kR12}, {&kvm_regs::r13, x86::kR13}, {&kvm_regs::r14, x86::kR14},
    {&kvm_regs::r15, x86::kR15},
};

kvm_regs ToUapi(const CpuState& c) {
  kvm_regs r{};
  for (const GprField& f : kGprFields) r.*f.field = c.gpr[f.gpr];
  r.rip = c.rip;
  r.rflags = c.rflags;
  return r;
}

void FromUapi(const kvm_regs& r, CpuState& c) {
  for (const GprField& f : kGprFields) c.gpr[f.gpr] = r.*f.field;
  c.rip = r.rip;
  c.rflags = r.rflags | x86::kFlagsFixed;
}

kvm_segment ToUapi(const x86::Segment& s) {
  kvm_segment k{};
  k.base = s.base;
  k.limit = s.limit;
  k.selector = s.selector;
  k.type = s.type;
  k.present = s.present;
  k.dpl = s.dpl;
  k.db = s.db;
  k.s = s.s;
  k.l = s.l;
  k.g = s.g;
  k.avl = s.avl;
  k.unusable = s.unusable;
  return k;
}

x86::Segment FromUapi(const kvm_segment& k) {
  x86::Segment s;
  s.base = k.base;
  s.limit = k.limit;
  s.selector = k.selector;
  s.type = k.type;
  s.present = k.present;
  s.dpl = k.dpl;
  s.db = k.db;
  s.s = k.s;
  s.l = k.l;
  s.g = k.g;
  s.avl = k.avl;
  s.unusable = k.unusable;
  return s;
}

kvm_sregs ToUapiSregs(const CpuState& c) {
  kvm_sregs s{};
  s.cs = ToUapi(c.seg[x86::kCs]);
  s.ds = ToUapi(c.seg[x86::kDs]);
  s.es = ToUapi(c.seg[x86::kEs]);
  s.fs = ToUapi(c.seg[x86::kFs]);
  s.gs = ToUapi(c.seg[x86::kGs]);
  s.ss = ToUapi(c.seg[x86::kSs]);
  s.tr = ToUapi(c.tr);
  s.ldt = ToUapi(c.ldt);
  s.gdt = {c.gdt.base, c.gdt.limit, {}};
  s.idt = {c.idt.base, c.idt.limit, {}};
  s.cr0 = c.cr0;
  s.cr2 = c.cr2;
  s.cr3 = c.cr3;
  s.cr4 = c.cr4;
  s.cr8 = c.cr8;
  s.efer = c.efer;
  s.apic_base = c.apic_base;
  for (int i = 0; i < 4; i++) s.interrupt_bitmap[i] = c.interrupt_bitmap[i];
  return s;
}

void FromUapiSregs(const kvm_sregs& s, CpuState& c) {
  c.seg[x86::kCs] = FromUapi(s.cs);
  c.seg[x86::kDs] = FromUapi(s.ds);
  c.seg[x86::kEs] = FromUapi(s.es);
  c.seg[x86::kFs] = FromUapi(s.fs);
  c.seg[x86::kGs] = FromUapi(s.gs);
  c.seg[x86::kSs] = FromUapi(s.ss);
  c.tr = FromUapi(s.tr);
  c.ldt = FromUapi(s.ldt);
  c.gdt = {s.gdt.base, s.gdt.limit};
  c.idt = {s.idt.base, s.idt.limit};
  c.cr0 = s.cr0;
  c.cr2 = s.cr2;
  c.cr3 = s.cr3;
  c.cr4 = s.cr4;
  c.cr8 = s.cr8;
  c.efer = s.efer;
  c.apic_base = s.apic_base;
  for (int i = 0; i < 4; i++) c.interrupt_bitmap[i] = s.interrupt_bitmap[i];
}

}  // namespace

Result<long> Vcpu::GetRegs(unsigned long arg) {
  TRY(base::WriteUser(arg, ToUapi(cpu_)));
  return 0;
}

Result<long> Vcpu::SetRegs(unsigned long arg) {
  TRY_ASSIGN(kvm_regs r, base::ReadUser<kvm_regs>(arg));
  FromUapi(r, cpu_);
  return 0;
}

Result<long> Vcpu::GetSregs(unsigned long arg) {
  TRY(base::WriteUser(arg, ToUapiSregs(cpu_)));
  return 0;
}

// kvm_is_valid_sregs: paging needs protected mode, and long mode needs PAE
// paging; an invalid set changes nothing.
static bool ValidSregs(const kvm_sregs& s) {
  constexpr uint64_t kPe = 1u << 0, kPg = 1u << 31, kPae = 1u << 5, kLme = 1u << 8, kLma = 1u << 10;
  if ((s.cr0 & kPg) && !(s.cr0 & kPe)) return false;
  if ((s.efer & kLme) && (s.cr0 & kPg)) {
    if (!(s.cr4 & kPae) || !(s.efer & kLma)) return false;
  } else if (s.efer & kLma) {
    return false;
  }
  return true;
}

Result<long> Vcpu::SetSregs(unsigned long arg) {
  TRY_ASSIGN(kvm_sregs s, base::ReadUser<kvm_sregs>(arg));
  if (!ValidSregs(s)) return base::Error::kInvalid;
  FromUapiSregs(s, cpu_);
  return 0;
}

}  // namespace kvmlike
