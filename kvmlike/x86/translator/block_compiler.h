// Block compiler: turns a straight run of guest instructions (32-bit flat
// protected mode) into one host function. The subset it translates, and what
// ends a block, is in docs/x86-subset.md ("Translated code").
//
// How the host code keeps the interpreter's semantics:
// - Guest EAX..EDI live in host R8..R15 while the block runs; they are
//   loaded at entry and stored back at every exit, so an exit leaves
//   CpuState exactly as the interpreter would at that instruction boundary.
// - Guest arithmetic runs as the same host instruction on those registers,
//   so the status flags are the host's (x86 on x86). Between instructions
//   the flags are either in the host's RFLAGS or, around code that clobbers
//   them (TLB lookups, checks), in AX (LAHF/SETO form).
// - Every data access looks up the vCPU's software TLB inline (InlineTlb).
//   A miss, a forbidden write or an access that straddles a page leaves the
//   block before the instruction, which the interpreter then runs (and so
//   handles faults, MMIO and exits).
// - A store into the block's own bytes leaves the block after the store, so
//   the next instruction is fetched again.
// - A backward jump to the block's start loops inside the host code. Each
//   pass starts with two checks: the TLB generation (a shootdown leaves the
//   block before any access, so the interpreter acknowledges it) and the
//   instruction budget (a pass starts only if all of it fits).
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <vector>

#include "kvmlike/x86/cpu_state.h"

namespace kvmlike::x86::translator {

// What translated code reads and writes, passed in RDI. Filled by the
// Translator at each entry.
struct BlockContext {
  CpuState* cpu;                               // GPRs, RIP, RFLAGS read at entry, written at exit
  const uint8_t* small;                        // InlineTlb arrays and tag
  const uint8_t* large;
  uint64_t tag_bits;
  const std::atomic<uint64_t>* generation;
  uint64_t acknowledged;                       // the generation the TLB holds entries of
  const uint8_t* code;                         // host address of the block's first byte
  uint64_t limit;                              // a pass starts only while retired <= limit
};

// Returns the instructions retired (RIP and registers are in cpu).
using BlockFn = uint64_t (*)(BlockContext*);

inline constexpr uint32_t kMaxBlockInsns = 32;
inline constexpr uint32_t kMaxBlockBytes = 64;

struct CompiledBlock {
  std::vector<uint8_t> code;  // host code; entry at offset 0
  uint32_t guest_bytes;       // guest bytes covered, all in the first page
  uint32_t insns;             // instructions in one pass
};

// Compiles the block at EIP eip from bytes[0, avail) (avail reaches no
// further than eip's page end). nullopt when its first instruction is outside
// the translated subset.
std::optional<CompiledBlock> CompileBlock(uint32_t eip, const uint8_t* bytes, uint32_t avail);

}  // namespace kvmlike::x86::translator
