// Vcpu: one virtual CPU — what a KVM_CREATE_VCPU fd names. Owns the
// architectural state, the interpreter that runs guest code, the software TLB
// and the kvm_run area (a 3-page memfd that the VMM maps through the vCPU fd:
// kvm_run, the PIO data page, the coalesced-MMIO ring).
//
// Lifetime: users are the vCPU's fds and mappings of its run area. While it
// has users the vCPU holds a user of its Vm (a VM lives as long as any of its
// VM or vCPU fds). The Vm keeps a raw back-pointer in its vCPU table, cleared
// under Vm::vcpus_lock_ when the vCPU is released.
//
// Thread safety: vCPU ioctls are serialized by run_lock_ (vcpu->mutex); other
// threads only read the guest mode and the acknowledged TLB generation, both
// atomics (Vm::SyncTlbs).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "base/config.h"
#include "base/mutex.h"
#include "base/refptr.h"
#include "base/result.h"
#include "kvmlike/fd_object.h"
#include "kvmlike/mmu/soft_tlb.h"
#include "kvmlike/stats.h"
#include "kvmlike/x86/cpu_state.h"
#include "kvmlike/x86/interpreter.h"

struct kvm_run;

namespace kvmlike {

class Vm;
class VcpuMemory;

class Vcpu final : public FdObject {
 public:
  // A new vCPU of vm and the fd that will name it (O_CLOEXEC); the caller
  // registers the vCPU with the VM, then installs the fd.
  struct Created;
  static base::Result<Created> Create(Vm& vm, uint32_t id);
  ~Vcpu() override;

  Kind kind() const override { return Kind::kVcpu; }
  void AddUser() override;
  void DropUser() override;  // the last fd or mapping releases the vCPU
  base::Result<long> Ioctl(unsigned long cmd, unsigned long arg) override;
  // mmap(2) of the vCPU fd: the run area (MAP_SHARED; pages past it SIGBUS).
  base::Result<void*> Mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off);

  uint32_t id() const { return id_; }
  Vm& vm() const { return *vm_; }

  // Another thread changed translations (Vm::SyncTlbs): while this vCPU is
  // in guest mode, it acknowledges the VM's TLB generation at its next memory
  // access.
  bool in_guest() const { return in_guest_.load(std::memory_order_seq_cst); }
  uint64_t tlb_gen_acked() const { return tlb_gen_acked_.load(std::memory_order_acquire); }

 private:
  friend class VcpuMemory;
  Vcpu(Vm& vm, uint32_t id, kvm_run* run, std::unique_ptr<StatsBlock> stats);

  base::Result<long> Run(unsigned long arg) TA_REQUIRES(run_lock_);
  base::Result<long> GetRegs(unsigned long arg) TA_REQUIRES(run_lock_);
  base::Result<long> SetRegs(unsigned long arg) TA_REQUIRES(run_lock_);
  base::Result<long> GetSregs(unsigned long arg) TA_REQUIRES(run_lock_);
  base::Result<long> SetSregs(unsigned long arg) TA_REQUIRES(run_lock_);
  base::Result<long> PreFault(unsigned long arg) TA_REQUIRES(run_lock_);
  base::Result<long> EnableCap(unsigned long arg) TA_REQUIRES(run_lock_);
  void CompletePendingExit(VcpuMemory& mem) TA_REQUIRES(run_lock_);
  // One guest stop turned into the kvm_run exit; returns true to leave KVM_RUN.
  bool ReportStop(const x86::Stop& stop) TA_REQUIRES(run_lock_);
  bool ReportHypercall(const x86::HypercallStop& h) TA_REQUIRES(run_lock_);
  void ReportInternal(uint32_t suberror, const x86::InternalStop* insn);

  base::RefPtr<Vm> vm_;
  const uint32_t id_;
  kvm_run* const run_;  // kvmlike's mapping of the run area (the memfd stays alive through it)
  const std::unique_ptr<StatsBlock> stats_;
  std::atomic<int64_t> users_{1};

  base::Mutex run_lock_{base::LockClass::kVcpu};
  x86::CpuState cpu_ TA_GUARDED_BY(run_lock_);
  x86::Interpreter interp_ TA_GUARDED_BY(run_lock_){
      x86::translator::Options{.enabled = base::config::kX86Translator}};
  mmu::SoftTlb tlb_;  // only the thread in KVM_RUN (holding run_lock_) touches it
  // The exit userspace must complete on the next KVM_RUN (IN, MMIO read, hypercall).
  uint32_t pending_exit_ TA_GUARDED_BY(run_lock_) = 0;

  std::atomic<bool> in_guest_{false};
  std::atomic<uint64_t> tlb_gen_acked_{0};
};

struct Vcpu::Created {
  base::RefPtr<Vcpu> vcpu;
  base::UniqueFd fd;
};

}  // namespace kvmlike
