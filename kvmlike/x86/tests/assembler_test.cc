// The translator's encodings, checked against the bytes the x86-64 manuals
// give for each form (as an assembler produces them).
#include <doctest/doctest.h>

#include <vector>

#include "kvmlike/x86/translator/assembler.h"

using namespace kvmlike::x86;
using namespace kvmlike::x86::translator;

namespace {

std::vector<uint8_t> Bytes(std::initializer_list<uint8_t> b) { return b; }

}  // namespace

TEST_CASE("register, memory and immediate forms") {
  struct Case {
    const char* what;
    void (*emit)(Assembler&);
    std::vector<uint8_t> want;
  };
  const Case cases[] = {
      {"push r12", [](Assembler& a) { a.Push(HostReg::kR12); }, Bytes({0x41, 0x54})},
      {"pop rbx", [](Assembler& a) { a.Pop(HostReg::kRbx); }, Bytes({0x5b})},
      {"mov rbx, rdi", [](Assembler& a) { a.MovRR(Width::k64, HostReg::kRbx, HostReg::kRdi); },
       Bytes({0x48, 0x8b, 0xdf})},
      {"mov r8, [rcx+16]",
       [](Assembler& a) { a.Load(Width::k64, HostReg::kR8, At(HostReg::kRcx, 16)); },
       Bytes({0x4c, 0x8b, 0x84, 0x21, 0x10, 0, 0, 0})},
      {"mov [r13+0], r9d",
       [](Assembler& a) { a.Store(Width::k32, At(HostReg::kR13), HostReg::kR9); },
       Bytes({0x45, 0x89, 0x8c, 0x25, 0, 0, 0, 0})},
      {"mov [rdx], r8b", [](Assembler& a) { a.Store(Width::k8, At(HostReg::kRdx), HostReg::kR8); },
       Bytes({0x44, 0x88, 0x84, 0x22, 0, 0, 0, 0})},
      {"lea ecx, [r15+r14*4+0x10]",
       [](Assembler& a) {
         a.Lea(Width::k32, HostReg::kRcx,
               {.base = HostReg::kR15, .index = HostReg::kR14, .has_index = true, .scale = 2,
                .disp = 0x10});
       },
       Bytes({0x43, 0x8d, 0x8c, 0xb7, 0x10, 0, 0, 0})},
      {"lea ecx, [r12*1 + 0x100] (no base)",
       [](Assembler& a) {
         a.Lea(Width::k32, HostReg::kRcx,
               {.has_base = false, .index = HostReg::kR12, .has_index = true, .disp = 0x100});
       },
       Bytes({0x42, 0x8d, 0x0c, 0x25, 0x00, 0x01, 0, 0})},
      {"add r15d, 0x1000",
       [](Assembler& a) { a.AluRI(Width::k32, AluOp::kAdd, HostReg::kR15, 0x1000); },
       Bytes({0x41, 0x81, 0xc7, 0x00, 0x10, 0, 0})},
      {"cmp rsi, [rdi]",
       [](Assembler& a) { a.AluRM(Width::k64, AluOp::kCmp, HostReg::kRsi, At(HostReg::kRdi)); },
       Bytes({0x48, 0x3b, 0xb4, 0x27, 0, 0, 0, 0})},
      {"sub r10d, r11d",
       [](Assembler& a) { a.AluRR(Width::k32, AluOp::kSub, HostReg::kR10, HostReg::kR11); },
       Bytes({0x45, 0x29, 0xda})},
      {"cmp byte [rdi+16], 0", [](Assembler& a) { a.CmpMemImm8(At(HostReg::kRdi, 16), 0); },
       Bytes({0x80, 0xbc, 0x27, 0x10, 0, 0, 0, 0})},
      {"shr esi, 12", [](Assembler& a) { a.Shr(Width::k32, HostReg::kRsi, 12); },
       Bytes({0xc1, 0xee, 0x0c})},
      {"imul rdi, rdi, 24", [](Assembler& a) { a.ImulRI(HostReg::kRdi, HostReg::kRdi, 24); },
       Bytes({0x48, 0x69, 0xff, 24, 0, 0, 0})},
      {"mov r9d, imm32", [](Assembler& a) { a.MovImm32(HostReg::kR9, 0x12345678); },
       Bytes({0x41, 0xb9, 0x78, 0x56, 0x34, 0x12})},
      {"lahf; seto al", [](Assembler& a) { a.SaveFlagsToAx(); }, Bytes({0x9f, 0x0f, 0x90, 0xc0})},
      {"add al, 0x7f; sahf", [](Assembler& a) { a.RestoreFlagsFromAx(); },
       Bytes({0x04, 0x7f, 0x9e})},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    Assembler a;
    c.emit(a);
    CHECK(a.code() == c.want);
  }
}

TEST_CASE("jumps reach labels bound before and after them") {
  Assembler a;
  Assembler::Label back, fwd;
  a.Bind(back);
  a.Jcc(kCondNe, fwd);  // 0f 85 rel32: 6 bytes
  a.Jmp(back);          // e9 rel32 to offset 0 from 11
  a.Bind(fwd);
  CHECK(a.code() == Bytes({0x0f, 0x85, 5, 0, 0, 0, 0xe9, 0xf5, 0xff, 0xff, 0xff}));
}
