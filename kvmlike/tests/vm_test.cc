#include <doctest/doctest.h>
#include <linux/falloc.h>
#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <functional>
#include <vector>

#include "base/config.h"
#include "kvm_uapi.h"
#include "kvmlike/gmem_fd.h"
#include "kvmlike/system.h"
#include "kvmlike/tests/fake_fds.h"
#include "kvmlike_ext.h"

using namespace kvmlike;
using kvmlike::testing::FakeFds;

namespace {

constexpr uint64_t kMiB = 1 << 20;

template <typename T>
unsigned long Arg(T* p) {
  return reinterpret_cast<unsigned long>(p);
}

struct Env {
  FakeFds fds;
  System sys{fds};
  int dev = sys.OpenDevice(0).value();
  ~Env() { fds.CloseAll(); }  // objects go before the System they belong to

  long Ioctl(int fd, unsigned long cmd, unsigned long arg) {
    return ToSyscallReturn(fds.Lookup(fd)->Ioctl(cmd, arg));
  }
  int CreateVm(unsigned long type = 0) { return static_cast<int>(Ioctl(dev, KVM_CREATE_VM, type)); }
  int CreateGmem(int vm, uint64_t size, uint64_t flags = 0) {
    kvm_create_guest_memfd a{};
    a.size = size;
    a.flags = flags;
    return static_cast<int>(Ioctl(vm, KVM_CREATE_GUEST_MEMFD, Arg(&a)));
  }
  long SetRegion(int vm, uint32_t slot, uint64_t gpa, uint64_t size, int gmem, uint64_t off,
                 uint32_t flags = KVM_MEM_GUEST_MEMFD) {
    kvm_userspace_memory_region2 r{};
    r.slot = slot;
    r.flags = flags;
    r.guest_phys_addr = gpa;
    r.memory_size = size;
    r.guest_memfd = static_cast<uint32_t>(gmem);
    r.guest_memfd_offset = off;
    return Ioctl(vm, KVM_SET_USER_MEMORY_REGION2, Arg(&r));
  }
  // KVM_PRE_FAULT_MEMORY of the one page at gpa.
  long PreFault(int vcpu, uint64_t gpa) {
    kvm_pre_fault_memory p{};
    p.gpa = gpa;
    p.size = base::kPageSize;
    return Ioctl(vcpu, KVM_PRE_FAULT_MEMORY, Arg(&p));
  }
  std::vector<kvmlike_obj_info> Objects() {
    std::vector<kvmlike_obj_info> v(256);
    kvmlike_debug_objects q{static_cast<uint32_t>(v.size()), 0, Arg(v.data())};
    REQUIRE(Ioctl(dev, KVMLIKE_DEBUG_OBJECTS, Arg(&q)) == 0);
    v.resize(q.nr);
    return v;
  }
  size_t Count(uint32_t kind) {
    auto v = Objects();
    return static_cast<size_t>(std::count_if(v.begin(), v.end(), [&](auto& o) { return o.kind == kind; }));
  }
};

}  // namespace

TEST_CASE("memslots: create, overlap, modify and delete through the ioctl") {
  Env e;
  int vm = e.CreateVm();
  int gmem = e.CreateGmem(vm, 8 * kMiB);
  CHECK(e.SetRegion(vm, 0, 0, 4 * kMiB, gmem, 0) == 0);
  CHECK(e.SetRegion(vm, 1, 2 * kMiB, 4 * kMiB, gmem, 4 * kMiB) == -EEXIST);     // GPA overlap
  // gmem range overlap: EINVAL up to Linux 7.1, EEXIST from 7.2 (Kconfig)
  CHECK(e.SetRegion(vm, 1, 1ull << 30, 4 * kMiB, gmem, 2 * kMiB) ==
        (base::config::kGmemOverlapEexist ? -EEXIST : -EINVAL));
  CHECK(e.SetRegion(vm, 1, 1ull << 30, 4 * kMiB, gmem, 4 * kMiB) == 0);
  CHECK(e.SetRegion(vm, 1, 2ull << 30, 4 * kMiB, gmem, 4 * kMiB) == -EINVAL);   // gmem slots are immutable
  CHECK(e.Count(KVMLIKE_OBJ_MEMSLOT) == 2);
  CHECK(e.SetRegion(vm, 0, 0, 0, -1, 0) == 0);
  CHECK(e.SetRegion(vm, 0, 0, 0, -1, 0) == -EINVAL);  // already gone
  CHECK(e.Count(KVMLIKE_OBJ_MEMSLOT) == 1);
  e.fds.Close(vm);
  CHECK(e.Count(KVMLIKE_OBJ_MEMSLOT) == 0);
  e.fds.Close(gmem);
  CHECK(e.Objects().empty());
}

