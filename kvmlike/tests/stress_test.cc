// kvmlike_stress: the concurrency stress test (DESIGN §4, §7). vCPU threads
// run a guest that keeps writing and reading back its pages, shared and
// private, while mutator threads punch holes in the guest_memfd, convert
// pages between private and shared, delete and recreate memslots, and
// announce changes of the VMM memory behind the shared side (MMU notifier). After
// every mutator step the test stops all mutations (not the vCPUs) and checks:
//   - every second-level leaf of the region maps what the GFN is now: the
//     guest_memfd's current page for a private GFN (never a freed or foreign
//     frame), the slot's userspace_addr page for a shared one (never a pool
//     frame), nothing for a GFN whose slot is deleted;
//   - the private magic the guest writes into private pages appears in no
//     host mapping: the shared (anonymous) memory, the guest_memfd fd, MMIO
//     exit data;
//   - kvmlike's slots and attributes agree with what the test did.
// The guest checks its own read-backs and reports mismatches with OUT.
//
// Runs for KVMLIKE_STRESS_SECONDS (default 10); KVMLIKE_STRESS_SEED fixes the
// random choices. Exit status 0 on success, 1 on a violation, 77 (skip) when
// the SW_PROTECTED VM type is not built in.
//
// How the guest knows a page is private. A SW_PROTECTED VM has no C-bit:
// whether an access is private is the host's attribute alone, so a guest
// write lands in private memory only if the page stays private for the
// whole access. The test keeps a state word per region page in guest memory
// (busy, private), and a visit counter per vCPU that the guest bumps after
// each page visit. Converting a page is: mark it busy (guests skip busy
// pages), wait until every vCPU has finished the visit it was in (its counter
// moved on), convert, publish the new kind. So a visit that reads "private"
// runs entirely while the page is private, and any private magic that
// reaches host-visible memory went through a wrong mapping. Punch-hole is not
// coordinated: it races the guest freely, and a private read-back of zero
// (the page was punched between the write and the read) is allowed.
//
// Pages belong to vCPUs (page i to vCPU i % kVcpus), so a read-back of
// another vCPU's data means a frame was mapped at two GFNs: a stale mapping
// of a freed frame that the pool handed to someone else.
#include <linux/falloc.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <random>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "gmem/frame_pool.h"
#include "gmem/inode.h"
#include "kvm_uapi.h"
#include "kvmlike/gmem_fd.h"
#include "kvmlike/system.h"
#include "kvmlike/tests/fake_fds.h"
#include "kvmlike/vcpu.h"
#include "kvmlike/vm.h"
#include "kvmlike_ext.h"

