// The translator runs hot 32-bit loops as host code; these tests hold it to
// the interpreter: the same stops after the same number of instructions, the
// same registers, flags and memory. Each guest runs twice, once with the
// translator (an inline TLB offered, blocks compiled at the first arrival)
// and once interpreted only, and the two are compared at every stop.
#include <doctest/doctest.h>

#include <chrono>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "kvmlike/x86/tests/guest.h"

using namespace kvmlike::x86;
using namespace kvmlike::x86::testing;

namespace {

constexpr uint32_t kData = 0x200000;  // scratch data (the second 2 MiB block)

struct Snapshot {
  StopReason reason;
  uint64_t rip, rflags;
  std::array<uint64_t, 8> gpr;
  uint64_t retired;
  bool operator==(const Snapshot&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Snapshot& s) {
  os << "stop " << int(s.reason) << " rip " << std::hex << s.rip << " rflags " << s.rflags;
  for (uint64_t r : s.gpr) os << " " << r;
  return os << std::dec << " retired " << s.retired;
}

using Regs = std::array<uint64_t, 8>;

// The registers a test loop starts with: those given, ESP = 0x70000, the
// others 0.
Regs With(std::initializer_list<std::pair<Gpr, uint64_t>> given) {
  Regs r{};
  r[kRsp] = 0x70000;
  for (auto [reg, value] : given) r[reg] = value;
  return r;
}

// A Guest in 32-bit flat mode running code at kCode from regs, with or
// without the translator.
struct Side {
  Guest g;
  Side(bool translate, const std::vector<uint8_t>& code, const Regs& regs,
       TlbPages pages = TlbPages::k4K)
      : g(translator::Options{.enabled = translate, .hot_after = 1}) {
    if (translate) g.mem.OfferInlineTlb(pages);
    g.ProtectedMode();
    g.Code(code);
    for (int r = 0; r < 8; ++r) g.cpu.gpr[r] = regs[r];
  }
  // Runs up to max instructions; an MMIO read completes with bytes made from
  // its address, so both sides read the same.
  Snapshot Step(uint64_t max) {
    Stop s = g.Run(max);
    if (s.reason == StopReason::kMmio && !s.mmio.is_write) {
      uint8_t data[8];
      for (uint32_t i = 0; i < 8; ++i) data[i] = static_cast<uint8_t>(s.mmio.gpa * 7 + i);
      g.interp.CompleteRead(data, s.mmio.len);
    }
    Snapshot snap{s.reason, g.cpu.rip, g.cpu.rflags, {}, g.interp.instructions_retired()};
    for (int r = 0; r < 8; ++r) snap.gpr[r] = g.cpu.gpr[r];
    return snap;
  }
};

bool Final(StopReason r) { return r == StopReason::kHlt || r == StopReason::kInternalError ||
                                  r == StopReason::kShutdown; }

// Runs both sides in steps of the given budgets (cycled) until a final stop,
// comparing every stop, then the data memory. Returns the translated side's
// counters.
translator::Counters RunBoth(const std::vector<uint8_t>& code, const Regs& regs,
                             std::vector<uint64_t> budgets, TlbPages pages = TlbPages::k4K) {
  Side t(true, code, regs, pages), i(false, code, regs);
  for (size_t n = 0; n < 100000; ++n) {
    uint64_t max = budgets[n % budgets.size()];
    Snapshot a = t.Step(max), b = i.Step(max);
    REQUIRE(a == b);
    if (Final(a.reason)) break;
  }
  for (uint32_t off = 0; off < 0x4000; off += 4) {
    CAPTURE(off);
    REQUIRE(t.g.mem.u32(kData + off) == i.g.mem.u32(kData + off));
  }
  return t.g.interp.translator().counters();
}

void Emit(std::vector<uint8_t>& c, std::initializer_list<uint8_t> bytes) {
  c.insert(c.end(), bytes);
}
void Emit32(std::vector<uint8_t>& c, uint32_t v) {
  for (int k = 0; k < 4; ++k) c.push_back(static_cast<uint8_t>(v >> (8 * k)));
}

// A random loop body: ECX counts the loop, EBX points into the data, ESI is
// a small offset; EAX, EDX, EDI, EBP hold data. Most instructions are in the
// translated subset; some are not (the block ends there), some access MMIO or
// straddle a page, some branch forward out of the block.
std::vector<uint8_t> RandomLoop(std::mt19937& rng, uint32_t body_len) {
  auto pick = [&](uint32_t n) { return static_cast<uint32_t>(rng() % n); };
  const uint8_t data_regs[] = {kRax, kRdx, kRdi, kRbp};
  auto dreg = [&] { return data_regs[pick(4)]; };
  std::vector<uint8_t> c;
  for (uint32_t k = 0; k < body_len; ++k) {
    uint8_t r = dreg(), s = dreg();
    uint8_t alu = static_cast<uint8_t>(pick(8));
    // [ebx + esi + disp32]: SIB with base EBX, index ESI.
    auto mem = [&](uint8_t reg) {
      uint32_t disp = pick(8) == 0 ? 0xffe + pick(4) : pick(0x2000) & ~3u;
      if (pick(16) == 0) disp = 0xd0000 - kData + pick(64);  // the MMIO hole
      Emit(c, {static_cast<uint8_t>(0x84 | reg << 3), 0x33});
      Emit32(c, disp);
    };
    switch (pick(20)) {
      case 0: Emit(c, {static_cast<uint8_t>(alu << 3 | 1), static_cast<uint8_t>(0xc0 | s << 3 | r)}); break;
      case 1: Emit(c, {static_cast<uint8_t>(alu << 3 | 3), static_cast<uint8_t>(0xc0 | s << 3 | r)}); break;
      case 2: Emit(c, {static_cast<uint8_t>(alu << 3 | 1)}); mem(s); break;       // op [m], r
      case 3: Emit(c, {static_cast<uint8_t>(alu << 3 | 3)}); mem(r); break;       // op r, [m]
      case 4: Emit(c, {0x83, static_cast<uint8_t>(0xc0 | alu << 3 | r), static_cast<uint8_t>(rng())}); break;
      case 5: Emit(c, {0x81, static_cast<uint8_t>(0xc0 | alu << 3 | r)}); Emit32(c, rng()); break;
      case 6: Emit(c, {static_cast<uint8_t>((pick(2) ? 0x40 : 0x48) | r)}); break;  // inc/dec
      case 7: Emit(c, {0x89}); mem(r); break;                                       // mov [m], r
      case 8: Emit(c, {0x8b}); mem(r); break;                                       // mov r, [m]
      case 9: Emit(c, {0x88}); mem(pick(2) ? kRax : kRdx); break;                   // mov [m], al/dl
      case 10: Emit(c, {0xc6}); mem(0); c.push_back(static_cast<uint8_t>(rng())); break;
      case 11: Emit(c, {0xc7}); mem(0); Emit32(c, rng()); break;
      case 12: Emit(c, {static_cast<uint8_t>(0xb8 | r)}); Emit32(c, rng()); break;
      case 13: Emit(c, {0x85, static_cast<uint8_t>(0xc0 | s << 3 | r)}); break;     // test
      case 14: Emit(c, {0x8d, static_cast<uint8_t>(0x84 | r << 3), 0x33}); Emit32(c, rng()); break;
      case 15: Emit(c, {0x81, static_cast<uint8_t>(0xc0 | alu << 3 | kRax)}); Emit32(c, rng()); break;
      case 16: Emit(c, {0x83, static_cast<uint8_t>(0xc0 | 0 << 3 | kRsi), static_cast<uint8_t>(pick(4) * 4)}); Emit(c, {0x81, 0xe6}); Emit32(c, 0x1ffc); break;  // esi = (esi + n) & 0x1ffc
      case 17: Emit(c, {0xc1, static_cast<uint8_t>(0xe0 | r), static_cast<uint8_t>(pick(8))}); break;  // shl: not translated
      case 18: Emit(c, {0x66, 0x01, static_cast<uint8_t>(0xc0 | s << 3 | r)}); break;  // 16-bit add: not translated
      case 19: Emit(c, {static_cast<uint8_t>(0x70 | pick(16)), 2, 0x90, 0x90}); break; // jcc over two nops
    }
  }
  return c;
}

std::vector<uint8_t> WrapInLoop(const std::vector<uint8_t>& body) {
  std::vector<uint8_t> c = body;
  c.push_back(0x49);  // dec ecx
  int32_t back = -static_cast<int32_t>(c.size() + 6);
  Emit(c, {0x0f, 0x85});  // jnz rel32 to the start
  Emit32(c, static_cast<uint32_t>(back));
  c.push_back(0xf4);  // hlt
  return c;
}

Regs RandomRegs(std::mt19937& rng, uint32_t rounds) {
  Regs r{};
  for (uint64_t& v : r) v = rng();
  r[kRcx] = rounds;
  r[kRbx] = kData;
  r[kRsi] = (rng() % 0x800) * 4;
  r[kRsp] = 0x70000;
  return r;
}

}  // namespace

TEST_CASE("a hot loop runs as translated code and ends as the interpreter ends it") {
  std::vector<uint8_t> code = {
      0x88, 0x03,                          // l: mov [ebx], al
      0x81, 0xc3, 0x00, 0x10, 0x00, 0x00,  // add ebx, 4096
      0x40,                                // inc eax
      0x39, 0xcb,                          // cmp ebx, ecx
      0x75, 0xf3,                          // jne l
      0xf4,                                // hlt
  };
  Regs regs = With({{kRbx, kData}, {kRcx, kData + 512 * 4096}});
  for (TlbPages pages : {TlbPages::k4K, TlbPages::k2M}) {
    CAPTURE(int(pages));
    translator::Counters c = RunBoth(code, regs, {~uint64_t{0}}, pages);
    CHECK(c.compiled >= 1);
    // With 4 KiB entries every pass misses at its store on a new page, so
    // the block is entered each pass and the interpreter runs the rest; with
    // 2 MiB entries nearly everything runs translated.
    if (pages == TlbPages::k4K) {
      CHECK(c.runs >= 511);
    } else {
      CHECK(c.retired >= 2500);
    }
  }
}

TEST_CASE("random loops give the interpreter's stops, registers, flags and memory") {
  uint64_t seeds_translated = 0, retired = 0;
  for (uint32_t seed = 1; seed <= 300; ++seed) {
    CAPTURE(seed);
    std::mt19937 rng(seed);
    std::vector<uint8_t> code = WrapInLoop(RandomLoop(rng, 1 + rng() % 24));
    Regs regs = RandomRegs(rng, 1 + rng() % 40);
    std::vector<uint64_t> budgets = {~uint64_t{0}};
    if (seed % 3 == 1) budgets = {1 + rng() % 50, 1 + rng() % 7, 1 + rng() % 100};
    TlbPages pages = seed % 2 ? TlbPages::k4K : TlbPages::k2M;
    translator::Counters c = RunBoth(code, regs, budgets, pages);
    seeds_translated += c.retired > 0;
    retired += c.retired;
  }
  // Nearly every loop starts with a translated instruction.
  CHECK(seeds_translated > 250);
  CHECK(retired > 10000);
}

TEST_CASE("translated code stops on the budget exactly where the interpreter does") {
  std::vector<uint8_t> code = {
      0x40,        // l: inc eax
      0x01, 0xc2,  // add edx, eax
      0xeb, 0xfb,  // jmp l
  };
  Regs regs = With({});  // ESP only
  Side t(true, code, regs), i(false, code, regs);
  for (uint64_t max : {1u, 2u, 3u, 4u, 1000u, 1001u, 99999u}) {
    CAPTURE(max);
    Snapshot a = t.Step(max), b = i.Step(max);
    REQUIRE(a.reason == StopReason::kBudget);
    CHECK(a == b);
  }
  CHECK(t.g.interp.translator().counters().retired > 90000);
}

TEST_CASE("a store into the loop's own code changes what runs next") {
  // mov eax, imm32 at 0x1000 is rewritten each pass with EDX, then EDX grows:
  // each pass loads the value the previous pass stored.
  std::vector<uint8_t> code = {
      0xb8, 0x00, 0x00, 0x00, 0x00,  // 1000: l: mov eax, imm32 (imm at 0x1001)
      0x01, 0xc7,                    // 1005: add edi, eax
      0x89, 0x15, 0x01, 0x10, 0x00, 0x00,  // 1007: mov [0x1001], edx
      0x42,                          // 100d: inc edx
      0x49,                          // 100e: dec ecx
      0x75, 0xef,                    // 100f: jnz l
      0xf4,                          // 1011: hlt
  };
  Regs regs = With({{kRcx, 100}, {kRdx, 1}});
  RunBoth(code, regs, {~uint64_t{0}});
  Side t(true, code, regs);
  REQUIRE(t.g.Run().reason == StopReason::kHlt);
  CHECK(t.g.reg(kRdi) == 99 * 100 / 2);  // 0 + 1 + ... + 99
  CHECK(t.g.interp.translator().counters().runs > 0);
}

TEST_CASE("a write through a read-only TLB entry goes to Translate") {
  // The page is read first (read-only entry), then written in the loop.
  std::vector<uint8_t> code = {
      0x8b, 0x03,  // l: mov eax, [ebx]
      0x40,        // inc eax
      0x89, 0x03,  // mov [ebx], eax
      0x49,        // dec ecx
      0x75, 0xf8,  // jnz l
      0xf4,
  };
  Regs regs = With({{kRbx, kData + 0x100}, {kRcx, 50}});
  Side t(true, code, regs);
  REQUIRE(t.g.Run().reason == StopReason::kHlt);
  CHECK(t.g.mem.u32(kData + 0x100) == 50);
  CHECK(t.g.mem.write_translations >= 1);
  CHECK(t.g.interp.translator().counters().retired > 200);
}

TEST_CASE("translated code does not store through a read-only TLB entry") {
  // The first loop only reads the page, which gets a read-only entry. The
  // second starts at a jump target, so translated, and stores there: its
  // first store leaves the block for Translate, which makes the entry
  // writable; the later ones hit it.
  std::vector<uint8_t> code = {
      0x8b, 0x03,                    // 1000: r: mov eax, [ebx]
      0x49,                          // 1002: dec ecx
      0x75, 0xfb,                    // 1003: jnz r
      0xb9, 0x32, 0x00, 0x00, 0x00,  // 1005: mov ecx, 50
      0xeb, 0x01,                    // 100a: jmp w
      0x90,                          // 100c: nop
      0x40,                          // 100d: w: inc eax
      0x89, 0x03,                    // 100e: mov [ebx], eax
      0x49,                          // 1010: dec ecx
      0x75, 0xfa,                    // 1011: jnz w
      0xf4,                          // 1013: hlt
  };
  Regs regs = With({{kRbx, kData + 0x100}, {kRcx, 10}});
  RunBoth(code, regs, {~uint64_t{0}});
  Side t(true, code, regs);
  REQUIRE(t.g.Run().reason == StopReason::kHlt);
  CHECK(t.g.mem.u32(kData + 0x100) == 50);
  CHECK(t.g.mem.write_translations == 1);
  CHECK(t.g.interp.translator().counters().retired > 150);
}

TEST_CASE("a shootdown during a translated loop is acknowledged") {
  // An endless translated loop; another thread moves the TLB generation and
  // waits for the vCPU to come to Translate and acknowledge it.
  std::vector<uint8_t> code = {0x40, 0xeb, 0xfd};  // l: inc eax; jmp l
  Regs regs = With({});  // ESP only
  Side t(true, code, regs);
  REQUIRE(t.g.Run(1000).reason == StopReason::kBudget);  // compiled and entered
  std::atomic<bool> acknowledged{false}, done{false};
  std::thread zapper([&] {
    uint64_t gen = t.g.mem.generation() + 1;
    t.g.mem.Shootdown();
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (t.g.mem.acknowledged() < gen && std::chrono::steady_clock::now() < deadline)
      std::this_thread::yield();
    acknowledged = t.g.mem.acknowledged() >= gen;
    done = true;
  });
  while (!done) REQUIRE(t.g.Run(1'000'000).reason == StopReason::kBudget);
  zapper.join();
  CHECK(acknowledged);
}

TEST_CASE("no pass starts while the TLB generation is not the acknowledged one") {
  // The check a shootdown from another thread meets, made without one: the
  // block is run directly with a generation that moved since the vCPU last
  // acknowledged it.
  translator::Translator t(translator::Options{.hot_after = 1});
  if (!t.enabled()) return;  // no LAHF/SAHF in 64-bit mode on this host
  Guest g;
  g.ProtectedMode();
  std::array<uint8_t, 4096> page{0x40, 0xeb, 0xfd};  // l: inc eax; jmp l
  std::atomic<uint64_t> generation{1}, acknowledged{0};
  InlineTlb tlb{.generation = &generation, .acknowledged = &acknowledged};
  base::Gpa gpa(Guest::kCode);
  REQUIRE(t.Hot(gpa));
  CHECK(t.Run(gpa, page.data(), g.cpu, tlb, 1000) == 0);
  CHECK(g.cpu.rip == Guest::kCode);
  CHECK(g.reg(kRax) == 0);
  acknowledged = 1;
  CHECK(t.Run(gpa, page.data(), g.cpu, tlb, 1000) == 1000);
  CHECK(g.reg(kRax) == 500);
}

TEST_CASE("translated loops leave for MMIO, page-straddling and missing memory") {
  SUBCASE("an MMIO store in the loop") {
    std::vector<uint8_t> code = {0x89, 0x03, 0x40, 0x49, 0x75, 0xfa, 0xf4};  // mov [ebx], eax; inc; dec; jnz
    Regs regs = With({{kRbx, FakeMemory::kMmioBegin + 8}, {kRcx, 5}});
    RunBoth(code, regs, {~uint64_t{0}});
    Side t(true, code, regs);
    int writes = 0;
    for (Stop s = t.g.Run(); s.reason != StopReason::kHlt; s = t.g.Run()) {
      REQUIRE(s.reason == StopReason::kMmio);
      CHECK(s.mmio.is_write);
      CHECK(s.mmio.gpa == FakeMemory::kMmioBegin + 8);
      ++writes;
    }
    CHECK(writes == 5);
  }
  SUBCASE("a dword store across a page boundary") {
    std::vector<uint8_t> code = {0x89, 0x03, 0x40, 0x49, 0x75, 0xfa, 0xf4};
    Regs regs = With({{kRax, 0x11223344}, {kRbx, kData + 0xffe}, {kRcx, 20}});
    RunBoth(code, regs, {~uint64_t{0}, 3});
  }
  SUBCASE("a page that answers kExit") {
    std::vector<uint8_t> code = {0x8b, 0x03, 0x40, 0x49, 0x75, 0xfa, 0xf4};
    Regs regs = With({{kRbx, kData + 0x3000}, {kRcx, 20}});
    Side t(true, code, regs);
    REQUIRE(t.g.Run(30).reason == StopReason::kBudget);
    t.g.mem.Force(kData + 0x3000, MemOutcome::kExit, 1);
    CHECK(t.g.Run().reason == StopReason::kMemExit);
    CHECK(t.g.cpu.rip == Guest::kCode);  // at the load, which did not retire
    CHECK(t.g.Run().reason == StopReason::kHlt);
  }
}