TEST_CASE("a guest_memfd of another VM cannot be bound") {
  Env e;
  int vm1 = e.CreateVm(), vm2 = e.CreateVm();
  int gmem = e.CreateGmem(vm1, 2 * kMiB);
  CHECK(e.SetRegion(vm2, 0, 0, 2 * kMiB, gmem, 0) == -EINVAL);
  CHECK(e.SetRegion(vm1, 0, 0, 2 * kMiB, vm2, 0) == -EINVAL);  // not a gmem fd
  CHECK(e.SetRegion(vm1, 0, 0, 2 * kMiB, 1 << 19, 0) == -EBADF);
  CHECK(e.SetRegion(vm1, 0, 0, 2 * kMiB, gmem, 0) == 0);
}

TEST_CASE("punch-hole invalidates the bound VM inside begin/end") {
  Env e;
  int vm = e.CreateVm();
  int gmem = e.CreateGmem(vm, 4 * kMiB);
  REQUIRE(e.SetRegion(vm, 0, 0, 2 * kMiB, gmem, 2 * kMiB) == 0);
  auto& vmo = static_cast<Vm&>(*e.fds.Lookup(vm));
  auto& g = static_cast<GmemFd&>(*e.fds.Lookup(gmem));
  uint64_t seq = vmo.invalidate_seq();
  REQUIRE(g.Fallocate(gmem, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, 0, 2 * kMiB).ok());
  CHECK(vmo.invalidate_seq() == seq);  // not bound there
  REQUIRE(g.Fallocate(gmem, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, 3 * kMiB, kMiB).ok());
  CHECK(vmo.invalidate_seq() == seq + 1);
  CHECK(vmo.invalidations_in_progress() == 0);
}

// Every order of closing the VM fd, the gmem fd, a dup of it, its mapping
// and deleting a slot: no object may die while something still uses it (ASan
// catches a use after free), and all counts reach zero at the end.
TEST_CASE("teardown in every order leaves nothing behind") {
  enum Op { kCloseVm, kCloseGmem, kCloseDup, kMunmap, kDeleteSlot };
  std::array<Op, 5> ops{kCloseVm, kCloseGmem, kCloseDup, kMunmap, kDeleteSlot};
  int orders = 0;
  do {
    Env e;
    int vm = e.CreateVm();
    int gmem = e.CreateGmem(vm, 4 * kMiB, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED);
    REQUIRE(gmem >= 0);
    int dup = e.fds.Dup(gmem);
    REQUIRE(e.SetRegion(vm, 0, 0, 2 * kMiB, gmem, 0) == 0);
    REQUIRE(e.SetRegion(vm, 1, 1ull << 30, 2 * kMiB, gmem, 2 * kMiB) == 0);
    auto obj = e.fds.Lookup(gmem);
    auto& g = static_cast<GmemFd&>(*obj);
    REQUIRE(g.Fallocate(gmem, FALLOC_FL_KEEP_SIZE, 0, 4 * kMiB).ok());
    void* map = g.Mmap(nullptr, 4 * kMiB, PROT_READ | PROT_WRITE, MAP_SHARED, gmem, 0).value();
    obj->AddUser();  // the mapping's use, as the front-end counts it
    static_cast<char*>(map)[0] = 1;
    bool vm_open = true;
    for (Op op : ops) {
      switch (op) {
        case kCloseVm: e.fds.Close(vm); vm_open = false; break;
        case kCloseGmem: e.fds.Close(gmem); break;
        case kCloseDup: e.fds.Close(dup); break;
        case kMunmap: munmap(map, 4 * kMiB); obj->DropUser(); break;
        case kDeleteSlot:
          if (vm_open) CHECK(e.SetRegion(vm, 0, 0, 0, -1, 0) == 0);
          break;
      }
    }
    obj.reset();
    CHECK(e.Objects().empty());
    orders++;
  } while (std::next_permutation(ops.begin(), ops.end()));
  CHECK(orders == 120);
}

