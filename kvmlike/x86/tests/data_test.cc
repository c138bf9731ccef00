// Data movement and the encodings of the ALU groups: MOV forms, MOVZX/MOVSX,
// LEA in both address sizes, XCHG, the CBW/CWD families, SETcc/CMOVcc,
// LAHF/SAHF, segment overrides, and every PUSH/POP form.
#include <doctest/doctest.h>

#include <thread>

#include "kvmlike/x86/tests/guest.h"

namespace kvmlike::x86::testing {
namespace {

constexpr uint64_t kCf = 0x001, kZf = 0x040, kSf = 0x080, kOf = 0x800;

TEST_CASE("mov forms, movzx and movsx in 32-bit code") {
  Guest g;
  g.ProtectedMode();
  g.Code({
      0xb8, 0x78, 0x56, 0x34, 0x12,                        // mov eax, 0x12345678
      0xa3, 0x00, 0x20, 0x00, 0x00,                        // mov [0x2000], eax
      0x8a, 0x1d, 0x01, 0x20, 0x00, 0x00,                  // mov bl, [0x2001]
      0x8b, 0x0d, 0x00, 0x20, 0x00, 0x00,                  // mov ecx, [0x2000]
      0xc6, 0x05, 0x04, 0x20, 0x00, 0x00, 0xaa,            // mov byte [0x2004], 0xaa
      0x66, 0xc7, 0x05, 0x06, 0x20, 0x00, 0x00, 0xbb, 0x55,  // mov word [0x2006], 0x55bb
      0x66, 0x89, 0xca,                                    // mov dx, cx
      0xa0, 0x04, 0x20, 0x00, 0x00,                        // mov al, [0x2004]
      0x0f, 0xb6, 0x35, 0x04, 0x20, 0x00, 0x00,            // movzx esi, byte [0x2004]
      0x0f, 0xbe, 0x3d, 0x04, 0x20, 0x00, 0x00,            // movsx edi, byte [0x2004]
      0x0f, 0xbf, 0x2d, 0x06, 0x20, 0x00, 0x00,            // movsx ebp, word [0x2006]
      0x0f, 0xb7, 0x25, 0x06, 0x20, 0x00, 0x00,            // movzx esp, word [0x2006]
      0xb7, 0x99,                                          // mov bh, 0x99
      0xf4,                                                // hlt
  });
  g.set(kRdx, 0xffffffff);
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK(g.mem.u32(0x2000) == 0x12345678);
  CHECK(g.reg(kRbx) == 0x9956);
  CHECK(g.reg(kRcx) == 0x12345678);
  CHECK(g.mem.at(0x2004) == 0xaa);
  CHECK(g.mem.u16(0x2006) == 0x55bb);
  CHECK(g.reg(kRdx) == 0xffff5678);  // 16-bit write keeps the upper half
  CHECK(g.reg(kRax) == 0x123456aa);
  CHECK(g.reg(kRsi) == 0xaa);
  CHECK(g.reg(kRdi) == 0xffffffaa);
  CHECK(g.reg(kRbp) == 0x000055bb);
  CHECK(g.reg(kRsp) == 0x55bb);
}

TEST_CASE("lea and memory operands with 16-bit addressing: BP-based forms use SS, offsets wrap") {
  Guest g;
  g.RealMode();
  g.cpu.seg[kDs].selector = 0x300;
  g.cpu.seg[kDs].base = 0x3000;
  g.cpu.seg[kSs].selector = 0x400;
  g.cpu.seg[kSs].base = 0x4000;
  g.mem.Set16(0x3120, 0x7777);
  g.Code({
      0xbb, 0x00, 0x01,        // mov bx, 0x100
      0xbe, 0x20, 0x00,        // mov si, 0x20
      0xbd, 0xf0, 0xff,        // mov bp, 0xfff0
      0x8d, 0x40, 0x10,        // lea ax, [bx+si+0x10]
      0x8d, 0x4e, 0x20,        // lea cx, [bp+0x20]      (wraps to 0x0010)
      0x66, 0x8d, 0x50, 0xff,  // lea edx, [bx+si-1]     (16-bit offset, zero-extended)
      0x8b, 0x3e, 0x20, 0x01,  // mov di, [0x120]        (DS:0x120 = 0x3120)
      0xc7, 0x00, 0xef, 0xbe,  // mov word [bx+si], 0xbeef
      0xc7, 0x46, 0x10, 0x11, 0x11,  // mov word [bp+0x10], 0x1111  (SS:0x0000)
      0xf4,                    // hlt
  });
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK(g.reg(kRax) == 0x130);
  CHECK(g.reg(kRcx) == 0x10);
  CHECK(g.reg(kRdx) == 0x11f);
  CHECK(g.reg(kRdi) == 0x7777);
  CHECK(g.mem.u16(0x3120) == 0xbeef);
  CHECK(g.mem.u16(0x4000) == 0x1111);
}

TEST_CASE("lea with SIB forms in 32-bit code") {
  Guest g;
  g.ProtectedMode();
  g.Code({
      0xbb, 0x00, 0x10, 0x00, 0x00,              // mov ebx, 0x1000
      0xb9, 0x03, 0x00, 0x00, 0x00,              // mov ecx, 3
      0x8d, 0x44, 0x8b, 0x08,                    // lea eax, [ebx+ecx*4+8]
      0x8d, 0x34, 0xcd, 0x00, 0x00, 0x00, 0x00,  // lea esi, [ecx*8]
      0x66, 0x8d, 0xbc, 0x4b, 0xff, 0xff, 0x0f, 0x00,  // lea di, [ebx+ecx*2+0xfffff]
      0xf4,                                      // hlt
  });
  g.set(kRdi, 0xabcd0000);
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK(g.reg(kRax) == 0x1014);
  CHECK(g.reg(kRsi) == 24);
  CHECK(g.reg(kRdi) == 0xabcd1005);  // 0x101005 truncated to 16 bits
}

TEST_CASE("xchg and the cbw/cwde/cwd/cdq family") {
  Guest g;
  g.ProtectedMode();
  g.mem.Set32(0x2000, 0x5555aaaa);
  g.Code({
      0x93,                                // xchg eax, ebx
      0x86, 0xe9,                          // xchg cl, ch
      0x87, 0x15, 0x00, 0x20, 0x00, 0x00,  // xchg [0x2000], edx
      0x66, 0x96,                          // xchg ax, si
      0xf4,                                // hlt
  });
  g.set(kRax, 1);
  g.set(kRbx, 2);
  g.set(kRcx, 0x1234);
  g.set(kRdx, 0xdddddddd);
  g.set(kRsi, 0x66667777);
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK(g.reg(kRax) == 0x7777);
  CHECK(g.reg(kRbx) == 1);
  CHECK(g.reg(kRcx) == 0x3412);
  CHECK(g.reg(kRdx) == 0x5555aaaa);
  CHECK(g.mem.u32(0x2000) == 0xdddddddd);
  CHECK(g.reg(kRsi) == 0x66660002);

  struct Row {
    std::vector<uint8_t> code;
    uint32_t eax, want_eax, want_edx;
  };
  const Row rows[] = {
      {{0x66, 0x98}, 0x12340080, 0x1234ff80, 0x0},  // cbw
      {{0x98}, 0x00008000, 0xffff8000, 0x0},        // cwde
      {{0x99}, 0x80000000, 0x80000000, 0xffffffff}, // cdq
      {{0x66, 0x99}, 0x00007fff, 0x00007fff, 0x0},  // cwd
  };
  for (const Row& r : rows) {
    g.ProtectedMode();
    g.CodeThenHlt(r.code);
    g.set(kRax, r.eax);
    g.set(kRdx, 0);
    REQUIRE(g.Run().reason == StopReason::kHlt);
    CHECK(g.reg(kRax) == r.want_eax);
    CHECK(g.reg(kRdx) == r.want_edx);
  }
}

// One instruction on [0x2000] / EAX / EBX, then the memory, EAX and flags.
struct GroupRow {
  const char* text;
  std::vector<uint8_t> code;
  uint32_t mem, eax, ebx;
  bool cf;
  uint32_t want_mem, want_eax;
  uint64_t flags_mask, want_flags;
};

const GroupRow kGroupRows[] = {
    {"add dword [0x2000], 0x100", {0x81, 0x05, 0x00, 0x20, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00},
     0x10, 0, 0, false, 0x110, 0, kCf | kZf, 0},
    {"sub byte [0x2000], 1", {0x80, 0x2d, 0x00, 0x20, 0x00, 0x00, 0x01}, 0x11223300, 0, 0, false,
     0x112233ff, 0, kCf | kSf, kCf | kSf},
    {"and dword [0x2000], -16", {0x83, 0x25, 0x00, 0x20, 0x00, 0x00, 0xf0}, 0x1234567f, 0, 0,
     true, 0x12345670, 0, kCf, 0},
    {"cmp dword [0x2000], -1", {0x83, 0x3d, 0x00, 0x20, 0x00, 0x00, 0xff}, 0xffffffff, 0, 0,
     false, 0xffffffff, 0, kZf, kZf},
    {"or ax, 0x8000", {0x66, 0x0d, 0x00, 0x80}, 0, 0x12340001, 0, false, 0, 0x12348001, kSf, kSf},
    {"xor al, 0xff", {0x34, 0xff}, 0, 0x0f, 0, false, 0, 0xf0, kSf, kSf},
    {"cmp eax, 0x12345678", {0x3d, 0x78, 0x56, 0x34, 0x12}, 0, 0x12345678, 0, false, 0,
     0x12345678, kZf | kCf, kZf},
    {"adc eax, 1 (CF=1)", {0x83, 0xd0, 0x01}, 0, 0, 0, true, 0, 2, kCf, 0},
    {"sbb [0x2000], ebx (CF=1)", {0x19, 0x1d, 0x00, 0x20, 0x00, 0x00}, 5, 0, 2, true, 2, 0, kCf, 0},
    {"test byte [0x2000], 0x80", {0xf6, 0x05, 0x00, 0x20, 0x00, 0x00, 0x80}, 0x80, 0, 0, true,
     0x80, 0, kZf | kSf | kCf, kSf},
    {"test eax, ebx", {0x85, 0xd8}, 0, 0xf0, 0x0f, false, 0, 0xf0, kZf, kZf},
    {"add [0x2000], al", {0x00, 0x05, 0x00, 0x20, 0x00, 0x00}, 0xff, 1, 0, false, 0x00, 1,
     kCf | kZf, kCf | kZf},
    {"add al, [0x2000]", {0x02, 0x05, 0x00, 0x20, 0x00, 0x00}, 0x7f, 1, 0, false, 0x7f, 0x80,
     kOf | kSf, kOf | kSf},
    {"adc al, 0xff (CF=1)", {0x14, 0xff}, 0, 0x01, 0, true, 0, 0x01, kCf, kCf},
    {"82 alias: add al, 5", {0x82, 0xc0, 0x05}, 0, 0x01, 0, false, 0, 0x06, kCf, 0},
    {"lock add [0x2000], eax", {0xf0, 0x01, 0x05, 0x00, 0x20, 0x00, 0x00}, 40, 2, 0, false, 42,
     2, kCf, 0},
    {"not dword [0x2000]", {0xf7, 0x15, 0x00, 0x20, 0x00, 0x00}, 0x0f0f0f0f, 0, 0, true,
     0xf0f0f0f0, 0, kCf, kCf},
    {"inc byte [0x2000]", {0xfe, 0x05, 0x00, 0x20, 0x00, 0x00}, 0x12ff, 0, 0, true, 0x1200, 0,
     kCf | kZf, kCf | kZf},
    {"dec dword [0x2000]", {0xff, 0x0d, 0x00, 0x20, 0x00, 0x00}, 0, 0, 0, false, 0xffffffff, 0,
     kCf | kSf, kSf},
    {"neg byte [0x2000]", {0xf6, 0x1d, 0x00, 0x20, 0x00, 0x00}, 0x01, 0, 0, false, 0xff, 0, kCf,
     kCf},
    {"shl dword [0x2000], 4", {0xc1, 0x25, 0x00, 0x20, 0x00, 0x00, 0x04}, 0x1000000f, 0, 0, false,
     0x000000f0, 0, kCf, kCf},
    {"rol byte [0x2000], 1", {0xd0, 0x05, 0x00, 0x20, 0x00, 0x00}, 0x81, 0, 0, false, 0x03, 0,
     kCf | kOf, kCf | kOf},
};

TEST_CASE("ALU group and accumulator encodings, register and memory destinations") {
  Guest g;
  for (const GroupRow& r : kGroupRows) {
    INFO(r.text);
    g.ProtectedMode();
    g.CodeThenHlt(r.code);
    g.mem.Set32(0x2000, r.mem);
    g.set(kRax, r.eax);
    g.set(kRbx, r.ebx);
    g.cpu.rflags = kFlagsFixed | (r.cf ? kCf : 0);
    REQUIRE(g.Run(10).reason == StopReason::kHlt);
    CHECK(g.mem.u32(0x2000) == r.want_mem);
    CHECK(g.reg(kRax) == r.want_eax);
    CHECK((g.cpu.rflags & r.flags_mask) == r.want_flags);
  }
}

TEST_CASE("setcc, cmovcc, lahf and sahf") {
  Guest g;
  g.ProtectedMode();
  g.mem.Set32(0x2000, 0xffffffff);
  g.Code({
      0x0f, 0x94, 0x05, 0x00, 0x20, 0x00, 0x00,  // sete byte [0x2000]   (ZF=1 -> 1)
      0x0f, 0x9c, 0xc3,                          // setl bl              (SF!=OF -> 0)
      0x0f, 0x45, 0x05, 0x00, 0x20, 0x00, 0x00,  // cmovne eax, [0x2000] (not taken)
      0x0f, 0x44, 0xcb,                          // cmove ecx, ebx       (taken)
      0x9f,                                      // lahf
      0xf4,                                      // hlt
  });
  g.set(kRax, 0x11);
  g.set(kRbx, 0xffffffff);
  g.cpu.rflags = kFlagsFixed | kZf | kCf;
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK(g.mem.u32(0x2000) == 0xffffff01);
  CHECK(g.reg(kRbx) == 0xffffff00);
  CHECK(g.reg(kRcx) == 0xffffff00);
  CHECK(g.reg(kRax) == 0x4311);  // AH = ZF | bit 1 | CF
  g.ProtectedMode();
  g.Code({0x9e, 0xf4});  // sahf; hlt
  g.set(kRax, 0xff00);
  g.cpu.rflags = kFlagsFixed | kOf;
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK(g.cpu.rflags == (kFlagsFixed | kOf | 0xd5));  // SF ZF AF PF CF set, OF kept
}

TEST_CASE("mov Sreg and segment overrides in protected mode") {
  Guest g;
  g.ProtectedMode();
  g.mem.Set64(kGdtBase + 0x48, 0x00cf92010000ffff);  // 0x48: data, base 0x10000, not accessed
  g.cpu.gdt.limit = 0x4f;
  g.mem.at(0x10010) = 0x5a;
  g.mem.Set32(0x10400, 0xcafef00d);
  g.Code({
      0x66, 0xb8, 0x48, 0x00,                    // mov ax, 0x48
      0x8e, 0xe0,                                // mov fs, ax
      0x8e, 0xc0,                                // mov es, ax
      0x8c, 0xdb,                                // mov ebx, ds
      0x8c, 0x15, 0x00, 0x20, 0x00, 0x00,        // mov word [0x2000], ss
      0x64, 0x8a, 0x15, 0x10, 0x00, 0x00, 0x00,  // mov dl, fs:[0x10]
      0xbe, 0x00, 0x04, 0x00, 0x00,              // mov esi, 0x400
      0x26, 0x8b, 0x0e,                          // mov ecx, es:[esi]
      0xf4,                                      // hlt
  });
  g.mem.Set32(0x2000, 0xffffffff);
  g.set(kRbx, 0xffffffff);
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK(g.cpu.seg[kFs].base == 0x10000);
  CHECK(g.cpu.seg[kFs].selector == 0x48);
  CHECK(g.cpu.seg[kFs].limit == 0xffffffff);
  CHECK(g.cpu.seg[kFs].type == 0x3);  // accessed bit set on load
  CHECK((g.mem.u64(kGdtBase + 0x48) >> 40 & 1) == 1);
  CHECK(g.reg(kRbx) == kData32);      // register destination: zero-extended
  CHECK(g.mem.u32(0x2000) == 0xffff0000 + kData32);  // memory destination: 16 bits
  CHECK((g.reg(kRdx) & 0xff) == 0x5a);
  CHECK(g.reg(kRcx) == 0xcafef00d);
}

TEST_CASE("push and pop: immediates, registers, memory, segment registers, flags, pusha/popa") {
  Guest g;
  g.ProtectedMode();
  g.mem.Set32(0x2000, 0x55667788);
  g.Code({
      0x68, 0x44, 0x33, 0x22, 0x11,        // push 0x11223344
      0x6a, 0xfe,                          // push -2
      0x50,                                // push eax
      0xff, 0x35, 0x00, 0x20, 0x00, 0x00,  // push dword [0x2000]
      0x8f, 0x05, 0x04, 0x20, 0x00, 0x00,  // pop dword [0x2004]
      0x5b,                                // pop ebx
      0x59,                                // pop ecx
      0x8f, 0x04, 0x24,                    // pop dword [esp]   (address uses ESP after the pop)
      0x60,                                // pushad
      0x61,                                // popad
      0x9c,                                // pushfd
      0x5a,                                // pop edx
      0x68, 0xd7, 0x08, 0x00, 0x00,        // push 0x8d7
      0x9d,                                // popfd
      0x54,                                // push esp
      0x5e,                                // pop esi
      0x06,                                // push es
      0x0f, 0xa1,                          // pop fs
      0xf4,                                // hlt
  });
  g.set(kRax, 0xaabbccdd);
  g.set(kRdi, 0x1d1d1d1d);
  g.cpu.rflags = kFlagsFixed | kFlagIf;
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK(g.mem.u32(0x2004) == 0x55667788);
  CHECK(g.reg(kRbx) == 0xaabbccdd);
  CHECK(g.reg(kRcx) == 0xfffffffe);
  CHECK(g.mem.u32(0x70000) == 0x11223344);
  CHECK(g.mem.u32(0x70000 - 32 + 12) == 0x70000);  // PUSHAD stored the original ESP
  CHECK(g.reg(kRdi) == 0x1d1d1d1d);
  CHECK(g.reg(kRdx) == (kFlagsFixed | kFlagIf));
  CHECK(g.cpu.rflags == 0x8d7);
  CHECK(g.reg(kRsi) == 0x70000);                   // PUSH ESP pushes the value before
  CHECK(g.cpu.seg[kFs].selector == kData32);
  CHECK(g.reg(kRsp) == 0x70000);
}

TEST_CASE("pop esp, pop [esp+4], leave") {
  Guest g;
  g.ProtectedMode();
  g.set(kRsp, 0x60000);
  g.set(kRbp, 0x40000);
  g.mem.Set32(0x60000, 0x50000);
  g.mem.Set32(0x50000, 0xcafebabe);
  g.mem.Set32(0x40000, 0x12345678);
  g.Code({
      0x5c,                    // pop esp          (ESP = the popped value)
      0x8f, 0x44, 0x24, 0x04,  // pop dword [esp+4] (written at the new ESP + 4)
      0xc9,                    // leave
      0xf4,                    // hlt
  });
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK(g.mem.u32(0x50008) == 0xcafebabe);
  CHECK(g.reg(kRbp) == 0x12345678);
  CHECK(g.reg(kRsp) == 0x40004);
}

TEST_CASE("16-bit stack in real mode: push/pop Sreg, pusha/popa, SP wraps") {
  Guest g;
  g.RealMode();
  g.cpu.seg[kDs].selector = 0x300;
  g.cpu.seg[kDs].base = 0x3000;
  g.Code({
      0x68, 0x34, 0x12,  // push 0x1234
      0x1e,              // push ds
      0x07,              // pop es     (real mode: base = selector << 4)
      0x60,              // pusha
      0x89, 0xe5,        // mov bp, sp
      0x9c,              // pushf
      0x9d,              // popf
      0x0e,              // push cs
      0x58,              // pop ax
      0x61,              // popa       (AX restored too)
      0xf4,              // hlt
  });
  g.set(kRax, 0xa0a0);
  g.set(kRbp, 0xb0b0);
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK(g.cpu.seg[kEs].selector == 0x300);
  CHECK(g.cpu.seg[kEs].base == 0x3000);
  CHECK(g.mem.u16(0x6ffe) == 0x1234);
  CHECK(g.reg(kRax) == 0xa0a0);
  CHECK(g.reg(kRbp) == 0xb0b0);
  CHECK(g.reg(kRsp) == 0x6ffe);

  g.RealMode();
  g.set(kRsp, 0x10000);  // SP = 0: the next push wraps to 0xfffe
  g.Code({0x6a, 0x07, 0x58, 0x58, 0xf4});  // push 7; pop ax; pop ax; hlt
  g.mem.Set16(0x0000, 0x4242);
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK(g.mem.u16(0xfffe) == 7);
  CHECK(g.reg(kRax) == 0x4242);  // popped from SS:0000 after the wrap back
  CHECK(g.reg(kRsp) == 0x10002);  // only SP moves with a 16-bit stack
}

// Two vCPUs on one RAM, no counters: Translate may run on both threads.
class SharedRam final : public GuestMemory {
 public:
  SharedRam() : ram_(1 << 20) {}
  Translation Translate(base::Gpa gpa, AccessKind) override {
    return {MemOutcome::kOk, &ram_[gpa.value()]};
  }
  uint8_t* at(uint64_t gpa) { return &ram_[gpa]; }

