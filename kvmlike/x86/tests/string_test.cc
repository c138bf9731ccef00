// String instructions with and without REP/REPE/REPNE, both directions, both
// address sizes, segment overrides, across a page boundary, and in chunks.
#include <doctest/doctest.h>

#include "kvmlike/x86/tests/guest.h"

namespace kvmlike::x86::testing {
namespace {

constexpr uint64_t kZf = 0x040, kDf = 0x400;

TEST_CASE("rep movsb forward and rep movsd backward") {
  Guest g;
  g.ProtectedMode();
  for (int i = 0; i < 16; ++i) g.mem.at(0x2000 + i) = static_cast<uint8_t>(0x10 + i);
  g.Code({0xf3, 0xa4, 0xf4});  // rep movsb; hlt
  g.set(kRsi, 0x2000);
  g.set(kRdi, 0x3000);
  g.set(kRcx, 5);
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK(g.mem.u32(0x3000) == 0x13121110);
  CHECK(g.mem.at(0x3004) == 0x14);
  CHECK(g.mem.at(0x3005) == 0);
  CHECK(g.reg(kRsi) == 0x2005);
  CHECK(g.reg(kRdi) == 0x3005);
  CHECK(g.reg(kRcx) == 0);

  g.ProtectedMode();
  g.Code({0xf3, 0xa5, 0xf4});  // rep movsd; hlt (DF = 1)
  g.cpu.rflags |= kDf;
  g.set(kRsi, 0x2008);
  g.set(kRdi, 0x4008);
  g.set(kRcx, 2);
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK(g.mem.u32(0x4008) == 0x1b1a1918);
  CHECK(g.mem.u32(0x4004) == 0x17161514);
  CHECK(g.reg(kRsi) == 0x2000);
  CHECK(g.reg(kRdi) == 0x4000);
}

TEST_CASE("rep stosd over a page boundary") {
  Guest g;
  g.ProtectedMode();
  g.Code({0xf3, 0xab, 0xf4});  // rep stosd; hlt
  g.set(kRax, 0xa5a5a5a5);
  g.set(kRdi, 0x2ffa);  // the second element straddles 0x3000
  g.set(kRcx, 4);
  REQUIRE(g.Run().reason == StopReason::kHlt);
  for (uint64_t a = 0x2ffa; a < 0x300a; ++a) CHECK(g.mem.at(a) == 0xa5);
  CHECK(g.mem.at(0x300a) == 0);
  CHECK(g.mem.at(0x2ff9) == 0);
  CHECK(g.reg(kRdi) == 0x300a);
  CHECK(g.interp.instructions_retired() == 2);
}

TEST_CASE("a long rep stosb runs in chunks but retires once") {
  Guest g;
  g.ProtectedMode();
  g.Code({0xf3, 0xaa, 0xf4});  // rep stosb; hlt
  g.set(kRax, 0x77);
  g.set(kRdi, 0x100000);
  g.set(kRcx, 100000);
  Stop s = g.Run(3);  // the budget counts chunks: not enough for 100000 bytes
  CHECK(s.reason == StopReason::kBudget);
  CHECK(g.cpu.rip == Guest::kCode);
  CHECK(g.reg(kRcx) != 0);
  CHECK(g.reg(kRcx) + (g.reg(kRdi) - 0x100000) == 100000);
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK(g.reg(kRcx) == 0);
  CHECK(g.mem.at(0x100000 + 99999) == 0x77);
  CHECK(g.mem.at(0x100000 + 100000) == 0);
  CHECK(g.interp.instructions_retired() == 2);
}

TEST_CASE("rep with ECX = 0 does nothing - lods loads the accumulator") {
  Guest g;
  g.ProtectedMode();
  g.mem.Set32(0x2000, 0x44332211);
  g.Code({
      0xf3, 0xa4,  // rep movsb (ECX = 0)
      0xac,        // lodsb
      0x66, 0xad,  // lodsw
      0xf4,        // hlt
  });
  g.set(kRsi, 0x2000);
  g.set(kRdi, 0x3000);
  g.set(kRax, 0xffffffff);
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK(g.mem.at(0x3000) == 0);
  CHECK(g.reg(kRax) == 0xffff3322);
  CHECK(g.reg(kRsi) == 0x2003);
}

TEST_CASE("repe cmpsb stops at the first difference, repne scasb at the first match") {
  Guest g;
  g.ProtectedMode();
  g.mem.Load(0x2000, {'a', 'b', 'c', 'd'});
  g.mem.Load(0x3000, {'a', 'b', 'x', 'd'});
  g.Code({0xf3, 0xa6, 0xf4});  // repe cmpsb; hlt
  g.set(kRsi, 0x2000);
  g.set(kRdi, 0x3000);
  g.set(kRcx, 4);
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK(g.reg(kRcx) == 1);
  CHECK(g.reg(kRsi) == 0x2003);
  CHECK((g.cpu.rflags & kZf) == 0);
  CHECK((g.cpu.rflags & 1) == 1);  // 'c' < 'x': CF

  g.ProtectedMode();
  g.Code({0xf2, 0xae, 0xf4});  // repne scasb; hlt
  g.set(kRax, 'c');
  g.set(kRdi, 0x2000);
  g.set(kRcx, 10);
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK(g.reg(kRdi) == 0x2003);
  CHECK(g.reg(kRcx) == 7);
  CHECK((g.cpu.rflags & kZf) == kZf);
}

TEST_CASE("16-bit string operations: SI/DI/CX wrap at 64 KiB, overrides apply to the source only") {
  Guest g;
  g.RealMode();
  g.cpu.seg[kDs].selector = 0x200;
  g.cpu.seg[kDs].base = 0x2000;
  g.cpu.seg[kEs].selector = 0x300;
  g.cpu.seg[kEs].base = 0x3000;
  g.mem.Set16(0x2000 + 0xfffe, 0x1111);
  g.mem.Set16(0x2000, 0x2222);
  g.Code({
      0xf3, 0xa5,  // rep movsw  (SI: 0xfffe, 0x0000)
      0x2e, 0xa4,  // cs movsb   (source CS:SI)
      0xf4,        // hlt
  });
  g.set(kRsi, 0xfffe);
  g.set(kRdi, 0x10);
  g.set(kRcx, 0x20002);  // CX = 2; the upper half is not part of the count
  g.mem.at(0x0002) = 0x99;  // CS:0002
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK(g.mem.u16(0x3010) == 0x1111);
  CHECK(g.mem.u16(0x3012) == 0x2222);
  CHECK(g.mem.at(0x3014) == 0x99);
  CHECK(g.reg(kRsi) == 0x0003);
  CHECK(g.reg(kRcx) == 0x20000);
}

}  // namespace
}  // namespace kvmlike::x86::testing
