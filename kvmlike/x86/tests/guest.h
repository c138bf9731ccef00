// Test harness for the interpreter: FakeMemory (flat RAM, an MMIO hole, and
// pages that can be made to answer kExit or kRetry), and Guest, a vCPU set up
// in real mode or flat 32-bit protected mode that runs hand-assembled bytes.
//
// With KVMLIKE_X86_TEST_TRANSLATE=1 in the environment every Guest offers an
// inline TLB and compiles a block at its first arrival, so the same suites
// run hot code through the translator (ctest runs them both ways).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <map>
#include <vector>

#include "kvmlike/x86/cpu_state.h"
#include "kvmlike/x86/flow.h"
#include "kvmlike/x86/guest_memory.h"
#include "kvmlike/x86/interpreter.h"

namespace kvmlike::x86::testing {

// Whether the suites run with the translator (see the top of this file).
inline bool TranslateInTests() {
  const char* v = std::getenv("KVMLIKE_X86_TEST_TRANSLATE");
  return v && v[0] == '1';
}

// How FakeMemory fills the inline TLB it offers: 4 KiB entries, or one
// 2 MiB entry per block of RAM.
enum class TlbPages : uint8_t { k4K, k2M };

// RAM covers [0, kRamSize); [kMmioBegin, kMmioEnd) and everything above RAM
// has no memslot (kMmio).
class FakeMemory final : public GuestMemory {
 public:
  static constexpr uint64_t kRamSize = 4ull << 20;
  static constexpr uint64_t kMmioBegin = 0xd0000, kMmioEnd = 0xe0000;

  FakeMemory() : tlb_(kTlbEntries), ram_(kRamSize) {
    if (TranslateInTests()) OfferInlineTlb();
  }

  Translation Translate(base::Gpa gpa, AccessKind kind) override {
    ++translations;
    uint64_t a = gpa.value();
    if (offered_) Acknowledge();
    if (!forced_.empty()) [[unlikely]] {
      auto it = forced_.find(a >> 12);
      if (it != forced_.end() && it->second.times > 0 &&
          (!it->second.only_writes || kind == AccessKind::kWrite)) {
        --it->second.times;
        return {it->second.outcome, nullptr};
      }
    }
    if (a >= kRamSize || (a >= kMmioBegin && a < kMmioEnd)) return {MemOutcome::kMmio, nullptr};
    last_kind = kind;
    if (offered_) {
      if (kind == AccessKind::kWrite) ++write_translations;
      if (!forced_.count(a >> 12)) Cache(a, kind);
    }
    return {MemOutcome::kOk, &ram_[a]};
  }

  const InlineTlb* inline_tlb() const override { return offered_ ? &inline_ : nullptr; }

  // Offers the inline TLB from now on, filled as pages are translated; a
  // page read before it is written gets a read-only entry first (as a TDP
  // leaf without the dirty bit does), so the first write goes to Translate.
  void OfferInlineTlb(TlbPages pages = TlbPages::k4K) {
    offered_ = true;
    pages_ = pages;
    uint8_t* base = reinterpret_cast<uint8_t*>(tlb_.data());
    inline_ = {.small = base,
               .large = base + inline_tlb::kSmallEntries * sizeof(TlbEntry),
               .tag_bits = uint64_t{kTag} << inline_tlb::kTagShift,
               .generation = &generation_,
               .acknowledged = &acknowledged_};
  }
  // A shootdown, from any thread: the generation moves; the next Translate
  // (on the vCPU's thread) drops every entry and acknowledges it, as the
  // vCPU's memory does.
  void Shootdown() { generation_.fetch_add(1); }
  uint64_t generation() const { return generation_.load(); }
  uint64_t acknowledged() const { return acknowledged_.load(); }

  // The next `times` translations of gpa's page (writes only, if asked)
  // answer outcome.
  void Force(uint64_t gpa, MemOutcome outcome, int times, bool only_writes = false) {
    forced_[gpa >> 12] = {outcome, times, only_writes};
    Shootdown();
  }

  void Load(uint64_t gpa, std::initializer_list<uint8_t> bytes) {
    std::memcpy(&ram_[gpa], std::data(bytes), bytes.size());
  }
  void Load(uint64_t gpa, const std::vector<uint8_t>& bytes) {
    std::memcpy(&ram_[gpa], bytes.data(), bytes.size());
  }
  uint8_t& at(uint64_t gpa) { return ram_[gpa]; }
  uint16_t u16(uint64_t gpa) const { return Get<uint16_t>(gpa); }
  uint32_t u32(uint64_t gpa) const { return Get<uint32_t>(gpa); }
  uint64_t u64(uint64_t gpa) const { return Get<uint64_t>(gpa); }
  void Set16(uint64_t gpa, uint16_t v) { std::memcpy(&ram_[gpa], &v, 2); }
  void Set32(uint64_t gpa, uint32_t v) { std::memcpy(&ram_[gpa], &v, 4); }
  void Set64(uint64_t gpa, uint64_t v) { std::memcpy(&ram_[gpa], &v, 8); }

