#include "kvmlike/x86/translator/code_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "base/unique_fd.h"

namespace kvmlike::x86::translator {

// The fd is closed on return: the mappings keep the memory.
std::unique_ptr<CodeMemory> CodeMemory::Create(size_t bytes) {
  base::UniqueFd fd(memfd_create("kvmlike-code", MFD_CLOEXEC));
  if (!fd.valid() || ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0) return nullptr;
  void* rw = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (rw == MAP_FAILED) return nullptr;
  void* rx = mmap(nullptr, bytes, PROT_READ | PROT_EXEC, MAP_SHARED, fd.get(), 0);
  if (rx == MAP_FAILED) {
    munmap(rw, bytes);
    return nullptr;
  }
  return std::unique_ptr<CodeMemory>(
      new CodeMemory(static_cast<uint8_t*>(rw), static_cast<const uint8_t*>(rx), bytes));
}

CodeMemory::~CodeMemory() {
  munmap(rw_, size_);
  munmap(const_cast<uint8_t*>(rx_), size_);
}

// Both views are one page cache page, and x86 keeps instruction fetch
// coherent with stores to the same physical memory, so code written through
// rw_ runs from rx_ without a flush.
const void* CodeMemory::Add(std::span<const uint8_t> code) {
  constexpr size_t kAlign = 16;
  size_t at = (used_ + kAlign - 1) & ~(kAlign - 1);
  if (code.size() > size_ || at > size_ - code.size()) return nullptr;
  std::memcpy(rw_ + at, code.data(), code.size());
  used_ = at + code.size();
  return rx_ + at;
}

}  // namespace kvmlike::x86::translator
