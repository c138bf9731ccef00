// The decode cache is invisible to the guest: code that rewrites itself, the
// same address run as 16- and 32-bit code, instructions across or near a page
// end, a page backed by other memory and a shrunken CS limit all behave as
// if every instruction were decoded afresh; and every fetch is still
// translated.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <vector>

#include "kvmlike/x86/tests/guest.h"

namespace kvmlike::x86::testing {
namespace {

TEST_CASE("code that rewrites itself runs its new bytes") {
  Guest g;
  g.ProtectedMode();
  SUBCASE("an immediate patched after the instruction ran") {
    g.Code({
        0xb8, 0x01, 0x00, 0x00, 0x00,              // 1000: l: mov eax, 1
        0x83, 0xfb, 0x00,                          // 1005: cmp ebx, 0
        0x75, 0x0a,                                // 1008: jne done
        0xc6, 0x05, 0x01, 0x10, 0x00, 0x00, 0x02,  // 100a: mov byte [0x1001], 2
        0x43,                                      // 1011: inc ebx
        0xeb, 0xec,                                // 1012: jmp l
        0xf4,                                      // 1014: done: hlt
    });
    REQUIRE(g.Run().reason == StopReason::kHlt);
    CHECK(g.reg(kRax) == 2);
  }
  SUBCASE("an instruction replaced by shorter ones") {
    g.Code({
        0xb8, 0x01, 0x00, 0x00, 0x00,  // 1000: l: mov eax, 1
        0x83, 0xfb, 0x00,              // 1005: cmp ebx, 0
        0x75, 0x14,                    // 1008: jne done
        // 100a: mov dword [0x1000], 0x4040c031  (xor eax, eax; inc eax; inc eax)
        0xc7, 0x05, 0x00, 0x10, 0x00, 0x00, 0x31, 0xc0, 0x40, 0x40,
        0xc6, 0x05, 0x04, 0x10, 0x00, 0x00, 0x40,  // 1014: mov byte [0x1004], 0x40 (inc eax)
        0x43,                                      // 101b: inc ebx
        0xeb, 0xe2,                                // 101c: jmp l
        0xf4,                                      // 101e: done: hlt
    });
    REQUIRE(g.Run().reason == StopReason::kHlt);
    CHECK(g.reg(kRax) == 3);
    CHECK(g.cpu.rip == 0x101f);
  }
  SUBCASE("the VMM rewrites code between runs") {
    g.Code({0xb8, 0x01, 0x00, 0x00, 0x00, 0xf4});  // mov eax, 1; hlt
    REQUIRE(g.Run().reason == StopReason::kHlt);
    CHECK(g.reg(kRax) == 1);
    g.mem.Load(Guest::kCode, {0x31, 0xc0, 0x40, 0x40, 0x40, 0xf4});  // xor eax, eax; inc eax x3; hlt
    g.cpu.rip = Guest::kCode;
    REQUIRE(g.Run().reason == StopReason::kHlt);
    CHECK(g.reg(kRax) == 3);
  }
}

TEST_CASE("the same address runs as 16-bit and as 32-bit code") {
  // 32-bit: mov eax, 0x00020001; hlt. 16-bit: mov ax, 1; add al, [bx+si]; hlt.
  const std::vector<uint8_t> code = {0xb8, 0x01, 0x00, 0x02, 0x00, 0xf4};
  Guest g;
  g.mem.at(0) = 0x10;  // [bx+si] with BX = SI = 0
  for (int round = 0; round < 2; ++round) {
    CAPTURE(round);
    g.ProtectedMode();
    g.Code(code);
    REQUIRE(g.Run().reason == StopReason::kHlt);
    CHECK(g.reg(kRax) == 0x00020001);
    CHECK(g.cpu.rip == Guest::kCode + 6);

    g.RealMode();
    g.set(kRax, 0xaaaa0000);
    REQUIRE(g.Run().reason == StopReason::kHlt);
    CHECK(g.reg(kRax) == 0xaaaa0011);
    CHECK(g.cpu.rip == Guest::kCode + 6);
  }
}

TEST_CASE("an instruction across a page boundary is fetched from both pages every time") {
  Guest g;
  g.ProtectedMode(0x1ff8);
  g.Code({
      0x49,                          // 1ff8: l: dec ecx
      0x90, 0x90, 0x90,              // 1ff9: nop x3
      0xb8, 0x11, 0x22, 0x33, 0x44,  // 1ffc: mov eax, 0x44332211 (last byte at 0x2000)
      0x75, 0xf5,                    // 2001: jnz l
      0xf4,                          // 2003: hlt
  });
  g.set(kRcx, 3);
  uint64_t translations = g.mem.translations;
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK(g.reg(kRax) == 0x44332211);
  // Per round: dec, three nops, the mov from two pages, jnz; then hlt.
  // (Translated code fetches a block once per entry.)
  if (!TranslateInTests()) CHECK(g.mem.translations - translations == 3 * 7 + 1);

  SUBCASE("its bytes in the second page change") { g.mem.at(0x2000) = 0x55; }
  SUBCASE("its bytes in the first page change") { g.mem.at(0x1ffd) = 0x66; }
  g.cpu.rip = 0x1ff8;
  g.set(kRcx, 2);
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK(g.reg(kRax) == (g.mem.u32(0x1ffd)));
}

TEST_CASE("instructions near the end of a page run their current bytes") {
  // The last start the cache takes, the first it leaves alone, and one that
  // ends on the page's last byte.
  for (uint32_t start : {0x1ff0u, 0x1ff1u, 0x1ffau}) {
    CAPTURE(start);
    Guest g;
    g.ProtectedMode(start);
    g.Code({0xb8, 0x01, 0x00, 0x00, 0x00, 0xf4});  // mov eax, 1; hlt
    REQUIRE(g.Run().reason == StopReason::kHlt);
    CHECK(g.reg(kRax) == 1);
    g.mem.at(start + 1) = 9;
    g.cpu.rip = start;
    REQUIRE(g.Run().reason == StopReason::kHlt);
    CHECK(g.reg(kRax) == 9);
  }
}

TEST_CASE("every fetch is translated, decoded afresh or not") {
  Guest g;
  g.ProtectedMode();
  g.Code({
      0x40,        // l: inc eax
      0x90,        // nop
      0x49,        // dec ecx
      0x75, 0xfb,  // jnz l
      0xf4,        // hlt
  });
  g.set(kRcx, 100);
  uint64_t translations = g.mem.translations;
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK(g.interp.instructions_retired() == 4 * 100 + 1);
  if (TranslateInTests()) return;  // a translated loop fetches its block once per entry
  CHECK(g.mem.translations - translations == 4 * 100 + 1);
  CHECK(g.mem.last_kind == AccessKind::kFetch);
}

// RAM in which the page at kSwapped is backed by one of two buffers: the
// same guest-physical address, remapped to other memory.
class RemappableRam final : public GuestMemory {
 public:
  static constexpr uint64_t kSwapped = 0x1000;