namespace {

using namespace kvmlike;
using base::Gfn;
using base::Gpa;
using base::PgOff;
using Clock = std::chrono::steady_clock;
using kvmlike::testing::FakeFds;

// ---------------------------------------------------------------- layout

constexpr int kVcpus = 4;
constexpr uint64_t kPage = base::kPageSize;

// Slot 0 (plain memory, never touched by the mutators): the GDT, the code,
// the state words and visit counters, the stacks.
constexpr uint64_t kLowSize = 0x10000;
constexpr uint64_t kGdtGpa = 0x500;
constexpr uint64_t kCodeGpa = 0x1000;
constexpr uint64_t kStateGpa = 0x2000;    // uint32 per region page
constexpr uint64_t kCounterGpa = 0x2200;  // uint32 per vCPU, 64 bytes apart
constexpr uint64_t kStackTop = 0x8000;    // vCPU v: kStackTop - v * 0x800

// The region: kRegionPages pages at 1 MiB in kSlots guest_memfd slots (ids
// 1..kSlots), backed on the shared side by one anonymous mapping and on the
// private side by a flags-0 guest_memfd, slot k at file page kGmemBase + 8k.
constexpr uint64_t kRegionGpa = 0x100000;
constexpr int kRegionPages = 64;
constexpr int kSlots = 8;
constexpr int kSlotPages = kRegionPages / kSlots;
constexpr uint64_t kGmemBase = 8;  // file pages below the first slot: punched, never bound
constexpr uint64_t kGmemPages = kGmemBase + kRegionPages;

// State word bits, and what the guest writes: {magic, tag} with the magic
// telling the kind of the visit and tag = vcpu << 24 | visit number.
constexpr uint32_t kStateBusy = 1, kStatePrivate = 2;
constexpr uint32_t kPrivateMagic = 0x9c1da7e5;
constexpr uint32_t kSharedMagic = 0x5afe5afe;
constexpr uint16_t kPortBadMagic = 0x10, kPortBadTag = 0x11;

// The one place each address kind of a region page is computed.
Gpa RegionGpa(int page) { return Gpa(kRegionGpa + base::PagesToBytes(page)); }
Gfn RegionGfn(int page) { return base::GpaToGfn(RegionGpa(page)); }
PgOff GmemOff(int page) { return PgOff(kGmemBase + page); }
int SlotOf(int page) { return page / kSlotPages; }
// The region page of gpa, or -1.
int RegionPage(uint64_t gpa) {
  if (gpa < kRegionGpa || gpa >= kRegionGpa + base::PagesToBytes(kRegionPages)) return -1;
  return static_cast<int>(base::BytesToPages(gpa - kRegionGpa));
}

// --------------------------------------------------------------- the guest

// 32-bit flat protected mode, entered at kCodeGpa with ESI = vCPU index,
// EBX = 0 (visit number), ESP = its stack. It visits its pages v, v+4, ...
// forever; each visit writes {magic, tag} at an offset that walks the page,
// reads both back, and every 128th visit asks the host to flip the page
// (KVM_HC_MAP_GPA_RANGE). Mismatches go out on ports 0x10/0x11 with the
// value read in EAX (EDX = address, EBP = magic, EDI = tag).
constexpr uint8_t kGuestCode[] = {
    0x89, 0xf1,                          // 00 start:  mov ecx, esi            ; page = v
    0x8b, 0x04, 0x8d, 0x00, 0x20, 0x00, 0x00,  // 02 visit: mov eax, [ecx*4+0x2000] ; state
    0xa8, 0x01,                          // 09  test al, 1                     ; busy?
    0x75, 0x75,                          // 0b  jnz done
    0x89, 0xda,                          // 0d  mov edx, ebx
    0x81, 0xe2, 0xff, 0x01, 0x00, 0x00,  // 0f  and edx, 0x1ff
    0xc1, 0xe2, 0x03,                    // 15  shl edx, 3                     ; slot in page
    0x89, 0xcf,                          // 18  mov edi, ecx
    0xc1, 0xe7, 0x0c,                    // 1a  shl edi, 12
    0x01, 0xfa,                          // 1d  add edx, edi
    0x81, 0xc2, 0x00, 0x00, 0x10, 0x00,  // 1f  add edx, 0x100000             ; EDX = address
    0xbd, 0xfe, 0x5a, 0xfe, 0x5a,        // 25  mov ebp, kSharedMagic
    0xa8, 0x02,                          // 2a  test al, 2                     ; private?
    0x74, 0x05,                          // 2c  jz tag
    0xbd, 0xe5, 0xa7, 0x1d, 0x9c,        // 2e  mov ebp, kPrivateMagic
    0x89, 0xf7,                          // 33 tag:  mov edi, esi
    0xc1, 0xe7, 0x18,                    // 35  shl edi, 24
    0x89, 0xd8,                          // 38  mov eax, ebx
    0x25, 0xff, 0xff, 0xff, 0x00,        // 3a  and eax, 0xffffff
    0x09, 0xc7,                          // 3f  or edi, eax                    ; EDI = tag
    0x89, 0x2a,                          // 41  mov [edx], ebp
    0x89, 0x7a, 0x04,                    // 43  mov [edx+4], edi
    0x8b, 0x02,                          // 46  mov eax, [edx]
    0x39, 0xe8,                          // 48  cmp eax, ebp
    0x75, 0x55,                          // 4a  jne bad_magic
    0x8b, 0x42, 0x04,                    // 4c  mov eax, [edx+4]
    0x39, 0xf8,                          // 4f  cmp eax, edi
    0x75, 0x52,                          // 51  jne bad_tag
    0xf6, 0xc3, 0x7f,                    // 53  test bl, 0x7f                  ; every 128th visit
    0x75, 0x2a,                          // 56  jnz done
    0x53,                                // 58  push ebx
    0x51,                                // 59  push ecx
    0x52,                                // 5a  push edx
    0x89, 0xd3,                          // 5b  mov ebx, edx
    0x81, 0xe3, 0x00, 0xf0, 0xff, 0xff,  // 5d  and ebx, ~0xfff                ; GPA of the page
    0xba, 0x10, 0x00, 0x00, 0x00,        // 63  mov edx, 0x10                  ; ENCRYPTED
    0x81, 0xfd, 0xe5, 0xa7, 0x1d, 0x9c,  // 68  cmp ebp, kPrivateMagic
    0x75, 0x02,                          // 6e  jne call
    0x31, 0xd2,                          // 70  xor edx, edx                   ; DECRYPTED
    0xb8, 0x0c, 0x00, 0x00, 0x00,        // 72 call: mov eax, 12               ; KVM_HC_MAP_GPA_RANGE
    0xb9, 0x01, 0x00, 0x00, 0x00,        // 77  mov ecx, 1                     ; one page
    0x0f, 0x01, 0xc1,                    // 7c  vmcall                         -> HYPERCALL exit
    0x5a,                                // 7f  pop edx
    0x59,                                // 80  pop ecx
    0x5b,                                // 81  pop ebx
    0x89, 0xf0,                          // 82 done: mov eax, esi
    0xc1, 0xe0, 0x06,                    // 84  shl eax, 6
    0xff, 0x80, 0x00, 0x22, 0x00, 0x00,  // 87  inc dword [eax+0x2200]        ; visit counter
    0x43,                                // 8d  inc ebx
    0x83, 0xc1, 0x04,                    // 8e  add ecx, 4                     ; next own page
    0x83, 0xf9, 0x40,                    // 91  cmp ecx, 64
    0x0f, 0x82, 0x68, 0xff, 0xff, 0xff,  // 94  jb visit
    0x89, 0xf1,                          // 9a  mov ecx, esi
    0xe9, 0x61, 0xff, 0xff, 0xff,        // 9c  jmp visit
    0xe7, 0x10,                          // a1 bad_magic: out 0x10, eax       -> IO exit
    0xeb, 0xdd,                          // a3  jmp done
    0xe7, 0x11,                          // a5 bad_tag: out 0x11, eax         -> IO exit
    0xeb, 0xd9,                          // a7  jmp done
};
static_assert(kRegionPages == 64 && kVcpus == 4, "the guest code hard-codes 64 pages, stride 4");

// --------------------------------------------- memory the guest uses too

// The guest reads and writes the state words, counters and shared pages from
// other threads through the interpreter's plain copies — as hardware would,
// outside the C++ memory model. The host's side of those accesses is kept
// out of TSan's view (what it checks is kvmlike's own synchronization) and
// goes through volatile or atomic instructions so each is one real access.
#define GUEST_VISIBLE __attribute__((noinline, no_sanitize("thread")))

GUEST_VISIBLE uint32_t GuestLoad32(const uint8_t* p) {
  return *reinterpret_cast<const volatile uint32_t*>(p);
}
GUEST_VISIBLE void GuestStore32(uint8_t* p, uint32_t v) {
  __atomic_store_n(reinterpret_cast<uint32_t*>(p), v, __ATOMIC_SEQ_CST);
}
GUEST_VISIBLE void GuestOr32(uint8_t* p, uint32_t v) {
  __atomic_fetch_or(reinterpret_cast<uint32_t*>(p), v, __ATOMIC_SEQ_CST);
}
// Replaces the kind bits, keeping busy (a mutator may be waiting on the page).
GUEST_VISIBLE void GuestSetKindKeepBusy(uint8_t* p, uint32_t kind) {
  auto* w = reinterpret_cast<uint32_t*>(p);
  uint32_t old = __atomic_load_n(w, __ATOMIC_RELAXED);
  while (!__atomic_compare_exchange_n(w, &old, (old & kStateBusy) | kind, false, __ATOMIC_SEQ_CST,
                                      __ATOMIC_RELAXED)) {
  }
}
GUEST_VISIBLE void GuestCopy(void* dst, const void* src, size_t n) {
  auto* d = static_cast<volatile uint8_t*>(dst);
  auto* s = static_cast<const volatile uint8_t*>(src);
  for (size_t i = 0; i < n; i++) d[i] = s[i];
}
// Offset of the first 4-byte-aligned occurrence of magic in [p, p + len), or -1.
GUEST_VISIBLE long GuestFind32(const uint8_t* p, size_t len, uint32_t magic) {
  auto* w = reinterpret_cast<const volatile uint32_t*>(p);
  for (size_t i = 0; i < len / 4; i++)
    if (w[i] == magic) return static_cast<long>(i * 4);
  return -1;
}

// ---------------------------------------------------------------- helpers

template <typename T>
unsigned long Arg(T* p) {
  return reinterpret_cast<unsigned long>(p);
}

long Ioctl(FdObject& obj, unsigned long cmd, unsigned long arg) {
  return ToSyscallReturn(obj.Ioctl(cmd, arg));
}

double EnvSeconds() {
  const char* s = getenv("KVMLIKE_STRESS_SECONDS");
  double v = s ? strtod(s, nullptr) : 10.0;
  return v > 0 ? v : 10.0;
}

uint64_t EnvSeed() {
  const char* s = getenv("KVMLIKE_STRESS_SEED");
  if (s) return strtoull(s, nullptr, 0);
  return static_cast<uint64_t>(Clock::now().time_since_epoch().count());
}

void OnKick(int) {}  // SIGUSR1: only makes KVM_RUN return EINTR

// A shared mutex that lets a waiting exclusive locker in: new shared lockers
// queue behind it on the turnstile. (glibc's rwlock prefers readers, and
// four vCPU threads converting pages back to back could starve the checks.)
class FairSharedMutex {
 public:
  void lock() {
    std::lock_guard t(turnstile_);
    m_.lock();
  }
  void unlock() { m_.unlock(); }
  void lock_shared() {
    { std::lock_guard t(turnstile_); }
    m_.lock_shared();
  }
  void unlock_shared() { m_.unlock_shared(); }

