/* SPDX-License-Identifier: MIT */
/*
 * What gmem_demo and gmem_peer share: the byte pattern both of them write and
 * check, and the two messages they exchange over their socketpair.
 *
 * The peer never includes a KVM header: to it the guest_memfd is a plain file
 * it received over SCM_RIGHTS and maps with mmap(MAP_SHARED).
 */
#ifndef KVMLIKE_DEMO_GMEM_PROTO_H
#define KVMLIKE_DEMO_GMEM_PROTO_H

#include <stdint.h>
#include <string.h>

/* Seeds live in the upper 32 bits, byte offsets in the lower ones, so every
 * 8-byte word of a pattern is distinct and none is zero (a punched page is). */
#define GMEM_DEMO_SEED 0x474d454d00000000ULL /* "GMEM": written by the demo */
#define GMEM_PEER_SEED 0x5045455200000000ULL /* "PEER": written by the peer */
#define GMEM_ZERO_SEED 0ULL                  /* a hole: every word reads 0 */

#define GMEM_PEER_MAGIC 0x6b766d6c70656572ULL /* "kvmlpeer" */

/* demo -> peer, sent together with the guest_memfd fd (SCM_RIGHTS). */
struct peer_request {
	uint64_t magic;
	uint64_t size;       /* guest_memfd size; the peer checks fstat agrees */
	uint64_t seed;       /* pattern the demo wrote everywhere but the hole */
	uint64_t hole_off;   /* punched range: must read back zero */
	uint64_t hole_len;
	uint64_t reply_off;  /* range the peer overwrites with GMEM_PEER_SEED */
	uint64_t reply_len;
};

/* peer -> demo, after it checked, wrote and unmapped. */
struct peer_reply {
	uint64_t magic;
	int32_t ok;          /* 1: every check passed and the reply range is written */
	uint32_t pad;
	char msg[240];       /* what the peer saw, or what went wrong */
};

static inline uint64_t pattern_word(uint64_t seed, uint64_t off)
{
	return seed == GMEM_ZERO_SEED ? 0 : (seed | off);
}

/* Writes the pattern of seed over [off, off+len) of the mapping at base. */
static inline void pattern_fill(uint8_t *base, uint64_t off, uint64_t len, uint64_t seed)
{
	for (uint64_t o = off; o < off + len; o += sizeof(uint64_t)) {
		uint64_t w = pattern_word(seed, o);
		memcpy(base + o, &w, sizeof(w));
	}
}

/*
 * Returns the offset of the first word in [off, off+len) that differs from the
 * pattern of seed, or -1 when the whole range matches.
 */
static inline int64_t pattern_mismatch(const uint8_t *base, uint64_t off, uint64_t len,
				       uint64_t seed)
{
	for (uint64_t o = off; o < off + len; o += sizeof(uint64_t)) {
		uint64_t w;
		memcpy(&w, base + o, sizeof(w));
		if (w != pattern_word(seed, o))
			return (int64_t)o;
	}
	return -1;
}

#endif /* KVMLIKE_DEMO_GMEM_PROTO_H */
