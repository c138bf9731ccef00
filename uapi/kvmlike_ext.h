/* SPDX-License-Identifier: MIT */
/*
 * kvmlike's own ioctls, in a range of their own (type KVMLIKE_IO), issued on a
 * /dev/kvm fd. The real kernel refuses every one of them (x86 answers unknown
 * system ioctls with EINVAL), which is how a program tells whether it talks to
 * kvmlike: KVMLIKE_PROBE returns KVMLIKE_MAGIC only there.
 *
 * KVMLIKE_DEBUG_OBJECTS is the leak oracle: it lists every live object of the
 * process's kvmlike instance with its counts. A test that closed everything it
 * opened expects nr == 0 afterwards (objects of other kinds than those listed
 * never outlive their owners).
 */
#ifndef KVMLIKE_UAPI_KVMLIKE_EXT_H
#define KVMLIKE_UAPI_KVMLIKE_EXT_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define KVMLIKE_IO 0xB7

/* Returned by KVMLIKE_PROBE. */
#define KVMLIKE_MAGIC 0x6b766d6c /* "kvml" */

enum kvmlike_obj_kind {
	KVMLIKE_OBJ_VM = 1,      /* users: VM fds (+vCPU/stats fds); refs: object refs */
	KVMLIKE_OBJ_INODE = 2,   /* users: files on the inode; pages: present pages */
	KVMLIKE_OBJ_FILE = 3,    /* users: fds + host mappings; refs: memslots + transient */
	KVMLIKE_OBJ_MEMSLOT = 4, /* parent: VM id; aux: bound file id or 0 */
};

struct kvmlike_obj_info {
	__u32 kind;   /* enum kvmlike_obj_kind */
	__u32 id;     /* unique per kind within the process */
	__s64 users;  /* see kind */
	__s64 refs;   /* see kind */
	__u64 parent; /* file, memslot: VM id */
	__u64 pages;  /* inode: present pages; memslot: npages; file: inode id */
	__u64 aux;    /* vm: type; file: 1 once released; memslot: id of the file it is
		       * bound to (0 = none), also after that file was released */
};

struct kvmlike_debug_objects {
	__u32 nr;       /* in: capacity of entries; out: number of live objects */
	__u32 pad;
	__u64 entries;  /* user pointer to struct kvmlike_obj_info[nr] */
};

/* Memory kvmlike's private-page pool holds, for benchmarks and leak checks. */
struct kvmlike_pool_info {
	__u64 frames_total; /* frames obtained from the host (resident) */
	__u64 frames_free;  /* of those, not owned by any inode */
	__u64 frame_size;   /* bytes */
	__u64 frames_unscrubbed;     /* of the free ones, still holding old contents */
	__u64 frames_scrubbed;       /* cleared by the pool's scrubber thread, ever */
	__u64 frames_handed_unclear; /* handed out before being scrubbed, ever
	                                (their first user clears them) */
	__u64 reserved[2];
};

/*
 * VM-fd debug query: the second-level (EPT/NPT) leaf that translates gpa.
 * ENOENT when nothing maps it.
 */
struct kvmlike_walk_gpa {
	__u64 gpa;      /* in */
	__u32 level;    /* out: 1 = 4 KiB leaf, 2 = 2 MiB leaf */
	__u32 perm;     /* out: KVMLIKE_PERM_* */
	__u64 host;     /* out: host address of the mapped page (kvmlike's "PFN" << 12) */
	__u64 raw;      /* out: the entry as stored (EPT or NPT format) */
	__u32 format;   /* out: KVMLIKE_TDP_EPT or KVMLIKE_TDP_NPT */
	__u32 flags;    /* out: KVMLIKE_LEAF_ACCESSED | KVMLIKE_LEAF_DIRTY */
	__u64 reserved[2];
};
#define KVMLIKE_PERM_READ 1
#define KVMLIKE_PERM_WRITE 2
#define KVMLIKE_PERM_EXEC 4
#define KVMLIKE_TDP_EPT 1
#define KVMLIKE_TDP_NPT 2
#define KVMLIKE_LEAF_ACCESSED 1
#define KVMLIKE_LEAF_DIRTY 2

/*
 * VM-fd test hook (memory failure): marks the page at offset of a guest_memfd
 * of this VM poisoned; later guest accesses fail with EHWPOISON and a
 * memory-fault exit. ENOENT when the page is not allocated.
 */
struct kvmlike_gmem_poison {
	__u32 fd;
	__u32 pad;
	__u64 offset;
};

#define KVMLIKE_PROBE _IO(KVMLIKE_IO, 0x00)
#define KVMLIKE_DEBUG_OBJECTS _IOWR(KVMLIKE_IO, 0x01, struct kvmlike_debug_objects)
#define KVMLIKE_POOL_INFO _IOR(KVMLIKE_IO, 0x02, struct kvmlike_pool_info)
#define KVMLIKE_WALK_GPA _IOWR(KVMLIKE_IO, 0x10, struct kvmlike_walk_gpa)
#define KVMLIKE_GMEM_POISON _IOW(KVMLIKE_IO, 0x11, struct kvmlike_gmem_poison)
/*
 * VM fd: arg 1 lets guest faults on guest_memfd memory map 2 MiB leaves where
 * a whole aligned 2 MiB block qualifies (same slot, same attributes, backing
 * contiguous); arg 0 (the default, as Linux 6.18's order-0 guest_memfd)
 * maps 4 KiB leaves only. Existing mappings are not changed.
 */
#define KVMLIKE_HUGE_LEAVES _IO(KVMLIKE_IO, 0x12)

#endif /* KVMLIKE_UAPI_KVMLIKE_EXT_H */