 private:
  std::mutex turnstile_;
  std::shared_mutex m_;
};

struct Counters {
  std::atomic<uint64_t> punches{0}, converts{0}, converted_pages{0}, slot_deletes{0},
      slot_creates{0}, host_changes{0}, checks{0}, leaves_private{0}, leaves_shared{0},
      unmapped{0};
  std::atomic<uint64_t> runs{0}, exit_io{0}, exit_mmio{0}, exit_hypercall{0}, exit_memfault{0},
      exit_intr{0}, vcpu_recreates{0}, zero_readbacks{0};
};

// -------------------------------------------------------------- the test

class Stress {
 public:
  Stress(double seconds, uint64_t seed) : seconds_(seconds), seed_(seed) {}
  ~Stress();

  // 0: ready; 77: SW_PROTECTED not available; 1: setup failed.
  int Setup();
  void Run();
  // Stops every thread, runs the last check, frees everything and checks
  // that no object is left. Returns the exit status.
  int Finish();

 private:
  // Setup pieces.
  bool CreateMemory();
  bool CreateSlot(int k);
  bool DeleteSlot(int k);
  bool CreateVcpu(int v);

  // Threads.
  struct VcpuCtx {
    uint64_t fault_gpa = 0;      // the last memory fault on a present slot
    uint64_t fault_repeats = 0;  // and how often it came in a row
  };
  void VcpuThread(int v);
  void PunchThread();
  void ConvertThread();
  void SlotThread();
  void HostRangeThread();

  // vCPU exits.
  bool HandleExit(int v, long r, VcpuCtx& ctx);
  void HandleMemoryFault(int v, kvm_run& run, VcpuCtx& ctx);
  void HandleHypercall(int v, kvm_run& run);
  void HandleMmio(int v, kvm_run& run);
  void HandleReport(int v, const kvm_run& run);
  bool EnsureSlot(int k);

  // Mutations (the caller holds lock_ shared).
  bool Convert(int first, int n, bool to_private);

  // The invariant checks, with every mutation stopped.
  void Check(const char* after);
  void CheckModel(const char* after);
  void CheckLeaves(const char* after);
  void CheckNoPrivateMagic(const char* after);

  bool WaitQuiescent();
  uint8_t* StateWord(int page) { return low_ + kStateGpa + 4 * page; }
  uint8_t* Counter(int v) { return low_ + kCounterGpa + 64 * v; }
  uint8_t* SharedPage(int page) { return shared_ + base::PagesToBytes(page); }
  void Violation(const char* fmt, ...) __attribute__((format(printf, 2, 3)));
  bool stopping() const { return stop_.load(std::memory_order_acquire); }
  void PrintSummary(double stop_ms);

  const double seconds_;
  const uint64_t seed_;

  FakeFds fds_;
  System sys_{fds_};
  int dev_ = -1, vm_fd_ = -1, gmem_fd_ = -1;
  base::RefPtr<FdObject> dev_obj_, vm_obj_, gmem_obj_;
  Vm* vm_ = nullptr;
  base::RefPtr<gmem::Inode> inode_;
  std::array<int, kVcpus> vcpu_fd_{};
  std::array<base::RefPtr<FdObject>, kVcpus> vcpu_obj_{};
  std::array<kvm_run*, kVcpus> run_{};  // our mappings of the run areas (each a vCPU user)
  uint8_t* low_ = nullptr;     // slot 0
  uint8_t* shared_ = nullptr;  // the region's shared side

  // The test's lock: mutations (mutator steps, exit handling) hold it shared
  // and run concurrently; checks hold it exclusively. Per-slot locks order
  // deletion against recreation (taken before lock_).
  FairSharedMutex lock_;
  std::array<std::mutex, kSlots> slot_lock_;
  // What the test did: the truth the checks compare kvmlike with.
  std::array<std::atomic<bool>, kRegionPages> private_{};
  std::array<std::atomic<bool>, kSlots> slot_present_{};

  std::atomic<bool> stop_{false};       // mutators (and everything on a violation)
  std::atomic<bool> vcpu_stop_{false};  // vCPU threads
  std::array<std::atomic<bool>, kVcpus> vcpu_done_{};
  std::vector<std::thread> vcpu_threads_, mutator_threads_;
  std::array<pthread_t, kVcpus> vcpu_handle_{};

