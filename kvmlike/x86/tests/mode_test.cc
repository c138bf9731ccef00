// Modes and segmentation: entering protected mode with LGDT + MOV CR0 + far
// JMP and leaving it again, descriptor loads and their faults, limit and type
// checks, control registers.
#include <doctest/doctest.h>

#include "kvmlike/x86/tests/guest.h"

namespace kvmlike::x86::testing {
namespace {

TEST_CASE("real -> protected -> 16-bit protected -> real mode, keeping the hidden limit") {
  Guest g;
  g.RealMode();
  g.WriteGdt();
  g.mem.Set16(0x1100, Guest::kGdtLimit);  // the LGDT operand
  g.mem.Set32(0x1102, kGdtBase);
  g.Code({
      0xfa,                                            // cli
      0x0f, 0x01, 0x16, 0x00, 0x11,                    // lgdt [0x1100]
      0x0f, 0x20, 0xc0,                                // mov eax, cr0
      0x0c, 0x01,                                      // or al, 1
      0x0f, 0x22, 0xc0,                                // mov cr0, eax (PE = 1, CS still real-mode)
      0x66, 0xea, 0x00, 0x20, 0x00, 0x00, 0x08, 0x00,  // jmp 0x08:0x2000 (ptr16:32)
  });
  g.mem.Load(0x2000, {
      0x66, 0xb8, 0x10, 0x00,                    // mov ax, 0x10
      0x8e, 0xd8,                                // mov ds, ax
      0x8e, 0xc0,                                // mov es, ax
      0x8e, 0xd0,                                // mov ss, ax
      0xbc, 0x00, 0x00, 0x09, 0x00,              // mov esp, 0x90000
      0xc7, 0x05, 0x00, 0x00, 0x20, 0x00, 0xef, 0xbe, 0xad, 0xde,  // mov dword [0x200000], 0xdeadbeef
      0xea, 0x00, 0x50, 0x00, 0x00, 0x18, 0x00,  // jmp 0x18:0x5000 (16-bit code segment)
  });
  g.mem.Load(0x5000, {
      0x0f, 0x20, 0xc0,              // mov eax, cr0
      0x24, 0xfe,                    // and al, 0xfe
      0x0f, 0x22, 0xc0,              // mov cr0, eax (PE = 0)
      0xea, 0x00, 0x60, 0x00, 0x00,  // jmp 0x0000:0x6000 (real-mode far jump)
  });
  g.mem.Load(0x6000, {
      0x31, 0xc0,                          // xor ax, ax
      0x8e, 0xd8,                          // mov ds, ax (limit stays 4 GiB)
      0x66, 0xbe, 0x00, 0x00, 0x20, 0x00,  // mov esi, 0x200000
      0x67, 0x66, 0x8b, 0x1e,              // mov ebx, [esi]
      0xf4,                                // hlt
  });

  SUBCASE("stepping into protected mode") {
    REQUIRE(g.Run(6).reason == StopReason::kBudget);
    CHECK((g.cpu.cr0 & kCr0Pe) == kCr0Pe);
    CHECK(g.cpu.gdt.base == kGdtBase);
    CHECK(g.cpu.gdt.limit == Guest::kGdtLimit);
    CHECK(g.cpu.seg[kCs].selector == kCode32);
    CHECK(g.cpu.seg[kCs].db == 1);
    CHECK(g.cpu.seg[kCs].limit == 0xffffffff);
    CHECK(g.cpu.rip == 0x2000);
    CHECK((g.cpu.rflags & kFlagIf) == 0);
  }
  SUBCASE("and back") {
    REQUIRE(g.Run().reason == StopReason::kHlt);
    CHECK(g.mem.u32(0x200000) == 0xdeadbeef);
    CHECK((g.cpu.cr0 & kCr0Pe) == 0);
    CHECK(g.cpu.seg[kCs].selector == 0);
    CHECK(g.cpu.seg[kCs].base == 0);
    CHECK(g.cpu.seg[kDs].base == 0);
    CHECK(g.cpu.seg[kDs].limit == 0xffffffff);  // "unreal mode"
    CHECK(g.reg(kRbx) == 0xdeadbeef);
    CHECK(g.reg(kRsp) == 0x90000);
  }
}

TEST_CASE("real mode: an offset past the 64 KiB limit is #GP, or #SS through SS") {
  Guest g;
  g.RealMode();
  g.InstallHaltHandlers();
  g.Code({0x8b, 0x87, 0xff, 0xff});  // mov ax, [bx+0xffff] with BX = 0: a word at 0xffff
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK(g.HandledVector() == kVecGp);
  CHECK(g.mem.u16(0x7000 - 6) == Guest::kCode);  // IP of the faulting instruction

  g.RealMode();
  g.InstallHaltHandlers();
  g.Code({0x8b, 0x46, 0xff});  // mov ax, [bp-1] with BP = 0: SS:0xffff
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK(g.HandledVector() == kVecSs);
}

// One instruction in flat protected mode; which handler ran and its error code.
struct FaultRow {
  const char* text;
  std::vector<uint8_t> code;
  uint32_t eax;
  int vector;
  uint32_t error_code;  // checked for vectors that push one
};

const FaultRow kSegmentFaults[] = {
    {"mov ds, beyond the GDT limit", {0x8e, 0xd8}, 0x48, kVecGp, 0x48},
    {"mov ds, a not-present segment", {0x8e, 0xd8}, kNotPresent, kVecNp, kNotPresent},
    {"mov ss, a not-present segment", {0x8e, 0xd0}, kNotPresent, kVecSs, kNotPresent},
    {"mov ss, null", {0x8e, 0xd0}, 0, kVecGp, 0},
    {"mov ss, read-only data", {0x8e, 0xd0}, kDataRo, kVecGp, kDataRo},
    {"mov ss, RPL != CPL", {0x8e, 0xd0}, kData32 | 3, kVecGp, kData32},
    {"mov ds, a readable DPL 3 code segment", {0x8e, 0xd8}, kCodeDpl3, -1, 0},
    {"mov ds, with RPL 3 to a DPL 0 segment", {0x8e, 0xd8}, kData32 | 3, kVecGp, kData32},
    {"mov ds, an LDT selector whose LDT entry is empty", {0x8e, 0xd8}, 0x0c, kVecGp, 0x0c},
    {"mov cs, ax", {0x8e, 0xc8}, kCode32, kVecUd, 0},
    {"mov ds, null; then a load through DS", {0x8e, 0xd8, 0x8b, 0x18}, 0, kVecGp, 0},
    {"mov ds, read-only; then a write through DS", {0x8e, 0xd8, 0x89, 0x18}, kDataRo, kVecGp, 0},
    {"mov ds, code (readable); then a write through DS", {0x8e, 0xd8, 0x89, 0x18}, kCode32, kVecGp, 0},
    {"mov ds, limit 0xf; read dword at 0xc: fine",
     {0x8e, 0xd8, 0x8b, 0x1d, 0x0c, 0x00, 0x00, 0x00}, kDataSmall, -1, 0},
    {"mov ds, limit 0xf; read dword at 0xd: past the limit",
     {0x8e, 0xd8, 0x8b, 0x1d, 0x0d, 0x00, 0x00, 0x00}, kDataSmall, kVecGp, 0},
    {"mov fs, limit 0xf; read dword at fs:0x10",
     {0x8e, 0xe0, 0x64, 0x8b, 0x1d, 0x10, 0x00, 0x00, 0x00}, kDataSmall, kVecGp, 0},
    {"jmp far to a data segment", {0xea, 0x00, 0x20, 0x00, 0x00, 0x10, 0x00}, 0, kVecGp, kData32},
    {"jmp far to a DPL 3 non-conforming code segment", {0xea, 0x00, 0x20, 0x00, 0x00, 0x38, 0x00}, 0, kVecGp, kCodeDpl3},
    {"jmp far to null", {0xea, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00}, 0, kVecGp, 0},
    {"jmp far past the 16-bit segment's limit", {0xea, 0x00, 0x00, 0x01, 0x00, 0x18, 0x00}, 0, kVecGp, 0},
};

TEST_CASE("protected-mode segment loads and accesses fault as hardware does") {
  Guest g;
  for (const FaultRow& r : kSegmentFaults) {
    INFO(r.text);
    g.ProtectedMode();
    g.InstallHaltHandlers();
    g.CodeThenHlt(r.code);
    g.set(kRax, r.eax);
    g.set(kRsp, 0x70000);
    g.set(kRbp, 0x70000);
    REQUIRE(g.Run(10).reason == StopReason::kHlt);
    CHECK(g.HandledVector() == r.vector);
    bool has_code = r.vector == kVecGp || r.vector == kVecNp || r.vector == kVecSs;
    if (has_code && r.vector != kVecSs) CHECK(g.PushedErrorCode() == r.error_code);
  }
}

TEST_CASE("control registers: reads, CR4 checks, CR1 is #UD, CR0.PG is outside the subset") {
  Guest g;
  g.ProtectedMode();
  g.InstallHaltHandlers();
  g.Code({
      0xb8, 0x20, 0x00, 0x00, 0x00,  // mov eax, 0x20 (PAE)
      0x0f, 0x22, 0xe0,              // mov cr4, eax
      0xbb, 0x00, 0x50, 0x00, 0x00,  // mov ebx, 0x5000
      0x0f, 0x22, 0xdb,              // mov cr3, ebx
      0x0f, 0x22, 0xd3,              // mov cr2, ebx
      0x0f, 0x20, 0xe1,              // mov ecx, cr4
      0x0f, 0x20, 0xda,              // mov edx, cr3
      0x0f, 0x20, 0xc6,              // mov esi, cr0
      0xf4,                          // hlt
  });
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK(g.reg(kRcx) == 0x20);
  CHECK(g.reg(kRdx) == 0x5000);
  CHECK(g.cpu.cr2 == 0x5000);
  CHECK(g.reg(kRsi) == (kCr0Pe | 0x10));

  g.ProtectedMode();
  g.InstallHaltHandlers();
  g.Code({0x0f, 0x22, 0xe0});  // mov cr4, eax with VMXE: reserved here
  g.set(kRax, 1u << 13);
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK(g.HandledVector() == kVecGp);

  g.ProtectedMode();
  g.InstallHaltHandlers();
  g.Code({0x0f, 0x20, 0xc8});  // mov eax, cr1
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK(g.HandledVector() == kVecUd);

  g.ProtectedMode();
  g.InstallHaltHandlers();
  g.Code({0x0f, 0x22, 0xc0});  // mov cr0, eax with NW but not CD
  g.set(kRax, kCr0Pe | (1u << 29));
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK(g.HandledVector() == kVecGp);

  g.ProtectedMode();
  g.Code({0x0f, 0x22, 0xc0});  // mov cr0, eax with PG
  g.set(kRax, kCr0Pe | kCr0Pg);
  Stop s = g.Run();
  REQUIRE(s.reason == StopReason::kInternalError);
  CHECK(s.internal.suberror == kInternalErrorEmulation);
  CHECK(s.internal.insn_len == 3);
  CHECK(s.internal.insn[0] == 0x0f);
  CHECK(s.internal.insn[1] == 0x22);
  CHECK(s.internal.insn[2] == 0xc0);
  CHECK(g.cpu.cr0 == (kCr0Pe | 0x10));  // nothing changed
  CHECK(g.cpu.rip == Guest::kCode);
}

TEST_CASE("sgdt/sidt store, lgdt/lidt with a 16-bit operand size use 24 bits of base") {
  Guest g;
  g.RealMode();
  g.mem.Set16(0x2000, 0x1234);
  g.mem.Set32(0x2002, 0xaabbccdd);
  g.Code({
      0x0f, 0x01, 0x1e, 0x00, 0x20,        // lidt [0x2000]
      0x0f, 0x01, 0x06, 0x10, 0x20,        // sgdt [0x2010]
      0x66, 0x0f, 0x01, 0x0e, 0x20, 0x20,  // sidt [0x2020] (32-bit operand size)
      0xf4,                                // hlt
  });
  g.cpu.gdt = {0x12345678, 0x27};
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK(g.cpu.idt.base == 0xbbccdd);
  CHECK(g.cpu.idt.limit == 0x1234);
  CHECK(g.mem.u16(0x2010) == 0x27);
  CHECK(g.mem.u32(0x2012) == 0x12345678);
  CHECK(g.mem.u16(0x2020) == 0x1234);
  CHECK(g.mem.u32(0x2022) == 0xbbccdd);
}

TEST_CASE("states outside the subset stop before running anything") {
  Guest g;
  g.ProtectedMode();
  g.Code({0x90, 0xf4});
  SUBCASE("paging") { g.cpu.cr0 |= kCr0Pg; }
  SUBCASE("long mode") { g.cpu.efer |= kEferLma; }
  SUBCASE("single-step (TF)") { g.cpu.rflags |= kFlagTf; }
  Stop s = g.Run();
  CHECK(s.reason == StopReason::kInternalError);
  CHECK(s.internal.suberror == kInternalErrorEmulation);
  CHECK(g.cpu.rip == Guest::kCode);
}

TEST_CASE("privilege: HLT, CLI and LGDT at CPL 3 fault - delivering that needs a ring change") {
  Guest g;
  g.ProtectedMode();
  g.InstallHaltHandlers();
  g.cpu.seg[kSs].dpl = 3;
  g.cpu.seg[kCs] = FlatSegment(kCodeDpl3 | 3, 0xb);
  g.cpu.seg[kCs].dpl = 3;
  g.Code({0xf4});  // hlt at CPL 3: #GP(0), whose handler is in ring 0
  Stop s = g.Run();
  CHECK(s.reason == StopReason::kInternalError);
  CHECK(g.cpu.rip == Guest::kCode);
}

}  // namespace
}  // namespace kvmlike::x86::testing
