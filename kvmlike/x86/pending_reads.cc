#include "kvmlike/x86/pending_reads.h"

#include <cstring>

namespace kvmlike::x86 {

bool PendingReads::Take(const ReadKey& key, uint8_t* dst) {
  if (cursor_ >= filled_) return false;
  const Entry& e = entries_[cursor_];
  if (!(e.key == key)) {
    // Re-execution is deterministic unless the VMM changed the vCPU between
    // runs; data completed for another access must not feed this one.
    Clear();
    return false;
  }
  std::memcpy(dst, e.data.data(), key.len);
  ++cursor_;
  return true;
}

bool PendingReads::Await(const ReadKey& key) {
  if (filled_ >= kMaxReads) return false;
  awaiting_ = true;
  awaited_ = key;
  return true;
}

void PendingReads::Complete(const uint8_t* data, uint32_t len) {
  if (!awaiting_ || len != awaited_.len || filled_ >= kMaxReads) return;
  Entry& e = entries_[filled_++];
  e.key = awaited_;
  e.data = {};
  std::memcpy(e.data.data(), data, len);
  awaiting_ = false;
}

}  // namespace kvmlike::x86
