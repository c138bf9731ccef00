// CodeMemory: where translated code lives. One memfd mapped twice — writable
// (never executable) to emit into, executable (never writable) to run — so no
// page is ever writable and executable at once and no mprotect is needed.
// Code is bump-allocated; Reset drops all of it at once (the translator
// forgets every block first).
//
// Owned by one Translator (one vCPU); not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

namespace kvmlike::x86::translator {

class CodeMemory {
 public:
  // bytes of code room, or nullptr when the host refuses the mappings.
  static std::unique_ptr<CodeMemory> Create(size_t bytes);
  ~CodeMemory();
  CodeMemory(const CodeMemory&) = delete;
  CodeMemory& operator=(const CodeMemory&) = delete;

  // Copies code in and returns its executable address, or nullptr when the
  // room left is too small (Reset, then try again).
  const void* Add(std::span<const uint8_t> code);
  void Reset() { used_ = 0; }

 private:
  CodeMemory(uint8_t* rw, const uint8_t* rx, size_t size) : rw_(rw), rx_(rx), size_(size) {}

  uint8_t* rw_;
  const uint8_t* rx_;
  size_t size_;
  size_t used_ = 0;
};

}  // namespace kvmlike::x86::translator
