// Typed addresses and counts. Every address space has its own type; the
// conversions between them live in exactly one place each (GpaToGfn here,
// Memslot::PgOffOf in kvmlike/, Inode page lookups in gmem/). Construction is
// explicit and there is no implicit arithmetic between kinds.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>

namespace base {

inline constexpr uint64_t kPageShift = 12;
inline constexpr uint64_t kPageSize = uint64_t{1} << kPageShift;

// An integer with a meaning. Offsets between two values of a kind are plain
// uint64_t page or byte counts, never another address.
template <typename Tag>
class StrongU64 {
 public:
  constexpr StrongU64() = default;
  constexpr explicit StrongU64(uint64_t v) : v_(v) {}
  constexpr uint64_t value() const { return v_; }
  constexpr auto operator<=>(const StrongU64&) const = default;

  constexpr StrongU64 operator+(uint64_t n) const { return StrongU64(v_ + n); }
  constexpr StrongU64 operator-(uint64_t n) const { return StrongU64(v_ - n); }
  constexpr uint64_t operator-(StrongU64 o) const { return v_ - o.v_; }
  constexpr StrongU64& operator+=(uint64_t n) { v_ += n; return *this; }
  constexpr StrongU64& operator++() { ++v_; return *this; }

 private:
  uint64_t v_ = 0;
};

struct GpaTag {};
struct GfnTag {};
struct HvaTag {};
struct PfnTag {};
struct PgOffTag {};

using Gpa = StrongU64<GpaTag>;      // guest physical address (bytes)
using Gfn = StrongU64<GfnTag>;      // guest frame number
using Hva = StrongU64<HvaTag>;      // host virtual address in the VMM
using Pfn = StrongU64<PfnTag>;      // frame number in kvmlike's private-page pool
using PgOff = StrongU64<PgOffTag>;  // page index inside a guest_memfd inode

constexpr bool IsPageAligned(uint64_t bytes) { return (bytes & (kPageSize - 1)) == 0; }
constexpr Gfn GpaToGfn(Gpa gpa) { return Gfn(gpa.value() >> kPageShift); }
constexpr Gpa GfnToGpa(Gfn gfn) { return Gpa(gfn.value() << kPageShift); }
constexpr uint64_t BytesToPages(uint64_t bytes) { return bytes >> kPageShift; }
constexpr uint64_t PagesToBytes(uint64_t pages) { return pages << kPageShift; }
constexpr PgOff ByteOffToPgOff(uint64_t bytes) { return PgOff(bytes >> kPageShift); }

// Half-open range [begin, end) of one kind.
template <typename T>
struct Range {
  T begin;
  T end;

  static constexpr Range FromCount(T begin, uint64_t count) { return {begin, begin + count}; }
  constexpr uint64_t size() const { return end - begin; }
  constexpr bool empty() const { return !(begin < end); }
  constexpr bool Contains(T x) const { return begin <= x && x < end; }
  constexpr bool Overlaps(const Range& o) const { return begin < o.end && o.begin < end; }
  constexpr Range Intersect(const Range& o) const {
    T b = begin < o.begin ? o.begin : begin;
    T e = end < o.end ? end : o.end;
    return e < b ? Range{b, b} : Range{b, e};
  }
  // The smallest range that contains both.
  constexpr Range Span(const Range& o) const {
    return {begin < o.begin ? begin : o.begin, end < o.end ? o.end : end};
  }
  constexpr bool operator==(const Range&) const = default;
};

using GfnRange = Range<Gfn>;
using HvaRange = Range<Hva>;
using PgOffRange = Range<PgOff>;

}  // namespace base

template <typename Tag>
struct std::hash<base::StrongU64<Tag>> {
  size_t operator()(base::StrongU64<Tag> v) const noexcept { return std::hash<uint64_t>{}(v.value()); }
};
