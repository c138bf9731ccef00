// Binary statistics (KVM_GET_STATS_FD): the kernel's format — header, id
// string, descriptors, data block — in a memfd whose data block *is* the
// counters. kvmlike updates them in place (relaxed atomics in a shared
// mapping), so a stats fd is a plain read-only fd on that memfd: read(2) and
// pread(2) by the VMM see live values with no kvmlike code on the path.
//
// StatsBlock is owned by its Vm or Vcpu; each KVM_GET_STATS_FD returns a new
// fd (a StatsFd in the fd table, which holds a user of the VM, as a stats fd
// keeps a VM alive in Linux).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/refptr.h"
#include "base/result.h"
#include "base/unique_fd.h"
#include "kvmlike/fd_object.h"

namespace kvmlike {

class Vm;

struct StatDesc {
  const char* name;
  uint32_t flags;  // KVM_STATS_TYPE_* | KVM_STATS_UNIT_* | KVM_STATS_BASE_*
  int16_t exponent;
};

class StatsBlock {
 public:
  // id is "kvm-<pid>" or "kvm-<pid>/vcpu-<n>", as Linux names them.
  static base::Result<std::unique_ptr<StatsBlock>> Create(const std::string& id,
                                                          const std::vector<StatDesc>& descs);
  ~StatsBlock();
  StatsBlock(const StatsBlock&) = delete;
  StatsBlock& operator=(const StatsBlock&) = delete;

  uint64_t Get(size_t i) const { return data_[i].load(std::memory_order_relaxed); }
  void Add(size_t i, uint64_t n = 1) { data_[i].fetch_add(n, std::memory_order_relaxed); }
  void Set(size_t i, uint64_t v) { data_[i].store(v, std::memory_order_relaxed); }

  // A new read-only fd on the block (O_CLOEXEC as Linux's), for KVM_GET_STATS_FD.
  base::Result<base::UniqueFd> OpenReadOnly() const;

 private:
  StatsBlock(base::UniqueFd fd, void* map, size_t map_len, std::atomic<uint64_t>* data)
      : fd_(std::move(fd)), map_(map), map_len_(map_len), data_(data) {}
  base::UniqueFd fd_;  // kvmlike's own close-on-exec fd of the memfd
  void* map_;
  size_t map_len_;
  std::atomic<uint64_t>* data_;
};

// The object a stats fd names: reads go to the kernel (the memfd), and the fd
// keeps its VM alive.
class StatsFd final : public FdObject {
 public:
  explicit StatsFd(base::RefPtr<Vm> vm);
  ~StatsFd() override;
  Kind kind() const override { return Kind::kStats; }
  void AddUser() override { users_.fetch_add(1, std::memory_order_relaxed); }
  void DropUser() override;
  base::Result<long> Ioctl(unsigned long, unsigned long) override { return base::Error::kNoTty; }

 private:
  base::RefPtr<Vm> vm_;
  std::atomic<int64_t> users_{1};
};

// The descriptors of a VM's and a vCPU's block, and the index of each counter.
namespace vmstat {
enum : size_t { kRemoteTlbFlush, kRemoteTlbFlushRequests, kPages4k, kPages2m, kFaults,
                kFaultRetries, kZaps, kZappedPages, kCount };
const std::vector<StatDesc>& Descs();
}  // namespace vmstat

namespace vcpustat {
enum : size_t { kExits, kIoExits, kMmioExits, kHaltExits, kSignalExits, kHypercalls,
                kMemoryFaultExits, kPfFixed, kPfRetry, kInsnEmulation, kCount };
const std::vector<StatDesc>& Descs();
}  // namespace vcpustat

}  // namespace kvmlike