  std::vector<uint8_t> gmem_buf_ = std::vector<uint8_t>(base::PagesToBytes(kGmemPages));  // checks
  std::mutex report_lock_;
  std::atomic<int> violations_{0};
  Counters c_;
};

// Normally Finish() has closed everything; after a failed setup this does,
// before the System (declared after fds_) goes.
Stress::~Stress() {
  for (int v = 0; v < kVcpus; v++)
    if (run_[v]) {
      munmap(run_[v], kVcpuMmapSize);
      vcpu_obj_[v]->DropUser();
    }
  vcpu_obj_ = {};
  dev_obj_ = vm_obj_ = gmem_obj_ = nullptr;
  inode_ = nullptr;
  fds_.CloseAll();
  if (low_) munmap(low_, kLowSize);
  if (shared_) munmap(shared_, base::PagesToBytes(kRegionPages));
}

void Stress::Violation(const char* fmt, ...) {
  int n = violations_.fetch_add(1) + 1;
  stop_.store(true, std::memory_order_release);
  if (n > 20) return;
  std::lock_guard g(report_lock_);
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "VIOLATION %d: ", n);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

// ------------------------------------------------------------------ setup

bool Stress::CreateMemory() {
  void* low = mmap(nullptr, kLowSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  void* shared = mmap(nullptr, base::PagesToBytes(kRegionPages), PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (low == MAP_FAILED || shared == MAP_FAILED) return false;
  low_ = static_cast<uint8_t*>(low);
  shared_ = static_cast<uint8_t*>(shared);
  // Flat GDT: null, code (base 0, 4 GiB, 32-bit), data (same).
  const uint64_t gdt[3] = {0, 0x00cf9b000000ffffull, 0x00cf93000000ffffull};
  memcpy(low_ + kGdtGpa, gdt, sizeof(gdt));
  memcpy(low_ + kCodeGpa, kGuestCode, sizeof(kGuestCode));

  kvm_userspace_memory_region2 r{};
  r.slot = 0;
  r.guest_phys_addr = 0;
  r.memory_size = kLowSize;
  r.userspace_addr = reinterpret_cast<uint64_t>(low_);
  if (Ioctl(*vm_obj_, KVM_SET_USER_MEMORY_REGION2, Arg(&r)) != 0) return false;

  kvm_create_guest_memfd g{};
  g.size = base::PagesToBytes(kGmemPages);
  gmem_fd_ = static_cast<int>(Ioctl(*vm_obj_, KVM_CREATE_GUEST_MEMFD, Arg(&g)));
  if (gmem_fd_ < 0) return false;
  gmem_obj_ = fds_.Lookup(gmem_fd_);
  inode_ = static_cast<GmemFd&>(*gmem_obj_).file().inode();
  for (int k = 0; k < kSlots; k++)
    if (!CreateSlot(k)) return false;

  // Even pages start private, odd ones shared.
  for (int p = 0; p < kRegionPages; p++) {
    bool priv = p % 2 == 0;
    kvm_memory_attributes a{};
    a.address = RegionGpa(p).value();
    a.size = kPage;
    a.attributes = priv ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0;
    if (Ioctl(*vm_obj_, KVM_SET_MEMORY_ATTRIBUTES, Arg(&a)) != 0) return false;
    private_[p] = priv;
    GuestStore32(StateWord(p), priv ? kStatePrivate : 0);
  }
  return true;
}

bool Stress::CreateSlot(int k) {
  int first = k * kSlotPages;
  kvm_userspace_memory_region2 r{};
  r.slot = static_cast<uint32_t>(k + 1);
  r.flags = KVM_MEM_GUEST_MEMFD;
  r.guest_phys_addr = RegionGpa(first).value();
  r.memory_size = base::PagesToBytes(kSlotPages);
  r.userspace_addr = reinterpret_cast<uint64_t>(SharedPage(first));
  r.guest_memfd = static_cast<uint32_t>(gmem_fd_);
  r.guest_memfd_offset = base::PagesToBytes(GmemOff(first).value());
  long ret = Ioctl(*vm_obj_, KVM_SET_USER_MEMORY_REGION2, Arg(&r));
  if (ret != 0) {
    Violation("creating slot %d failed: %s", k + 1, strerror(static_cast<int>(-ret)));
    return false;
  }
  slot_present_[k] = true;
  c_.slot_creates++;
  return true;
}

bool Stress::DeleteSlot(int k) {
  kvm_userspace_memory_region2 r{};
  r.slot = static_cast<uint32_t>(k + 1);
  r.flags = KVM_MEM_GUEST_MEMFD;
  long ret = Ioctl(*vm_obj_, KVM_SET_USER_MEMORY_REGION2, Arg(&r));
  if (ret != 0) {
    Violation("deleting slot %d failed: %s", k + 1, strerror(static_cast<int>(-ret)));
    return false;
  }
  slot_present_[k] = false;
  c_.slot_deletes++;
  return true;
}

bool Stress::CreateVcpu(int v) {
  vcpu_fd_[v] = static_cast<int>(Ioctl(*vm_obj_, KVM_CREATE_VCPU, static_cast<unsigned long>(v)));
  if (vcpu_fd_[v] < 0) return false;
  vcpu_obj_[v] = fds_.Lookup(vcpu_fd_[v]);
  auto& vcpu = static_cast<Vcpu&>(*vcpu_obj_[v]);
  auto map = vcpu.Mmap(nullptr, kVcpuMmapSize, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu_fd_[v], 0);
  if (!map.ok()) return false;
  vcpu_obj_[v]->AddUser();  // the mapping's use, as the front-end counts it
  run_[v] = static_cast<kvm_run*>(map.value());

  kvm_sregs sr{};
  if (Ioctl(vcpu, KVM_GET_SREGS, Arg(&sr)) != 0) return false;
  kvm_segment code{};
  code.base = 0;
  code.limit = 0xffffffff;
  code.selector = 0x08;
  code.type = 0xb;  // execute/read, accessed
  code.present = 1;
  code.s = 1;
  code.db = 1;
  code.g = 1;
  kvm_segment data = code;
  data.selector = 0x10;
  data.type = 0x3;  // read/write, accessed
  sr.cs = code;
  sr.ds = sr.es = sr.fs = sr.gs = sr.ss = data;
  sr.gdt.base = kGdtGpa;
  sr.gdt.limit = 3 * 8 - 1;
  sr.cr0 = 0x11;  // PE | ET
  sr.cr4 = 0;
  sr.efer = 0;
  if (Ioctl(vcpu, KVM_SET_SREGS, Arg(&sr)) != 0) return false;
  kvm_regs regs{};
  regs.rip = kCodeGpa;
  regs.rsp = kStackTop - static_cast<uint64_t>(v) * 0x800;
  regs.rsi = static_cast<uint64_t>(v);
  regs.rflags = 2;
  return Ioctl(vcpu, KVM_SET_REGS, Arg(&regs)) == 0;
}

int Stress::Setup() {
  auto dev = sys_.OpenDevice(0);
  if (!dev.ok()) return 1;
  dev_ = dev.value();
  dev_obj_ = fds_.Lookup(dev_);
  vm_fd_ = static_cast<int>(Ioctl(*dev_obj_, KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM));
  if (vm_fd_ < 0) {
    printf("SKIP: KVM_CREATE_VM(SW_PROTECTED): %s\n", strerror(-vm_fd_));
    return 77;
  }
  vm_obj_ = fds_.Lookup(vm_fd_);
  vm_ = static_cast<Vm*>(vm_obj_.get());
  kvm_enable_cap cap{};
  cap.cap = KVM_CAP_EXIT_HYPERCALL;
  cap.args[0] = 1ull << KVM_HC_MAP_GPA_RANGE;
  if (Ioctl(*vm_obj_, KVM_ENABLE_CAP, Arg(&cap)) != 0) return 1;
  if (!CreateMemory()) return 1;
  for (int v = 0; v < kVcpus; v++)
    if (!CreateVcpu(v)) return 1;

  struct sigaction sa {};
  sa.sa_handler = OnKick;  // no SA_RESTART: KVM_RUN is to return EINTR
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR1, &sa, nullptr);
  return 0;
}

// ------------------------------------------------------------- the vCPUs

void Stress::VcpuThread(int v) {
  VcpuCtx ctx;
  while (!vcpu_stop_.load(std::memory_order_acquire)) {
    long r = Ioctl(*vcpu_obj_[v], KVM_RUN, 0);
    c_.runs++;
    if (!HandleExit(v, r, ctx)) break;
  }
  vcpu_done_[v].store(true, std::memory_order_release);
}

// False when the vCPU cannot go on (a violation was reported).
bool Stress::HandleExit(int v, long r, VcpuCtx& ctx) {
  kvm_run& run = *run_[v];
  if (r == -EINTR) {
    c_.exit_intr++;
    return true;
  }
  if (r == -EFAULT && run.exit_reason == KVM_EXIT_MEMORY_FAULT) {
    HandleMemoryFault(v, run, ctx);
    return true;
  }
  if (r != 0) {
    Violation("vCPU %d: KVM_RUN failed: %s (exit reason %u)", v, strerror(static_cast<int>(-r)),
              run.exit_reason);
    return false;
  }
  switch (run.exit_reason) {
    case KVM_EXIT_IO:
      HandleReport(v, run);
      return true;
    case KVM_EXIT_HYPERCALL:
      HandleHypercall(v, run);
      return true;
    case KVM_EXIT_MMIO:
      HandleMmio(v, run);
      return true;
    default:
      Violation("vCPU %d: unexpected exit reason %u (suberror %u)", v, run.exit_reason,
                run.exit_reason == KVM_EXIT_INTERNAL_ERROR ? run.internal.suberror : 0);
      return false;
  }
}

// The slot of a region page is gone: a private access faults out to us
// (rule 38), a shared one becomes MMIO, and we put the slot back, as a VMM
// that moved memory would. True when this call recreated it.
bool Stress::EnsureSlot(int k) {
  std::lock_guard s(slot_lock_[k]);
  std::shared_lock g(lock_);
  if (slot_present_[k] || !CreateSlot(k)) return false;
  c_.vcpu_recreates++;
  return true;
}

void Stress::HandleMemoryFault(int v, kvm_run& run, VcpuCtx& ctx) {
  c_.exit_memfault++;
  const kvm_run_memory_fault& mf = *kvm_run_mem_fault(&run);
  int page = RegionPage(mf.gpa);
  if (page < 0 || page % kVcpus != v || mf.size != kPage) {
    Violation("vCPU %d: memory fault at GPA %#llx size %llu: not one of its pages", v,
              static_cast<unsigned long long>(mf.gpa), static_cast<unsigned long long>(mf.size));
    return;
  }
  if (!(mf.flags & KVM_MEMORY_EXIT_FLAG_PRIVATE) || !private_[page]) {
    Violation("vCPU %d: memory fault at GPA %#llx flags %#llx, but the page is %s", v,
              static_cast<unsigned long long>(mf.gpa), static_cast<unsigned long long>(mf.flags),
              private_[page] ? "private" : "shared");
    return;
  }
  // Waits for a deletion or creation of the slot in flight, then puts it
  // back if it is gone. The same exit again and again with the slot there
  // is a real failure.
  if (EnsureSlot(SlotOf(page))) {
    ctx = {};
  } else if (ctx.fault_gpa != mf.gpa) {
    ctx = {mf.gpa, 1};
  } else if (++ctx.fault_repeats > 1000) {
    Violation("vCPU %d: %" PRIu64 " memory faults in a row at GPA %#llx while its slot exists", v,
              ctx.fault_repeats, static_cast<unsigned long long>(mf.gpa));
    ctx = {};
  }
}

// MMIO on a region page: its slot is deleted and the access was shared (a
// private one would have been a memory fault). The VMM completes it against
// the shared memory and brings the slot back.
void Stress::HandleMmio(int v, kvm_run& run) {
  c_.exit_mmio++;
  int page = RegionPage(run.mmio.phys_addr);
  uint64_t in_page = run.mmio.phys_addr & (kPage - 1);
  if (page < 0 || page % kVcpus != v || run.mmio.len > 8 || in_page + run.mmio.len > kPage) {
    Violation("vCPU %d: MMIO %s at GPA %#llx len %u: not one of its pages", v,
              run.mmio.is_write ? "write" : "read", static_cast<unsigned long long>(run.mmio.phys_addr),
              run.mmio.len);
    return;
  }
  if (private_[page])
    Violation("vCPU %d: private GPA %#llx became an MMIO %s", v,
              static_cast<unsigned long long>(run.mmio.phys_addr), run.mmio.is_write ? "write" : "read");
  uint8_t* host = SharedPage(page) + in_page;
  if (run.mmio.is_write) {
    uint32_t w;
    memcpy(&w, run.mmio.data, 4);
    if (w == kPrivateMagic)
      Violation("vCPU %d: private magic left the guest in an MMIO write to GPA %#llx", v,
                static_cast<unsigned long long>(run.mmio.phys_addr));
    GuestCopy(host, run.mmio.data, run.mmio.len);
  } else {
    GuestCopy(run.mmio.data, host, run.mmio.len);
  }
  EnsureSlot(SlotOf(page));
}

// The guest asks to flip one of its pages (rules 40-41): fallocate, then
// attributes, then the new kind in its state word.
void Stress::HandleHypercall(int v, kvm_run& run) {
  c_.exit_hypercall++;
  uint64_t gpa = run.hypercall.args[0], npages = run.hypercall.args[1];
  int page = RegionPage(gpa);
  if (run.hypercall.nr != KVM_HC_MAP_GPA_RANGE || npages != 1 || page < 0 || page % kVcpus != v ||
      !base::IsPageAligned(gpa)) {
    Violation("vCPU %d: hypercall %llu (%#llx, %llu): not a request for one of its pages", v,
              static_cast<unsigned long long>(run.hypercall.nr), static_cast<unsigned long long>(gpa),
              static_cast<unsigned long long>(npages));
    run.hypercall.ret = static_cast<uint64_t>(-EINVAL);
    return;
  }
  bool to_private = run.hypercall.args[2] & KVM_MAP_GPA_RANGE_ENCRYPTED;
  {
    std::shared_lock g(lock_);
    run.hypercall.ret = Convert(page, 1, to_private) ? 0 : static_cast<uint64_t>(-EINVAL);
    GuestSetKindKeepBusy(StateWord(page), to_private ? kStatePrivate : 0);
  }
}

// A read-back mismatch the guest reported. Private pages read back zero
// after a punch raced the visit; anything else is a violation.
void Stress::HandleReport(int v, const kvm_run& run) {
  c_.exit_io++;
  if (run.io.direction != KVM_EXIT_IO_OUT || run.io.size != 4 ||
      (run.io.port != kPortBadMagic && run.io.port != kPortBadTag)) {
    Violation("vCPU %d: unexpected port I/O (port %#x, size %u, dir %u)", v, run.io.port,
              run.io.size, run.io.direction);
    return;
  }
  uint32_t got;
  memcpy(&got, reinterpret_cast<const uint8_t*>(&run) + run.io.data_offset, 4);
  kvm_regs regs{};
  if (Ioctl(*vcpu_obj_[v], KVM_GET_REGS, Arg(&regs)) != 0) {
    Violation("vCPU %d: KVM_GET_REGS failed", v);
    return;
  }
  auto magic = static_cast<uint32_t>(regs.rbp), tag = static_cast<uint32_t>(regs.rdi);
  bool priv = magic == kPrivateMagic;
  uint32_t expected = run.io.port == kPortBadMagic ? magic : tag;
  if (priv && got == 0) {
    c_.zero_readbacks++;
    return;
  }
  const char* what = "a value never written there";
  if (got == kPrivateMagic || got == kSharedMagic)
    what = got == magic ? "its own magic in the tag slot" : "the other kind's magic (wrong backing)";
  else if (run.io.port == kPortBadTag && (got >> 24) < uint32_t{kVcpus} &&
           (got >> 24) != static_cast<uint32_t>(v))
    what = "another vCPU's tag (a frame mapped at two GFNs)";
  else if (run.io.port == kPortBadTag && (got >> 24) == static_cast<uint32_t>(v))
    what = "an older visit's tag (stale page)";
  Violation("vCPU %d: %s visit at GPA %#llx read %#x, expected %#x: %s", v,
            priv ? "private" : "shared", static_cast<unsigned long long>(regs.rdx & 0xffffffff), got,
            expected, what);
}

// -------------------------------------------------------------- mutators

// Pages [first, first + n) become private or shared, as the conformance
// rules 41 do it: fallocate on the guest_memfd (punch when going shared,
// allocate when going private), then KVM_SET_MEMORY_ATTRIBUTES.
bool Stress::Convert(int first, int n, bool to_private) {
  auto& gmem = static_cast<GmemFd&>(*gmem_obj_);
  int mode = FALLOC_FL_KEEP_SIZE | (to_private ? 0 : FALLOC_FL_PUNCH_HOLE);
  auto off = static_cast<int64_t>(base::PagesToBytes(GmemOff(first).value()));
  auto len = static_cast<int64_t>(base::PagesToBytes(n));
  base::Status st = gmem.Fallocate(gmem_fd_, mode, off, len);
  if (!st.ok()) {
    Violation("fallocate(%s) of file pages [%llu, +%d) failed: %s", to_private ? "KEEP" : "PUNCH",
              static_cast<unsigned long long>(GmemOff(first).value()), n,
              strerror(base::ToErrno(st.error())));
    return false;
  }
  kvm_memory_attributes a{};
  a.address = RegionGpa(first).value();
  a.size = base::PagesToBytes(n);
  a.attributes = to_private ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0;
  long r = Ioctl(*vm_obj_, KVM_SET_MEMORY_ATTRIBUTES, Arg(&a));
  if (r != 0) {
    Violation("KVM_SET_MEMORY_ATTRIBUTES failed: %s", strerror(static_cast<int>(-r)));
    return false;
  }
  for (int p = first; p < first + n; p++) private_[p] = to_private;
  c_.converted_pages += n;
  return true;
}

// Returns once every vCPU has finished the page visit it was in when called
// (its counter moved by 3: the current visit, one that may have read the
// state word just before our store became visible, one more), false if the
// test is stopping or a vCPU made no progress for 20 s (a hang: reported).
bool Stress::WaitQuiescent() {
  std::array<uint32_t, kVcpus> start;
  std::atomic_thread_fence(std::memory_order_seq_cst);
  for (int v = 0; v < kVcpus; v++) start[v] = GuestLoad32(Counter(v));
  auto deadline = Clock::now() + std::chrono::seconds(20);
  for (int v = 0; v < kVcpus; v++) {
    while (GuestLoad32(Counter(v)) - start[v] < 3) {
      if (stopping()) return false;
      if (Clock::now() > deadline) {
        Violation("vCPU %d made no progress for 20 s (visit counter %u): hang", v, GuestLoad32(Counter(v)));
        return false;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }
  return true;
}

void Stress::PunchThread() {
  std::mt19937_64 rng(seed_ ^ 0x1111);
  auto& gmem = static_cast<GmemFd&>(*gmem_obj_);
  while (!stopping()) {
    auto first = static_cast<uint64_t>(rng() % kGmemPages);
    uint64_t n = std::min<uint64_t>(1 + rng() % 8, kGmemPages - first);
    {
      std::shared_lock g(lock_);
      base::Status st = gmem.Fallocate(gmem_fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                       static_cast<int64_t>(base::PagesToBytes(first)),
                                       static_cast<int64_t>(base::PagesToBytes(n)));
      if (!st.ok()) Violation("punch of file pages [%" PRIu64 ", +%" PRIu64 ") failed", first, n);
    }
    c_.punches++;
    char what[64];
    snprintf(what, sizeof(what), "punch of file pages [%" PRIu64 ", %" PRIu64 ")", first, first + n);
    Check(what);
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 200));
  }
}

void Stress::ConvertThread() {
  std::mt19937_64 rng(seed_ ^ 0x2222);
  while (!stopping()) {
    int first = static_cast<int>(rng() % kRegionPages);
    int n = std::min(1 + static_cast<int>(rng() % 4), kRegionPages - first);
    bool to_private = rng() & 1;
    for (int p = first; p < first + n; p++) GuestOr32(StateWord(p), kStateBusy);
    if (!WaitQuiescent()) break;
    {
      std::shared_lock g(lock_);
      Convert(first, n, to_private);
      for (int p = first; p < first + n; p++)
        GuestStore32(StateWord(p), private_[p] ? kStatePrivate : 0);  // and not busy
    }
    c_.converts++;
    char what[64];
    snprintf(what, sizeof(what), "conversion of pages [%d, %d) to %s", first, first + n,
             to_private ? "private" : "shared");
    Check(what);
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 200));
  }
}

