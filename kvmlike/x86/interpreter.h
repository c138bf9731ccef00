// Interpreter: executes guest x86 code — real mode (16-bit) and 32-bit flat or
// segmented protected mode without guest paging — one instruction at a time,
// the subset documented in docs/x86-subset.md. State lives in CpuState; memory
// is reached only through GuestMemory.
//
// Instructions that need the VMM (IN/OUT, MMIO, hypercalls) stop the run
// without retiring: RIP stays on the instruction. The vCPU reports the exit,
// and on the next Run the instruction executes again and consumes the
// completion (the data of an IN or MMIO read, a hypercall's return value)
// given through Complete*(). Writes (OUT, MMIO writes) retire before they stop.
//
// Each instruction is fetched through GuestMemory (the vCPU's MMU) every
// time it runs, but decoded once while its bytes stay the same (DecodeCache).
// Hot loops in 32-bit flat protected mode run as translated host code
// (translator/translator.h) when the GuestMemory offers an inline TLB; they
// hand back at instruction boundaries, so nothing here can tell the two apart
// but the speed.
//
// Not thread-safe: one Interpreter per vCPU, used by the thread in KVM_RUN.
#pragma once

#include <array>
#include <cstdint>

#include "kvmlike/x86/cpu_state.h"
#include "kvmlike/x86/decode_cache.h"
#include "kvmlike/x86/guest_memory.h"
#include "kvmlike/x86/pending_reads.h"
#include "kvmlike/x86/translator/translator.h"

namespace kvmlike::x86 {

enum class StopReason : uint8_t {
  kBudget,         // max_insns executed (the caller checks signals, kicks, and runs again)
  kHlt,            // HLT retired
  kIo,             // IN/OUT (or INS/OUTS, one element per stop): see io
  kMmio,           // access to guest-physical memory with no memslot: see mmio
  kHypercall,      // VMCALL/VMMCALL: see hypercall (not retired)
  kShutdown,       // triple fault: exception delivery failed twice
  kInternalError,  // instruction outside the subset, or an unhandled condition: see internal
  kMemExit,        // GuestMemory answered kExit: the MMU filled the run area
};

struct IoStop {
  bool out;           // OUT/OUTS (retired) vs IN/INS (waiting for data)
  uint8_t size;       // 1, 2 or 4 bytes
  uint16_t port;
  uint32_t count;     // elements (1 here)
  std::array<uint8_t, 8> data;  // OUT: the bytes written
};

struct MmioStop {
  uint64_t gpa;
  uint32_t len;       // 1..8
  bool is_write;      // writes retire; reads wait for data
  std::array<uint8_t, 8> data;
};

struct HypercallStop {
  uint64_t nr;        // RAX (32-bit truncated outside long mode)
  std::array<uint64_t, 6> args;  // RBX, RCX, RDX, RSI (truncated likewise), 0, 0
  bool long_mode;     // always false: long mode is outside the subset
};

inline constexpr uint32_t kInternalErrorEmulation = 1;  // KVM_INTERNAL_ERROR_EMULATION

struct InternalStop {
  uint32_t suberror;  // KVM_INTERNAL_ERROR_* (EMULATION for an unknown instruction)
  uint8_t insn_len;   // the instruction's bytes when decoded, else the bytes fetched
                      // (up to 15); 0 when nothing could be fetched
  std::array<uint8_t, 15> insn;
};

struct Stop {
  StopReason reason = StopReason::kBudget;
  IoStop io{};
  MmioStop mmio{};
  HypercallStop hypercall{};
  InternalStop internal{};
};

class Interpreter {
 public:
  explicit Interpreter(translator::Options translation = {}) : translator_(translation) {}

  // Executes at most max_insns steps (>= 1). A step is one instruction
  // (with the delivery of an exception it raises), one chunk of up to 4096
  // elements of a REP string instruction, or one attempt that GuestMemory
  // asked to retry, so Run returns in bounded time whatever the guest does.
  // Runs without returning until a stop or the budget.
  Stop Run(CpuState& cpu, GuestMemory& mem, uint64_t max_insns);

  // Data for the IN or MMIO read the last Run stopped on; the instruction
  // consumes it when it executes again. len must be the stop's size/len, or
  // the data is ignored (and the instruction stops on the read again).
  void CompleteRead(const uint8_t* data, uint32_t len) { pending_.Complete(data, len); }
  // The hypercall the last Run stopped on returns ret in RAX and retires.
  static void CompleteHypercall(CpuState& cpu, uint64_t ret);

  uint64_t instructions_retired() const { return retired_; }
  // Attempts abandoned because GuestMemory answered kRetry.
  uint64_t retries() const { return retries_; }
  const translator::Translator& translator() const { return translator_; }

 private:
  PendingReads pending_;
  DecodeCache decode_cache_;
  translator::Translator translator_;
  uint64_t retired_ = 0;
  uint64_t retries_ = 0;
};

}  // namespace kvmlike::x86
