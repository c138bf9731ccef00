#include "kvmlike/mmu/tdp.h"

#include <array>
#include <cassert>
#include <cstdint>
#include <new>

namespace kvmlike::mmu {

using base::Error;
using base::Status;

namespace {

constexpr int kLevels = 4;
constexpr uint64_t kEntriesPerTable = 512;
constexpr uint64_t kIndexBits = 9;

// Bits 51:12 hold the address of the next table or of a 4 KiB page; a 2 MiB
// leaf uses 51:21 (its bits 20:12 are PAT in NPT and reserved in EPT, and
// kvmlike leaves them zero).
constexpr uint64_t kAddrMask = 0x000f'ffff'ffff'f000;
constexpr uint64_t kAddrMask2M = 0x000f'ffff'ffe0'0000;
// PS: a PD entry with it set maps 2 MiB, in both formats.
constexpr uint64_t kLargePage = uint64_t{1} << 7;

constexpr uint64_t Shift(int level) { return kIndexBits * static_cast<uint64_t>(level - 1); }
constexpr uint64_t PagesPerEntry(int level) { return uint64_t{1} << Shift(level); }
constexpr uint64_t Index(Gfn gfn, int level) {
  return (gfn.value() >> Shift(level)) & (kEntriesPerTable - 1);
}
constexpr int LevelOf(PageSize size) { return size == PageSize::k4K ? 1 : 2; }
constexpr bool IsLargeLeaf(uint64_t entry, int level) { return level == 2 && (entry & kLargePage); }

}  // namespace

struct alignas(base::kPageSize) TablePage {
  std::array<uint64_t, kEntriesPerTable> entry;
};
static_assert(sizeof(TablePage) == base::kPageSize);

// Where a format keeps each flag. A leaf is
//   leaf_fixed | read? | write? | (exec ? exec : no_exec) | address [| kLargePage]
// and a table entry is `table | address`.
struct EntryBits {
  uint64_t present;     // entry is present if any of these is set
  uint64_t table;       // flags of a non-leaf entry
  uint64_t leaf_fixed;  // flags every leaf carries
  uint64_t read, write, exec, no_exec;
  uint64_t accessed, dirty;
};

namespace {

// Intel SDM vol. 3C ch. 29 (EPT), the entry-format tables: R/W/X in bits 2:0
// (an entry with all three clear is not present), memory type in 5:3 and
// ignore-PAT in 6 on leaves, A in 8, D in 9 (leaves; EPTP enables A/D).
// Leaves are write-back with ignore-PAT set: guest memory is ordinary host
// RAM and no device DMA bypasses the cache, so the guest's PAT must not make
// it uncached.
constexpr uint64_t kEptMemTypeWb = uint64_t{6} << 3;
constexpr uint64_t kEptIgnorePat = uint64_t{1} << 6;
constexpr EntryBits kEptBits = {
    .present = 0x7,
    .table = 0x7,
    .leaf_fixed = kEptMemTypeWb | kEptIgnorePat,
    .read = uint64_t{1} << 0,
    .write = uint64_t{1} << 1,
    .exec = uint64_t{1} << 2,
    .no_exec = 0,
    .accessed = uint64_t{1} << 8,
    .dirty = uint64_t{1} << 9,
};

// AMD APM vol. 2, "Nested Paging" with the long-mode entry format of "Page
// Translation and Protection": P in 0, R/W in 1, U/S in 2, A in 5, D in 6,
// NX in 63. Nested-table walks are user accesses, so U/S is set at every
// level or the walk faults. There is no read bit: present is readable.
constexpr uint64_t kNptUser = uint64_t{1} << 2;
constexpr EntryBits kNptBits = {
    .present = uint64_t{1} << 0,
    .table = 0x1 | 0x2 | kNptUser,
    .leaf_fixed = kNptUser,
    .read = uint64_t{1} << 0,
    .write = uint64_t{1} << 1,
    .exec = 0,
    .no_exec = uint64_t{1} << 63,
    .accessed = uint64_t{1} << 5,
    .dirty = uint64_t{1} << 6,
};

TablePage* ChildOf(uint64_t entry) { return reinterpret_cast<TablePage*>(entry & kAddrMask); }

// Whether every entry is zero. Zapping pages one by one empties a PT from the
// front, so this runs after each of them: it tests a cache line (8 entries) at
// a time, which the compiler turns into vector ORs.
bool IsEmpty(const TablePage& table) {
  constexpr uint64_t kLine = 8;
  for (uint64_t i = 0; i < kEntriesPerTable; i += kLine) {
    uint64_t any = 0;
    for (uint64_t j = 0; j < kLine; ++j) any |= table.entry[i + j];
    if (any != 0) return false;
  }
  return true;
}

}  // namespace

Tdp::Tdp(Format format)
    : format_(format), bits_(format == Format::kEpt ? &kEptBits : &kNptBits) {
  root_ = AllocTable();
  if (root_ == nullptr) throw std::bad_alloc();
}

Tdp::~Tdp() {
  ZapAll();
  FreeTable(root_);
  assert(mapped_4k_ == 0 && mapped_2m_ == 0 && table_pages_ == 0);
}

// ---- entries ---------------------------------------------------------------
//
// The helpers on the Map / Walk path are `inline` (they are used only in this
// file): the library is compiled -fPIC, and GCC does not inline a function
// with external linkage there (Walk took 13 ns instead of 4).

inline bool Tdp::Present(uint64_t entry) const { return (entry & bits_->present) != 0; }

inline uint64_t Tdp::LeafEntry(Hva host, int level, Perm perm) const {
  uint64_t e = bits_->leaf_fixed | host.value();
  if (perm.read) e |= bits_->read;
  if (perm.write) e |= bits_->write;
  e |= perm.exec ? bits_->exec : bits_->no_exec;
  if (level == 2) e |= kLargePage;
  return e;
}

inline Leaf Tdp::Decode(uint64_t entry, int level) const {
  const bool exec = bits_->exec != 0 ? (entry & bits_->exec) != 0 : (entry & bits_->no_exec) == 0;
  return Leaf{
      .level = level,
      .host = Hva(entry & (level == 2 ? kAddrMask2M : kAddrMask)),
      .perm = Perm{.read = (entry & bits_->read) != 0,
                   .write = (entry & bits_->write) != 0,
                   .exec = exec},
      .accessed = (entry & bits_->accessed) != 0,
      .dirty = (entry & bits_->dirty) != 0,
      .raw = entry,
  };
}

inline uint64_t Tdp::TableEntry(const TablePage* table) const {
  return bits_->table | reinterpret_cast<uintptr_t>(table);
}

// ---- table pages -----------------------------------------------------------

TablePage* Tdp::AllocTable() {
  if (table_pages_ >= table_page_limit_) return nullptr;
  // Value-initialized: a fresh table has no present entry.
  auto* table = new (std::nothrow) TablePage{};
  if (table == nullptr) return nullptr;
  assert((reinterpret_cast<uintptr_t>(table) & ~kAddrMask) == 0);
  ++table_pages_;
  return table;
}

void Tdp::FreeTable(TablePage* table) {
  delete table;
  --table_pages_;
}

// ---- lookup ----------------------------------------------------------------

inline Tdp::LeafRef Tdp::FindLeaf(Gfn gfn) const {
  if (gfn.value() >= kGfnLimit) return {};
  TablePage* table = root_;
  for (int level = kLevels;; --level) {
    uint64_t& e = table->entry[Index(gfn, level)];
    if (!Present(e)) return {};
    if (level == 1 || IsLargeLeaf(e, level)) return {&e, level};
    table = ChildOf(e);
  }
}

std::optional<Leaf> Tdp::Walk(Gfn gfn) const {
  const LeafRef ref = FindLeaf(gfn);
  if (ref.entry == nullptr) return std::nullopt;
  return Decode(*ref.entry, ref.level);
}

bool Tdp::MarkAccessed(Gfn gfn, bool write) {
  const LeafRef ref = FindLeaf(gfn);
  if (ref.entry == nullptr) return false;
  uint64_t set = bits_->accessed;
  if (write && (*ref.entry & bits_->write)) set |= bits_->dirty;
  *ref.entry |= set;
  return true;
}

// ---- map -------------------------------------------------------------------

Status Tdp::Map(Gfn gfn, Hva host, PageSize size, Perm perm) {
  const int leaf_level = LevelOf(size);
  assert(gfn.value() % PagesPerEntry(leaf_level) == 0);
  assert(host.value() % base::PagesToBytes(PagesPerEntry(leaf_level)) == 0);
  assert((host.value() & ~kAddrMask) == 0);
  assert(perm.read);
  if (gfn.value() >= kGfnLimit) return Error::kInvalid;

  const uint64_t leaf = LeafEntry(host, leaf_level, perm);
  TablePage* table = root_;
  for (int level = kLevels; level > leaf_level; --level) {
    uint64_t& e = table->entry[Index(gfn, level)];
    if (!Present(e)) return MapBelowEmpty(e, level, gfn, leaf_level, leaf);
    // Only a 4 KiB map gets this far down; the split happens before the new
    // leaf goes in, so the other 511 pages never lose their translation.
    if (IsLargeLeaf(e, level)) TRY(Split(e));
    table = ChildOf(e);
  }
  InstallLeaf(table->entry[Index(gfn, leaf_level)], leaf_level, leaf);
  return Status::Ok();
}

// `entry` (at `level`) is empty. The tables for levels level-1 .. leaf_level
// are allocated and filled off to the side and linked by the final store, so
// a failed allocation leaves the tree exactly as it was.
Status Tdp::MapBelowEmpty(uint64_t& entry, int level, Gfn gfn, int leaf_level, uint64_t leaf) {
  const int count = level - leaf_level;
  std::array<TablePage*, kLevels> fresh{};  // fresh[i] is the table at level - 1 - i
  for (int i = 0; i < count; ++i) {
    fresh[i] = AllocTable();
    if (fresh[i] == nullptr) {
      for (int j = 0; j < i; ++j) FreeTable(fresh[j]);
      return Error::kNoMemory;
    }
  }
  for (int i = 0; i + 1 < count; ++i)
    fresh[i]->entry[Index(gfn, level - 1 - i)] = TableEntry(fresh[i + 1]);
  fresh[count - 1]->entry[Index(gfn, leaf_level)] = leaf;
  ++(leaf_level == 1 ? mapped_4k_ : mapped_2m_);
  entry = TableEntry(fresh[0]);
  return Status::Ok();
}

// Replaces the 2 MiB leaf `pde` by a PT of 512 4 KiB leaves that translate
// every page exactly as before: same host pages, permissions, memory type and
// A/D bits (dropping A/D would hide an access or a write from whoever harvests
// them).
Status Tdp::Split(uint64_t& pde) {
  TablePage* pt = AllocTable();
  if (pt == nullptr) return Error::kNoMemory;
  const uint64_t host = pde & kAddrMask2M;
  const uint64_t flags = pde & ~(kAddrMask | kLargePage);
  for (uint64_t i = 0; i < kEntriesPerTable; ++i)
    pt->entry[i] = flags | (host + base::PagesToBytes(i));
  --mapped_2m_;
  mapped_4k_ += kPagesPer2M;
  pde = TableEntry(pt);
  return Status::Ok();
}

inline void Tdp::InstallLeaf(uint64_t& entry, int level, uint64_t leaf) {
  if (level == 1) {
    if (!Present(entry)) ++mapped_4k_;
  } else if (!Present(entry)) {
    ++mapped_2m_;
  } else if (!IsLargeLeaf(entry, level)) {
    // A 2 MiB leaf over a PT: the PT's translations go with it.
    FreeSubtree(ChildOf(entry), level - 1);
    ++mapped_2m_;
  }
  entry = leaf;
}

// ---- zap -------------------------------------------------------------------

uint64_t Tdp::Zap(GfnRange range) {
  range = range.Intersect({Gfn(0), Gfn(kGfnLimit)});
  if (range.empty()) return 0;
  return ZapTable(root_, kLevels, Gfn(0), range);
}

uint64_t Tdp::ZapAll() { return Zap({Gfn(0), Gfn(kGfnLimit)}); }

// `table` is at `level` and translates from `base`; range lies inside it.
uint64_t Tdp::ZapTable(TablePage* table, int level, Gfn base, GfnRange range) {
  const uint64_t per_entry = PagesPerEntry(level);
  const uint64_t first = (range.begin - base) >> Shift(level);
  const uint64_t last = (range.end - base - 1) >> Shift(level);
  uint64_t unmapped = 0;
  for (uint64_t i = first; i <= last; ++i) {
    uint64_t& e = table->entry[i];
    if (!Present(e)) continue;
    const GfnRange span = GfnRange::FromCount(base + i * per_entry, per_entry);
    unmapped += ZapEntry(e, level, span, range.Intersect(span));
  }
  return unmapped;
}

// Zaps `part` of the present entry `entry`, which translates `span`.
uint64_t Tdp::ZapEntry(uint64_t& entry, int level, GfnRange span, GfnRange part) {
  if (level == 1) {
    entry = 0;
    --mapped_4k_;
    return 1;
  }
  const bool whole = part == span;
  if (IsLargeLeaf(entry, level)) {
    // Keeping the rest of a partly zapped 2 MiB leaf needs a PT; without one,
    // dropping the whole leaf is the safe answer (the rest faults back in).
    if (whole || !Split(entry).ok()) {
      entry = 0;
      --mapped_2m_;
      return kPagesPer2M;
    }
  }
  TablePage* child = ChildOf(entry);
  if (whole) {
    entry = 0;
    return FreeSubtree(child, level - 1);
  }
  const uint64_t unmapped = ZapTable(child, level - 1, span.begin, part);
  // A non-root table is never empty, so only a zap that removed something
  // can have emptied it.
  if (unmapped != 0 && IsEmpty(*child)) {
    entry = 0;
    FreeTable(child);
  }
  return unmapped;
}

// Frees `table` (at `level`) and everything below it; returns the 4 KiB
// pages its leaves translated.
uint64_t Tdp::FreeSubtree(TablePage* table, int level) {
  uint64_t unmapped = 0;
  for (uint64_t e : table->entry) {
    if (!Present(e)) continue;
    if (level == 1) {
      ++unmapped;
      --mapped_4k_;
    } else if (IsLargeLeaf(e, level)) {
      unmapped += kPagesPer2M;
      --mapped_2m_;
    } else {
      unmapped += FreeSubtree(ChildOf(e), level - 1);
    }
  }
  FreeTable(table);
  return unmapped;
}

}  // namespace kvmlike::mmu