  uint64_t translations = 0;
  uint64_t write_translations = 0;  // counted while the inline TLB is offered
  AccessKind last_kind = AccessKind::kRead;

 private:
  // The entry layout of inline_tlb::, as mmu::SoftTlb has it.
  struct TlbEntry {
    uint64_t key = ~uint64_t{0};
    uint8_t* host = nullptr;
    bool writable = false;
    bool executable = false;
  };
  static_assert(sizeof(TlbEntry) == inline_tlb::kEntrySize);
  static constexpr uint64_t kTlbEntries = inline_tlb::kSmallEntries + inline_tlb::kLargeEntries;
  static constexpr uint16_t kTag = 1;

  void Acknowledge() {
    if (uint64_t gen = generation_.load(); gen != acknowledged_.load()) {
      for (TlbEntry& e : tlb_) e = TlbEntry{};
      acknowledged_.store(gen);
    }
  }

  // A read keeps a writable entry; a write makes the entry writable.
  void Cache(uint64_t a, AccessKind kind) {
    bool large = pages_ == TlbPages::k2M && !SpansHole(a);
    uint32_t shift = large ? 21 : 12;
    uint64_t index = a >> shift;
    TlbEntry& e = large ? tlb_[inline_tlb::kSmallEntries + index % inline_tlb::kLargeEntries]
                        : tlb_[index % inline_tlb::kSmallEntries];
    uint64_t key = inline_.tag_bits | index;
    if (e.key == key && e.writable) return;
    e = {key, &ram_[index << shift], kind == AccessKind::kWrite, true};
  }
  // A 2 MiB block containing the MMIO hole or a forced page gets 4 KiB entries.
  bool SpansHole(uint64_t a) const {
    uint64_t lo = a & ~((uint64_t{1} << 21) - 1), hi = lo + (uint64_t{1} << 21);
    if (lo < kMmioEnd && hi > kMmioBegin) return true;
    for (const auto& [page, f] : forced_)
      if ((page << 12) >= lo && (page << 12) < hi) return true;
    return false;
  }

  bool offered_ = false;
  TlbPages pages_ = TlbPages::k4K;
  std::vector<TlbEntry> tlb_;
  InlineTlb inline_{};
  std::atomic<uint64_t> generation_{0}, acknowledged_{0};

  template <typename T>
  T Get(uint64_t gpa) const {
    T v;
    std::memcpy(&v, &ram_[gpa], sizeof v);
    return v;
  }
  struct Forced {
    MemOutcome outcome;
    int times;
    bool only_writes;
  };
  std::vector<uint8_t> ram_;
  std::map<uint64_t, Forced> forced_;
};

// Flat GDT the protected-mode guests use (at kGdtBase).
inline constexpr uint64_t kGdtBase = 0x500;
inline constexpr uint16_t kCode32 = 0x08, kData32 = 0x10, kCode16 = 0x18, kData16 = 0x20,
                          kDataRo = 0x28, kDataSmall = 0x30, kCodeDpl3 = 0x38, kNotPresent = 0x40;
inline constexpr uint64_t kGdt[] = {
    0,
    0x00cf9b000000ffff,  // 0x08 code, 4 GiB, 32-bit, accessed
    0x00cf93000000ffff,  // 0x10 data rw, 4 GiB, 32-bit, accessed
    0x00009b000000ffff,  // 0x18 code, 64 KiB, 16-bit
    0x000093000000ffff,  // 0x20 data, 64 KiB, 16-bit
    0x00cf91000000ffff,  // 0x28 data read-only, 4 GiB
    0x004093000000000f,  // 0x30 data rw, limit 0xf, 32-bit
    0x00cffb000000ffff,  // 0x38 code DPL 3
    0x00cf13000000ffff,  // 0x40 data rw, not present
};

inline Segment FlatSegment(uint16_t selector, uint8_t type) {
  Segment s;
  s.base = 0;
  s.limit = 0xffffffff;
  s.selector = selector;
  s.type = type;
  s.db = 1;
  s.g = 1;
  return s;
}

struct Guest {
  Guest() = default;
  explicit Guest(translator::Options translation) : interp(translation) {}

  FakeMemory mem;
  CpuState cpu = CpuState::Reset();
  Interpreter interp{translator::Options{.enabled = true, .hot_after = TranslateInTests() ? 1u : 16u}};

