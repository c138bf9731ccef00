#include <doctest/doctest.h>
#include <linux/falloc.h>

#include <vector>

#include "base/config.h"
#include "gmem/subsystem.h"

using namespace gmem;
using base::Error;
using base::PgOff;
using base::PgOffRange;

namespace {

struct FakeSlot final : BindingTarget {
  std::vector<PgOffRange> begun, ended;
  int synced = 0;
  // What the last SyncInvalidation saw: how many ranges had begun and ended,
  // and the present pages of watch (when set).
  size_t begun_at_sync = 0, ended_at_sync = 0;
  Inode* watch = nullptr;
  uint64_t present_at_sync = 0;
  void InvalidateBegin(PgOffRange r) override { begun.push_back(r); }
  void InvalidateEnd(PgOffRange r) override { ended.push_back(r); }
  void SyncInvalidation() override {
    synced++;
    begun_at_sync = begun.size();
    ended_at_sync = ended.size();
    if (watch) present_at_sync = watch->nr_present();
  }
};

constexpr int64_t kP = static_cast<int64_t>(base::kPageSize);

struct Fixture {
  Subsystem sys{256ull << 20};
  base::RefPtr<File> file;
  base::UniqueFd fd;
  Fixture(uint64_t size = 16 * kP, uint64_t flags = 0) {
    auto c = Inode::Create(sys, size, flags);
    REQUIRE(c.ok());
    fd = std::move(c.value().memfd);
    file = File::Create(std::move(c.value().inode), /*vm_id=*/7);
  }
  size_t live_files() {
    size_t n = 0;
    sys.ForEachFile([&](const Subsystem::FileInfo&) { n++; });
    return n;
  }
  size_t live_inodes() {
    size_t n = 0;
    sys.ForEachInode([&](const Subsystem::InodeInfo&) { n++; });
    return n;
  }
};

}  // namespace

TEST_CASE("bindings refuse overlap and ranges past the end") {
  Fixture f;
  FakeSlot a, b;
  auto ba = f.file->Bind({PgOff(0), PgOff(8)}, a);
  REQUIRE(ba.ok());
  CHECK(f.file->ref_count() == 2);  // creator + binding
  const Error overlap = base::config::kGmemOverlapEexist ? Error::kExists : Error::kInvalid;
  CHECK(f.file->Bind({PgOff(7), PgOff(9)}, b).error() == overlap);
  CHECK(f.file->Bind({PgOff(0), PgOff(1)}, b).error() == overlap);
  CHECK(f.file->Bind({PgOff(15), PgOff(17)}, b).error() == Error::kInvalid);
  auto bb = f.file->Bind({PgOff(8), PgOff(16)}, b);
  CHECK(bb.ok());
  ba.value().reset();  // unbind: the range is free again
  CHECK(f.file->Bind({PgOff(0), PgOff(8)}, a).ok());
  f.file->DropUser();
}

TEST_CASE("punch invalidates only overlapping bindings, begin before end") {
  Fixture f;
  FakeSlot a, b;
  auto ba = f.file->Bind({PgOff(0), PgOff(4)}, a);
  auto bb = f.file->Bind({PgOff(8), PgOff(12)}, b);
  REQUIRE(f.file->Fallocate(f.fd.get(), FALLOC_FL_KEEP_SIZE, 0, 16 * kP).ok());
  CHECK(f.file->inode()->nr_present() == 16);
  a.watch = f.file->inode().get();
  REQUIRE(f.file->Fallocate(f.fd.get(), FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, 2 * kP, 4 * kP).ok());
  CHECK(a.begun == std::vector<PgOffRange>{{PgOff(2), PgOff(4)}});
  CHECK(a.ended == a.begun);
  CHECK(a.synced == 1);
  // synced between begin and end, while the punched pages were still there
  CHECK(a.begun_at_sync == 1);
  CHECK(a.ended_at_sync == 0);
  CHECK(a.present_at_sync == 16);
  CHECK(b.begun.empty());
  CHECK(f.file->inode()->nr_present() == 12);
  f.file->DropUser();
}

TEST_CASE("fallocate mode and range rules (conformance rules 9-11)") {
  Fixture f(4 * kP);
  const int K = FALLOC_FL_KEEP_SIZE, P = FALLOC_FL_PUNCH_HOLE;
  struct Case { int mode; int64_t off, len; bool ok; Error err; } cases[] = {
      {0, 0, kP, false, Error::kNotSupported},
      {P, 0, kP, false, Error::kNotSupported},
      {K | FALLOC_FL_ZERO_RANGE, 0, kP, false, Error::kNotSupported},
      {K, 0, 4 * kP, true, {}},
      {K | P, kP - 1, kP, false, Error::kInvalid},
      {K, 4 * kP, kP, false, Error::kInvalid},
      {K, 5 * kP, kP, false, Error::kInvalid},
      {K | P, 4 * kP, kP, true, {}},
      {K | P, 5 * kP, kP, true, {}},
      {K | P, kP, kP - 1, false, Error::kInvalid},
      {K | P, kP, kP, true, {}},
      {K, kP, kP, true, {}},
      {K, -kP, kP, false, Error::kInvalid},
      {K, 0, 0, false, Error::kInvalid},
  };
  for (const Case& c : cases) {
    CAPTURE(c.mode);
    CAPTURE(c.off);
    CAPTURE(c.len);
    base::Status s = f.file->Fallocate(f.fd.get(), c.mode, c.off, c.len);
    CHECK(s.ok() == c.ok);
    if (!c.ok) CHECK(s.error() == c.err);
  }
  f.file->DropUser();
}

TEST_CASE("release severs bindings; memory goes with the last file") {
  Fixture f;
  FakeSlot a;
  auto ba = f.file->Bind({PgOff(0), PgOff(4)}, a);
  REQUIRE(ba.ok());
  REQUIRE(f.file->Fallocate(f.fd.get(), FALLOC_FL_KEEP_SIZE, 0, 16 * kP).ok());
  base::RefPtr<File> keep = f.file;
  f.file.reset();
  keep->DropUser();  // last user: released
  CHECK(keep->released());
  CHECK(ba.value()->severed());
  CHECK(a.begun == std::vector<PgOffRange>{{PgOff(0), PgOff(4)}});
  CHECK(a.synced == 1);         // between begin and end
  CHECK(a.begun_at_sync == 1);
  CHECK(a.ended_at_sync == 0);
  CHECK(f.live_inodes() == 0);  // the only file released: pages freed
  CHECK(f.sys.pool_if_created()->frames_free() == f.sys.pool_if_created()->frames_total());
  CHECK(f.live_files() == 1);   // the husk, held by the binding
  keep.reset();
  CHECK(f.live_files() == 1);
  ba.value().reset();           // slot deleted
  CHECK(f.live_files() == 0);
}

TEST_CASE("memfd-backed inode: pages are the memfd's") {
  Fixture f(8 * kP, kFlagMmap | kFlagInitShared);
  CHECK(f.file->inode()->memfd_backed());
  REQUIRE(f.file->Fallocate(f.fd.get(), FALLOC_FL_KEEP_SIZE, 0, 8 * kP).ok());
  CHECK(f.file->inode()->nr_present() == 8);
  REQUIRE(f.file->Fallocate(f.fd.get(), FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, 0, 2 * kP).ok());
  CHECK(f.file->inode()->nr_present() == 6);
  f.file->DropUser();
}
