// CpuState: the architectural state of one x86 vCPU that the interpreter reads
// and writes — what KVM_GET/SET_REGS and KVM_GET/SET_SREGS exchange, held in
// kvmlike's own types. Segment registers keep their hidden parts (base, limit,
// attributes) as loaded, as hardware does.
#pragma once

#include <array>
#include <cstdint>

namespace kvmlike::x86 {

enum Gpr : int {
  kRax, kRcx, kRdx, kRbx, kRsp, kRbp, kRsi, kRdi,
  kR8, kR9, kR10, kR11, kR12, kR13, kR14, kR15,
};

struct Segment {
  uint64_t base = 0;
  uint32_t limit = 0xffff;
  uint16_t selector = 0;
  uint8_t type = 3;      // data read/write accessed (code segments: 0xb)
  uint8_t present = 1;
  uint8_t dpl = 0;
  uint8_t db = 0;        // default operand size 32 when set
  uint8_t s = 1;         // code/data (not system)
  uint8_t l = 0;
  uint8_t g = 0;
  uint8_t avl = 0;
  uint8_t unusable = 0;
};

struct DescriptorTable {
  uint64_t base = 0;
  uint16_t limit = 0xffff;
};

enum SegReg : int { kEs, kCs, kSs, kDs, kFs, kGs };  // encoding order in ModRM/sreg fields

// RFLAGS bits the interpreter uses.
inline constexpr uint64_t kFlagCf = 1u << 0, kFlagPf = 1u << 2, kFlagAf = 1u << 4,
                          kFlagZf = 1u << 6, kFlagSf = 1u << 7, kFlagTf = 1u << 8,
                          kFlagIf = 1u << 9, kFlagDf = 1u << 10, kFlagOf = 1u << 11;
inline constexpr uint64_t kFlagIopl = 3u << 12, kFlagNt = 1u << 14, kFlagRf = 1u << 16,
                          kFlagVm = 1u << 17, kFlagAc = 1u << 18, kFlagVif = 1u << 19,
                          kFlagVip = 1u << 20, kFlagId = 1u << 21;
inline constexpr uint64_t kFlagsFixed = 1u << 1;  // bit 1 always reads 1

inline constexpr uint64_t kCr0Pe = 1u << 0, kCr0Pg = 1u << 31;
inline constexpr uint64_t kEferLma = 1u << 10;

struct CpuState {
  std::array<uint64_t, 16> gpr{};  // index with Gpr
  uint64_t rip = 0xfff0;
  uint64_t rflags = kFlagsFixed;
  std::array<Segment, 6> seg{};    // index with SegReg
  Segment tr{}, ldt{};
  DescriptorTable gdt{}, idt{};
  uint64_t cr0 = 0x60000010, cr2 = 0, cr3 = 0, cr4 = 0, cr8 = 0;
  uint64_t efer = 0;
  uint64_t apic_base = 0xfee00900;
  std::array<uint64_t, 4> interrupt_bitmap{};

  // The architectural reset state (as KVM reports after KVM_CREATE_VCPU):
  // real mode, CS = 0xf000 with base 0xffff0000, RIP = 0xfff0.
  static CpuState Reset();
};

}  // namespace kvmlike::x86
