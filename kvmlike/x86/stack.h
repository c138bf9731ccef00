// Stack: pushes and pops through SS:ESP (SS.B = 1) or SS:SP (wrapping at
// 64 KiB), each checked against SS (#SS(0)). The stack pointer moves in this
// object only; Commit stores it when the instruction completes, so one that
// faults or stops part-way leaves ESP as it was (values already pushed lie
// below ESP, where nothing is owed to them).
#pragma once

#include <cstdint>

#include "kvmlike/x86/flow.h"
#include "kvmlike/x86/machine.h"

namespace kvmlike::x86 {

class Stack {
 public:
  explicit Stack(Machine& m);

  [[nodiscard]] Flow Push(uint32_t value, uint8_t size);
  [[nodiscard]] Flow Pop(uint8_t size, uint32_t& value);
  // Moves the stack pointer up by bytes without reading (RET imm16).
  void Release(uint32_t bytes) { sp_ = (sp_ + bytes) & mask_; }
  // Starts from another stack pointer (LEAVE: from EBP/BP).
  void MoveTo(uint32_t sp) { sp_ = sp & mask_; }
  // ESP or SP, by SS.B.
  uint8_t pointer_size() const { return mask_ == 0xffff ? 2 : 4; }

  uint32_t sp() const { return sp_; }
  void Commit();

 private:
  Machine& m_;
  uint32_t sp_;
  uint32_t mask_;
};

}  // namespace kvmlike::x86
