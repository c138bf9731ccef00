// Decoder: lengths, operand forms and prefixes for 16- and 32-bit code,
// written as a table of encodings (checked with binutils when written).
#include <doctest/doctest.h>

#include <vector>

#include "kvmlike/x86/decoder.h"

namespace kvmlike::x86 {
namespace {

struct Row {
  const char* text;
  bool code32;
  std::vector<uint8_t> bytes;
  uint16_t opcode;
  uint8_t len;
  int8_t base, index;
  uint8_t scale;
  uint8_t seg;
  uint32_t disp;
};

constexpr int8_t N = kNoReg;

const Row kRows[] = {
    // 16-bit addressing: every r/m form, the disp16-only form, BP defaults to SS.
    {"mov ax,[bx+si]", false, {0x8b, 0x00}, 0x8b, 2, kRbx, kRsi, 0, kDs, 0},
    {"mov ax,[bx+di+1]", false, {0x8b, 0x41, 0x01}, 0x8b, 3, kRbx, kRdi, 0, kDs, 1},
    {"mov ax,[bp+si+4]", false, {0x8b, 0x42, 0x04}, 0x8b, 3, kRbp, kRsi, 0, kSs, 4},
    {"mov ax,[bp+di-2]", false, {0x8b, 0x43, 0xfe}, 0x8b, 3, kRbp, kRdi, 0, kSs, 0xfffffffe},
    {"mov ax,[si+0x1234]", false, {0x8b, 0x84, 0x34, 0x12}, 0x8b, 4, kRsi, N, 0, kDs, 0x1234},
    {"mov ax,[di]", false, {0x8b, 0x05}, 0x8b, 2, kRdi, N, 0, kDs, 0},
    {"mov ax,[0x1234]", false, {0x8b, 0x06, 0x34, 0x12}, 0x8b, 4, N, N, 0, kDs, 0x1234},
    {"mov ax,[bp+0]", false, {0x8b, 0x46, 0x00}, 0x8b, 3, kRbp, N, 0, kSs, 0},
    {"mov ax,[bx]", false, {0x8b, 0x07}, 0x8b, 2, kRbx, N, 0, kDs, 0},
    {"add word [bp+di-2],0x1234", false, {0x81, 0x43, 0xfe, 0x34, 0x12}, 0x81, 5, kRbp, kRdi, 0, kSs, 0xfffffffe},
    // 32-bit addressing: SIB, scaled index, disp32-only, ESP/EBP bases.
    {"mov eax,[ebx+ecx*4+0x10]", true, {0x8b, 0x44, 0x8b, 0x10}, 0x8b, 4, kRbx, kRcx, 2, kDs, 0x10},
    {"mov eax,[esp+8]", true, {0x8b, 0x44, 0x24, 0x08}, 0x8b, 4, kRsp, N, 0, kSs, 8},
    {"mov eax,[ecx*2+0x10]", true, {0x8b, 0x04, 0x4d, 0x10, 0, 0, 0}, 0x8b, 7, N, kRcx, 1, kDs, 0x10},
    {"mov eax,[0x1234]", true, {0x8b, 0x05, 0x34, 0x12, 0, 0}, 0x8b, 6, N, N, 0, kDs, 0x1234},
    {"lea eax,[ebp-4]", true, {0x8d, 0x45, 0xfc}, 0x8d, 3, kRbp, N, 0, kSs, 0xfffffffc},
    {"mov eax,[ebp+ebx*8+0x100]", true, {0x8b, 0x84, 0xdd, 0x00, 0x01, 0, 0}, 0x8b, 7, kRbp, kRbx, 3, kSs, 0x100},
    // Address-size prefix switches forms; operand-size prefix switches immediates.
    {"67 mov ax,[bx+si] in 32-bit code", true, {0x67, 0x8b, 0x00}, 0x8b, 3, kRbx, kRsi, 0, kDs, 0},
    {"67 mov eax,[eax] in 16-bit code", false, {0x67, 0x66, 0x8b, 0x00}, 0x8b, 4, kRax, N, 0, kDs, 0},
    {"mov eax,moffs32", true, {0xa1, 0x78, 0x56, 0x34, 0x12}, 0xa1, 5, N, N, 0, kDs, 0x12345678},
    {"mov al,moffs16", false, {0xa0, 0x34, 0x12}, 0xa0, 3, N, N, 0, kDs, 0x1234},
};

TEST_CASE("ModRM/SIB/displacement forms for 16- and 32-bit addressing") {
  for (const Row& r : kRows) {
    INFO(r.text);
    Insn insn;
    REQUIRE(Decode(r.bytes.data(), static_cast<uint32_t>(r.bytes.size()), r.code32, insn) ==
            DecodeStatus::kOk);
    CHECK(insn.opcode == r.opcode);
    CHECK(insn.len == r.len);
    CHECK(insn.has_mem);
    CHECK(insn.mem.base == r.base);
    CHECK(insn.mem.index == r.index);
    CHECK(insn.mem.scale == r.scale);
    CHECK(insn.mem.seg == r.seg);
    CHECK(insn.mem.disp == r.disp);
  }
}

struct LenRow {
  const char* text;
  bool code32;
  std::vector<uint8_t> bytes;
  uint8_t len;
  uint8_t op_size, addr_size;
  uint32_t imm, imm2;
};

const LenRow kLenRows[] = {
    {"mov eax,imm32", true, {0xb8, 1, 2, 3, 4}, 5, 4, 4, 0x04030201, 0},
    {"mov ax,imm16", false, {0xb8, 1, 2}, 3, 2, 2, 0x0201, 0},
    {"66 mov eax,imm32 (16-bit code)", false, {0x66, 0xb8, 1, 2, 3, 4}, 6, 4, 2, 0x04030201, 0},
    {"66 mov ax,imm16 (32-bit code)", true, {0x66, 0xb8, 1, 2}, 4, 2, 4, 0x0201, 0},
    {"add eax,byte imm (83)", true, {0x83, 0xc0, 0xff}, 3, 4, 4, 0xff, 0},
    {"test byte [eax],imm8 (F6 /0)", true, {0xf6, 0x00, 0x7f}, 3, 4, 4, 0x7f, 0},
    {"not dword [eax] (F7 /2, no imm)", true, {0xf7, 0x10}, 2, 4, 4, 0, 0},
    {"test dword [eax],imm32 (F7 /0)", true, {0xf7, 0x00, 1, 0, 0, 0}, 6, 4, 4, 1, 0},
    {"jmp far 0x08:0x1000 (32)", true, {0xea, 0x00, 0x10, 0, 0, 0x08, 0}, 7, 4, 4, 0x1000, 0x08},
    {"jmp far 0xf000:0xe05b (16)", false, {0xea, 0x5b, 0xe0, 0x00, 0xf0}, 5, 2, 2, 0xe05b, 0xf000},
    {"66 jmp far ptr16:32 (16)", false, {0x66, 0xea, 0x00, 0x10, 0, 0, 0x08, 0}, 8, 4, 2, 0x1000, 8},
    {"ret 8", true, {0xc2, 0x08, 0x00}, 3, 4, 4, 8, 0},
    {"jne near (0F 85) rel32", true, {0x0f, 0x85, 0x10, 0, 0, 0}, 6, 4, 4, 0x10, 0},
    {"jne near rel16 (16)", false, {0x0f, 0x85, 0x10, 0}, 4, 2, 2, 0x10, 0},
    {"enter 16,1", true, {0xc8, 0x10, 0x00, 0x01}, 4, 4, 4, 0x10, 1},
    {"lgdt [0x600] (16)", false, {0x0f, 0x01, 0x16, 0x00, 0x06}, 5, 2, 2, 0, 0},
    {"vmcall", true, {0x0f, 0x01, 0xc1}, 3, 4, 4, 0, 0},
    {"rep stosd with es: and lock prefixes", true, {0xf3, 0x26, 0xab}, 3, 4, 4, 0, 0},
};

TEST_CASE("lengths, sizes and immediates") {
  for (const LenRow& r : kLenRows) {
    INFO(r.text);
    Insn insn;
    REQUIRE(Decode(r.bytes.data(), static_cast<uint32_t>(r.bytes.size()), r.code32, insn) ==
            DecodeStatus::kOk);
    CHECK(insn.len == r.len);
    CHECK(insn.op_size == r.op_size);
    CHECK(insn.addr_size == r.addr_size);
    CHECK(insn.imm == r.imm);
    CHECK(insn.imm2 == r.imm2);
  }
}

TEST_CASE("prefixes: the last segment override and repeat prefix win") {
  const uint8_t bytes[] = {0x2e, 0x64, 0xf2, 0xf3, 0xf0, 0x01, 0x03};  // cs fs repne rep lock add [ebx],eax
  Insn insn;
  REQUIRE(Decode(bytes, sizeof bytes, true, insn) == DecodeStatus::kOk);
  CHECK(insn.seg_override == kFs);
  CHECK(insn.rep == 0xf3);
  CHECK(insn.lock);
  CHECK(insn.len == 7);
}

TEST_CASE("short input, overlong instructions and unknown opcodes") {
  const uint8_t mov_imm[] = {0xb8, 1, 2, 3, 4};
  Insn insn;
  for (uint32_t n = 0; n < sizeof mov_imm; ++n) {
    CAPTURE(n);
    CHECK(Decode(mov_imm, n, true, insn) == DecodeStatus::kNeedBytes);
  }
  uint8_t overlong[16];
  for (uint8_t& b : overlong) b = 0x66;  // fifteen prefixes and an opcode: 16 bytes
  overlong[15] = 0x90;
  CHECK(Decode(overlong, sizeof overlong, true, insn) == DecodeStatus::kTooLong);
  const uint8_t ok15[] = {0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
                          0x67, 0x81, 0x00, 0x01, 0x02};  // ... add word [bx+si],0x0201
  CHECK(Decode(ok15, sizeof ok15, true, insn) == DecodeStatus::kOk);
  CHECK(insn.len == 15);
  const uint8_t cpuid[] = {0x0f, 0xa2};  // known format, outside the subset
  CHECK(Decode(cpuid, sizeof cpuid, true, insn) == DecodeStatus::kOk);
  const uint8_t unknown[] = {0x0f, 0x38, 0x00, 0xc1};  // pshufb: the decoder does not know 0F 38
  CHECK(Decode(unknown, sizeof unknown, true, insn) == DecodeStatus::kUnknown);
  CHECK(insn.len == 2);
}

}  // namespace
}  // namespace kvmlike::x86