void Stress::SlotThread() {
  std::mt19937_64 rng(seed_ ^ 0x3333);
  while (!stopping()) {
    int k = static_cast<int>(rng() % kSlots);
    bool deleted;
    {
      std::lock_guard s(slot_lock_[k]);
      std::shared_lock g(lock_);
      deleted = slot_present_[k];
      if (deleted) DeleteSlot(k); else CreateSlot(k);
    }
    char what[64];
    snprintf(what, sizeof(what), "%s of slot %d", deleted ? "deletion" : "creation", k + 1);
    Check(what);
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 500));
  }
}

// Changes of the VMM's memory behind the shared side, as kvmlike's MMU
// notifier sees munmap/mremap/MAP_FIXED (the memory itself stays, so the
// guest's data does): while a change is in progress no leaf may map a host
// page inside it, whatever the faults racing it do; afterwards they map it
// again (the checks see the usual state).
void Stress::HostRangeThread() {
  std::mt19937_64 rng(seed_ ^ 0x4444);
  while (!stopping()) {
    int first = static_cast<int>(rng() % kRegionPages);
    int n = std::min(1 + static_cast<int>(rng() % 8), kRegionPages - first);
    auto range = base::HvaRange::FromCount(base::Hva(reinterpret_cast<uint64_t>(SharedPage(first))),
                                           base::PagesToBytes(n));
    {
      std::shared_lock g(lock_);
      std::unique_ptr<HostRangeChange> change = sys_.BeginHostRangeChange(range);
      if (!change) Violation("a change of the region's shared memory was not begun");
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % 100));  // faults race it
      for (int p = first; p < first + n; p++) {
        std::optional<mmu::Leaf> leaf = vm_->WalkTdp(RegionGfn(p));
        auto* host = leaf ? reinterpret_cast<uint8_t*>(leaf->PageOf(RegionGfn(p)).value()) : nullptr;
        if (host && range.Contains(base::Hva(reinterpret_cast<uint64_t>(host))))
          Violation("GPA %#llx maps host %p inside a host-range change in progress",
                    static_cast<unsigned long long>(RegionGpa(p).value()), static_cast<void*>(host));
      }
    }
    c_.host_changes++;
    char what[64];
    snprintf(what, sizeof(what), "host-range change of pages [%d, %d)", first, first + n);
    Check(what);
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 300));
  }
}

