// mmu_bench: ns per Tdp operation on the fault path's scale (262144 4 KiB
// pages = 1 GiB of guest memory). Prints figures only; the best of several
// rounds, per format.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>

#include "kvmlike/mmu/tdp.h"

namespace {

using kvmlike::mmu::Format;
using kvmlike::mmu::Gfn;
using kvmlike::mmu::Hva;
using kvmlike::mmu::PageSize;
using kvmlike::mmu::Perm;
using kvmlike::mmu::Tdp;

constexpr uint64_t kPages = 262144;
constexpr uint64_t kBaseGfn = 0x100000;  // 4 GiB
constexpr uint64_t kHostBase = 0x7f00'0000'0000;
constexpr int kRounds = 7;
// One Perm for every call, as a fault builds its Perm once: GCC assembles a
// fresh Perm{} per call with byte stores that the call's 32-bit load cannot
// forward from, which alone adds ~5 ns per call and would hide Map's cost.
constexpr Perm kPerm{};

Hva HostOf(uint64_t i) { return Hva(kHostBase + base::PagesToBytes(i)); }

void Map(Tdp& tdp, uint64_t first, uint64_t step) {
  for (uint64_t i = first; i < kPages; i += step)
    if (!tdp.Map(Gfn(kBaseGfn + i), HostOf(i), PageSize::k4K, kPerm).ok()) std::abort();
}

// Best ns per operation of `run` (ops operations), each round on a Tdp that
// `setup` prepared.
double Measure(Format format, uint64_t ops, const std::function<void(Tdp&)>& setup,
               const std::function<void(Tdp&)>& run) {
  double best = 1e30;
  for (int r = 0; r < kRounds; ++r) {
    Tdp tdp(format);
    setup(tdp);
    const auto t0 = std::chrono::steady_clock::now();
    run(tdp);
    const auto t1 = std::chrono::steady_clock::now();
    const double ns = std::chrono::duration<double, std::nano>(t1 - t0).count() / double(ops);
    if (ns < best) best = ns;
  }
  return best;
}

void Report(const char* what, double ns) { std::printf("  %-52s %7.2f ns\n", what, ns); }

}  // namespace

int main() {
  for (Format format : {Format::kEpt, Format::kNpt}) {
    std::printf("%s, %llu pages of 4 KiB:\n", format == Format::kEpt ? "EPT" : "NPT",
                static_cast<unsigned long long>(kPages));
    auto nothing = [](Tdp&) {};
    auto all = [](Tdp& t) { Map(t, 0, 1); };
    auto even = [](Tdp& t) { Map(t, 0, 2); };

    Report("Map 4K, fresh tables (PT allocated every 512)",
           Measure(format, kPages, nothing, all));
    Report("Map 4K into an existing PT, empty slot",
           Measure(format, kPages / 2, even, [](Tdp& t) { Map(t, 1, 2); }));
    Report("Map 4K into an existing PT, replacing a leaf", Measure(format, kPages, all, all));
    Report("Walk of a 4K leaf", Measure(format, kPages, all, [](Tdp& t) {
             uint64_t sum = 0;
             for (uint64_t i = 0; i < kPages; ++i) sum += t.Walk(Gfn(kBaseGfn + i))->raw;
             if (sum == 0) std::abort();
           }));
    Report("MarkAccessed(write) of a 4K leaf", Measure(format, kPages, all, [](Tdp& t) {
             for (uint64_t i = 0; i < kPages; ++i)
               if (!t.MarkAccessed(Gfn(kBaseGfn + i), true)) std::abort();
           }));
    Report("Zap page by page (per page, tables freed)", Measure(format, kPages, all, [](Tdp& t) {
             for (uint64_t i = 0; i < kPages; ++i)
               t.Zap({Gfn(kBaseGfn + i), Gfn(kBaseGfn + i + 1)});
           }));
    Report("Zap of the whole 1 GiB in one call (per page)",
           Measure(format, kPages, all, [](Tdp& t) {
             if (t.Zap({Gfn(kBaseGfn), Gfn(kBaseGfn + kPages)}) != kPages) std::abort();
           }));
  }
  return 0;
}
