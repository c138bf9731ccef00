// PendingReads: data the VMM supplied for port and MMIO reads that stopped a
// run. An instruction that stops on such a read is executed again from its
// start on the next Run; its reads are matched, in order, against the
// completed ones, so an instruction that reads twice from MMIO (CMPS) gets both
// values on its final attempt. Everything is dropped once the instruction (or
// one REP iteration) completes, so each completion feeds exactly one execution
// of exactly the access it was given for.
//
// Owned by the Interpreter (it outlives a Run); not thread-safe.
#pragma once

#include <array>
#include <cstdint>

namespace kvmlike::x86 {

enum class ReadSpace : uint8_t { kPort, kMmio };

// Identifies one read: where, how wide, and which instruction made it.
struct ReadKey {
  ReadSpace space = ReadSpace::kPort;
  uint8_t len = 0;
  uint64_t addr = 0;  // port number or guest-physical address
  uint64_t rip = 0;   // RIP of the instruction that reads
  bool operator==(const ReadKey&) const = default;
};

class PendingReads {
 public:
  static constexpr int kMaxReads = 4;  // CMPS between two page-split MMIO operands

  // Starts one attempt at an instruction: its reads are matched from the first.
  void Rewind() { cursor_ = 0; }

  // The attempt's next port/MMIO read. True, with len bytes copied to dst, when
  // data was completed for exactly this access. A read that does not match the
  // completed one in its place means the instruction changed (the VMM set new
  // registers): the stale data is dropped and false returned.
  bool Take(const ReadKey& key, uint8_t* dst);

  // The run stops on key; its data is expected through Complete. False when the
  // instruction already has kMaxReads completed reads.
  [[nodiscard]] bool Await(const ReadKey& key);

  // The VMM's data for the awaited read. Ignored when nothing is awaited or len
  // differs from the awaited access: the instruction then stops on it again.
  void Complete(const uint8_t* data, uint32_t len);

  // The instruction completed (or was abandoned): nothing carries over.
  void Clear() {
    filled_ = 0;
    cursor_ = 0;
    awaiting_ = false;
  }
  // Nothing completed nor awaited; then nothing was taken either (the cursor
  // never passes the completed reads), so no Rewind is needed.
  bool empty() const { return filled_ == 0 && !awaiting_; }

 private:
  struct Entry {
    ReadKey key;
    std::array<uint8_t, 8> data;
  };
  std::array<Entry, kMaxReads> entries_{};
  uint8_t filled_ = 0;
  uint8_t cursor_ = 0;
  bool awaiting_ = false;
  ReadKey awaited_{};
};

}  // namespace kvmlike::x86
