// The two entry formats as the manuals define them, written down for the
// tests independently of tdp.cc: a test that compares raw entries against
// these checks the bits, not the implementation against itself.
#pragma once

#include <doctest/doctest.h>

#include <cstdint>

#include "kvmlike/mmu/tdp.h"

namespace kvmlike::mmu::testing {

inline constexpr uint64_t Bit(int n) { return uint64_t{1} << n; }

// Intel SDM vol. 3C ch. 29: R 0, W 1, X 2, memory type 5:3 (WB = 6),
// ignore-PAT 6, page size 7, accessed 8, dirty 9.
struct Ept {
  static constexpr Format kFormat = Format::kEpt;
  static constexpr uint64_t kAccessed = Bit(8);
  static constexpr uint64_t kDirty = Bit(9);
  static constexpr uint64_t kLarge = Bit(7);
  static constexpr uint64_t Leaf(uint64_t host, Perm p) {
    return host | (p.read ? Bit(0) : 0) | (p.write ? Bit(1) : 0) | (p.exec ? Bit(2) : 0) |
           (uint64_t{6} << 3) | Bit(6);
  }
};

// AMD APM vol. 2, long-mode format used by nested paging: P 0, R/W 1, U/S 2,
// accessed 5, dirty 6, page size 7, NX 63.
struct Npt {
  static constexpr Format kFormat = Format::kNpt;
  static constexpr uint64_t kAccessed = Bit(5);
  static constexpr uint64_t kDirty = Bit(6);
  static constexpr uint64_t kLarge = Bit(7);
  static constexpr uint64_t Leaf(uint64_t host, Perm p) {
    return host | Bit(0) | (p.write ? Bit(1) : 0) | Bit(2) | (p.exec ? 0 : Bit(63));
  }
};

inline const char* FormatName(Format f) { return f == Format::kEpt ? "EPT" : "NPT"; }

}  // namespace kvmlike::mmu::testing

TYPE_TO_STRING_AS("EPT", kvmlike::mmu::testing::Ept);
TYPE_TO_STRING_AS("NPT", kvmlike::mmu::testing::Npt);
