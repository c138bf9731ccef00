// Control transfer: Jcc under every condition, JMP forms, LOOP/LOOPE/LOOPNE/
// JCXZ, near CALL/RET in all forms, far CALL/JMP/RETF in real and protected
// mode.
#include <doctest/doctest.h>

#include <string>

#include "kvmlike/x86/tests/guest.h"

namespace kvmlike::x86::testing {
namespace {

constexpr uint64_t kCf = 0x001, kPf = 0x004, kZf = 0x040, kSf = 0x080, kOf = 0x800;

// For each flags value, whether Jcc 0..F (O NO B AE E NE BE A S NS P NP L GE
// LE G) is taken, as the SDM defines the conditions.
struct CondRow {
  uint64_t flags;
  const char* taken;  // one '1'/'0' per condition code
};
const CondRow kCondRows[] = {
    {0, "0101010101010101"},
    {kCf, "0110011001010101"},
    {kZf, "0101101001010110"},
    {kSf, "0101010110011010"},
    {kOf, "1001010101011010"},
    {kSf | kOf, "1001010110010101"},
    {kPf, "0101010101100101"},
    {kCf | kZf, "0110101001010110"},
};

TEST_CASE("jcc rel8 and 0F 8x rel32 under each condition") {
  Guest g;
  for (const CondRow& row : kCondRows) {
    for (uint8_t cc = 0; cc < 16; ++cc) {
      bool taken = row.taken[cc] == '1';
      CAPTURE(row.flags);
      CAPTURE(static_cast<int>(cc));
      // jcc +1; hlt (not taken); hlt (taken)
      g.ProtectedMode();
      g.Code({static_cast<uint8_t>(0x70 + cc), 0x01, 0xf4, 0xf4});
      g.cpu.rflags = kFlagsFixed | row.flags;
      REQUIRE(g.Run(10).reason == StopReason::kHlt);
      CHECK(g.cpu.rip == Guest::kCode + (taken ? 4u : 3u));
      // 0F 8x +1 (rel32); hlt; hlt
      g.ProtectedMode();
      g.Code({0x0f, static_cast<uint8_t>(0x80 + cc), 0x01, 0x00, 0x00, 0x00, 0xf4, 0xf4});
      g.cpu.rflags = kFlagsFixed | row.flags;
      REQUIRE(g.Run(10).reason == StopReason::kHlt);
      CHECK(g.cpu.rip == Guest::kCode + (taken ? 8u : 7u));
    }
  }
}

TEST_CASE("jmp rel8 backwards, rel16 in real mode, rel32 and 16-bit IP wrap") {
  Guest g;
  g.RealMode();
  g.Code({
      0xeb, 0x03,              // 00: jmp +3
      0xf4,                    // 02: hlt (skipped)
      0xeb, 0x04,              // 03: jmp +4 -> 09
      0x40,                    // 05: l: inc ax
      0xf4,                    // 06: hlt
      0x90, 0x90,              // 07: nop; nop
      0xe9, 0xf9, 0xff,        // 09: jmp rel16 -6 -> 05
  });
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK(g.reg(kRax) == 1);
  CHECK(g.cpu.rip == 0x1007);

  g.RealMode(0xfff0);
  g.Code({0xe9, 0x0d, 0x00});  // jmp rel16 +0x0d from 0xfff3: IP wraps to 0x0000
  g.mem.Load(0x0000, {0xf4});
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK(g.cpu.rip == 0x0001);

  g.ProtectedMode();
  g.Code({0xe9, 0x00, 0x01, 0x00, 0x00});  // jmp rel32 +0x100
  g.mem.Load(Guest::kCode + 0x105, {0xf4});
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK(g.cpu.rip == Guest::kCode + 0x106);
}

TEST_CASE("loop, loope, loopne and jcxz count CX in 16-bit code") {
  Guest g;
  g.RealMode();
  g.Code({
      0xb9, 0x05, 0x00,  // 00: mov cx, 5
      0x31, 0xc0,        // 03: xor ax, ax
      0x40,              // 05: l1: inc ax
      0xe2, 0xfd,        // 06: loop l1    (AX = 5, CX = 0)
      0xb9, 0x0a, 0x00,  // 08: mov cx, 10
      0x43,              // 0b: l2: inc bx
      0x83, 0xfb, 0x03,  // 0c: cmp bx, 3
      0xe0, 0xfa,        // 0f: loopne l2  (ends with BX = 3 (ZF) and CX = 7)
      0xe3, 0x03,        // 11: jcxz skip  (CX != 0: not taken)
      0xba, 0x01, 0x00,  // 13: mov dx, 1
      0x31, 0xc9,        // 16: skip: xor cx, cx
      0xe3, 0x03,        // 18: jcxz done  (taken)
      0xba, 0x02, 0x00,  // 1a: mov dx, 2
      0xbe, 0x03, 0x00,  // 1d: done: mov si, 3
      0x4f,              // 20: l3: dec di
      0x83, 0xff, 0x00,  // 21: cmp di, 0
      0xe1, 0xfa,        // 24: loope l3   (DI 1 -> 0 continues (ZF), then DI = -1 stops)
      0xf4,              // 26: hlt
  });
  g.set(kRdi, 1);
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK(g.reg(kRax) == 5);
  CHECK(g.reg(kRbx) == 3);
  CHECK(g.reg(kRdx) == 1);
  CHECK(g.reg(kRcx) == 0xfffe);  // CX: 0 -> 0xffff -> 0xfffe
  CHECK(g.reg(kRdi) == 0xffff);
}

TEST_CASE("loop with a 32-bit count and an address-size prefix") {
  Guest g;
  g.ProtectedMode();
  g.Code({
      0x40,        // l: inc eax
      0xe2, 0xfd,  // loop l      (ECX)
      0x67, 0xe3, 0x01,  // jcxz +1 (CX, address size 16): CX = 0 -> taken
      0xf4,        // hlt
      0xf4,        // hlt
  });
  g.set(kRcx, 0x10003);
  REQUIRE(g.Run(1000000).reason == StopReason::kHlt);
  CHECK(g.reg(kRax) == 0x10003);
  CHECK(g.cpu.rip == Guest::kCode + 8);
}

TEST_CASE("near call and ret: rel32, register, memory, ret imm16, jmp register and memory") {
  Guest g;
  g.ProtectedMode();
  g.mem.Set32(0x2000, Guest::kCode + 0x32);  // f3
  g.mem.Set32(0x2004, Guest::kCode + 0x46);  // end
  g.Code({
      0xe8, 0x21, 0x00, 0x00, 0x00,        // 00: call f1  (EAX = 1)
      0xbb, 0x2c, 0x10, 0x00, 0x00,        // 05: mov ebx, offset f2 + 0x1000
      0xff, 0xd3,                          // 0a: call ebx  (ECX = 2)
      0xff, 0x15, 0x00, 0x20, 0x00, 0x00,  // 0c: call dword [0x2000]  ([0x2000] = f3: EDX = 3)
      0x6a, 0x77,                          // 12: push 0x77
      0x6a, 0x66,                          // 14: push 0x66
      0xe8, 0x1d, 0x00, 0x00, 0x00,        // 16: call f4  (RET 8 releases the arguments)
      0xeb, 0x01,                          // 1b: jmp short over
      0xf4,                                // 1d: hlt
      0xbe, 0x3f, 0x10, 0x00, 0x00,        // 1e: over: mov esi, offset tail + 0x1000
      0xff, 0xe6,                          // 23: jmp esi
      0xf4,                                // 25: hlt
      0xb8, 0x01, 0x00, 0x00, 0x00,        // 26: f1: mov eax, 1
      0xc3,                                // 2b: ret
      0xb9, 0x02, 0x00, 0x00, 0x00,        // 2c: f2: mov ecx, 2
      0xc3,                                // 31: ret
      0xba, 0x03, 0x00, 0x00, 0x00,        // 32: f3: mov edx, 3
      0xc3,                                // 37: ret
      0x8b, 0x7c, 0x24, 0x04,              // 38: f4: mov edi, [esp+4]
      0xc2, 0x08, 0x00,                    // 3c: ret 8
      0xff, 0x25, 0x04, 0x20, 0x00, 0x00,  // 3f: tail: jmp dword [0x2004]  ([0x2004] = end)
      0xf4,                                // 45: hlt
      0xf4,                                // 46: end: hlt
  });
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK(g.reg(kRax) == 1);
  CHECK(g.reg(kRcx) == 2);
  CHECK(g.reg(kRdx) == 3);
  CHECK(g.reg(kRdi) == 0x66);
  CHECK(g.reg(kRsp) == 0x70000);
  CHECK(g.cpu.rip == Guest::kCode + 0x47);
  CHECK(g.mem.u32(0x70000 - 12) == Guest::kCode + 0x1b);  // f4's return address
}

TEST_CASE("far call, far jmp and retf in real mode, direct and through memory") {
  Guest g;
  g.RealMode();
  g.mem.Set32(0x3000, 0x02000030);  // 0200:0030
  g.mem.Set32(0x3004, 0x02000020);  // 0200:0020
  g.Code({
      0x9a, 0x10, 0x00, 0x00, 0x02,  // 00: call 0x0200:0x0010  (to linear 0x2010)
      0x89, 0xc3,                    // 05: mov bx, ax  (AX = CS of the callee)
      0xff, 0x1e, 0x00, 0x30,        // 07: call dword [0x3000]  (FF /3: [0x3000] = 0200:0030)
      0xff, 0x2e, 0x04, 0x30,        // 0b: jmp dword [0x3004]  (FF /5: [0x3004] = 0200:0020)
  });
  g.mem.Load(0x2010, {
      0x8c, 0xc8,  // mov ax, cs
      0xcb,        // retf
  });
  g.mem.Load(0x2030, {
      0x8c, 0xc9,        // mov cx, cs
      0x6a, 0x09,        // push 9
      0x5a,              // pop dx
      0xca, 0x00, 0x00,  // retf 0
  });
  g.mem.Load(0x2020, {0xf4});  // hlt
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK(g.reg(kRbx) == 0x200);
  CHECK(g.reg(kRcx) == 0x200);
  CHECK(g.reg(kRdx) == 9);
  CHECK(g.cpu.seg[kCs].selector == 0x200);
  CHECK(g.cpu.seg[kCs].base == 0x2000);
  CHECK(g.cpu.rip == 0x21);
  CHECK(g.reg(kRsp) == 0x7000);
  CHECK(g.mem.u16(0x7000 - 2) == 0);       // pushed CS
  CHECK(g.mem.u16(0x7000 - 4) == 0x100b);  // IP pushed by the second call
}

TEST_CASE("far call, far jmp and retf imm16 in protected mode") {
  Guest g;
  g.ProtectedMode();
  g.mem.Set32(0x2000, 0x3000);  // m16:32 for call far [0x2000]: 0x08:0x3000
  g.mem.Set16(0x2004, kCode32);
  g.mem.Set32(0x2008, 0x4000);  // m16:32 for jmp far [0x2008]: 0x08:0x4000
  g.mem.Set16(0x200c, kCode32);
  g.Code({
      0x6a, 0x55,                                // push 0x55 (argument)
      0x9a, 0x00, 0x30, 0x00, 0x00, 0x08, 0x00,  // call 0x08:0x3000
      0xff, 0x1d, 0x00, 0x20, 0x00, 0x00,        // call fword [0x2000]
      0xff, 0x2d, 0x08, 0x20, 0x00, 0x00,        // jmp fword [0x2008]
  });
  g.mem.Load(0x3000, {
      0x40,              // inc eax
      0xca, 0x00, 0x00,  // retf 0
  });
  g.mem.Load(0x4000, {0xf4});  // hlt
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK(g.reg(kRax) == 2);
  CHECK(g.cpu.rip == 0x4001);
  CHECK(g.cpu.seg[kCs].selector == kCode32);
  CHECK(g.reg(kRsp) == 0x70000 - 4);
  CHECK(g.mem.u32(0x70000 - 8) == kCode32);             // pushed CS (32-bit slot)
  CHECK(g.mem.u32(0x70000 - 12) == Guest::kCode + 15);  // EIP pushed by the second call

  g.ProtectedMode();
  g.Code({
      0x6a, 0x55,                                // push 0x55
      0x9a, 0x00, 0x30, 0x00, 0x00, 0x08, 0x00,  // call 0x08:0x3000
      0xf4,                                      // hlt
  });
  g.mem.Load(0x3000, {0xca, 0x04, 0x00});  // retf 4: drops the argument
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK(g.reg(kRsp) == 0x70000);
}

TEST_CASE("far jmp to a 16-bit code segment switches the default operand size") {
  Guest g;
  g.ProtectedMode();
  g.Code({0xea, 0x00, 0x20, 0x00, 0x00, 0x18, 0x00});  // jmp 0x18:0x2000
  g.mem.Load(0x2000, {
      0xb8, 0x34, 0x12,  // mov ax, 0x1234 (16-bit code: imm16)
      0xf4,              // hlt
  });
  g.set(kRax, 0xffffffff);
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK(g.cpu.seg[kCs].db == 0);
  CHECK(g.reg(kRax) == 0xffff1234);
}

}  // namespace
}  // namespace kvmlike::x86::testing
