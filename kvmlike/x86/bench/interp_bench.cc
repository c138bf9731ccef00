// Guest execution throughput on FakeMemory: a guest loop that writes one byte
// per 4 KiB page (mov [ebx], al; add ebx, 4096; cmp ebx, ecx; jne), in 32-bit
// flat protected mode, interpreted and then translated (FakeMemory offering
// its inline TLB with 2 MiB entries). Prints instructions per second and
// Translate calls per instruction for each; figures, not a test.
#include <chrono>
#include <cstdio>

#include "kvmlike/x86/tests/guest.h"

using namespace kvmlike::x86;
using namespace kvmlike::x86::testing;

namespace {

int Measure(const char* name, bool translate) {
  constexpr uint32_t kFirst = 0x100000;
  constexpr uint32_t kPages = (FakeMemory::kRamSize - kFirst) / 4096;
  constexpr int kRounds = 2000;
  Guest g(translator::Options{.enabled = translate});
  if (translate) g.mem.OfferInlineTlb(TlbPages::k2M);
  g.ProtectedMode();
  g.Code({
      0x88, 0x03,                          // 00: l: mov [ebx], al
      0x81, 0xc3, 0x00, 0x10, 0x00, 0x00,  // 02: add ebx, 4096
      0x39, 0xcb,                          // 08: cmp ebx, ecx
      0x75, 0xf4,                          // 0a: jne l
      0xf4,                                // 0c: hlt
  });
  uint64_t insns = 0, translations = 0;
  std::chrono::nanoseconds elapsed{0};
  for (int round = 0; round < kRounds; ++round) {
    g.cpu.rip = Guest::kCode;
    g.set(kRax, static_cast<uint8_t>(round));
    g.set(kRbx, kFirst);
    g.set(kRcx, kFirst + uint64_t{kPages} * 4096);
    uint64_t before = g.interp.instructions_retired(), tr_before = g.mem.translations;
    auto t0 = std::chrono::steady_clock::now();
    Stop s = g.interp.Run(g.cpu, g.mem, ~uint64_t{0});
    elapsed += std::chrono::steady_clock::now() - t0;
    if (s.reason != StopReason::kHlt) {
      std::fprintf(stderr, "unexpected stop %d\n", static_cast<int>(s.reason));
      return 1;
    }
    insns += g.interp.instructions_retired() - before;
    translations += g.mem.translations - tr_before;
  }
  double secs = std::chrono::duration<double>(elapsed).count();
  std::printf("x86 %s, page-touch loop: %llu instructions in %.3f s = %.1f M insn/s "
              "(%.2f ns/insn, %.3f Translate calls/insn, %.1f M pages/s)\n",
              name, static_cast<unsigned long long>(insns), secs, insns / secs / 1e6,
              secs * 1e9 / insns, static_cast<double>(translations) / insns,
              insns / 4.0 / secs / 1e6);
  return 0;
}

}  // namespace

int main() {
  if (int rc = Measure("interpreter", false)) return rc;
  return Measure("translated", true);
}