  // Real mode, every segment at 0, IP = ip, SP = 0x7000.
  static constexpr uint32_t kCode = 0x1000;
  void RealMode(uint32_t ip = kCode) {
    cpu = CpuState::Reset();
    for (Segment& s : cpu.seg) s = Segment{};
    cpu.seg[kCs].type = 0xb;
    cpu.gpr = {};
    cpu.rip = ip;
    cpu.gpr[kRsp] = 0x7000;
    cpu.idt = {0, 0x3ff};
  }

  // Writes the GDT above at kGdtBase (not loaded).
  void WriteGdt() {
    for (size_t i = 0; i < std::size(kGdt); ++i) mem.Set64(kGdtBase + 8 * i, kGdt[i]);
  }
  static constexpr uint16_t kGdtLimit = 8 * std::size(kGdt) - 1;

  // 32-bit flat protected mode with the GDT above loaded, ESP = 0x70000.
  void ProtectedMode(uint32_t eip = kCode) {
    RealMode(eip);
    WriteGdt();
    cpu.gdt = {kGdtBase, kGdtLimit};
    cpu.idt = {0x800, 0};
    cpu.cr0 = kCr0Pe | 0x10;
    cpu.seg[kCs] = FlatSegment(kCode32, 0xb);
    for (SegReg s : {kEs, kSs, kDs, kFs, kGs}) cpu.seg[s] = FlatSegment(kData32, 0x3);
    cpu.gpr[kRsp] = 0x70000;
  }

  void Code(std::initializer_list<uint8_t> bytes) { mem.Load(cpu.seg[kCs].base + cpu.rip, bytes); }
  void Code(const std::vector<uint8_t>& bytes) { mem.Load(cpu.seg[kCs].base + cpu.rip, bytes); }
  // bytes, then HLT.
  void CodeThenHlt(std::vector<uint8_t> bytes) {
    bytes.push_back(0xf4);
    Code(bytes);
  }

  Stop Run(uint64_t max = 100000) { return interp.Run(cpu, mem, max); }

  uint32_t reg(Gpr r) const { return static_cast<uint32_t>(cpu.gpr[r]); }
  void set(Gpr r, uint64_t v) { cpu.gpr[r] = v; }

  // Real-mode IVT entry vector -> seg:off.
  void Ivt(uint8_t vector, uint16_t seg, uint16_t off) {
    mem.Set16(vector * 4, off);
    mem.Set16(vector * 4 + 2, seg);
  }
  // Protected-mode IDT (at cpu.idt.base) gate: type 0xe interrupt / 0xf trap.
  void Idt(uint8_t vector, uint32_t offset, uint8_t type = 0xe, uint16_t selector = kCode32,
           uint8_t dpl = 0, bool present = true) {
    uint64_t lo = (offset & 0xffff) | (uint64_t{selector} << 16);
    uint64_t hi = (offset & 0xffff0000) | (uint64_t{present} << 15) | (uint64_t{dpl} << 13) |
                  (uint64_t{type} << 8);
    mem.Set64(cpu.idt.base + vector * 8, lo | (hi << 32));
    uint32_t end = vector * 8 + 7;
    if (cpu.idt.limit < end) cpu.idt.limit = static_cast<uint16_t>(end);
  }

  // Vectors 0..31 get a handler at kHandlers + 16 * vector that halts: an
  // IDT at 0x800 in protected mode, IVT entries 0300:16*v in real mode.
  static constexpr uint32_t kHandlers = 0x3000;
  void InstallHaltHandlers() {
    bool pm = cpu.cr0 & kCr0Pe;
    if (pm) cpu.idt = {0x800, 0};
    for (uint8_t v = 0; v < 32; ++v) {
      mem.at(kHandlers + 16 * v) = 0xf4;  // hlt
      if (pm) {
        Idt(v, kHandlers + 16 * v);
      } else {
        Ivt(v, kHandlers >> 4, static_cast<uint16_t>(16 * v));
      }
    }
  }
  // The vector whose halt handler ran, or -1.
  int HandledVector() const {
    uint64_t lin = cpu.seg[kCs].base + cpu.rip - 1;
    if (lin < kHandlers || lin >= kHandlers + 16 * 32 || (lin - kHandlers) % 16) return -1;
    return static_cast<int>((lin - kHandlers) / 16);
  }
  // The error code the handler found on a 32-bit stack that started at esp0.
  uint32_t PushedErrorCode(uint32_t esp0 = 0x70000) const { return mem.u32(esp0 - 16); }
};

}  // namespace kvmlike::x86::testing