// ------------------------------------------------------------------ checks

void Stress::Check(const char* after) {
  std::unique_lock g(lock_);
  c_.checks++;
  CheckModel(after);
  CheckLeaves(after);
  CheckNoPrivateMagic(after);
}

void Stress::CheckModel(const char* after) {
  std::array<bool, kSlots + 1> present{};
  vm_->ForEachSlot([&](Memslot& s) {
    if (s.id() <= kSlots) present[s.id()] = true;
  });
  if (!present[0]) Violation("after %s: slot 0 is gone", after);
  for (int k = 0; k < kSlots; k++)
    if (present[k + 1] != slot_present_[k])
      Violation("after %s: slot %d is %s in kvmlike but %s in the test", after, k + 1,
                present[k + 1] ? "present" : "absent", slot_present_[k] ? "present" : "deleted");
  for (int p = 0; p < kRegionPages; p++) {
    bool priv = vm_->attributes().Get(RegionGfn(p)) & KVM_MEMORY_ATTRIBUTE_PRIVATE;
    if (priv != private_[p])
      Violation("after %s: GPA %#llx is %s in kvmlike but %s in the test", after,
                static_cast<unsigned long long>(RegionGpa(p).value()), priv ? "private" : "shared",
                private_[p] ? "private" : "shared");
  }
}

