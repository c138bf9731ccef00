/* SPDX-License-Identifier: MIT */
/*
 * The KVM ABI kvmlike speaks.
 *
 * Includes the system <linux/kvm.h> (Debian 12 ships the 6.1 header) and adds
 * what that header lacks up to Linux 6.18: guest_memfd, KVM_SET_USER_MEMORY_REGION2,
 * memory attributes, VM types, memory-fault exits, pre-fault. Every addition is
 * guarded, so a newer system header wins and nothing is defined twice; values and
 * layouts are upstream's and are checked by static assertions below.
 *
 * kvm_run in 6.1 has no `memory_fault` member: `struct kvm_run_memory_fault`
 * is a layout-identical overlay of the exit union, reached with
 * kvm_run_mem_fault(run).
 *
 * Usable from C and C++, in the same translation unit as <linux/kvm.h>.
 */
#ifndef KVMLIKE_UAPI_KVM_UAPI_H
#define KVMLIKE_UAPI_KVM_UAPI_H

#include <linux/kvm.h>
#include <linux/kvm_para.h>
#include <linux/types.h>
#include <stddef.h>

/* ---- capabilities (include/uapi/linux/kvm.h) ---- */
#ifndef KVM_CAP_USER_MEMORY2
#define KVM_CAP_USER_MEMORY2 231
#endif
#ifndef KVM_CAP_MEMORY_FAULT_INFO
#define KVM_CAP_MEMORY_FAULT_INFO 232
#endif
#ifndef KVM_CAP_MEMORY_ATTRIBUTES
#define KVM_CAP_MEMORY_ATTRIBUTES 233
#endif
#ifndef KVM_CAP_GUEST_MEMFD
#define KVM_CAP_GUEST_MEMFD 234
#endif
#ifndef KVM_CAP_VM_TYPES
#define KVM_CAP_VM_TYPES 235
#endif
#ifndef KVM_CAP_PRE_FAULT_MEMORY
#define KVM_CAP_PRE_FAULT_MEMORY 236
#endif
#ifndef KVM_CAP_GUEST_MEMFD_FLAGS
#define KVM_CAP_GUEST_MEMFD_FLAGS 244
#endif

/* ---- x86 VM types (arch/x86/include/uapi/asm/kvm.h) ---- */
#ifndef KVM_X86_DEFAULT_VM
#define KVM_X86_DEFAULT_VM 0
#define KVM_X86_SW_PROTECTED_VM 1
#define KVM_X86_SEV_VM 2
#define KVM_X86_SEV_ES_VM 3
#define KVM_X86_SNP_VM 4
#define KVM_X86_TDX_VM 5
#endif

/* ---- memslots ---- */
#ifndef KVM_MEM_GUEST_MEMFD
#define KVM_MEM_GUEST_MEMFD (1UL << 2)
#endif

#ifndef KVM_SET_USER_MEMORY_REGION2
struct kvm_userspace_memory_region2 {
	__u32 slot;
	__u32 flags;
	__u64 guest_phys_addr;
	__u64 memory_size;
	__u64 userspace_addr;
	__u64 guest_memfd_offset;
	__u32 guest_memfd;
	__u32 pad1;
	__u64 pad2[14];
};
#define KVM_SET_USER_MEMORY_REGION2 \
	_IOW(KVMIO, 0x49, struct kvm_userspace_memory_region2)
#endif

/* ---- memory attributes ---- */
#ifndef KVM_SET_MEMORY_ATTRIBUTES
struct kvm_memory_attributes {
	__u64 address;
	__u64 size;
	__u64 attributes;
	__u64 flags;
};
#define KVM_SET_MEMORY_ATTRIBUTES _IOW(KVMIO, 0xd2, struct kvm_memory_attributes)
#define KVM_MEMORY_ATTRIBUTE_PRIVATE (1ULL << 3)
#endif

/* ---- guest_memfd ---- */
#ifndef KVM_CREATE_GUEST_MEMFD
struct kvm_create_guest_memfd {
	__u64 size;
	__u64 flags;
	__u64 reserved[6];
};
#define KVM_CREATE_GUEST_MEMFD _IOWR(KVMIO, 0xd4, struct kvm_create_guest_memfd)
#endif
#ifndef GUEST_MEMFD_FLAG_MMAP
#define GUEST_MEMFD_FLAG_MMAP (1ULL << 0)
#endif
#ifndef GUEST_MEMFD_FLAG_INIT_SHARED
#define GUEST_MEMFD_FLAG_INIT_SHARED (1ULL << 1)
#endif
#ifndef GUEST_MEMFD_MAGIC
#define GUEST_MEMFD_MAGIC 0x474d454d /* "GMEM" */
#endif

