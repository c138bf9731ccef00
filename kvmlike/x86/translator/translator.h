// Translator: runs hot loops of guest code as host code. The interpreter
// asks it at each branch target; a target reached often enough in 32-bit flat
// protected mode becomes a block (block_compiler.h) that runs until an
// instruction it does not translate, a TLB miss, a shootdown, the budget or a
// jump away, and then hands the vCPU back to the interpreter at an
// instruction boundary with the state the interpreter would have there.
//
// Blocks are cached by the guest-physical address of their first byte and
// keep the bytes they were compiled from. A block runs only after the fetch
// of its first byte went through the MMU and the bytes there still equal
// those, as the decode cache does for single instructions: code that changes
// or moves is compiled again, with no invalidation to get wrong.
//
// Owned by the Interpreter (one per vCPU); not thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <memory>

#include "base/types.h"
#include "kvmlike/x86/cpu_state.h"
#include "kvmlike/x86/decode_cache.h"
#include "kvmlike/x86/guest_memory.h"
#include "kvmlike/x86/translator/block_compiler.h"
#include "kvmlike/x86/translator/code_memory.h"

namespace kvmlike::x86::translator {

struct Options {
  bool enabled = true;
  uint32_t hot_after = 16;  // arrivals at a target before it is compiled
};

struct Counters {
  uint64_t compiled = 0;   // blocks compiled
  uint64_t runs = 0;       // entries into translated code
  uint64_t retired = 0;    // instructions retired there
};

class Translator {
 public:
  explicit Translator(Options options);
  ~Translator();

  // Whether cpu is in the mode translated code assumes: 32-bit protected mode
  // without paging, CS/DS/SS flat (base 0, 4 GiB, DS/SS writable expand-up
  // data), no single-step.
  static bool Eligible(const CpuState& cpu);
  // Whether this host runs translated code (LAHF/SAHF in 64-bit mode, code
  // memory could be mapped) and the options ask for it.
  bool enabled() const { return enabled_; }

  // Counts an arrival at the branch target gpa (cpu Eligible); true when
  // the caller should fetch it and call Run.
  bool Hot(base::Gpa gpa);

  // Runs the block at gpa, the CPU's EIP, whose bytes the fetch found at
  // host (readable to the end of the page), compiling it first if needed.
  // Retires at most budget instructions and returns how many; 0 when nothing
  // ran (the interpreter runs the instruction at RIP).
  uint64_t Run(base::Gpa gpa, const uint8_t* host, CpuState& cpu, const InlineTlb& tlb,
               uint64_t budget);

  const Counters& counters() const { return counters_; }

 private:
  static constexpr uint32_t kEntries = 256;
  static constexpr uint64_t kCodeBytes = 1 << 20;
  static constexpr uint64_t kEmpty = ~uint64_t{0};

  struct Entry {
    uint64_t gpa = kEmpty;
    uint32_t arrivals = 0;
    bool rejected = false;  // the first instruction is not translated
    uint32_t guest_bytes = 0;
    uint32_t insns = 0;
    std::array<uint8_t, kMaxBlockBytes> bytes{};
    BlockFn code = nullptr;
  };

  static uint32_t Slot(base::Gpa gpa) { return CodeSlot(gpa, kEntries); }
  bool Matches(const Entry& e, const uint8_t* host) const;
  bool Compile(Entry& e, base::Gpa gpa, const uint8_t* host);
  void ForgetAll();

  bool enabled_;
  uint32_t hot_after_;
  std::unique_ptr<CodeMemory> code_;  // created at the first compile
  std::array<Entry, kEntries> entries_{};
  Counters counters_;
};

}  // namespace kvmlike::x86::translator
