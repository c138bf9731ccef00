// DecodeCache: instructions one vCPU has decoded, so that a loop decodes each
// of its instructions once. An entry is keyed by the guest-physical address of
// the instruction's first byte and the decode mode (CS.D), and keeps the bytes
// it was decoded from. A lookup is given the host address of those bytes as
// this fetch translated them, and hits only when the bytes there still equal
// the entry's. So code that rewrites itself, a page remapped to other memory
// and a mode change need no invalidation: the entry simply stops matching,
// and the fetch still goes through GuestMemory::Translate every time.
//
// Only instructions that start at least 16 bytes before the end of their page
// are cached, so that the comparison can read 16 bytes at once; the others,
// among them every instruction that straddles a page (its bytes are in two
// translations), are decoded afresh each time.
//
// Owned by the Interpreter (it outlives a Run); not thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>

#include "base/types.h"
#include "kvmlike/x86/decoder.h"

namespace kvmlike::x86 {

// The slot of the code at gpa in a direct-mapped cache of entries slots:
// with 256 of them, consecutive instructions within 256 bytes get distinct
// slots.
constexpr uint32_t CodeSlot(base::Gpa gpa, uint32_t entries) {
  uint64_t a = gpa.value();
  return static_cast<uint32_t>((a ^ (a >> 8)) % entries);
}

class DecodeCache {
 public:
  // Room for a loop body of a few hundred instructions; one entry is a cache line.
  static constexpr uint32_t kEntries = 256;
  static constexpr uint32_t kCompared = 16;  // bytes Matches reads

  // Aligned, so that no load from an entry is split across cache lines.
  struct alignas(64) Entry {
    uint64_t tag = kEmpty;
    // insn.len bytes the instruction was decoded from, zero past them (the
    // comparison reads whole words).
    std::array<uint8_t, kCompared> bytes{};
    Insn insn;
  };

  static_assert(sizeof(Entry) == 64);

  // Whether the instruction at gpa may be cached (see above).
  static bool Cacheable(base::Gpa gpa) {
    return (gpa.value() & (base::kPageSize - 1)) <= base::kPageSize - kCompared;
  }

  // The entry for the instruction at gpa in mode default32, or nullptr. Its
  // bytes lie in gpa's page; it is valid only if they are all within what
  // may be fetched (CS's limit) and it Matches the bytes this fetch finds.
  const Entry* Find(base::Gpa gpa, bool default32) const;

  // Whether the bytes at host, e's address as this fetch translated it
  // (readable up to the end of its page), are still the ones e.insn was
  // decoded from.
  bool Matches(const Entry& e, const uint8_t* host) const;

  // Remembers insn, decoded in mode default32 from bytes[0, insn.len), when
  // gpa is Cacheable; replaces whatever shared its slot.
  const Entry& Insert(base::Gpa gpa, bool default32, const uint8_t* bytes, const Insn& insn);

 private:
  // A guest-physical address has at most 32 bits here (no paging, linear
  // addresses wrap at 4 GiB), so an all-ones tag names no instruction.
  static constexpr uint64_t kEmpty = ~uint64_t{0};

  // [len] selects the first len of the bytes compared, as two little-endian
  // words.
  using ByteMask = std::array<uint64_t, 2>;
  static_assert(kCompared == sizeof(ByteMask) && kCompared > kMaxInsnLen);
  static constexpr std::array<ByteMask, kCompared> MakeByteMasks() {
    std::array<ByteMask, kCompared> masks{};
    for (uint32_t len = 0; len < kCompared; ++len)
      for (uint32_t i = 0; i < len; ++i) masks[len][i / 8] |= uint64_t{0xff} << (8 * (i % 8));
    return masks;
  }

  static uint64_t Tag(base::Gpa gpa, bool default32) { return (gpa.value() << 1) | default32; }
  static uint32_t Slot(base::Gpa gpa) { return CodeSlot(gpa, kEntries); }

  // A member rather than a global: reached from this, without the GOT.
  std::array<ByteMask, kCompared> byte_masks_ = MakeByteMasks();
  std::array<Entry, kEntries> entries_{};
};

// Find and Matches are inline: they run once per instruction.
inline const DecodeCache::Entry* DecodeCache::Find(base::Gpa gpa, bool default32) const {
  const Entry& e = entries_[Slot(gpa)];
  return e.tag == Tag(gpa, default32) ? &e : nullptr;
}

// Two word loads and a masked compare instead of a memcmp call; the bytes past
// the instruction are ignored.
inline bool DecodeCache::Matches(const Entry& e, const uint8_t* host) const {
  uint64_t h[2], c[2];
  std::memcpy(h, host, kCompared);
  std::memcpy(c, e.bytes.data(), kCompared);
  const ByteMask& mask = byte_masks_[e.insn.len];
  return (((h[0] ^ c[0]) & mask[0]) | ((h[1] ^ c[1]) & mask[1])) == 0;
}

}  // namespace kvmlike::x86
