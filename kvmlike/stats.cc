#include "kvmlike/stats.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "kvm_uapi.h"
#include "kvmlike/vm.h"

namespace kvmlike {

using base::Error;
using base::Result;

namespace {

constexpr uint32_t kNameSize = 48;  // name_size, as the kernel reports here
// kvm_stats_desc's fixed part (flags, exponent, size, offset, bucket_size):
// 16 bytes in the ABI. sizeof() is wrong in C++ with the 6.1 header, whose
// trailing flexible array adds a member there (see uapi/kvm_uapi.h).
constexpr size_t kDescFixed = 16;

constexpr uint32_t Cumulative() { return KVM_STATS_TYPE_CUMULATIVE | KVM_STATS_UNIT_NONE | KVM_STATS_BASE_POW10; }
constexpr uint32_t Instant() { return KVM_STATS_TYPE_INSTANT | KVM_STATS_UNIT_NONE | KVM_STATS_BASE_POW10; }

size_t Align8(size_t n) { return (n + 7) & ~size_t{7}; }

}  // namespace

// Layout: header | id (name_size) | descriptors (16 + name_size each) | data.
Result<std::unique_ptr<StatsBlock>> StatsBlock::Create(const std::string& id,
                                                       const std::vector<StatDesc>& descs) {
  const size_t desc_size = kDescFixed + kNameSize;
  const size_t id_off = sizeof(kvm_stats_header);
  const size_t desc_off = Align8(id_off + kNameSize);
  const size_t data_off = Align8(desc_off + descs.size() * desc_size);
  const size_t total = data_off + descs.size() * sizeof(uint64_t);

  base::UniqueFd memfd(memfd_create("kvm-stats", MFD_CLOEXEC));
  if (!memfd.valid()) return base::FromErrno(errno);
  base::UniqueFd fd = base::DupOwnFd(memfd.get());
  if (!fd.valid()) return base::FromErrno(errno);
  if (ftruncate(fd.get(), static_cast<off_t>(total)) != 0) return Error::kNoMemory;
  void* map = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (map == MAP_FAILED) return Error::kNoMemory;
  auto* bytes = static_cast<uint8_t*>(map);

  kvm_stats_header hdr{};
  hdr.name_size = kNameSize;
  hdr.num_desc = static_cast<uint32_t>(descs.size());
  hdr.id_offset = static_cast<uint32_t>(id_off);
  hdr.desc_offset = static_cast<uint32_t>(desc_off);
  hdr.data_offset = static_cast<uint32_t>(data_off);
  std::memcpy(bytes, &hdr, sizeof hdr);
  std::strncpy(reinterpret_cast<char*>(bytes + id_off), id.c_str(), kNameSize - 1);
  for (size_t i = 0; i < descs.size(); i++) {
    uint8_t* d = bytes + desc_off + i * desc_size;
    kvm_stats_desc desc{};
    desc.flags = descs[i].flags;
    desc.exponent = descs[i].exponent;
    desc.size = 1;
    desc.offset = static_cast<uint32_t>(i * sizeof(uint64_t));
    std::memcpy(d, &desc, kDescFixed);
    std::strncpy(reinterpret_cast<char*>(d + kDescFixed), descs[i].name, kNameSize - 1);
  }
  auto* data = reinterpret_cast<std::atomic<uint64_t>*>(bytes + data_off);
  return std::unique_ptr<StatsBlock>(new StatsBlock(std::move(fd), map, total, data));
}

StatsBlock::~StatsBlock() { munmap(map_, map_len_); }

// /proc/self/fd reopens the memfd as a new open file with its own offset and
// read-only access, as a kernel stats fd is.
Result<base::UniqueFd> StatsBlock::OpenReadOnly() const {
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd_.get());
  base::UniqueFd fd(open(path, O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return base::FromErrno(errno);
  return fd;
}

StatsFd::StatsFd(base::RefPtr<Vm> vm) : vm_(std::move(vm)) { vm_->AddUser(); }

StatsFd::~StatsFd() = default;

void StatsFd::DropUser() {
  if (users_.fetch_sub(1, std::memory_order_acq_rel) == 1) vm_->DropUser();
}

const std::vector<StatDesc>& vmstat::Descs() {
  static const std::vector<StatDesc> d = {
      {"remote_tlb_flush", Cumulative(), 0},
      {"remote_tlb_flush_requests", Cumulative(), 0},
      {"pages_4k", Instant(), 0},
      {"pages_2m", Instant(), 0},
      {"faults", Cumulative(), 0},
      {"fault_retries", Cumulative(), 0},
      {"zaps", Cumulative(), 0},
      {"zapped_pages", Cumulative(), 0},
  };
  return d;
}

const std::vector<StatDesc>& vcpustat::Descs() {
  static const std::vector<StatDesc> d = {
      {"exits", Cumulative(), 0},
      {"io_exits", Cumulative(), 0},
      {"mmio_exits", Cumulative(), 0},
      {"halt_exits", Cumulative(), 0},
      {"signal_exits", Cumulative(), 0},
      {"hypercalls", Cumulative(), 0},
      {"memory_fault_exits", Cumulative(), 0},
      {"pf_fixed", Cumulative(), 0},
      {"pf_retry", Cumulative(), 0},
      {"insn_emulation", Cumulative(), 0},
  };
  return d;
}

}  // namespace kvmlike