// No mutation runs now and faults can only install what the current state
// says (a fault that raced the last mutation retries), so every leaf must
// agree with the state this instant.
void Stress::CheckLeaves(const char* after) {
  gmem::FramePool* pool = sys_.gmem().pool_if_created();
  for (uint64_t off = 0; off < kLowSize; off += kPage) {
    std::optional<mmu::Leaf> leaf = vm_->WalkTdp(base::GpaToGfn(Gpa(off)));
    if (leaf && leaf->PageOf(base::GpaToGfn(Gpa(off))).value() != reinterpret_cast<uint64_t>(low_ + off))
      Violation("after %s: slot-0 GPA %#llx maps host %#llx, not its memory", after,
                static_cast<unsigned long long>(off),
                static_cast<unsigned long long>(leaf->PageOf(base::GpaToGfn(Gpa(off))).value()));
  }
  for (int p = 0; p < kRegionPages; p++) {
    std::optional<mmu::Leaf> leaf = vm_->WalkTdp(RegionGfn(p));
    if (!leaf) {
      c_.unmapped++;
      continue;
    }
    auto* host = reinterpret_cast<uint8_t*>(leaf->PageOf(RegionGfn(p)).value());
    auto gpa = static_cast<unsigned long long>(RegionGpa(p).value());
    if (!slot_present_[SlotOf(p)]) {
      Violation("after %s: GPA %#llx maps host %p but its slot %d is deleted", after, gpa,
                static_cast<void*>(host), SlotOf(p) + 1);
    } else if (private_[p]) {
      c_.leaves_private++;
      uint8_t* page = inode_->PeekPage(GmemOff(p));
      if (!page)
        Violation("after %s: private GPA %#llx maps host %p but guest_memfd page %llu is absent "
                  "(the leaf points at a freed frame)", after, gpa, static_cast<void*>(host),
                  static_cast<unsigned long long>(GmemOff(p).value()));
      else if (host != page)
        Violation("after %s: private GPA %#llx maps host %p, guest_memfd page %llu is %p "
                  "(stale or foreign frame%s)", after, gpa, static_cast<void*>(host),
                  static_cast<unsigned long long>(GmemOff(p).value()), static_cast<void*>(page),
                  host == SharedPage(p) ? ": the shared page" : "");
    } else {
      c_.leaves_shared++;
      if (pool && pool->Contains(host))
        Violation("after %s: shared GPA %#llx maps pool frame %p (a private page for a shared access)",
                  after, gpa, static_cast<void*>(host));
      else if (host != SharedPage(p))
        Violation("after %s: shared GPA %#llx maps host %p, its userspace_addr page is %p", after,
                  gpa, static_cast<void*>(host), static_cast<void*>(SharedPage(p)));
    }
  }
}

