// Exceptions and software interrupts: delivery through the IVT (real mode)
// and IDT gates (protected mode), the frames they push, IRET back, error
// codes and their EXT/IDT bits, the double-fault rules and triple faults.
#include <doctest/doctest.h>

#include "kvmlike/x86/tests/guest.h"

namespace kvmlike::x86::testing {
namespace {

TEST_CASE("real mode: INT3 and INT n through the IVT push FLAGS, CS, IP - IRET returns") {
  Guest g;
  g.RealMode();
  g.Ivt(3, 0x400, 0x0000);   // -> 0x4000
  g.Ivt(0x21, 0x400, 0x10);  // -> 0x4010
  g.Code({
      0xfb,        // sti
      0xcc,        // int3
      0xcd, 0x21,  // int 0x21
      0xf4,        // hlt
  });
  g.mem.Load(0x4000, {
      0xb8, 0x33, 0x00,  // mov ax, 0x33
      0x9c,              // pushf
      0x5a,              // pop dx
      0xcf,              // iret
  });
  g.mem.Load(0x4010, {
      0x43,  // inc bx
      0xcf,  // iret
  });
  SUBCASE("the frame") {
    REQUIRE(g.Run(2).reason == StopReason::kBudget);
    CHECK(g.cpu.seg[kCs].selector == 0x400);
    CHECK(g.cpu.seg[kCs].base == 0x4000);
    CHECK(g.cpu.rip == 0);
    CHECK(g.reg(kRsp) == 0x7000 - 6);
    CHECK(g.mem.u16(0x7000 - 2) == (kFlagsFixed | kFlagIf));  // FLAGS
    CHECK(g.mem.u16(0x7000 - 4) == 0);                        // CS
    CHECK(g.mem.u16(0x7000 - 6) == Guest::kCode + 2);         // IP after INT3
    CHECK((g.cpu.rflags & kFlagIf) == 0);
  }
  SUBCASE("and the return") {
    REQUIRE(g.Run().reason == StopReason::kHlt);
    CHECK(g.reg(kRax) == 0x33);
    CHECK((g.reg(kRdx) & kFlagIf) == 0);  // handlers run with IF clear
    CHECK(g.reg(kRbx) == 1);
    CHECK((g.cpu.rflags & kFlagIf) == kFlagIf);  // IRET restored it
    CHECK(g.reg(kRsp) == 0x7000);
    CHECK(g.cpu.rip == Guest::kCode + 5);
  }
}

TEST_CASE("real mode: #DE from DIV by zero pushes the DIV's own IP") {
  Guest g;
  g.RealMode();
  g.InstallHaltHandlers();
  g.Code({0xf6, 0xf3});  // div bl (BL = 0)
  g.set(kRax, 0x1234);
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK(g.HandledVector() == kVecDe);
  CHECK(g.mem.u16(0x7000 - 6) == Guest::kCode);
  CHECK(g.reg(kRax) == 0x1234);
}

TEST_CASE("protected mode: interrupt gates clear IF, trap gates keep it - IRETD returns") {
  Guest g;
  g.ProtectedMode();
  g.cpu.idt = {0x800, 0};
  g.Idt(3, 0x4000, 0xe);     // interrupt gate
  g.Idt(0x30, 0x4010, 0xf);  // trap gate
  g.Code({
      0xfb,        // sti
      0xcc,        // int3
      0xcd, 0x30,  // int 0x30
      0xf4,        // hlt
  });
  g.mem.Load(0x4000, {
      0x9c,  // pushfd
      0x5a,  // pop edx
      0xcf,  // iretd
  });
  g.mem.Load(0x4010, {
      0x9c,  // pushfd
      0x5e,  // pop esi
      0xcf,  // iretd
  });
  SUBCASE("the frame") {
    REQUIRE(g.Run(2).reason == StopReason::kBudget);
    CHECK(g.cpu.rip == 0x4000);
    CHECK(g.reg(kRsp) == 0x70000 - 12);
    CHECK(g.mem.u32(0x70000 - 4) == (kFlagsFixed | kFlagIf));  // EFLAGS
    CHECK(g.mem.u32(0x70000 - 8) == kCode32);                  // CS
    CHECK(g.mem.u32(0x70000 - 12) == Guest::kCode + 2);        // EIP after INT3
  }
  SUBCASE("and the return") {
    REQUIRE(g.Run().reason == StopReason::kHlt);
    CHECK((g.reg(kRdx) & kFlagIf) == 0);
    CHECK((g.reg(kRsi) & kFlagIf) == kFlagIf);
    CHECK((g.cpu.rflags & kFlagIf) == kFlagIf);
    CHECK(g.reg(kRsp) == 0x70000);
    CHECK(g.cpu.rip == Guest::kCode + 5);
  }
}

TEST_CASE("protected mode: faults push the faulting EIP, with an error code where the vector has one") {
  Guest g;
  SUBCASE("#UD from ud2: no error code") {
    g.ProtectedMode();
    g.InstallHaltHandlers();
    g.Code({0x0f, 0x0b});  // ud2
    REQUIRE(g.Run().reason == StopReason::kHlt);
    CHECK(g.HandledVector() == kVecUd);
    CHECK(g.reg(kRsp) == 0x70000 - 12);
    CHECK(g.mem.u32(0x70000 - 12) == Guest::kCode);
  }
  SUBCASE("#GP: error code below EIP") {
    g.ProtectedMode();
    g.InstallHaltHandlers();
    g.Code({0x8e, 0xd8});  // mov ds, ax (AX = 0x48: past the GDT limit)
    g.set(kRax, 0x48);
    REQUIRE(g.Run().reason == StopReason::kHlt);
    CHECK(g.HandledVector() == kVecGp);
    CHECK(g.reg(kRsp) == 0x70000 - 16);
    CHECK(g.mem.u32(0x70000 - 12) == Guest::kCode);
    CHECK(g.PushedErrorCode() == 0x48);
  }
  SUBCASE("ud1 and ud0 are #UD too") {
    g.ProtectedMode();
    g.InstallHaltHandlers();
    g.Code({0x0f, 0xb9, 0xc0, 0x0f, 0xff, 0xc0});  // ud1 eax, eax; ud0 eax, eax
    REQUIRE(g.Run().reason == StopReason::kHlt);
    CHECK(g.HandledVector() == kVecUd);
    CHECK(g.mem.u32(0x70000 - 12) == Guest::kCode);
  }
  SUBCASE("lock on a register destination is #UD") {
    g.ProtectedMode();
    g.InstallHaltHandlers();
    g.Code({0xf0, 0x01, 0xc0});  // lock add eax, eax
    REQUIRE(g.Run().reason == StopReason::kHlt);
    CHECK(g.HandledVector() == kVecUd);
  }
  SUBCASE("into with OF set: vector 4 after the instruction") {
    g.ProtectedMode();
    g.InstallHaltHandlers();
    g.Code({0xce});  // into
    g.cpu.rflags |= 0x800;
    REQUIRE(g.Run().reason == StopReason::kHlt);
    CHECK(g.HandledVector() == kVecOf);
    CHECK(g.mem.u32(0x70000 - 12) == Guest::kCode + 1);
  }
  SUBCASE("a near jump past CS's limit is #GP at the jump") {
    g.ProtectedMode();
    g.InstallHaltHandlers();
    g.cpu.seg[kCs].limit = 0x1fff;
    g.Code({0xe9, 0x00, 0x10, 0x00, 0x00});  // jmp +0x1000 -> 0x2005
    REQUIRE(g.Run().reason == StopReason::kHlt);
    CHECK(g.HandledVector() == kVecGp);
    CHECK(g.mem.u32(0x70000 - 12) == Guest::kCode);
  }
  SUBCASE("an instruction running past CS's limit is #GP") {
    g.ProtectedMode(0x1ffe);
    g.InstallHaltHandlers();
    g.cpu.seg[kCs].limit = 0x1fff;
    g.Code({0xb8, 0x01, 0x02, 0x03, 0x04});  // mov eax, imm32: 3 bytes past the limit
    REQUIRE(g.Run().reason == StopReason::kHlt);
    CHECK(g.HandledVector() == kVecGp);
    CHECK(g.mem.u32(0x70000 - 12) == 0x1ffe);
  }
}

TEST_CASE("error codes name the IDT entry - EXT is set for exceptions, clear for INT n") {
  Guest g;
  g.ProtectedMode();
  g.InstallHaltHandlers();
  SUBCASE("INT n past the IDT limit: #GP(n*8 + 2)") {
    g.Code({0xcd, 0x40});  // int 0x40
    REQUIRE(g.Run().reason == StopReason::kHlt);
    CHECK(g.HandledVector() == kVecGp);
    CHECK(g.PushedErrorCode() == 0x40 * 8 + 2);
    CHECK(g.mem.u32(0x70000 - 12) == Guest::kCode);  // the fault belongs to the INT
  }
  SUBCASE("#UD through a not-present gate: #NP(6*8 + 2 + EXT), delivered (benign first)") {
    g.Idt(kVecUd, 0x3060, 0xe, kCode32, 0, false);
    g.Code({0x0f, 0x0b});  // ud2
    REQUIRE(g.Run().reason == StopReason::kHlt);
    CHECK(g.HandledVector() == kVecNp);
    CHECK(g.PushedErrorCode() == kVecUd * 8 + 2 + 1);
  }
  SUBCASE("#GP through a not-present gate: contributory twice is #DF with error code 0") {
    g.Idt(kVecGp, 0x30d0, 0xe, kCode32, 0, false);
    g.Code({0x8e, 0xd8});  // mov ds, ax with AX past the GDT
    g.set(kRax, 0x48);
    REQUIRE(g.Run().reason == StopReason::kHlt);
    CHECK(g.HandledVector() == kVecDf);
    CHECK(g.PushedErrorCode() == 0);
  }
  SUBCASE("a gate whose selector is not code: #GP(selector + EXT), then #DF") {
    g.Idt(kVecDe, 0x3000, 0xe, kData32);
    g.Code({0xf7, 0xf3});  // div ebx (EBX = 0)
    REQUIRE(g.Run().reason == StopReason::kHlt);
    CHECK(g.HandledVector() == kVecDf);  // #DE and #GP are both contributory
  }
  SUBCASE("a 16-bit interrupt gate pushes a 16-bit frame") {
    g.Idt(kVecBp, 0x3030, 0x6);
    g.Code({0xcc});  // int3
    REQUIRE(g.Run().reason == StopReason::kHlt);
    CHECK(g.HandledVector() == kVecBp);
    CHECK(g.reg(kRsp) == 0x70000 - 6);
    CHECK(g.mem.u16(0x70000 - 4) == kCode32);
    CHECK(g.mem.u16(0x70000 - 6) == Guest::kCode + 1);
  }
  SUBCASE("a task gate is outside the subset") {
    g.Idt(kVecBp, 0, 0x5);
    g.Code({0xcc});  // int3
    Stop s = g.Run();
    CHECK(s.reason == StopReason::kInternalError);
    CHECK(s.internal.insn_len == 1);
    CHECK(s.internal.insn[0] == 0xcc);
  }
}

TEST_CASE("triple faults stop with kShutdown") {
  Guest g;
  SUBCASE("protected mode, IDT limit 0: INT3 -> #GP -> #DF -> shutdown") {
    g.ProtectedMode();
    g.cpu.idt = {0x800, 0};
    g.Code({0xcc});
  }
  SUBCASE("real mode, IVT limit 0: ud2 -> #GP -> #DF -> shutdown") {
    g.RealMode();
    g.cpu.idt = {0, 0};
    g.Code({0x0f, 0x0b});
  }
  SUBCASE("#DF gate not present") {
    g.ProtectedMode();
    g.InstallHaltHandlers();
    g.Idt(kVecGp, 0, 0xe, kCode32, 0, false);
    g.Idt(kVecDf, 0, 0xe, kCode32, 0, false);
    g.Code({0x8e, 0xd8});  // mov ds, ax: #GP
    g.set(kRax, 0x48);
  }
  SUBCASE("a stack that faults every push: #SS -> #SS -> #DF -> #SS") {
    g.ProtectedMode();
    g.InstallHaltHandlers();
    g.cpu.seg[kSs].limit = 0xf;
    g.set(kRsp, 0);
    g.Code({0x50});  // push eax
  }
  uint64_t rip = g.cpu.rip;
  Stop s = g.Run();
  CHECK(s.reason == StopReason::kShutdown);
  CHECK(g.cpu.rip == rip);
}

}  // namespace
}  // namespace kvmlike::x86::testing
