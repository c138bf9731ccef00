#include "kvmlike/x86/stack.h"

#include "kvmlike/x86/registers.h"
#include "kvmlike/x86/segmentation.h"

namespace kvmlike::x86 {

Stack::Stack(Machine& m)
    : m_(m), mask_(m.cpu.seg[kSs].db ? 0xffffffffu : 0xffffu) {
  sp_ = static_cast<uint32_t>(m.cpu.gpr[kRsp]) & mask_;
}

Flow Stack::Push(uint32_t value, uint8_t size) {
  uint32_t sp = (sp_ - size) & mask_;
  X86_TRY(WriteSeg(m_, kSs, sp, size, value));
  sp_ = sp;
  return Flow::kOk;
}

Flow Stack::Pop(uint8_t size, uint32_t& value) {
  X86_TRY(ReadSeg(m_, kSs, sp_, size, value));
  sp_ = (sp_ + size) & mask_;
  return Flow::kOk;
}

void Stack::Commit() { WriteGpr(m_.cpu, kRsp, mask_ == 0xffff ? 2 : 4, sp_); }

}  // namespace kvmlike::x86