/* ---- pre-fault ---- */
#ifndef KVM_PRE_FAULT_MEMORY
struct kvm_pre_fault_memory {
	__u64 gpa;
	__u64 size;
	__u64 flags;
	__u64 padding[5];
};
#define KVM_PRE_FAULT_MEMORY _IOWR(KVMIO, 0xd5, struct kvm_pre_fault_memory)
#endif

/* ---- exits ---- */
#ifndef KVM_EXIT_MEMORY_FAULT
#define KVM_EXIT_MEMORY_FAULT 39
#endif
#ifndef KVM_EXIT_TDX
#define KVM_EXIT_TDX 40
#endif
#ifndef KVM_MEMORY_EXIT_FLAG_PRIVATE
#define KVM_MEMORY_EXIT_FLAG_PRIVATE (1ULL << 3)
#endif
#ifndef KVM_EXIT_HYPERCALL_LONG_MODE
#define KVM_EXIT_HYPERCALL_LONG_MODE (1ULL << 0)
#endif

/* ---- KVM_HC_MAP_GPA_RANGE attributes (arch/x86/include/uapi/asm/kvm_para.h) ---- */
#ifndef KVM_MAP_GPA_RANGE_PAGE_SZ_4K
#define KVM_MAP_GPA_RANGE_PAGE_SZ_4K 0
#define KVM_MAP_GPA_RANGE_PAGE_SZ_2M (1 << 0)
#define KVM_MAP_GPA_RANGE_PAGE_SZ_1G (1 << 1)
#define KVM_MAP_GPA_RANGE_ENC_STAT(n) ((n) << 4)
#define KVM_MAP_GPA_RANGE_ENCRYPTED KVM_MAP_GPA_RANGE_ENC_STAT(1)
#define KVM_MAP_GPA_RANGE_DECRYPTED KVM_MAP_GPA_RANGE_ENC_STAT(0)
#endif

/*
 * Overlay of kvm_run's exit union for KVM_EXIT_MEMORY_FAULT (6.1's kvm_run
 * has no such member). Same offsets as upstream: flags@32, gpa@40, size@48.
 */
struct kvm_run_memory_fault {
	__u64 flags;
	__u64 gpa;
	__u64 size;
};

static inline struct kvm_run_memory_fault *kvm_run_mem_fault(struct kvm_run *run)
{
#ifdef __cplusplus
	return reinterpret_cast<struct kvm_run_memory_fault *>(reinterpret_cast<char *>(run) + 32);
#else
	return (struct kvm_run_memory_fault *)(void *)((char *)run + 32);
#endif
}

/*
 * Ioctls whose argument struct ends in a flexible array. Debian 12's 6.1 headers
 * declare those arrays with __DECLARE_FLEX_ARRAY, which in C++ adds a member and
 * changes sizeof (kvm_cpuid2 is 12 bytes in C++, 8 in C), so the header's macros
 * encode a wrong size when expanded in C++. These constants carry the ABI value
 * (the C size) and are checked against the header in C below; C++ code uses them.
 */
#define KVMLIKE_IOCTL_GET_SUPPORTED_CPUID _IOC(_IOC_READ | _IOC_WRITE, KVMIO, 0x05, 8)
#define KVMLIKE_IOCTL_SET_CPUID2 _IOC(_IOC_WRITE, KVMIO, 0x90, 8)
#define KVMLIKE_IOCTL_GET_CPUID2 _IOC(_IOC_READ | _IOC_WRITE, KVMIO, 0x91, 8)
#define KVMLIKE_IOCTL_GET_MSR_INDEX_LIST _IOC(_IOC_READ | _IOC_WRITE, KVMIO, 0x02, 4)
#define KVMLIKE_IOCTL_GET_MSRS _IOC(_IOC_READ | _IOC_WRITE, KVMIO, 0x88, 8)
#define KVMLIKE_IOCTL_SET_MSRS _IOC(_IOC_WRITE, KVMIO, 0x89, 8)

/* ---- layout checks: upstream sizes and offsets ---- */
#ifdef __cplusplus
#define KVMLIKE_UAPI_ASSERT(e, m) static_assert(e, m)
#else
#define KVMLIKE_UAPI_ASSERT(e, m) _Static_assert(e, m)
#endif

KVMLIKE_UAPI_ASSERT(sizeof(struct kvm_userspace_memory_region) == 32, "region v1 size");
KVMLIKE_UAPI_ASSERT(sizeof(struct kvm_userspace_memory_region2) == 160, "region v2 size");
KVMLIKE_UAPI_ASSERT(offsetof(struct kvm_userspace_memory_region2, guest_memfd_offset) == 32,
		    "region2.guest_memfd_offset");
KVMLIKE_UAPI_ASSERT(offsetof(struct kvm_userspace_memory_region2, guest_memfd) == 40,
		    "region2.guest_memfd");
