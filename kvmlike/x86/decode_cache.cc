#include "kvmlike/x86/decode_cache.h"

#include <cassert>
#include <cstring>

namespace kvmlike::x86 {

const DecodeCache::Entry& DecodeCache::Insert(base::Gpa gpa, bool default32, const uint8_t* bytes,
                                              const Insn& insn) {
  assert(Cacheable(gpa));
  Entry& e = entries_[Slot(gpa)];
  e.tag = Tag(gpa, default32);
  e.bytes = {};
  std::memcpy(e.bytes.data(), bytes, insn.len);
  e.insn = insn;
  return e;
}

}  // namespace kvmlike::x86