 private:
  std::vector<uint8_t> ram_;
};

TEST_CASE("lock inc and xchg with memory are atomic across vCPUs sharing RAM") {
  SharedRam ram;
  const uint8_t code[] = {
      0xf0, 0xff, 0x05, 0x00, 0x20, 0x00, 0x00,  // l: lock inc dword [0x2000]
      0xb0, 0x01,                                // mov al, 1
      0x86, 0x05, 0x04, 0x20, 0x00, 0x00,        // xchg [0x2004], al
      0xf0, 0x00, 0x05, 0x08, 0x20, 0x00, 0x00,  // lock add [0x2008], al  (counts the 1s found)
      0x49,                                      // dec ecx
      0x75, 0xe7,                                // jnz l
      0xf4,                                      // hlt
  };
  std::memcpy(ram.at(Guest::kCode), code, sizeof code);
  constexpr uint32_t kIterations = 100000;
  auto vcpu = [&ram] {
    Guest tmp;  // only for its register set-up
    tmp.ProtectedMode();
    CpuState cpu = tmp.cpu;
    cpu.gpr[kRcx] = kIterations;
    Interpreter interp;
    Stop s = interp.Run(cpu, ram, ~uint64_t{0});
    CHECK(s.reason == StopReason::kHlt);
  };
  std::thread a(vcpu), b(vcpu);
  a.join();
  b.join();
  uint32_t count;
  std::memcpy(&count, ram.at(0x2000), 4);
  CHECK(count == 2 * kIterations);
  // Every XCHG swapped in a 1; exactly one of them (the first) found 0.
  uint8_t ones = *ram.at(0x2008);
  CHECK(ones == static_cast<uint8_t>(2 * kIterations - 1));
}

}  // namespace
}  // namespace kvmlike::x86::testing