KVMLIKE_UAPI_ASSERT(offsetof(struct kvm_userspace_memory_region2, pad2) == 48, "region2.pad2");
KVMLIKE_UAPI_ASSERT(sizeof(struct kvm_create_guest_memfd) == 64, "create_guest_memfd size");
KVMLIKE_UAPI_ASSERT(offsetof(struct kvm_create_guest_memfd, flags) == 8, "cgm.flags");
KVMLIKE_UAPI_ASSERT(sizeof(struct kvm_memory_attributes) == 32, "memory_attributes size");
KVMLIKE_UAPI_ASSERT(offsetof(struct kvm_memory_attributes, flags) == 24, "attr.flags");
KVMLIKE_UAPI_ASSERT(sizeof(struct kvm_pre_fault_memory) == 64, "pre_fault_memory size");
KVMLIKE_UAPI_ASSERT(sizeof(struct kvm_enable_cap) == 104, "enable_cap size");
KVMLIKE_UAPI_ASSERT(sizeof(struct kvm_run) == 2352, "kvm_run size");
KVMLIKE_UAPI_ASSERT(offsetof(struct kvm_run, exit_reason) == 8, "kvm_run.exit_reason");
KVMLIKE_UAPI_ASSERT(offsetof(struct kvm_run, io) == 32, "kvm_run exit union");
KVMLIKE_UAPI_ASSERT(offsetof(struct kvm_run, hypercall.ret) == 88, "kvm_run.hypercall.ret");
KVMLIKE_UAPI_ASSERT(offsetof(struct kvm_run, kvm_valid_regs) == 288, "kvm_run.kvm_valid_regs");
KVMLIKE_UAPI_ASSERT(sizeof(struct kvm_run_memory_fault) == 24, "memory_fault overlay");
KVMLIKE_UAPI_ASSERT(sizeof(struct kvm_regs) == 144, "kvm_regs size");
KVMLIKE_UAPI_ASSERT(sizeof(struct kvm_sregs) == 312, "kvm_sregs size");
KVMLIKE_UAPI_ASSERT(sizeof(struct kvm_segment) == 24, "kvm_segment size");
KVMLIKE_UAPI_ASSERT(sizeof(struct kvm_cpuid_entry2) == 40, "kvm_cpuid_entry2 size");
KVMLIKE_UAPI_ASSERT(sizeof(struct kvm_stats_header) == 24, "kvm_stats_header size");
#ifndef __cplusplus
/* 16 + name in the ABI; C++ sees a different sizeof with the 6.1 header. */
KVMLIKE_UAPI_ASSERT(sizeof(struct kvm_stats_desc) == 16, "kvm_stats_desc fixed part");
#endif

KVMLIKE_UAPI_ASSERT(KVM_SET_USER_MEMORY_REGION == 0x4020AE46, "ioctl number");
KVMLIKE_UAPI_ASSERT(KVM_SET_USER_MEMORY_REGION2 == 0x40A0AE49, "ioctl number");
KVMLIKE_UAPI_ASSERT(KVM_SET_MEMORY_ATTRIBUTES == 0x4020AED2, "ioctl number");
KVMLIKE_UAPI_ASSERT(KVM_CREATE_GUEST_MEMFD == 0xC040AED4, "ioctl number");
KVMLIKE_UAPI_ASSERT(KVM_PRE_FAULT_MEMORY == 0xC040AED5, "ioctl number");
KVMLIKE_UAPI_ASSERT(KVM_ENABLE_CAP == 0x4068AEA3, "ioctl number");
KVMLIKE_UAPI_ASSERT(KVMLIKE_IOCTL_GET_SUPPORTED_CPUID == 0xC008AE05, "ioctl number");
#ifndef __cplusplus
KVMLIKE_UAPI_ASSERT(KVM_GET_SUPPORTED_CPUID == KVMLIKE_IOCTL_GET_SUPPORTED_CPUID, "cpuid ioctl");
KVMLIKE_UAPI_ASSERT(KVM_SET_CPUID2 == KVMLIKE_IOCTL_SET_CPUID2, "cpuid ioctl");
KVMLIKE_UAPI_ASSERT(KVM_GET_CPUID2 == KVMLIKE_IOCTL_GET_CPUID2, "cpuid ioctl");
KVMLIKE_UAPI_ASSERT(KVM_GET_MSR_INDEX_LIST == KVMLIKE_IOCTL_GET_MSR_INDEX_LIST, "msr ioctl");
KVMLIKE_UAPI_ASSERT(KVM_GET_MSRS == KVMLIKE_IOCTL_GET_MSRS, "msr ioctl");
KVMLIKE_UAPI_ASSERT(KVM_SET_MSRS == KVMLIKE_IOCTL_SET_MSRS, "msr ioctl");
#endif
KVMLIKE_UAPI_ASSERT(KVM_GET_STATS_FD == 0xAECE, "ioctl number");

#undef KVMLIKE_UAPI_ASSERT

#endif /* KVMLIKE_UAPI_KVM_UAPI_H */