// Private data never reaches memory the host can read through a mapping or
// an fd: the shared side of the region, and the guest_memfd fd itself.
void Stress::CheckNoPrivateMagic(const char* after) {
  long at = GuestFind32(shared_, base::PagesToBytes(kRegionPages), kPrivateMagic);
  if (at >= 0)
    Violation("after %s: private magic in shared memory at GPA %#llx (tag %#x)", after,
              static_cast<unsigned long long>(kRegionGpa + static_cast<uint64_t>(at)),
              GuestLoad32(shared_ + at + 4));
  ssize_t n = pread(gmem_fd_, gmem_buf_.data(), gmem_buf_.size(), 0);
  if (n != static_cast<ssize_t>(gmem_buf_.size()))
    Violation("after %s: pread of the guest_memfd fd returned %zd", after, n);
  else if ((at = GuestFind32(gmem_buf_.data(), gmem_buf_.size(), kPrivateMagic)) >= 0)
    Violation("after %s: private magic readable through the guest_memfd fd at offset %ld", after, at);
}

// ---------------------------------------------------------------- run/stop

void Stress::Run() {
  for (int v = 0; v < kVcpus; v++) {
    vcpu_threads_.emplace_back([this, v] { VcpuThread(v); });
    vcpu_handle_[v] = vcpu_threads_.back().native_handle();
  }
  mutator_threads_.emplace_back([this] { PunchThread(); });
  mutator_threads_.emplace_back([this] { ConvertThread(); });
  mutator_threads_.emplace_back([this] { SlotThread(); });
  mutator_threads_.emplace_back([this] { HostRangeThread(); });
  auto end = Clock::now() + std::chrono::duration<double>(seconds_);
  while (Clock::now() < end && !stopping()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

int Stress::Finish() {
  auto t0 = Clock::now();
  stop_.store(true, std::memory_order_release);
  for (auto& t : mutator_threads_) t.join();
  // vCPUs: the flag, then a signal until each has left KVM_RUN with EINTR
  // (one sent before it enters would be taken outside the run and lost).
  vcpu_stop_.store(true, std::memory_order_release);
  auto deadline = Clock::now() + std::chrono::seconds(30);
  for (int v = 0; v < kVcpus && v < static_cast<int>(vcpu_threads_.size()); v++) {
    while (!vcpu_done_[v].load(std::memory_order_acquire)) {
      if (Clock::now() > deadline) {
        fprintf(stderr, "FATAL: vCPU %d did not leave KVM_RUN within 30 s of the stop\n", v);
        abort();
      }
      pthread_kill(vcpu_handle_[v], SIGUSR1);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  for (auto& t : vcpu_threads_) t.join();
  double stop_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  Check("the end of the run");

  uint64_t visits = 0;
  for (int v = 0; v < kVcpus; v++) visits += GuestLoad32(Counter(v));
  PrintSummary(stop_ms);
  printf("  guest visits %" PRIu64 "\n", visits);
  if (visits < kVcpus * 100ull) Violation("the guests made almost no progress (%" PRIu64 " visits)", visits);

  // Teardown: run areas, vCPUs, the VM, the guest_memfd; then nothing may be left.
  for (int v = 0; v < kVcpus; v++) {
    munmap(run_[v], kVcpuMmapSize);
    run_[v] = nullptr;
    vcpu_obj_[v]->DropUser();
    vcpu_obj_[v].reset();
    fds_.Close(vcpu_fd_[v]);
  }
  vm_ = nullptr;
  vm_obj_.reset();
  fds_.Close(vm_fd_);
  inode_.reset();
  gmem_obj_.reset();
  fds_.Close(gmem_fd_);
  std::vector<kvmlike_obj_info> objs(64);
  kvmlike_debug_objects q{static_cast<uint32_t>(objs.size()), 0, Arg(objs.data())};
  if (Ioctl(*dev_obj_, KVMLIKE_DEBUG_OBJECTS, Arg(&q)) != 0)
    Violation("KVMLIKE_DEBUG_OBJECTS failed");
  else if (q.nr != 0)
    Violation("%u objects left after teardown (first: kind %u id %u)", q.nr, objs[0].kind, objs[0].id);
  dev_obj_.reset();
  fds_.Close(dev_);

  int n = violations_.load();
  printf("%s: %d violation(s)\n", n ? "FAIL" : "PASS", n);
  return n ? 1 : 0;
}

void Stress::PrintSummary(double stop_ms) {
  StatsBlock& s = vm_->stats();
  auto stat = [&](size_t i) { return static_cast<unsigned long long>(s.Get(i)); };
  auto n = [](const std::atomic<uint64_t>& a) { return static_cast<unsigned long long>(a.load()); };
  printf("kvmlike_stress: %.1f s, seed %#llx, %d vCPUs, %d region pages in %d slots\n", seconds_,
         static_cast<unsigned long long>(seed_), kVcpus, kRegionPages, kSlots);
  printf("  mutator steps: %llu punches, %llu conversions (%llu pages), %llu slot deletions, "
         "%llu slot creations, %llu host-range changes\n", n(c_.punches), n(c_.converts),
         n(c_.converted_pages), n(c_.slot_deletes), n(c_.slot_creates), n(c_.host_changes));
  printf("  checks %llu: leaves private %llu, shared %llu, unmapped %llu\n", n(c_.checks),
         n(c_.leaves_private), n(c_.leaves_shared), n(c_.unmapped));
  printf("  KVM_RUN %llu: memory-fault %llu, MMIO %llu, hypercall %llu, report %llu, EINTR %llu; "
         "slots recreated by vCPUs %llu, private zero read-backs %llu\n", n(c_.runs),
         n(c_.exit_memfault), n(c_.exit_mmio), n(c_.exit_hypercall), n(c_.exit_io), n(c_.exit_intr),
         n(c_.vcpu_recreates), n(c_.zero_readbacks));
  printf("  VM stats: faults %llu, fault retries %llu, zaps %llu (%llu pages), remote TLB flushes "
         "%llu\n", stat(vmstat::kFaults), stat(vmstat::kFaultRetries), stat(vmstat::kZaps),
         stat(vmstat::kZappedPages), stat(vmstat::kRemoteTlbFlush));
  printf("  threads stopped in %.1f ms\n", stop_ms);
}

}  // namespace

int main() {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  Stress test(EnvSeconds(), EnvSeed());
  int setup = test.Setup();
  if (setup == 77) return 77;
  if (setup != 0) {
    fprintf(stderr, "setup failed\n");
    return 1;
  }
  test.Run();
  return test.Finish();
}
