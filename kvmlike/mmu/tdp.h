// Tdp: one VM's second-level ("two-dimensional") page table, GFN → host page,
// in Intel EPT format or AMD NPT format, built, walked and torn down here —
// the table kvmlike's vCPUs translate guest-physical addresses through.
//
// Four levels (PML4 → PDPT → PD → PT), 4 KiB and 2 MiB leaves, accessed and
// dirty bits. Table pages are host memory owned by the Tdp. A leaf's frame
// field holds the host virtual page number of the mapped page (kvmlike runs
// in one address space, so "host physical" is the HVA), which Walk() reports.
// Entries are bit-exact to the hardware formats (tdp.cc names the manual
// sections), so a table could be handed to a real walker.
//
// Thread safety: none inside. The Vm serializes every call with its mmu_lock;
// vCPUs never walk it without that lock (they use their SoftTlb), which is why
// table pages are freed as soon as they are unlinked.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include "base/result.h"
#include "base/types.h"

namespace kvmlike::mmu {

using base::Gfn;
using base::GfnRange;
using base::Hva;

enum class Format : uint8_t { kEpt, kNpt };
enum class PageSize : uint8_t { k4K, k2M };

inline constexpr uint64_t kPagesPer2M = 512;
// Four levels of 9 index bits above the 12-bit page offset reach 48-bit
// guest-physical addresses; GFNs from here up cannot be mapped.
inline constexpr uint64_t kGfnLimit = uint64_t{1} << 36;

// Both formats express read-only, read/write, and either with or without
// execute. A mapping must be readable: NPT has no read bit (present means
// readable) and EPT write-without-read is a misconfiguration.
struct Perm {
  bool read = true;
  bool write = true;
  bool exec = true;
  bool operator==(const Perm&) const = default;
};

struct Leaf {
  int level;           // 1 = 4 KiB (PT), 2 = 2 MiB (PD)
  Hva host;            // host address of the mapped page (4 KiB or 2 MiB aligned)
  Perm perm;
  bool accessed;
  bool dirty;
  uint64_t raw;        // the entry as stored, in the table's format

  // The host address of gfn's 4 KiB page; gfn must be one this leaf translates.
  Hva PageOf(Gfn gfn) const {
    const uint64_t pages = level == 2 ? kPagesPer2M : 1;
    return host + base::PagesToBytes(gfn.value() & (pages - 1));
  }
};

struct TablePage;  // one 4 KiB page of 512 entries (tdp.cc)
struct EntryBits;  // where one format keeps each flag (tdp.cc)

class Tdp {
 public:
  // Allocates the root table; throws std::bad_alloc if it cannot.
  explicit Tdp(Format format);
  ~Tdp();  // frees every table page
  Tdp(const Tdp&) = delete;
  Tdp& operator=(const Tdp&) = delete;

  Format format() const { return format_; }

  // Installs a leaf mapping gfn (aligned to size) to host (aligned to size),
  // replacing what was there (a 2 MiB leaf replaces a PT and frees it; a
  // 4 KiB leaf under an existing 2 MiB leaf splits it first: the 2 MiB leaf
  // becomes a PT of 512 4 KiB leaves with its permissions and A/D bits).
  // kNoMemory if a table page cannot be allocated (nothing changes then);
  // kInvalid if gfn >= kGfnLimit.
  // Preconditions (asserted in debug builds): gfn and host aligned to size,
  // host below 2^52, perm.read.
  base::Status Map(Gfn gfn, Hva host, PageSize size, Perm perm);

  // The leaf translating gfn, or nullopt.
  std::optional<Leaf> Walk(Gfn gfn) const;

  // Removes every leaf translation for range (splitting 2 MiB leaves that the
  // range covers only partly). Returns the number of 4 KiB pages unmapped.
  // Empty tables are freed; the root stays. If the table page a split needs
  // cannot be allocated, the whole 2 MiB leaf is removed instead (a zap may
  // unmap more than asked, never less; those pages fault back in) and counts
  // 512. GFNs at or above kGfnLimit are never mapped and are ignored.
  uint64_t Zap(GfnRange range);
  uint64_t ZapAll();

  // Marks gfn's leaf accessed (and dirty for writes), as the hardware walker
  // does on a TLB fill. Only the leaf is marked, and dirty only if the leaf is
  // writable (a write through a read-only leaf is a fault, never a fill).
  // Returns false when gfn is not mapped.
  bool MarkAccessed(Gfn gfn, bool write);

  // Statistics for KVM_GET_STATS_FD (pages_4k, pages_2m) and tests.
  // table_pages() counts the root, so an empty Tdp has 1.
  uint64_t mapped_4k() const { return mapped_4k_; }
  uint64_t mapped_2m() const { return mapped_2m_; }
  uint64_t table_pages() const { return table_pages_; }

  // Caps table_pages(): an allocation past the cap fails as if the host were
  // out of memory (memory accounting; also how tests reach the kNoMemory paths).
  void set_table_page_limit(uint64_t pages) { table_page_limit_ = pages; }

 private:
  struct LeafRef {
    uint64_t* entry = nullptr;
    int level = 0;
  };

  bool Present(uint64_t entry) const;
  uint64_t LeafEntry(Hva host, int level, Perm perm) const;
  uint64_t TableEntry(const TablePage* table) const;
  Leaf Decode(uint64_t entry, int level) const;
  LeafRef FindLeaf(Gfn gfn) const;

  TablePage* AllocTable();
  void FreeTable(TablePage* table);

  base::Status MapBelowEmpty(uint64_t& entry, int level, Gfn gfn, int leaf_level, uint64_t leaf);
  base::Status Split(uint64_t& pde);
  void InstallLeaf(uint64_t& entry, int level, uint64_t leaf);

  uint64_t ZapTable(TablePage* table, int level, Gfn base, GfnRange range);
  uint64_t ZapEntry(uint64_t& entry, int level, GfnRange span, GfnRange part);
  uint64_t FreeSubtree(TablePage* table, int level);

  const Format format_;
  const EntryBits* const bits_;
  TablePage* root_ = nullptr;
  uint64_t mapped_4k_ = 0, mapped_2m_ = 0, table_pages_ = 0;
  uint64_t table_page_limit_ = ~uint64_t{0};
};

}  // namespace kvmlike::mmu