TEST_CASE("2 MiB leaves: a qualifying block maps whole, a punch or conversion splits it") {
  Env e;
  int vm = e.CreateVm(KVM_X86_SW_PROTECTED_VM);
  REQUIRE(vm >= 0);
  int gmem = e.CreateGmem(vm, 4 * kMiB);
  REQUIRE(e.SetRegion(vm, 0, 2 * kMiB, 4 * kMiB, gmem, 0) == 0);
  kvm_memory_attributes attrs{2 * kMiB, 4 * kMiB, KVM_MEMORY_ATTRIBUTE_PRIVATE, 0};
  REQUIRE(e.Ioctl(vm, KVM_SET_MEMORY_ATTRIBUTES, Arg(&attrs)) == 0);
  int vcpu = static_cast<int>(e.Ioctl(vm, KVM_CREATE_VCPU, 0));
  REQUIRE(vcpu >= 0);
  auto& vmo = static_cast<Vm&>(*e.fds.Lookup(vm));
  auto prefault = [&](uint64_t gpa) { return e.PreFault(vcpu, gpa); };
  auto level = [&](uint64_t gpa) {
    auto leaf = vmo.WalkTdp(base::GpaToGfn(base::Gpa(gpa)));
    return leaf ? leaf->level : 0;
  };

  SUBCASE("off by default: 4 KiB leaves, as Linux's order-0 guest_memfd") {
    REQUIRE(prefault(2 * kMiB + 8192) == 0);
    CHECK(level(2 * kMiB + 8192) == 1);
    CHECK(level(2 * kMiB) == 0);
  }
  SUBCASE("on: one leaf for the block, split by a punch") {
    REQUIRE(e.Ioctl(vm, KVMLIKE_HUGE_LEAVES, 1) == 0);
    REQUIRE(prefault(2 * kMiB + 8192) == 0);
    CHECK(level(2 * kMiB) == 2);
    CHECK(level(4 * kMiB - 4096) == 2);
    auto& g = static_cast<GmemFd&>(*e.fds.Lookup(gmem));
    REQUIRE(g.Fallocate(gmem, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, 4096, 4096).ok());
    CHECK(level(2 * kMiB + 4096) == 0);  // the punched page is gone
    CHECK(level(2 * kMiB) == 1);         // its neighbours stay, as 4 KiB leaves
    CHECK(level(2 * kMiB + 8192) == 1);
    // The block is no longer one run of frames: refaulting maps 4 KiB.
    REQUIRE(prefault(2 * kMiB + 4096) == 0);
    CHECK(level(2 * kMiB + 4096) == 1);
  }
  SUBCASE("on: a block with mixed attributes maps 4 KiB") {
    REQUIRE(e.Ioctl(vm, KVMLIKE_HUGE_LEAVES, 1) == 0);
    kvm_memory_attributes shared{4 * kMiB + 4096, 4096, 0, 0};
    REQUIRE(e.Ioctl(vm, KVM_SET_MEMORY_ATTRIBUTES, Arg(&shared)) == 0);
    REQUIRE(prefault(4 * kMiB) == 0);
    CHECK(level(4 * kMiB) == 1);
    REQUIRE(prefault(2 * kMiB) == 0);
    CHECK(level(2 * kMiB) == 2);  // the other block is uniform
  }
}

TEST_CASE("second-level tables: EPT for the offered VM types, NPT when Kconfig forces it") {
  const bool npt = base::config::kTdpFormatOverride == 2;
  for (unsigned long type : {KVM_X86_DEFAULT_VM, KVM_X86_SW_PROTECTED_VM}) {
    CAPTURE(type);
    Env e;
    int vm = e.CreateVm(type);
    if (vm < 0) {
      REQUIRE(type == KVM_X86_SW_PROTECTED_VM);  // configured out; the default VM always exists
      continue;
    }
    int gmem = e.CreateGmem(vm, 2 * kMiB, type == KVM_X86_DEFAULT_VM ? GUEST_MEMFD_FLAG_MMAP : 0);
    REQUIRE(gmem >= 0);
    REQUIRE(e.SetRegion(vm, 0, 2 * kMiB, 2 * kMiB, gmem, 0) == 0);
    if (type == KVM_X86_SW_PROTECTED_VM) {
      kvm_memory_attributes attrs{2 * kMiB, 2 * kMiB, KVM_MEMORY_ATTRIBUTE_PRIVATE, 0};
      REQUIRE(e.Ioctl(vm, KVM_SET_MEMORY_ATTRIBUTES, Arg(&attrs)) == 0);
    }
    int vcpu = static_cast<int>(e.Ioctl(vm, KVM_CREATE_VCPU, 0));
    REQUIRE(vcpu >= 0);
    REQUIRE(e.PreFault(vcpu, 2 * kMiB) == 0);
    kvmlike_walk_gpa q{};
    q.gpa = 2 * kMiB;
    REQUIRE(e.Ioctl(vm, KVMLIKE_WALK_GPA, Arg(&q)) == 0);
    CHECK(q.format == (npt ? KVMLIKE_TDP_NPT : KVMLIKE_TDP_EPT));
    CHECK(q.perm == (KVMLIKE_PERM_READ | KVMLIKE_PERM_WRITE | KVMLIKE_PERM_EXEC));
    if (npt) {
      // P, R/W and U/S set; NX (bit 63) clear for an executable page.
      CHECK((q.raw & 0x7) == 0x7);
      CHECK((q.raw >> 63) == 0);
    } else {
      // R, W, X in bits 0-2, memory type write-back (6) in bits 3-5.
      CHECK((q.raw & 0x7) == 0x7);
      CHECK(((q.raw >> 3) & 0x7) == 6);
    }
  }
}