  RemappableRam() : ram_(1 << 20) {}
  Translation Translate(base::Gpa gpa, AccessKind) override {
    uint64_t a = gpa.value();
    if ((a & ~uint64_t{0xfff}) == kSwapped) return {MemOutcome::kOk, &pages_[current_][a & 0xfff]};
    return {MemOutcome::kOk, &ram_[a]};
  }
  uint8_t* page(int which) { return pages_[which].data(); }
  void Map(int which) { current_ = which; }

 private:
  std::vector<uint8_t> ram_;
  std::array<std::array<uint8_t, 4096>, 2> pages_{};
  int current_ = 0;
};

TEST_CASE("an address remapped to other memory runs the bytes found there") {
  RemappableRam ram;
  const uint8_t first[] = {0xb8, 0x01, 0x00, 0x00, 0x00, 0xf4};   // mov eax, 1; hlt
  const uint8_t second[] = {0xb8, 0x02, 0x00, 0x00, 0x00, 0xf4};  // mov eax, 2; hlt
  std::copy(std::begin(first), std::end(first), ram.page(0));
  std::copy(std::begin(second), std::end(second), ram.page(1));
  Guest tmp;  // only for its register set-up
  tmp.ProtectedMode(RemappableRam::kSwapped);
  Interpreter interp;
  for (int which : {0, 1, 0}) {
    CAPTURE(which);
    ram.Map(which);
    CpuState cpu = tmp.cpu;
    REQUIRE(interp.Run(cpu, ram, 100).reason == StopReason::kHlt);
    CHECK(cpu.gpr[kRax] == static_cast<uint64_t>(which + 1));
  }
}

TEST_CASE("an instruction that ran before is checked against a shrunken CS limit") {
  Guest g;
  g.ProtectedMode();
  g.InstallHaltHandlers();
  g.Code({0xb8, 0x01, 0x00, 0x00, 0x00, 0xf4});  // mov eax, 1 (ends at 0x1004); hlt
  REQUIRE(g.Run().reason == StopReason::kHlt);
  g.set(kRax, 0);
  g.cpu.rip = Guest::kCode;
  g.cpu.seg[kCs].limit = Guest::kCode + 3;  // cuts the mov's last byte off
  REQUIRE(g.Run().reason == StopReason::kHlt);
  CHECK(g.HandledVector() == kVecGp);
  CHECK(g.reg(kRax) == 0);
}

TEST_CASE("an instruction outside the subset reports its bytes however often it is met") {
  Guest g;
  g.ProtectedMode();
  g.Code({0x0f, 0xa2});  // cpuid: decoded, but not executed
  for (int attempt = 0; attempt < 3; ++attempt) {
    CAPTURE(attempt);
    Stop s = g.Run();
    REQUIRE(s.reason == StopReason::kInternalError);
    CHECK(s.internal.insn_len == 2);
    CHECK(s.internal.insn[0] == 0x0f);
    CHECK(s.internal.insn[1] == 0xa2);
    CHECK(g.cpu.rip == Guest::kCode);
  }
}

}  // namespace
}  // namespace kvmlike::x86::testing
