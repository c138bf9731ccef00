#include "kvmlike/x86/translator/translator.h"

#include <cpuid.h>

#include <cstring>

#include "kvmlike/x86/segmentation.h"

namespace kvmlike::x86::translator {

namespace {

// LAHF/SAHF are optional in 64-bit mode (CPUID 8000_0001h ECX bit 0).
bool HostHasLahf() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(0x80000001, &eax, &ebx, &ecx, &edx)) return false;
  return (ecx & 1) != 0;
}

// Writable expand-up data, base 0, 4 GiB.
bool FlatData(const Segment& s) {
  using namespace segmentation_detail;
  return !s.unusable && s.base == 0 && s.limit == 0xffffffff &&
         (s.type & (kTypeCode | kTypeExpandDown | kTypeWritable)) == kTypeWritable;
}

}  // namespace

Translator::Translator(Options options)
    : enabled_(options.enabled && HostHasLahf()), hot_after_(options.hot_after) {}

Translator::~Translator() = default;

bool Translator::Eligible(const CpuState& cpu) {
  if (!(cpu.cr0 & kCr0Pe) || (cpu.cr0 & kCr0Pg) || (cpu.efer & kEferLma)) return false;
  if (cpu.rflags & (kFlagVm | kFlagTf)) return false;
  const Segment& cs = cpu.seg[kCs];
  return cs.db && cs.base == 0 && cs.limit == 0xffffffff && FlatData(cpu.seg[kDs]) &&
         FlatData(cpu.seg[kSs]);
}

bool Translator::Hot(base::Gpa gpa) {
  if (!enabled_) [[unlikely]] return false;  // Compile found that code memory cannot be mapped
  Entry& e = entries_[Slot(gpa)];
  if (e.gpa != gpa.value()) {
    e = Entry{};
    e.gpa = gpa.value();
  }
  if (e.code) return true;
  if (e.rejected) return false;
  return ++e.arrivals >= hot_after_;
}

bool Translator::Matches(const Entry& e, const uint8_t* host) const {
  return std::memcmp(e.bytes.data(), host, e.guest_bytes) == 0;
}

// Code memory is reset when full: every block is compiled again on demand.
bool Translator::Compile(Entry& e, base::Gpa gpa, const uint8_t* host) {
  uint32_t avail = static_cast<uint32_t>(base::kPageSize - (gpa.value() & (base::kPageSize - 1)));
  std::optional<CompiledBlock> b =
      CompileBlock(static_cast<uint32_t>(gpa.value()), host, avail);
  e.code = nullptr;
  if (!b) {
    e.rejected = true;
    return false;
  }
  if (!code_) code_ = CodeMemory::Create(kCodeBytes);
  if (!code_) {  // the host refuses executable mappings: interpret from now on
    enabled_ = false;
    e.rejected = true;
    return false;
  }
  const void* fn = code_->Add(b->code);
  if (!fn) {
    ForgetAll();
    fn = code_->Add(b->code);
    if (!fn) return false;  // a block is a few KiB: cannot happen with the memory empty
  }
  e.gpa = gpa.value();
  e.guest_bytes = b->guest_bytes;
  e.insns = b->insns;
  std::memcpy(e.bytes.data(), host, b->guest_bytes);
  e.code = reinterpret_cast<BlockFn>(const_cast<void*>(fn));
  ++counters_.compiled;
  return true;
}

void Translator::ForgetAll() {
  entries_.fill(Entry{});
  code_->Reset();
}

uint64_t Translator::Run(base::Gpa gpa, const uint8_t* host, CpuState& cpu, const InlineTlb& tlb,
                         uint64_t budget) {
  Entry& e = entries_[Slot(gpa)];
  if (e.gpa != gpa.value()) return 0;
  if (!e.code || !Matches(e, host)) {
    if (!Compile(e, gpa, host)) return 0;
  }
  if (budget < e.insns) return 0;
  BlockContext ctx{
      .cpu = &cpu,
      .small = tlb.small,
      .large = tlb.large,
      .tag_bits = tlb.tag_bits,
      .generation = tlb.generation,
      .acknowledged = tlb.acknowledged->load(std::memory_order_relaxed),
      .code = host,
      .limit = budget - e.insns,
  };
  uint64_t retired = e.code(&ctx);
  ++counters_.runs;
  counters_.retired += retired;
  return retired;
}

}  // namespace kvmlike::x86::translator
