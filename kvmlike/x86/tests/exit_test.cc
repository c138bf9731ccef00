// Stops that involve the VMM: MMIO reads (completed on the next Run) and
// writes (retired), IN/OUT and INS/OUTS, hypercalls, instructions outside the
// subset, GuestMemory's kExit and kRetry, and the rule that an instruction
// stopped part-way has changed nothing.
#include <doctest/doctest.h>

#include <array>

#include "kvmlike/x86/tests/guest.h"

namespace kvmlike::x86::testing {
namespace {

constexpr uint64_t kMmio = FakeMemory::kMmioBegin;

void Complete(Guest& g, std::initializer_list<uint8_t> data) {
  g.interp.CompleteRead(std::data(data), static_cast<uint32_t>(data.size()));
}

TEST_CASE("MMIO read: stop without retiring, then the completion is used exactly once") {
  Guest g;
  g.ProtectedMode();
  g.Code({
      0xa1, 0x00, 0x00, 0x0d, 0x00,        // mov eax, [0xd0000]
      0x8b, 0x1d, 0x00, 0x00, 0x0d, 0x00,  // mov ebx, [0xd0000]
      0xf4,                                // hlt
  });
  Stop s = g.Run();
  REQUIRE(s.reason == StopReason::kMmio);
  CHECK(s.mmio.gpa == kMmio);
  CHECK(s.mmio.len == 4);
  CHECK_FALSE(s.mmio.is_write);
  CHECK(g.cpu.rip == Guest::kCode);
  CHECK(g.interp.instructions_retired() == 0);

  SUBCASE("a completion of another size is ignored") {
    Complete(g, {1, 2});
    s = g.Run();
    REQUIRE(s.reason == StopReason::kMmio);
    CHECK(g.cpu.rip == Guest::kCode);
  }
  SUBCASE("no completion: the same exit again") {
    s = g.Run();
    REQUIRE(s.reason == StopReason::kMmio);
    CHECK(s.mmio.gpa == kMmio);
    CHECK(g.cpu.rip == Guest::kCode);
  }
  SUBCASE("the completion feeds that read and no later one") {
    Complete(g, {0x78, 0x56, 0x34, 0x12});
    s = g.Run();
    REQUIRE(s.reason == StopReason::kMmio);  // the second read exits on its own
    CHECK(g.reg(kRax) == 0x12345678);
    CHECK(g.cpu.rip == Guest::kCode + 5);
    CHECK(g.interp.instructions_retired() == 1);
    Complete(g, {0xef, 0xbe, 0xad, 0xde});
    REQUIRE(g.Run().reason == StopReason::kHlt);
    CHECK(g.reg(kRbx) == 0xdeadbeef);
  }
  SUBCASE("a completion is not used by a different instruction") {
    Complete(g, {0x78, 0x56, 0x34, 0x12});
    g.cpu.rip = Guest::kCode + 5;  // the VMM moved the vCPU on
    s = g.Run();
    REQUIRE(s.reason == StopReason::kMmio);
    CHECK(g.reg(kRbx) == 0);
  }
}

TEST_CASE("MMIO write: the instruction retires and the exit carries the bytes") {
  Guest g;
  g.ProtectedMode();
  g.Code({
      0xc7, 0x05, 0x10, 0x00, 0x0d, 0x00, 0x44, 0x33, 0x22, 0x11,  // mov dword [0xd0010], 0x11223344
      0xf4,                                                        // hlt
  });
  Stop s = g.Run();
  REQUIRE(s.reason == StopReason::kMmio);
  CHECK(s.mmio.is_write);
  CHECK(s.mmio.gpa == kMmio + 0x10);
  CHECK(s.mmio.len == 4);
  CHECK(s.mmio.data[0] == 0x44);
  CHECK(s.mmio.data[3] == 0x11);
  CHECK(g.cpu.rip == Guest::kCode + 10);
  CHECK(g.interp.instructions_retired() == 1);
  CHECK(g.Run().reason == StopReason::kHlt);
}

TEST_CASE("read-modify-write on MMIO: the read stops first, flags change only with the write") {
  Guest g;
  g.ProtectedMode();
  g.Code({
      0x00, 0x05, 0x00, 0x00, 0x0d, 0x00,  // add [0xd0000], al
      0xf4,                                // hlt
  });
  g.set(kRax, 0xf0);
  g.cpu.rflags = kFlagsFixed;
  Stop s = g.Run();
  REQUIRE(s.reason == StopReason::kMmio);
  CHECK_FALSE(s.mmio.is_write);
  CHECK(s.mmio.len == 1);
  CHECK(g.cpu.rflags == kFlagsFixed);
  Complete(g, {0x20});
  s = g.Run();
  REQUIRE(s.reason == StopReason::kMmio);
  CHECK(s.mmio.is_write);
  CHECK(s.mmio.data[0] == 0x10);
  CHECK((g.cpu.rflags & 1) == 1);  // 0x20 + 0xf0 carries
  CHECK(g.cpu.rip == Guest::kCode + 6);
}

TEST_CASE("accesses split between RAM and MMIO at a page boundary") {
  Guest g;
  g.ProtectedMode();
  g.mem.Set16(kMmio - 2, 0xbbaa);
  g.Code({
      0xa1, 0xfe, 0xff, 0x0c, 0x00,  // mov eax, [0xcfffe]
      0xa3, 0xfe, 0xff, 0x0c, 0x00,  // mov [0xcfffe], eax
      0xf4,                          // hlt
  });
  Stop s = g.Run();
  REQUIRE(s.reason == StopReason::kMmio);
  CHECK(s.mmio.gpa == kMmio);  // only the MMIO half exits
  CHECK(s.mmio.len == 2);
  Complete(g, {0xcc, 0xdd});
  s = g.Run();
  REQUIRE(s.reason == StopReason::kMmio);
  CHECK(g.reg(kRax) == 0xddccbbaa);
  CHECK(s.mmio.is_write);
  CHECK(s.mmio.gpa == kMmio);
  CHECK(s.mmio.len == 2);
  CHECK(s.mmio.data[0] == 0xcc);
  CHECK(s.mmio.data[1] == 0xdd);
  CHECK(g.Run().reason == StopReason::kHlt);
}

TEST_CASE("cmpsb between two MMIO operands: two exits, both completions used") {
  Guest g;
  g.ProtectedMode();
  g.Code({0xa6, 0xf4});  // cmpsb; hlt
  g.set(kRsi, kMmio);
  g.set(kRdi, kMmio + 0x100);
  Stop s = g.Run();
  REQUIRE(s.reason == StopReason::kMmio);
  CHECK(s.mmio.gpa == kMmio);
  Complete(g, {5});
  s = g.Run();
  REQUIRE(s.reason == StopReason::kMmio);
  CHECK(s.mmio.gpa == kMmio + 0x100);
  Complete(g, {5});
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK((g.cpu.rflags & 0x40) == 0x40);  // equal
  CHECK(g.reg(kRsi) == kMmio + 1);
}

TEST_CASE("IN stops for data and consumes it - OUT retires, then stops") {
  Guest g;
  g.ProtectedMode();
  g.Code({
      0xe4, 0x60,  // in al, 0x60
      0xed,        // in eax, dx
      0x66, 0xef,  // out dx, ax
      0xe6, 0x80,  // out 0x80, al
      0xf4,        // hlt
  });
  g.set(kRdx, 0x3f8);
  g.set(kRax, 0xffffffff);
  Stop s = g.Run();
  REQUIRE(s.reason == StopReason::kIo);
  CHECK_FALSE(s.io.out);
  CHECK(s.io.size == 1);
  CHECK(s.io.port == 0x60);
  CHECK(s.io.count == 1);
  CHECK(g.cpu.rip == Guest::kCode);
  Complete(g, {0x5a});
  s = g.Run();
  REQUIRE(s.reason == StopReason::kIo);
  CHECK(g.reg(kRax) == 0xffffff5a);
  CHECK(s.io.port == 0x3f8);
  CHECK(s.io.size == 4);
  Complete(g, {1, 2, 3, 4});
  s = g.Run();
  REQUIRE(s.reason == StopReason::kIo);
  CHECK(g.reg(kRax) == 0x04030201);
  CHECK(s.io.out);
  CHECK(s.io.size == 2);
  CHECK(s.io.port == 0x3f8);
  CHECK(s.io.data[0] == 0x01);
  CHECK(s.io.data[1] == 0x02);
  CHECK(g.cpu.rip == Guest::kCode + 5);  // OUT retired
  s = g.Run();
  REQUIRE(s.reason == StopReason::kIo);
  CHECK(s.io.port == 0x80);
  CHECK(s.io.data[0] == 0x01);
  CHECK(g.Run().reason == StopReason::kHlt);
}

TEST_CASE("rep insb and rep outsw: one element per stop") {
  Guest g;
  g.ProtectedMode();
  g.Code({0xf3, 0x6c, 0xf4});  // rep insb; hlt
  g.set(kRdx, 0x1f0);
  g.set(kRdi, 0x2000);
  g.set(kRcx, 3);
  for (uint8_t i = 0; i < 3; ++i) {
    Stop s = g.Run();
    REQUIRE(s.reason == StopReason::kIo);
    CHECK_FALSE(s.io.out);
    CHECK(s.io.port == 0x1f0);
    CHECK(g.cpu.rip == Guest::kCode);
    CHECK(g.reg(kRcx) == 3u - i);
    Complete(g, {static_cast<uint8_t>(0xa0 + i)});
  }
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK(g.mem.at(0x2000) == 0xa0);
  CHECK(g.mem.at(0x2001) == 0xa1);
  CHECK(g.mem.at(0x2002) == 0xa2);
  CHECK(g.reg(kRdi) == 0x2003);

  g.ProtectedMode();
  g.Code({0x66, 0xf3, 0x6f, 0xf4});  // rep outsw; hlt
  g.mem.Set32(0x2000, 0x44332211);
  g.set(kRdx, 0x1f0);
  g.set(kRsi, 0x2000);
  g.set(kRcx, 2);
  Stop s = g.Run();
  REQUIRE(s.reason == StopReason::kIo);
  CHECK(s.io.out);
  CHECK(s.io.size == 2);
  CHECK(s.io.data[0] == 0x11);
  CHECK(g.reg(kRcx) == 1);
  CHECK(g.cpu.rip == Guest::kCode);  // more elements to go
  s = g.Run();
  REQUIRE(s.reason == StopReason::kIo);
  CHECK(s.io.data[0] == 0x33);
  CHECK(g.cpu.rip == Guest::kCode + 3);  // the last element retires the instruction
  REQUIRE(g.Run().reason == StopReason::kHlt);
}

TEST_CASE("vmcall and vmmcall stop unretired - CompleteHypercall returns and steps over") {
  for (uint8_t last : {uint8_t{0xc1}, uint8_t{0xd9}}) {
    CAPTURE(static_cast<int>(last));
    Guest g;
    g.ProtectedMode();
    g.Code({0x0f, 0x01, last, 0xf4});  // vmcall / vmmcall; hlt
    g.set(kRax, 0x10000000cull);      // KVM_HC_MAP_GPA_RANGE, upper bits dropped
    g.set(kRbx, 0x100000);
    g.set(kRcx, 16);
    g.set(kRdx, 0x10);
    g.set(kRsi, 0xffffffff12345678ull);
    Stop s = g.Run();
    REQUIRE(s.reason == StopReason::kHypercall);
    CHECK(s.hypercall.nr == 12);
    CHECK(s.hypercall.args[0] == 0x100000);
    CHECK(s.hypercall.args[1] == 16);
    CHECK(s.hypercall.args[2] == 0x10);
    CHECK(s.hypercall.args[3] == 0x12345678);
    CHECK(s.hypercall.args[4] == 0);
    CHECK_FALSE(s.hypercall.long_mode);
    CHECK(g.cpu.rip == Guest::kCode);
    CHECK(g.interp.instructions_retired() == 0);
    Interpreter::CompleteHypercall(g.cpu, 0xfffffffffffffffeull);  // -2
    CHECK(g.cpu.gpr[kRax] == 0xfffffffe);
    CHECK(g.cpu.rip == Guest::kCode + 3);
    REQUIRE(g.Run().reason == StopReason::kHlt);
  }
  Guest g;
  g.ProtectedMode();
  g.cpu.seg[kSs].dpl = 3;  // CPL 3: KVM answers -KVM_EPERM without an exit
  g.Code({0x0f, 0x01, 0xc1});
  CHECK(g.Run(1).reason == StopReason::kBudget);
  CHECK(g.cpu.gpr[kRax] == 0xffffffff);
  CHECK(g.cpu.rip == Guest::kCode + 3);
}

TEST_CASE("instructions outside the subset stop with an emulation error and their bytes") {
  struct Row {
    const char* text;
    std::vector<uint8_t> code;
    uint8_t reported;  // bytes in the exit
  };
  const Row rows[] = {
      {"cpuid: known length", {0x0f, 0xa2}, 2},
      {"daa", {0x27}, 1},
      {"wrmsr", {0x0f, 0x30}, 2},
      {"enter 16, 0", {0xc8, 0x10, 0x00, 0x00}, 4},
      {"lock cmpxchg [eax], ecx", {0xf0, 0x0f, 0xb1, 0x08}, 4},
      {"rep vmmcall (VMGEXIT)", {0xf3, 0x0f, 0x01, 0xd9}, 4},
      {"pshufb: unknown opcode map, every fetched byte", {0x66, 0x0f, 0x38, 0x00, 0xc1}, 15},
  };
  for (const Row& r : rows) {
    INFO(r.text);
    Guest g;
    g.ProtectedMode();
    g.Code(r.code);
    Stop s = g.Run();
    REQUIRE(s.reason == StopReason::kInternalError);
    CHECK(s.internal.suberror == kInternalErrorEmulation);
    CHECK(s.internal.insn_len == r.reported);
    for (size_t i = 0; i < r.code.size() && i < r.reported; ++i) CHECK(s.internal.insn[i] == r.code[i]);
    CHECK(g.cpu.rip == Guest::kCode);
    CHECK(g.interp.instructions_retired() == 0);
  }
}

TEST_CASE("code in MMIO is outside the subset") {
  Guest g;
  g.ProtectedMode(static_cast<uint32_t>(kMmio));
  Stop s = g.Run();
  CHECK(s.reason == StopReason::kInternalError);
  CHECK(s.internal.insn_len == 0);
}

TEST_CASE("kExit stops with kMemExit, unretired and with nothing changed") {
  Guest g;
  SUBCASE("data read") {
    g.ProtectedMode();
    g.Code({0x8b, 0x1d, 0x00, 0x50, 0x00, 0x00, 0xf4});  // mov ebx, [0x5000]; hlt
    g.mem.Force(0x5000, MemOutcome::kExit, 1);
  }
  SUBCASE("stack write of a call") {
    g.ProtectedMode();
    g.Code({0xe8, 0x00, 0x01, 0x00, 0x00});  // call +0x100
    g.mem.Load(Guest::kCode + 0x105, {0xf4});
    g.mem.Force(0x70000 - 4, MemOutcome::kExit, 1);
  }
  SUBCASE("the write of xchg, after its read") {
    g.ProtectedMode();
    g.Code({0x87, 0x05, 0x00, 0x50, 0x00, 0x00, 0xf4});  // xchg [0x5000], eax; hlt
    g.mem.Force(0x5000, MemOutcome::kExit, 1, /*only_writes=*/true);
  }
  SUBCASE("the second page of an instruction") {
    g.ProtectedMode(0x1ffd);
    g.Code({0xb8, 0x01, 0x02, 0x03, 0x04, 0xf4});  // mov eax, imm32 across 0x2000; hlt
    g.mem.Force(0x2000, MemOutcome::kExit, 1);
  }
  g.set(kRax, 0x1234);
  CpuState before = g.cpu;
  Stop s = g.Run();
  REQUIRE(s.reason == StopReason::kMemExit);
  CHECK(g.cpu.rip == before.rip);
  CHECK(g.cpu.gpr == before.gpr);
  CHECK(g.cpu.rflags == before.rflags);
  CHECK(g.interp.instructions_retired() == 0);
  CHECK(g.Run().reason == StopReason::kHlt);  // the page is back: the instruction completes
}

TEST_CASE("kRetry re-runs the instruction and is counted") {
  Guest g;
  g.ProtectedMode();
  g.mem.Set32(0x5000, 77);
  g.Code({0x8b, 0x1d, 0x00, 0x50, 0x00, 0x00, 0xf4});  // mov ebx, [0x5000]; hlt
  g.mem.Force(0x5000, MemOutcome::kRetry, 3);
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK(g.reg(kRbx) == 77);
  CHECK(g.interp.retries() == 3);
  CHECK(g.interp.instructions_retired() == 2);
}

TEST_CASE("an instruction that straddles a page boundary is fetched from both pages") {
  Guest g;
  g.ProtectedMode(0x1ffd);
  g.Code({0xb8, 0x01, 0x02, 0x03, 0x04, 0xf4});  // mov eax, 0x04030201; hlt
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK(g.reg(kRax) == 0x04030201);

  g.ProtectedMode(static_cast<uint32_t>(kMmio - 2));
  g.Code({0xb8, 0x01});  // the rest of the instruction would be in MMIO
  Stop s = g.Run();
  CHECK(s.reason == StopReason::kInternalError);
}

TEST_CASE("an IDT in MMIO: exception delivery stops on the gate read and resumes") {
  Guest g;
  g.ProtectedMode();
  g.cpu.idt = {kMmio, 0xff};
  g.mem.Load(0x3000, {0xf4});  // handler: hlt
  g.Code({0x0f, 0x0b});        // ud2
  Stop s = g.Run();
  REQUIRE(s.reason == StopReason::kMmio);
  CHECK(s.mmio.gpa == kMmio + 8 * kVecUd);
  CHECK(s.mmio.len == 8);
  // An interrupt gate to 0x08:0x3000.
  Complete(g, {0x00, 0x30, 0x08, 0x00, 0x00, 0x8e, 0x00, 0x00});
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK(g.cpu.rip == 0x3001);
  CHECK(g.mem.u32(0x70000 - 12) == Guest::kCode);
}

TEST_CASE("the budget bounds a run of a guest that never stops") {
  Guest g;
  g.ProtectedMode();
  g.Code({0xeb, 0xfe});  // jmp .
  CHECK(g.Run(1000).reason == StopReason::kBudget);
  CHECK(g.interp.instructions_retired() == 1000);
  CHECK(g.cpu.rip == Guest::kCode);
}

}  // namespace
}  // namespace kvmlike::x86::testing
