// AtomicModify: the read-modify-write of a LOCK-prefixed instruction or of
// XCHG with memory, made atomic with respect to other vCPUs that share the
// guest's RAM. It applies to a naturally aligned operand in RAM (which never
// straddles a page); anything else — MMIO, misaligned operands — is left to
// the caller's ordinary read-then-write path, which is atomic only with
// respect to this vCPU.
#pragma once

#include <cstdint>

#include "kvmlike/x86/flow.h"
#include "kvmlike/x86/machine.h"
#include "kvmlike/x86/segmentation.h"

namespace kvmlike::x86 {

namespace atomic_detail {

// The operand at host as a T (through void*: alignment was checked).
template <typename T, typename Fn>
void CompareExchangeLoop(uint8_t* host, Fn& fn) {
  T* p = static_cast<T*>(static_cast<void*>(host));
  T old = __atomic_load_n(p, __ATOMIC_SEQ_CST);
  T next;
  do {
    next = static_cast<T>(fn(static_cast<uint32_t>(old)));
  } while (!__atomic_compare_exchange_n(p, &old, next, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));
}

}  // namespace atomic_detail

// fn(old) -> new may run more than once (each time another vCPU changed the
// operand in between); the last call is the one that took effect. done says
// whether the update happened here.
template <typename Fn>
[[nodiscard]] Flow AtomicModify(Machine& m, SegReg seg, uint32_t offset, uint8_t size, Fn fn,
                                bool& done) {
  done = false;
  Linear lin;
  X86_TRY(Linearize(m, seg, offset, size, AccessKind::kWrite, lin));
  if (lin.value() & (size - 1)) return Flow::kOk;
  uint8_t* host = nullptr;
  X86_TRY(m.phys.RamPointer(GpaOfLinear(lin), host));
  if (!host) return Flow::kOk;
  switch (size) {
    case 1: atomic_detail::CompareExchangeLoop<uint8_t>(host, fn); break;
    case 2: atomic_detail::CompareExchangeLoop<uint16_t>(host, fn); break;
    default: atomic_detail::CompareExchangeLoop<uint32_t>(host, fn); break;
  }
  done = true;
  return Flow::kOk;
}

}  // namespace kvmlike::x86
