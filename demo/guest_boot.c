/* SPDX-License-Identifier: MIT */
/*
 * guest_boot: boots a small guest "firmware" on guest_memfd-backed memory,
 * through nothing but the KVM ioctl ABI (uapi/ headers and libc), so the same
 * program runs on the real /dev/kvm and under the kvmlike interposer.
 *
 * What the VMM sets up:
 *   - a VM: KVM_X86_SW_PROTECTED_VM when KVM_CAP_VM_TYPES offers it, else the
 *     default type (-t forces one);
 *   - one guest_memfd for all guest RAM (1 MiB of low memory + -m MiB of test
 *     RAM), bound by two memslots:
 *       default VM:      GUEST_MEMFD_FLAG_MMAP|INIT_SHARED; the slots'
 *                        userspace_addr is the guest_memfd's own mapping, so
 *                        the host sees everything the guest writes;
 *       SW_PROTECTED VM: flags 0 (private memory, reachable through no
 *                        mapping) for the private part, plus anonymous memory
 *                        as userspace_addr for the shared part; all RAM starts
 *                        PRIVATE (KVM_SET_MEMORY_ATTRIBUTES) and the guest
 *                        converts ranges private <-> shared with
 *                        KVM_HC_MAP_GPA_RANGE (KVM_CAP_EXIT_HYPERCALL), which
 *                        the VMM carries out with fallocate + attributes;
 *   - a 64 KiB read-only "flash" slot (anonymous memory) just below 4 GiB
 *     holding the firmware, whose last 16 bytes are the reset vector;
 *   - 1 or 2 vCPUs (-c), left in their reset state except ESI = vCPU index,
 *     each run by its own thread; a "device" page at DEV_GPA (no memslot:
 *     every access is a KVM_EXIT_MMIO answered by the VMM).
 *
 * What the firmware does (the bytes and their assembly are below), on every
 * vCPU, from the reset vector at 0xfffffff0 (real mode, CS base 0xffff0000):
 *   POST 0x01  real mode: lgdt, CR0.PE, far jmp to 32-bit flat code;
 *   POST 0x02  protected mode: stack and variables in its low-memory area;
 *   POST 0x03  reads the device's magic and its per-vCPU configuration window
 *              (MMIO reads), builds two 4 KiB pattern templates;
 *   POST 0x10  "touch": writes the first dword of every page of its share of
 *              the test RAM (each page's first access: a guest fault);
 *   POST 0x11  "re-touch": the same again (no faults: their cost is the
 *              difference);
 *   POST 0x12  "fill": every page = template (rep movsd), dword 0 = GPA ^ seed;
 *   POST 0x13  "verify": checks dword 0 and the rest (repe cmpsd);
 *   POST 0x20  "convert" (SW_PROTECTED only): for each of -n ranges:
 *              MAP_GPA_RANGE(shared), verifies the data the VMM put in the
 *              shared memory, writes its pattern there, MAP_GPA_RANGE(private),
 *              checks the range now reads zero (fresh private pages) and
 *              fills it again;
 *   POST 0x30  "checksum": sums every dword of its share (rol 1 per page) and
 *              writes the sum to its CHECKSUM register (an MMIO write);
 *   POST 0x3f  done: HLT. A failed check writes ERROR_GPA and ERROR, sends
 *              POST 0xee and halts.
 * Progress goes to port 0x84 (pages done, every CHUNK pages and at every POST
 * code) and 0x88 (conversion ranges done).
 *
 * Guest physical memory:
 *   0x00000000  low memory (slot 0, guest_memfd [0, 1 MiB)): vCPU n's area
 *               at 0x10000 + n * 0x10000 (templates, variables, stack)
 *   0x00100000  test RAM (slot 1, guest_memfd [1 MiB, 1 MiB + -m MiB)),
 *               split evenly between the vCPUs
 *   0xfeb00000  the device (no slot)
 *   0xffff0000  flash (slot 2, read-only): firmware at 0xfffff000, reset
 *               vector at 0xfffffff0
 *
 * What the VMM checks: each vCPU's checksum against its own computation; on a
 * default VM, every page through the guest_memfd mapping; on SW_PROTECTED,
 * that the shared memory never shows private data (zero before each
 * conversion to shared, and everywhere at the end) and does show what the
 * guest wrote there before each conversion back to private.
 *
 * The kernel here (6.18, kvm_pvm) runs these guests in its instruction
 * emulator, at about 1 s per MiB and vCPU, hence the smaller default there;
 * the emulator reaches guest memory through the slots' host mapping, so its
 * pf_fixed, pages_4k and io_exits stay 0 while exits and insn_emulation count.
 *
 * While the guest runs a progress line shows pages done, faults, resident
 * pages, exits and conversions, read from the VM's and the vCPUs' binary stats
 * (KVM_GET_STATS_FD) where the backend has the names (updated in place on a
 * TTY, one line per 10% otherwise). The report at the end gives the guest's
 * checksum against the VMM's, faults and fault retries, zaps, resident pages,
 * the cost of a fault, times and exits. Under kvmlike (KVMLIKE_PROBE answers)
 * it adds kvmlike's own counters and, once everything is closed, checks with
 * KVMLIKE_DEBUG_OBJECTS that nothing is left.
 *
 * Exit status: 0 when the guest booted, every check passed and nothing leaked;
 * 1 otherwise (the reason on stderr); 2 on a usage error.
 */
#include "demo_util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define KiB 1024ull
#define MiB (1024 * KiB)
#define PAGE_SIZE 4096ull
#define MAX_VCPUS 2
#define STAT_NAME_SIZE 48 /* KVM_STATS_NAME_SIZE (the 6.1 header lacks it) */

/* ---- guest physical layout (the firmware has these numbers built in) ---- */
#define LOW_SIZE (1 * MiB)           /* slot 0: GPA 0, guest_memfd offset 0 */
#define RAM_GPA LOW_SIZE             /* slot 1: GPA = guest_memfd offset */
#define FLASH_GPA 0xffff0000ull      /* slot 2: 64 KiB, read-only */
#define FLASH_SIZE (64 * KiB)
#define FW_GPA 0xfffff000ull         /* the firmware image ... */
#define RESET_GPA 0xfffffff0ull      /* ... and the reset vector */
#define AREA_GPA(cpu) (0x10000ull + (uint64_t)(cpu) * 0x10000) /* per-vCPU area */
#define SLOT_LOW 0
#define SLOT_RAM 1
#define SLOT_FLASH 2

/* ---- the device: one page of registers, every access an MMIO exit ---- */
#define DEV_GPA 0xfeb00000ull
#define DEV_MAGIC 0x4c4d564bu        /* "KVML": register 0, read by the firmware */
#define DEV_WIN(cpu) (0x100u + 0x40u * (cpu)) /* vCPU cpu's window */
/* Window registers (offsets in the window). Read: the configuration. */
#define W_BASE 0x00                  /* first GPA of the vCPU's share of the test RAM */
#define W_PAGES 0x04                 /* pages in the share */
#define W_SEED 0x08                  /* seed of the guest's pattern */
#define W_HSEED 0x0c                 /* seed of the pattern the VMM writes when sharing */
#define W_CHUNK 0x10                 /* pages per progress report */
#define W_CCOUNT 0x14                /* conversion ranges (0: none) */
#define W_CPAGES 0x18                /* pages per range */
#define W_CSTRIDE 0x1c               /* pages from one range to the next */
#define W_NR_CONFIG 8
/* Written by the firmware. */
#define W_CHECKSUM 0x20
#define W_ERROR 0x24                 /* an error code, after ... */
#define W_ERROR_GPA 0x28             /* ... the GPA it concerns */

/* ---- ports (OUT only) ---- */
#define PORT_POST 0x80               /* 1 byte: POST code */
#define PORT_PROGRESS 0x84           /* 4 bytes: pages done by this vCPU so far */
#define PORT_CONVERTED 0x88          /* 4 bytes: conversion ranges done so far */

/* POST codes, in the order the firmware sends them. */
enum phase { PH_NONE, PH_RESET, PH_PROTECTED, PH_CONFIGURED, PH_TOUCH, PH_RETOUCH, PH_FILL,
	     PH_VERIFY, PH_CONVERT, PH_CHECKSUM, PH_DONE, PH_ERROR, NR_PHASES };
static const struct {
	uint8_t code;
	const char *name;
} phases[NR_PHASES] = {
	[PH_NONE] = { 0x00, "reset" },   [PH_RESET] = { 0x01, "real mode" },
	[PH_PROTECTED] = { 0x02, "protected" }, [PH_CONFIGURED] = { 0x03, "configured" },
	[PH_TOUCH] = { 0x10, "touch" },  [PH_RETOUCH] = { 0x11, "re-touch" },
	[PH_FILL] = { 0x12, "fill" },    [PH_VERIFY] = { 0x13, "verify" },
	[PH_CONVERT] = { 0x20, "convert" }, [PH_CHECKSUM] = { 0x30, "checksum" },
	[PH_DONE] = { 0x3f, "done" },    [PH_ERROR] = { 0xee, "error" },
};

/* The firmware's error codes (ERROR register). */
static const char *const guest_errors[] = {
	[1] = "the pattern it wrote did not read back",
	[2] = "the VMM's data did not show in memory converted to shared",
	[3] = "memory converted back to private did not read zero",
	[4] = "KVM_HC_MAP_GPA_RANGE failed (EAX != 0)",
	[5] = "the device's magic register did not read \"KVML\"",
};

/* Defaults. */
#define DEFAULT_MIB_KVMLIKE 64
#define DEFAULT_MIB_KERNEL 32
#define DEFAULT_RANGES 4             /* conversion ranges per vCPU */
#define RANGE_PAGES_MAX 64           /* 256 KiB per range at most */
#define CHUNK_PAGES 32               /* progress every 128 KiB */
#define DEFAULT_TIMEOUT_S 120
#define MAIN_SEED 0x5eed0000u        /* | vCPU index */
#define HOST_SEED 0x40570000u        /* | vCPU index */
#define TEMPLATE_MUL 0x9e3779b1u

/* ================================================================ firmware */

/*
 * Loaded at FW_GPA. The addresses in the comments are GPAs; the 16-bit part
 * runs with CS base 0xffff0000 (IP = GPA - 0xffff0000). EBP points at the
 * vCPU's variables (AREA + 0x2000: the configuration copied from the window
 * at +0x00..0x1c in W_* order, then V_WIN 0x20, V_DONE 0x24, V_LEFT 0x28,
 * V_ERRC 0x2c, V_J 0x30, V_R 0x34); its templates are at EBP - 0x2000 (the
 * guest's pattern) and EBP - 0x1000 (the VMM's), its stack top at EBP + 0x6000.
 */
static const uint8_t firmware[] = {
	/* entry16: */
	/* real mode, CS base 0xffff0000: POST 0x01, GDTR, CR0.PE, far jump to 32-bit code */
	0xB0, 0x01,                               /* fffff000  mov al, 0x01 */
	0xE6, 0x80,                               /* fffff002  out PORT_POST, al */
	0x2E, 0x66, 0x0F, 0x01, 0x16, 0x38, 0xF0, /* fffff004  lgdt cs:[0xf038] (o32: 32-bit base) */
	0x0F, 0x20, 0xC0,                         /* fffff00b  mov eax, cr0 */
	0x0C, 0x01,                               /* fffff00e  or al, 1 */
	0x0F, 0x22, 0xC0,                         /* fffff010  mov cr0, eax */
	0x66, 0xEA, 0x3E, 0xF0, 0xFF, 0xFF, 0x08, /* fffff013  jmp dword 0x08:0xfffff03e (entry32) */
	0x00,
	0x00, 0x00, 0x00, 0x00, 0x00,             /* fffff01b  padding */
	/* gdt: */
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* fffff020  GDT 0x00: null */
	0x00,
	0xFF, 0xFF, 0x00, 0x00, 0x00, 0x9B, 0xCF, /* fffff028  GDT 0x08: code, base 0, 4 GiB, 32-bit */
	0x00,
	0xFF, 0xFF, 0x00, 0x00, 0x00, 0x93, 0xCF, /* fffff030  GDT 0x10: data, base 0, 4 GiB, 32-bit */
	0x00,
	/* gdt_ptr: */
	0x17, 0x00,                               /* fffff038  GDTR: limit 0x17 */
	0x20, 0xF0, 0xFF, 0xFF,                   /* fffff03a        base 0xfffff020 */
	/* entry32: */
	/* 32-bit flat protected mode: EBP = variables, ESP = stack (ESI = vCPU index); POST 0x02 */
	0xB8, 0x10, 0x00, 0x00, 0x00,             /* fffff03e  mov eax, 0x10 */
	0x8E, 0xD8,                               /* fffff043  mov ds, eax */
	0x8E, 0xC0,                               /* fffff045  mov es, eax */
	0x8E, 0xD0,                               /* fffff047  mov ss, eax */
	0x89, 0xF5,                               /* fffff049  mov ebp, esi */
	0xC1, 0xE5, 0x10,                         /* fffff04b  shl ebp, 16 */
	0x81, 0xC5, 0x00, 0x20, 0x01, 0x00,       /* fffff04e  add ebp, 0x12000 */
	0x8D, 0xA5, 0x00, 0x60, 0x00, 0x00,       /* fffff054  lea esp, [ebp+0x6000] */
	0x31, 0xC0,                               /* fffff05a  xor eax, eax */
	0x89, 0x45, 0x24,                         /* fffff05c  mov [ebp+V_DONE], eax */
	0xB0, 0x02,                               /* fffff05f  mov al, 0x02 */
	0xE8, 0x67, 0x01, 0x00, 0x00,             /* fffff061  call post */
	/* the device: magic, then the 8 configuration registers of window ESI -> variables */
	0xA1, 0x00, 0x00, 0xB0, 0xFE,             /* fffff066  mov eax, [DEV_GPA] */
	0x3D, 0x4B, 0x56, 0x4D, 0x4C,             /* fffff06b  cmp eax, DEV_MAGIC ("KVML") */
	0xC7, 0x45, 0x2C, 0x05, 0x00, 0x00, 0x00, /* fffff070  mov dword ptr [ebp+V_ERRC], 5 */
	0x0F, 0x85, 0x1B, 0x02, 0x00, 0x00,       /* fffff077  jne fail */
	0x89, 0xF7,                               /* fffff07d  mov edi, esi */
	0xC1, 0xE7, 0x06,                         /* fffff07f  shl edi, 6 */
	0x81, 0xC7, 0x00, 0x01, 0xB0, 0xFE,       /* fffff082  add edi, DEV_GPA + 0x100 */
	0x89, 0x7D, 0x20,                         /* fffff088  mov [ebp+V_WIN], edi */
	0x31, 0xC9,                               /* fffff08b  xor ecx, ecx */
	0x8B, 0x04, 0x8F,                         /* fffff08d  1: mov eax, [edi+ecx*4] */
	0x89, 0x44, 0x8D, 0x00,                   /* fffff090  mov [ebp+ecx*4], eax */
	0x41,                                     /* fffff094  inc ecx */
	0x83, 0xF9, 0x08,                         /* fffff095  cmp ecx, 8 */
	0x72, 0xF3,                               /* fffff098  jb 1b */
	0x8B, 0x45, 0x10,                         /* fffff09a  mov eax, [ebp+V_CHUNK] */
	0x89, 0x45, 0x28,                         /* fffff09d  mov [ebp+V_LEFT], eax */
	0xB0, 0x03,                               /* fffff0a0  mov al, 0x03 */
	0xE8, 0x26, 0x01, 0x00, 0x00,             /* fffff0a2  call post */
	/* POST 0x03 sent; the two templates: the guest's pattern and the VMM's */
	0x8D, 0xBD, 0x00, 0xE0, 0xFF, 0xFF,       /* fffff0a7  lea edi, [ebp-0x2000] */
	0x8B, 0x55, 0x08,                         /* fffff0ad  mov edx, [ebp+V_SEED] */
	0xE8, 0x36, 0x01, 0x00, 0x00,             /* fffff0b0  call gen_template */
	0x8D, 0xBD, 0x00, 0xF0, 0xFF, 0xFF,       /* fffff0b5  lea edi, [ebp-0x1000] */
	0x8B, 0x55, 0x0C,                         /* fffff0bb  mov edx, [ebp+V_HSEED] */
	0xE8, 0x28, 0x01, 0x00, 0x00,             /* fffff0be  call gen_template */
	/* POST 0x10 touch, POST 0x11 re-touch */
	0xB0, 0x10,                               /* fffff0c3  mov al, 0x10 */
	0xE8, 0x03, 0x01, 0x00, 0x00,             /* fffff0c5  call post */
	0xE8, 0x31, 0x01, 0x00, 0x00,             /* fffff0ca  call touch */
	0xB0, 0x11,                               /* fffff0cf  mov al, 0x11 */
	0xE8, 0xF7, 0x00, 0x00, 0x00,             /* fffff0d1  call post */
	0xE8, 0x25, 0x01, 0x00, 0x00,             /* fffff0d6  call touch */
	/* POST 0x12 fill: template + header in every page */
	0xB0, 0x12,                               /* fffff0db  mov al, 0x12 */
	0xE8, 0xEB, 0x00, 0x00, 0x00,             /* fffff0dd  call post */
	0x8B, 0x75, 0x00,                         /* fffff0e2  mov esi, [ebp+V_BASE] */
	0x8B, 0x4D, 0x04,                         /* fffff0e5  mov ecx, [ebp+V_PAGES] */
	0x8B, 0x55, 0x08,                         /* fffff0e8  mov edx, [ebp+V_SEED] */
	0x8D, 0x9D, 0x00, 0xE0, 0xFF, 0xFF,       /* fffff0eb  lea ebx, [ebp-0x2000] */
	0xE8, 0x36, 0x01, 0x00, 0x00,             /* fffff0f1  call fill */
	/* POST 0x13 verify: error code 1 on a mismatch */
	0xB0, 0x13,                               /* fffff0f6  mov al, 0x13 */
	0xE8, 0xD0, 0x00, 0x00, 0x00,             /* fffff0f8  call post */
	0x8B, 0x75, 0x00,                         /* fffff0fd  mov esi, [ebp+V_BASE] */
	0x8B, 0x4D, 0x04,                         /* fffff100  mov ecx, [ebp+V_PAGES] */
	0x8B, 0x55, 0x08,                         /* fffff103  mov edx, [ebp+V_SEED] */
	0x8D, 0x9D, 0x00, 0xE0, 0xFF, 0xFF,       /* fffff106  lea ebx, [ebp-0x2000] */
	0xC7, 0x45, 0x2C, 0x01, 0x00, 0x00, 0x00, /* fffff10c  mov dword ptr [ebp+V_ERRC], 1 */
	0xE8, 0x37, 0x01, 0x00, 0x00,             /* fffff113  call verify */
	/* POST 0x20 conversions (when V_CCOUNT != 0): V_R = range V_J, V_CSTRIDE pages apart */
	0x8B, 0x4D, 0x14,                         /* fffff118  mov ecx, [ebp+V_CCOUNT] */
	0xE3, 0x7C,                               /* fffff11b  jecxz checksum_pass */
	0xB0, 0x20,                               /* fffff11d  mov al, 0x20 */
	0xE8, 0xA9, 0x00, 0x00, 0x00,             /* fffff11f  call post */
	0x31, 0xC0,                               /* fffff124  xor eax, eax */
	0x89, 0x45, 0x30,                         /* fffff126  mov [ebp+V_J], eax */
	0x8B, 0x45, 0x00,                         /* fffff129  mov eax, [ebp+V_BASE] */
	0x89, 0x45, 0x34,                         /* fffff12c  mov [ebp+V_R], eax */
	/* conv_loop: */
	/* to shared; the VMM's data must be there (error 2); the guest's pattern goes there */
	0x31, 0xD2,                               /* fffff12f  xor edx, edx */
	0xE8, 0x47, 0x01, 0x00, 0x00,             /* fffff131  call map_gpa */
	0x8B, 0x75, 0x34,                         /* fffff136  mov esi, [ebp+V_R] */
	0x8B, 0x4D, 0x18,                         /* fffff139  mov ecx, [ebp+V_CPAGES] */
	0x8B, 0x55, 0x0C,                         /* fffff13c  mov edx, [ebp+V_HSEED] */
	0x8D, 0x9D, 0x00, 0xF0, 0xFF, 0xFF,       /* fffff13f  lea ebx, [ebp-0x1000] */
	0xC7, 0x45, 0x2C, 0x02, 0x00, 0x00, 0x00, /* fffff145  mov dword ptr [ebp+V_ERRC], 2 */
	0xE8, 0xFE, 0x00, 0x00, 0x00,             /* fffff14c  call verify */
	0xE8, 0xC7, 0x00, 0x00, 0x00,             /* fffff151  call refill */
	/* to private; fresh private pages read zero (error 3); the pattern again */
	0xBA, 0x10, 0x00, 0x00, 0x00,             /* fffff156  mov edx, 0x10 */
	0xE8, 0x1D, 0x01, 0x00, 0x00,             /* fffff15b  call map_gpa */
	0x8B, 0x7D, 0x34,                         /* fffff160  mov edi, [ebp+V_R] */
	0x8B, 0x4D, 0x18,                         /* fffff163  mov ecx, [ebp+V_CPAGES] */
	0xC1, 0xE1, 0x0A,                         /* fffff166  shl ecx, 10 */
	0x31, 0xC0,                               /* fffff169  xor eax, eax */
	0xF3, 0xAF,                               /* fffff16b  repe scasd */
	0xC7, 0x45, 0x2C, 0x03, 0x00, 0x00, 0x00, /* fffff16d  mov dword ptr [ebp+V_ERRC], 3 */
	0x8D, 0x47, 0xFC,                         /* fffff174  lea eax, [edi-4] */
	0x0F, 0x85, 0x1B, 0x01, 0x00, 0x00,       /* fffff177  jne fail */
	0xE8, 0x9B, 0x00, 0x00, 0x00,             /* fffff17d  call refill */
	0x8B, 0x45, 0x30,                         /* fffff182  mov eax, [ebp+V_J] */
	0x40,                                     /* fffff185  inc eax */
	0x89, 0x45, 0x30,                         /* fffff186  mov [ebp+V_J], eax */
	0xE7, 0x88,                               /* fffff189  out PORT_CONVERTED, eax */
	0x8B, 0x55, 0x1C,                         /* fffff18b  mov edx, [ebp+V_CSTRIDE] */
	0xC1, 0xE2, 0x0C,                         /* fffff18e  shl edx, 12 */
	0x01, 0x55, 0x34,                         /* fffff191  add [ebp+V_R], edx */
	0x3B, 0x45, 0x14,                         /* fffff194  cmp eax, [ebp+V_CCOUNT] */
	0x72, 0x96,                               /* fffff197  jb conv_loop */
	/* checksum_pass: */
	/* POST 0x30 checksum: EBX = sum of every dword, rol 1 after each page -> CHECKSUM */
	0xB0, 0x30,                               /* fffff199  mov al, 0x30 */
	0xE8, 0x2D, 0x00, 0x00, 0x00,             /* fffff19b  call post */
	0x8B, 0x75, 0x00,                         /* fffff1a0  mov esi, [ebp+V_BASE] */
	0x8B, 0x4D, 0x04,                         /* fffff1a3  mov ecx, [ebp+V_PAGES] */
	0x31, 0xDB,                               /* fffff1a6  xor ebx, ebx */
	0x51,                                     /* fffff1a8  2: push ecx */
	0xB9, 0x00, 0x04, 0x00, 0x00,             /* fffff1a9  mov ecx, 1024 */
	0xAD,                                     /* fffff1ae  3: lodsd */
	0x01, 0xC3,                               /* fffff1af  add ebx, eax */
	0xE2, 0xFB,                               /* fffff1b1  loop 3b */
	0xD1, 0xC3,                               /* fffff1b3  rol ebx, 1 */
	0xE8, 0x1D, 0x00, 0x00, 0x00,             /* fffff1b5  call progress */
	0x59,                                     /* fffff1ba  pop ecx */
	0xE2, 0xEB,                               /* fffff1bb  loop 2b */
	0x8B, 0x7D, 0x20,                         /* fffff1bd  mov edi, [ebp+V_WIN] */
	0x89, 0x5F, 0x20,                         /* fffff1c0  mov [edi+W_CHECKSUM], ebx */
	/* POST 0x3f: done, HLT */
	0xB0, 0x3F,                               /* fffff1c3  mov al, 0x3F */
	0xE8, 0x03, 0x00, 0x00, 0x00,             /* fffff1c5  call post */
	0xF4,                                     /* fffff1ca  4: hlt */
	0xEB, 0xFD,                               /* fffff1cb  jmp 4b */
	/* ---- routines ---- */
	/* post: AL = code; sends the page count first */
	0x50,                                     /* fffff1cd  push eax */
	0x8B, 0x45, 0x24,                         /* fffff1ce  mov eax, [ebp+V_DONE] */
	0xE7, 0x84,                               /* fffff1d1  out PORT_PROGRESS, eax */
	0x58,                                     /* fffff1d3  pop eax */
	0xE6, 0x80,                               /* fffff1d4  out PORT_POST, al */
	0xC3,                                     /* fffff1d6  ret */
	/* progress: one page done (clobbers EAX) */
	0xFF, 0x45, 0x24,                         /* fffff1d7  inc dword ptr [ebp+V_DONE] */
	0xFF, 0x4D, 0x28,                         /* fffff1da  dec dword ptr [ebp+V_LEFT] */
	0x75, 0x0B,                               /* fffff1dd  jnz 1f */
	0x8B, 0x45, 0x10,                         /* fffff1df  mov eax, [ebp+V_CHUNK] */
	0x89, 0x45, 0x28,                         /* fffff1e2  mov [ebp+V_LEFT], eax */
	0x8B, 0x45, 0x24,                         /* fffff1e5  mov eax, [ebp+V_DONE] */
	0xE7, 0x84,                               /* fffff1e8  out PORT_PROGRESS, eax */
	0xC3,                                     /* fffff1ea  1: ret */
	/* gen_template: EDI = page, EDX = seed; dword i = i * 0x9E3779B1 ^ seed */
	0x31, 0xC9,                               /* fffff1eb  xor ecx, ecx */
	0x69, 0xC1, 0xB1, 0x79, 0x37, 0x9E,       /* fffff1ed  1: imul eax, ecx, 0x9E3779B1 */
	0x31, 0xD0,                               /* fffff1f3  xor eax, edx */
	0xAB,                                     /* fffff1f5  stosd */
	0x41,                                     /* fffff1f6  inc ecx */
	0x81, 0xF9, 0x00, 0x04, 0x00, 0x00,       /* fffff1f7  cmp ecx, 1024 */
	0x72, 0xEE,                               /* fffff1fd  jb 1b */
	0xC3,                                     /* fffff1ff  ret */
	/* touch: first dword of every page = GPA ^ seed */
	0x8B, 0x75, 0x00,                         /* fffff200  mov esi, [ebp+V_BASE] */
	0x8B, 0x4D, 0x04,                         /* fffff203  mov ecx, [ebp+V_PAGES] */
	0x8B, 0x55, 0x08,                         /* fffff206  mov edx, [ebp+V_SEED] */
	0x89, 0xF0,                               /* fffff209  1: mov eax, esi */
	0x31, 0xD0,                               /* fffff20b  xor eax, edx */
	0x89, 0x06,                               /* fffff20d  mov [esi], eax */
	0xE8, 0xC3, 0xFF, 0xFF, 0xFF,             /* fffff20f  call progress */
	0x81, 0xC6, 0x00, 0x10, 0x00, 0x00,       /* fffff214  add esi, 0x1000 */
	0xE2, 0xED,                               /* fffff21a  loop 1b */
	0xC3,                                     /* fffff21c  ret */
	/* refill: range V_R with the guest's pattern (falls through into fill) */
	0x8B, 0x75, 0x34,                         /* fffff21d  mov esi, [ebp+V_R] */
	0x8B, 0x4D, 0x18,                         /* fffff220  mov ecx, [ebp+V_CPAGES] */
	0x8B, 0x55, 0x08,                         /* fffff223  mov edx, [ebp+V_SEED] */
	0x8D, 0x9D, 0x00, 0xE0, 0xFF, 0xFF,       /* fffff226  lea ebx, [ebp-0x2000] */
	/* fill: ESI = first page, ECX = pages, EDX = seed, EBX = template */
	0x51,                                     /* fffff22c  1: push ecx */
	0x56,                                     /* fffff22d  push esi */
	0x89, 0xF7,                               /* fffff22e  mov edi, esi */
	0x89, 0xDE,                               /* fffff230  mov esi, ebx */
	0xB9, 0x00, 0x04, 0x00, 0x00,             /* fffff232  mov ecx, 1024 */
	0xF3, 0xA5,                               /* fffff237  rep movsd */
	0x5E,                                     /* fffff239  pop esi */
	0x89, 0xF0,                               /* fffff23a  mov eax, esi */
	0x31, 0xD0,                               /* fffff23c  xor eax, edx */
	0x89, 0x06,                               /* fffff23e  mov [esi], eax */
	0xE8, 0x92, 0xFF, 0xFF, 0xFF,             /* fffff240  call progress */
	0x59,                                     /* fffff245  pop ecx */
	0x81, 0xC6, 0x00, 0x10, 0x00, 0x00,       /* fffff246  add esi, 0x1000 */
	0xE2, 0xDE,                               /* fffff24c  loop 1b */
	0xC3,                                     /* fffff24e  ret */
	/* verify: ESI = first page, ECX = pages, EDX = seed, EBX = template; V_ERRC = error code */
	0x89, 0xF0,                               /* fffff24f  1: mov eax, esi */
	0x31, 0xD0,                               /* fffff251  xor eax, edx */
	0x39, 0x06,                               /* fffff253  cmp [esi], eax */
	0x89, 0xF0,                               /* fffff255  mov eax, esi */
	0x75, 0x3F,                               /* fffff257  jne fail */
	0x51,                                     /* fffff259  push ecx */
	0x56,                                     /* fffff25a  push esi */
	0x8D, 0x7B, 0x04,                         /* fffff25b  lea edi, [ebx+4] */
	0x83, 0xC6, 0x04,                         /* fffff25e  add esi, 4 */
	0xB9, 0xFF, 0x03, 0x00, 0x00,             /* fffff261  mov ecx, 1023 */
	0xF3, 0xA7,                               /* fffff266  repe cmpsd */
	0x8D, 0x46, 0xFC,                         /* fffff268  lea eax, [esi-4] */
	0x75, 0x2B,                               /* fffff26b  jne fail */
	0x5E,                                     /* fffff26d  pop esi */
	0xE8, 0x64, 0xFF, 0xFF, 0xFF,             /* fffff26e  call progress */
	0x59,                                     /* fffff273  pop ecx */
	0x81, 0xC6, 0x00, 0x10, 0x00, 0x00,       /* fffff274  add esi, 0x1000 */
	0xE2, 0xD3,                               /* fffff27a  loop 1b */
	0xC3,                                     /* fffff27c  ret */
	/* map_gpa: KVM_HC_MAP_GPA_RANGE(V_R, V_CPAGES, EDX) */
	0xB8, 0x0C, 0x00, 0x00, 0x00,             /* fffff27d  mov eax, 12 */
	0x8B, 0x5D, 0x34,                         /* fffff282  mov ebx, [ebp+V_R] */
	0x8B, 0x4D, 0x18,                         /* fffff285  mov ecx, [ebp+V_CPAGES] */
	0x0F, 0x01, 0xC1,                         /* fffff288  vmcall */
	0x85, 0xC0,                               /* fffff28b  test eax, eax */
	0xC7, 0x45, 0x2C, 0x04, 0x00, 0x00, 0x00, /* fffff28d  mov dword ptr [ebp+V_ERRC], 4 */
	0x93,                                     /* fffff294  xchg eax, ebx */
	0x75, 0x01,                               /* fffff295  jne fail */
	0xC3,                                     /* fffff297  ret */
	/* fail: EAX = GPA, V_ERRC = code -> device error registers, POST 0xEE, hlt forever */
	0x8B, 0x7D, 0x20,                         /* fffff298  mov edi, [ebp+V_WIN] */
	0x89, 0x47, 0x28,                         /* fffff29b  mov [edi+W_ERROR_GPA], eax */
	0x8B, 0x45, 0x2C,                         /* fffff29e  mov eax, [ebp+V_ERRC] */
	0x89, 0x47, 0x24,                         /* fffff2a1  mov [edi+W_ERROR], eax */
	0xB0, 0xEE,                               /* fffff2a4  mov al, 0xEE */
	0xE6, 0x80,                               /* fffff2a6  out PORT_POST, al */
	0xF4,                                     /* fffff2a8  1: hlt */
	0xEB, 0xFD,                               /* fffff2a9  jmp 1b */
};

/* At RESET_GPA: where every vCPU starts (CS:IP = f000:fff0). */
static const uint8_t reset_vector[16] = {
	0xE9, 0x0D, 0xF0,                         /* fffffff0  jmp 0xf000 (entry16: GPA 0xfffff000) */
	0xF4, 0xF4, 0xF4, 0xF4, 0xF4, 0xF4, 0xF4, 0xF4, 0xF4, 0xF4, 0xF4, 0xF4, 0xF4, /* hlt */
};

/* ============================================================ the pattern */

static uint32_t template_word(uint32_t seed, uint32_t i) { return i * TEMPLATE_MUL ^ seed; }

/* Page at gpa after "fill" with seed: dword 0 = gpa ^ seed, dword i = template_word(seed, i). */
static uint32_t page_word(uint32_t seed, uint64_t gpa, uint32_t i)
{
	return i ? template_word(seed, i) : (uint32_t)gpa ^ seed;
}

/* Index of the first dword of the page at p that differs from the pattern, or -1. */
static int page_mismatch(const uint8_t *p, uint32_t seed, uint64_t gpa)
{
	for (uint32_t i = 0; i < PAGE_SIZE / 4; i++) {
		uint32_t w;
		memcpy(&w, p + 4 * i, 4);
		if (w != page_word(seed, gpa, i))
			return (int)i;
	}
	return -1;
}

static uint32_t rol1(uint32_t x) { return x << 1 | x >> 31; }

/* The firmware's checksum of pages [gpa, gpa + pages) all holding seed's pattern. */
static uint32_t expected_checksum(uint32_t seed, uint64_t gpa, uint64_t pages)
{
	uint32_t rest = 0;
	for (uint32_t i = 1; i < PAGE_SIZE / 4; i++)
		rest += template_word(seed, i);
	uint32_t sum = 0;
	for (uint64_t p = 0; p < pages; p++)
		sum = rol1(sum + ((uint32_t)(gpa + p * PAGE_SIZE) ^ seed) + rest);
	return sum;
}

/* The same checksum computed from memory the host can read. */
static uint32_t memory_checksum(const uint8_t *p, uint64_t pages)
{
	uint32_t sum = 0;
	for (uint64_t n = 0; n < pages; n++) {
		for (uint32_t i = 0; i < PAGE_SIZE / 4; i++) {
			uint32_t w;
			memcpy(&w, p + n * PAGE_SIZE + 4 * i, 4);
			sum += w;
		}
		sum = rol1(sum);
	}
	return sum;
}

static bool all_zero(const uint8_t *p, uint64_t len, uint64_t *bad)
{
	for (uint64_t i = 0; i < len; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		if (w) {
			*bad = i;
			return false;
		}
	}
	return true;
}

/* ================================================================== state */

struct stats {
	int fd;
	struct kvm_stats_header hdr;
	uint32_t n;
	char (*names)[STAT_NAME_SIZE];
	uint32_t *offsets; /* in u64 units, from data_offset */
	uint64_t *data;    /* the last snapshot */
	size_t data_words;
};

/* The counters the progress line and the report use. */
enum vm_stat { VS_FAULTS, VS_FAULT_RETRIES, VS_ZAPS, VS_ZAPPED_PAGES, VS_PAGES_4K, VS_PAGES_2M,
	       VS_TLB_FLUSH, NR_VM_STATS };
static const char *const vm_stat_names[NR_VM_STATS] = {
	"faults", "fault_retries", "zaps", "zapped_pages", "pages_4k", "pages_2m",
	"remote_tlb_flush",
};
enum vcpu_stat { CS_EXITS, CS_IO, CS_MMIO, CS_HALT, CS_HYPERCALLS, CS_PF_FIXED, CS_PF_TAKEN,
		 CS_PF_RETRY, CS_MEMFAULT, CS_INSN, CS_SIGNAL, NR_VCPU_STATS };
static const char *const vcpu_stat_names[NR_VCPU_STATS] = {
	"exits", "io_exits", "mmio_exits", "halt_exits", "hypercalls", "pf_fixed", "pf_taken",
	"pf_retry", "memory_fault_exits", "insn_emulation", "signal_exits",
};
#define NO_STAT UINT64_MAX

/* What the VMM saw, by exit kind. */
enum exit_kind { EX_POST, EX_PROGRESS, EX_CONVERTED, EX_MMIO_READ, EX_MMIO_WRITE, EX_HYPERCALL,
		 EX_HLT, EX_INTR, NR_EXIT_KINDS };

struct vcpu {
	int id;
	int fd;
	struct kvm_run *run;
	struct stats st;
	pthread_t thread;
	bool started;
	uint32_t cfg[W_NR_CONFIG]; /* what the window answers, in W_* order */
	_Atomic int phase;
	_Atomic uint64_t pages_done;
	_Atomic uint32_t ranges_done;
	double t_phase[NR_PHASES]; /* when each POST code came (0: never) */
	double t_halt;
	uint64_t exits[NR_EXIT_KINDS];
	bool have_checksum;
	uint32_t checksum;
	uint32_t err_code, err_gpa;
	char fail[320]; /* the VMM's reason to stop this vCPU, or "" */
};

static struct {
	/* options */
	uint64_t mib;
	int nr_vcpus;
	int vm_type;  /* -1: pick */
	int ranges;   /* conversion ranges per vCPU */
	bool kernel;  /* --kernel: the real /dev/kvm is expected */
	unsigned timeout_s;
	/* backend */
	int kvm;
	bool kvmlike;
	size_t run_size;
	/* VM */
	int vm;
	bool sw_protected;
	int gmem;
	uint64_t gmem_flags;
	uint64_t gmem_size;
	uint8_t *gmem_map;   /* default VM: the guest_memfd's mapping */
	uint8_t *shared;     /* SW_PROTECTED: the anonymous shared part */
	uint8_t *host_view;  /* whichever the slots' userspace_addr points at */
	uint8_t *flash;
	bool flash_readonly;
	struct stats vm_st;
	struct vcpu vcpus[MAX_VCPUS];
	uint64_t ram_pages;
	uint64_t total_work; /* pages the firmware reports over all phases */
	/* run */
	_Atomic bool stop;
	_Atomic int running;
	_Atomic uint64_t to_shared, to_private, pages_converted;
	/* times */
	double t_start, t_setup, t_guest, t_checks, t_end;
	/* last stats snapshot while everything was alive */
	uint64_t vm_val[NR_VM_STATS];
	uint64_t vcpu_val[MAX_VCPUS][NR_VCPU_STATS];
	uint64_t host_resident;
	bool stdout_tty;
} gb = { .vm_type = -1, .ranges = DEFAULT_RANGES, .nr_vcpus = 2, .kvm = -1, .vm = -1,
	 .gmem = -1, .timeout_s = DEFAULT_TIMEOUT_S };

/* ============================================================== utilities */

const char demo_prog[] = "guest_boot";

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int check_cap(int fd, long cap)
{
	int r = ioctl(fd, KVM_CHECK_EXTENSION, cap);
	return r < 0 ? 0 : r;
}

/* "1.23 s", "45.6 ms", "789 us" */
static const char *fmt_time(double s, char *buf, size_t len)
{
	if (s >= 1)
		snprintf(buf, len, "%.2f s", s);
	else if (s >= 1e-3)
		snprintf(buf, len, "%.1f ms", s * 1e3);
	else
		snprintf(buf, len, "%.0f us", s * 1e6);
	return buf;
}

/* "123" or "-" when the backend has no such counter. */
static const char *fmt_stat(uint64_t v, char *buf, size_t len)
{
	if (v == NO_STAT)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%llu", (unsigned long long)v);
	return buf;
}

/* ========================================================== binary stats */

static void stats_open(struct stats *s, int fd, const char *what)
{
	memset(s, 0, sizeof(*s));
	char msg[64];
	snprintf(msg, sizeof(msg), "KVM_GET_STATS_FD on the %s", what);
	s->fd = (int)check(ioctl(fd, KVM_GET_STATS_FD, 0), msg);
	if (pread(s->fd, &s->hdr, sizeof(s->hdr), 0) != (ssize_t)sizeof(s->hdr))
		fail("%s: short read of the header", msg);
	s->n = s->hdr.num_desc;
	size_t desc_size = sizeof(struct kvm_stats_desc) + s->hdr.name_size;
	uint8_t *descs = malloc(desc_size * s->n);
	s->names = calloc(s->n, sizeof(*s->names));
	s->offsets = calloc(s->n, sizeof(*s->offsets));
	if (!descs || !s->names || !s->offsets)
		fail("out of memory");
	if (pread(s->fd, descs, desc_size * s->n, s->hdr.desc_offset) != (ssize_t)(desc_size * s->n))
		fail("%s: short read of the descriptors", msg);
	for (uint32_t i = 0; i < s->n; i++) {
		const struct kvm_stats_desc *d = (const void *)(descs + i * desc_size);
		size_t end = d->offset / 8 + (d->size ? d->size : 1);
		if (end > s->data_words)
			s->data_words = end;
		s->offsets[i] = d->offset / 8;
		size_t nlen = s->hdr.name_size < STAT_NAME_SIZE ? s->hdr.name_size : STAT_NAME_SIZE;
		memcpy(s->names[i], descs + i * desc_size + sizeof(*d), nlen);
		s->names[i][STAT_NAME_SIZE - 1] = 0;
	}
	free(descs);
	s->data = calloc(s->data_words ? s->data_words : 1, 8);
	if (!s->data)
		fail("out of memory");
}

static void stats_read(struct stats *s)
{
	ssize_t len = (ssize_t)(s->data_words * 8);
	if (pread(s->fd, s->data, (size_t)len, s->hdr.data_offset) != len)
		fail("short read of a stats data block");
}

/* The value of the counter named name in the last snapshot, or NO_STAT. */
static uint64_t stats_get(const struct stats *s, const char *name)
{
	for (uint32_t i = 0; i < s->n; i++)
		if (strcmp(s->names[i], name) == 0)
			return s->data[s->offsets[i]];
	return NO_STAT;
}

static void stats_close(struct stats *s)
{
	if (s->fd >= 0)
		close(s->fd);
	free(s->names);
	free(s->offsets);
	free(s->data);
	memset(s, 0, sizeof(*s));
	s->fd = -1;
}

/* Reads every stats fd into gb.vm_val / gb.vcpu_val. */
static void sample_stats(void)
{
	stats_read(&gb.vm_st);
	for (int i = 0; i < NR_VM_STATS; i++)
		gb.vm_val[i] = stats_get(&gb.vm_st, vm_stat_names[i]);
	for (int c = 0; c < gb.nr_vcpus; c++) {
		stats_read(&gb.vcpus[c].st);
		for (int i = 0; i < NR_VCPU_STATS; i++)
			gb.vcpu_val[c][i] = stats_get(&gb.vcpus[c].st, vcpu_stat_names[i]);
	}
}

/* A vCPU counter summed over the vCPUs (NO_STAT when the backend lacks it). */
static uint64_t vcpu_sum(enum vcpu_stat s)
{
	uint64_t sum = 0;
	for (int c = 0; c < gb.nr_vcpus; c++) {
		if (gb.vcpu_val[c][s] == NO_STAT)
			return NO_STAT;
		sum += gb.vcpu_val[c][s];
	}
	return sum;
}

/* Faults the MMU fixed: kvmlike's VM "faults", else the vCPUs' "pf_fixed". */
static uint64_t faults_now(const char **name)
{
	if (gb.vm_val[VS_FAULTS] != NO_STAT) {
		*name = "faults";
		return gb.vm_val[VS_FAULTS];
	}
	*name = "pf_fixed";
	return vcpu_sum(CS_PF_FIXED);
}

/* ================================================================ the VM */

static void open_kvm(void)
{
	gb.kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (gb.kvm < 0 && errno == ENOENT)
		fail("open /dev/kvm: no such device here; run it under kvmlike "
		     "(LD_PRELOAD=build/frontends/preload/libkvmlike-preload.so, or scripts/demo.sh)");
	check(gb.kvm, "open /dev/kvm");
	gb.kvmlike = probe_kvmlike(gb.kvm, NULL);
	if (gb.kernel && gb.kvmlike)
		fail("--kernel, but /dev/kvm is kvmlike (KVMLIKE_PROBE answered): unset LD_PRELOAD");
	int api = (int)check(ioctl(gb.kvm, KVM_GET_API_VERSION, 0), "KVM_GET_API_VERSION");
	if (api != KVM_API_VERSION)
		fail("KVM_GET_API_VERSION = %d, want %d", api, KVM_API_VERSION);
	if (check_cap(gb.kvm, KVM_CAP_GUEST_MEMFD) <= 0 ||
	    check_cap(gb.kvm, KVM_CAP_USER_MEMORY2) <= 0)
		fail("the backend lacks KVM_CAP_GUEST_MEMFD or KVM_CAP_USER_MEMORY2");
	if (check_cap(gb.kvm, KVM_CAP_BINARY_STATS_FD) <= 0)
		fail("the backend lacks KVM_CAP_BINARY_STATS_FD");
	gb.run_size = (size_t)check(ioctl(gb.kvm, KVM_GET_VCPU_MMAP_SIZE, 0),
				    "KVM_GET_VCPU_MMAP_SIZE");
}

/* SW_PROTECTED when offered (or asked for), with everything its conversions need. */
static void create_vm(void)
{
	int types = check_cap(gb.kvm, KVM_CAP_VM_TYPES);
	bool sw_offered = types & (1 << KVM_X86_SW_PROTECTED_VM);
	int type = gb.vm_type >= 0 ? gb.vm_type
				   : sw_offered ? KVM_X86_SW_PROTECTED_VM : KVM_X86_DEFAULT_VM;
	if (type == KVM_X86_SW_PROTECTED_VM && !sw_offered)
		fail("-t 1: KVM_CAP_VM_TYPES (0x%x) does not offer KVM_X86_SW_PROTECTED_VM", types);
	gb.vm = (int)check(ioctl(gb.kvm, KVM_CREATE_VM, (unsigned long)type), "KVM_CREATE_VM");
	gb.sw_protected = type == KVM_X86_SW_PROTECTED_VM;
	uint64_t offered = (uint64_t)check_cap(gb.vm, KVM_CAP_GUEST_MEMFD_FLAGS);
	if (gb.sw_protected) {
		gb.gmem_flags = 0;
		if (!(check_cap(gb.vm, KVM_CAP_MEMORY_ATTRIBUTES) & KVM_MEMORY_ATTRIBUTE_PRIVATE))
			fail("the SW_PROTECTED VM offers no KVM_MEMORY_ATTRIBUTE_PRIVATE");
		uint64_t hc = (uint64_t)check_cap(gb.vm, KVM_CAP_EXIT_HYPERCALL);
		if (gb.ranges && !(hc & (1ull << KVM_HC_MAP_GPA_RANGE)))
			fail("KVM_CAP_EXIT_HYPERCALL (0x%llx) lacks KVM_HC_MAP_GPA_RANGE",
			     (unsigned long long)hc);
		if (gb.ranges) {
			struct kvm_enable_cap cap;
			memset(&cap, 0, sizeof(cap));
			cap.cap = KVM_CAP_EXIT_HYPERCALL;
			cap.args[0] = 1ull << KVM_HC_MAP_GPA_RANGE;
			check(ioctl(gb.vm, KVM_ENABLE_CAP, &cap),
			      "KVM_ENABLE_CAP(KVM_CAP_EXIT_HYPERCALL, 1 << KVM_HC_MAP_GPA_RANGE)");
		}
	} else {
		gb.gmem_flags = GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED;
		if ((offered & gb.gmem_flags) != gb.gmem_flags)
			fail("the default VM offers guest_memfd flags 0x%llx; MMAP|INIT_SHARED needed",
			     (unsigned long long)offered);
		gb.ranges = 0; /* nothing to convert without private memory */
	}
}

static void set_slot(uint32_t slot, uint32_t flags, uint64_t gpa, uint64_t size, void *uaddr,
		     int gmem, uint64_t gmem_off, const char *what)
{
	struct kvm_userspace_memory_region2 r;
	memset(&r, 0, sizeof(r));
	r.slot = slot;
	r.flags = flags;
	r.guest_phys_addr = gpa;
	r.memory_size = size;
	r.userspace_addr = (uintptr_t)uaddr;
	r.guest_memfd = gmem >= 0 ? (uint32_t)gmem : 0;
	r.guest_memfd_offset = gmem_off;
	check(ioctl(gb.vm, KVM_SET_USER_MEMORY_REGION2, &r), what);
}

static int set_attributes(uint64_t gpa, uint64_t size, uint64_t attrs)
{
	struct kvm_memory_attributes a = { .address = gpa, .size = size, .attributes = attrs };
	return ioctl(gb.vm, KVM_SET_MEMORY_ATTRIBUTES, &a);
}

static void *map_anon(uint64_t size, const char *what)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		       -1, 0);
	if (p == MAP_FAILED)
		fail("mmap of %llu MiB of anonymous memory (%s): %s",
		     (unsigned long long)(size / MiB), what, strerror(errno));
	return p;
}

static void setup_memory(void)
{
	gb.gmem_size = LOW_SIZE + gb.mib * MiB;
	gb.ram_pages = gb.mib * MiB / PAGE_SIZE;
	struct kvm_create_guest_memfd c = { .size = gb.gmem_size, .flags = gb.gmem_flags };
	gb.gmem = (int)check(ioctl(gb.vm, KVM_CREATE_GUEST_MEMFD, &c), "KVM_CREATE_GUEST_MEMFD");
	if (gb.sw_protected) {
		gb.shared = map_anon(gb.gmem_size, "the shared part");
		gb.host_view = gb.shared;
	} else {
		void *p = mmap(NULL, gb.gmem_size, PROT_READ | PROT_WRITE, MAP_SHARED, gb.gmem, 0);
		if (p == MAP_FAILED)
			fail("mmap of the guest_memfd: %s", strerror(errno));
		gb.gmem_map = p;
		gb.host_view = p;
	}
	set_slot(SLOT_LOW, KVM_MEM_GUEST_MEMFD, 0, LOW_SIZE, gb.host_view, gb.gmem, 0,
		 "KVM_SET_USER_MEMORY_REGION2(slot 0: low memory, guest_memfd)");
	set_slot(SLOT_RAM, KVM_MEM_GUEST_MEMFD, RAM_GPA, gb.mib * MiB, gb.host_view + RAM_GPA,
		 gb.gmem, RAM_GPA, "KVM_SET_USER_MEMORY_REGION2(slot 1: test RAM, guest_memfd)");
	if (gb.sw_protected)
		check(set_attributes(0, gb.gmem_size, KVM_MEMORY_ATTRIBUTE_PRIVATE),
		      "KVM_SET_MEMORY_ATTRIBUTES(all RAM PRIVATE)");

	gb.flash = map_anon(FLASH_SIZE, "the flash");
	memset(gb.flash, 0xff, FLASH_SIZE); /* erased flash */
	memcpy(gb.flash + (FW_GPA - FLASH_GPA), firmware, sizeof(firmware));
	memcpy(gb.flash + (RESET_GPA - FLASH_GPA), reset_vector, sizeof(reset_vector));
	gb.flash_readonly = check_cap(gb.vm, KVM_CAP_READONLY_MEM) > 0;
	set_slot(SLOT_FLASH, gb.flash_readonly ? KVM_MEM_READONLY : 0, FLASH_GPA, FLASH_SIZE,
		 gb.flash, -1, 0, "KVM_SET_USER_MEMORY_REGION2(slot 2: flash)");
}

/* The configuration window of vCPU c: its share of the test RAM, seeds, conversions. */
static void configure(struct vcpu *v)
{
	uint64_t per = gb.ram_pages / (uint64_t)gb.nr_vcpus;
	uint64_t first = per * (uint64_t)v->id;
	uint64_t pages = v->id == gb.nr_vcpus - 1 ? gb.ram_pages - first : per;
	uint32_t ranges = (uint32_t)gb.ranges;
	uint64_t stride = ranges ? pages / ranges : 0;
	uint64_t cpages = stride < RANGE_PAGES_MAX ? stride : RANGE_PAGES_MAX;
	if (ranges && !cpages)
		fail("-m %llu is too small for %u conversion ranges per vCPU",
		     (unsigned long long)gb.mib, ranges);
	v->cfg[W_BASE / 4] = (uint32_t)(RAM_GPA + first * PAGE_SIZE);
	v->cfg[W_PAGES / 4] = (uint32_t)pages;
	v->cfg[W_SEED / 4] = MAIN_SEED | (uint32_t)v->id;
	v->cfg[W_HSEED / 4] = HOST_SEED | (uint32_t)v->id;
	v->cfg[W_CHUNK / 4] = CHUNK_PAGES;
	v->cfg[W_CCOUNT / 4] = ranges;
	v->cfg[W_CPAGES / 4] = (uint32_t)cpages;
	v->cfg[W_CSTRIDE / 4] = (uint32_t)stride;
	/* touch, re-touch, fill, verify, checksum; per range: verify, fill, fill */
	gb.total_work += 5 * pages + 3 * (uint64_t)ranges * cpages;
}

static void create_vcpus(void)
{
	for (int c = 0; c < gb.nr_vcpus; c++) {
		struct vcpu *v = &gb.vcpus[c];
		v->id = c;
		v->fd = (int)check(ioctl(gb.vm, KVM_CREATE_VCPU, (unsigned long)c), "KVM_CREATE_VCPU");
		void *run = mmap(NULL, gb.run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
		if (run == MAP_FAILED)
			fail("mmap of vCPU %d's kvm_run: %s", c, strerror(errno));
		v->run = run;
		/* Reset state (CS:IP f000:fff0, real mode) except ESI, the vCPU's index. */
		struct kvm_regs regs;
		check(ioctl(v->fd, KVM_GET_REGS, &regs), "KVM_GET_REGS");
		if (regs.rip != 0xfff0)
			fail("vCPU %d: RIP after KVM_CREATE_VCPU is 0x%llx, not the reset vector 0xfff0",
			     c, (unsigned long long)regs.rip);
		regs.rsi = (uint64_t)c;
		check(ioctl(v->fd, KVM_SET_REGS, &regs), "KVM_SET_REGS");
		stats_open(&v->st, v->fd, "vCPU fd");
		configure(v);
	}
	stats_open(&gb.vm_st, gb.vm, "VM fd");
}

/* ============================================================= the exits */

static void __attribute__((format(printf, 2, 3))) vcpu_fail(struct vcpu *v, const char *fmt, ...)
{
	if (v->fail[0])
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(v->fail, sizeof(v->fail), fmt, ap);
	va_end(ap);
}

static int phase_of(uint8_t code)
{
	for (int p = 0; p < NR_PHASES; p++)
		if (phases[p].code == code && p != PH_NONE)
			return p;
	return -1;
}

static bool handle_io(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	if (run->io.direction != KVM_EXIT_IO_OUT || run->io.count != 1) {
		vcpu_fail(v, "unexpected port I/O: %s port 0x%x, %u x %u bytes",
			  run->io.direction == KVM_EXIT_IO_OUT ? "OUT" : "IN", run->io.port,
			  run->io.count, run->io.size);
		return false;
	}
	uint32_t val = 0;
	memcpy(&val, (uint8_t *)run + run->io.data_offset, run->io.size <= 4 ? run->io.size : 4);
	if (run->io.port == PORT_POST && run->io.size == 1) {
		int p = phase_of((uint8_t)val);
		if (p < 0) {
			vcpu_fail(v, "unknown POST code 0x%02x", val);
			return false;
		}
		v->t_phase[p] = now();
		atomic_store(&v->phase, p);
		v->exits[EX_POST]++;
		return true;
	}
	if (run->io.port == PORT_PROGRESS && run->io.size == 4) {
		atomic_store(&v->pages_done, val);
		v->exits[EX_PROGRESS]++;
		return true;
	}
	if (run->io.port == PORT_CONVERTED && run->io.size == 4) {
		atomic_store(&v->ranges_done, val);
		v->exits[EX_CONVERTED]++;
		return true;
	}
	vcpu_fail(v, "unexpected OUT to port 0x%x (%u bytes, 0x%x)", run->io.port, run->io.size,
		  val);
	return false;
}

static bool handle_mmio(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint64_t gpa = run->mmio.phys_addr;
	uint32_t win = DEV_WIN((uint32_t)v->id);
	uint64_t off = gpa - DEV_GPA;
	if (gpa < DEV_GPA || off >= PAGE_SIZE || run->mmio.len != 4 || (off & 3)) {
		vcpu_fail(v, "MMIO %s of %u bytes at 0x%llx: no device there",
			  run->mmio.is_write ? "write" : "read", run->mmio.len,
			  (unsigned long long)gpa);
		return false;
	}
	uint32_t val;
	if (!run->mmio.is_write) {
		v->exits[EX_MMIO_READ]++;
		if (off == 0) {
			val = DEV_MAGIC;
		} else if (off >= win && off < win + W_NR_CONFIG * 4) {
			val = v->cfg[(off - win) / 4];
		} else {
			vcpu_fail(v, "MMIO read of device register 0x%llx (vCPU %d's window is at 0x%x)",
				  (unsigned long long)off, v->id, win);
			return false;
		}
		memcpy(run->mmio.data, &val, 4);
		return true;
	}
	v->exits[EX_MMIO_WRITE]++;
	memcpy(&val, run->mmio.data, 4);
	if (off == win + W_CHECKSUM) {
		v->checksum = val;
		v->have_checksum = true;
	} else if (off == win + W_ERROR_GPA) {
		v->err_gpa = val;
	} else if (off == win + W_ERROR) {
		v->err_code = val;
	} else {
		vcpu_fail(v, "MMIO write of 0x%x to device register 0x%llx", val,
			  (unsigned long long)off);
		return false;
	}
	return true;
}

/*
 * KVM_HC_MAP_GPA_RANGE from the guest: the VMM's half of a conversion.
 * To shared: the shared memory must not show the guest's private data; the
 * private pages leave guest_memfd (punch), the range becomes shared and the
 * VMM puts its own data there for the guest to find. To private: the shared
 * memory must show what the guest wrote there; guest_memfd gets the range
 * back (allocated), the range becomes private and the shared copy goes.
 */
static bool handle_hypercall(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	v->exits[EX_HYPERCALL]++;
	uint64_t gpa = run->hypercall.args[0], npages = run->hypercall.args[1];
	uint64_t attrs = run->hypercall.args[2], len = npages * PAGE_SIZE;
	if (run->hypercall.nr != KVM_HC_MAP_GPA_RANGE || !gb.sw_protected) {
		vcpu_fail(v, "unexpected hypercall %llu", (unsigned long long)run->hypercall.nr);
		return false;
	}
	if (gpa < RAM_GPA || gpa + len > gb.gmem_size || gpa % PAGE_SIZE) {
		vcpu_fail(v, "MAP_GPA_RANGE(0x%llx, %llu pages) outside the test RAM",
			  (unsigned long long)gpa, (unsigned long long)npages);
		return false;
	}
	uint8_t *host = gb.shared + gpa; /* guest_memfd offset = GPA */
	uint32_t seed = v->cfg[W_SEED / 4], hseed = v->cfg[W_HSEED / 4];
	if (!(attrs & KVM_MAP_GPA_RANGE_ENCRYPTED)) {
		uint64_t bad;
		if (!all_zero(host, len, &bad)) {
			vcpu_fail(v, "to shared: the shared memory at GPA 0x%llx is not zero before the "
				  "conversion (private data reached it?)", (unsigned long long)(gpa + bad));
			return false;
		}
		if (fallocate(gb.gmem, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)gpa,
			      (off_t)len) != 0 ||
		    set_attributes(gpa, len, 0) != 0) {
			vcpu_fail(v, "to shared: fallocate(PUNCH_HOLE) + KVM_SET_MEMORY_ATTRIBUTES(0) "
				  "at 0x%llx: %s", (unsigned long long)gpa, strerror(errno));
			return false;
		}
		for (uint64_t p = 0; p < npages; p++)
			for (uint32_t i = 0; i < PAGE_SIZE / 4; i++) {
				uint32_t w = page_word(hseed, gpa + p * PAGE_SIZE, i);
				memcpy(host + p * PAGE_SIZE + 4 * i, &w, 4);
			}
		atomic_fetch_add(&gb.to_shared, 1);
	} else {
		for (uint64_t p = 0; p < npages; p++) {
			int i = page_mismatch(host + p * PAGE_SIZE, seed, gpa + p * PAGE_SIZE);
			if (i >= 0) {
				vcpu_fail(v, "to private: the guest's shared writes are not in the shared "
					  "memory (GPA 0x%llx)",
					  (unsigned long long)(gpa + p * PAGE_SIZE + 4 * (unsigned)i));
				return false;
			}
		}
		if (fallocate(gb.gmem, FALLOC_FL_KEEP_SIZE, (off_t)gpa, (off_t)len) != 0 ||
		    set_attributes(gpa, len, KVM_MEMORY_ATTRIBUTE_PRIVATE) != 0 ||
		    madvise(host, len, MADV_DONTNEED) != 0) {
			vcpu_fail(v, "to private: fallocate + KVM_SET_MEMORY_ATTRIBUTES(PRIVATE) + "
				  "MADV_DONTNEED at 0x%llx: %s", (unsigned long long)gpa, strerror(errno));
			return false;
		}
		atomic_fetch_add(&gb.to_private, 1);
	}
	atomic_fetch_add(&gb.pages_converted, npages);
	run->hypercall.ret = 0;
	return true;
}

static void describe_stop(struct vcpu *v, const char *what)
{
	struct kvm_run *run = v->run;
	struct kvm_regs regs;
	unsigned long long rip = ioctl(v->fd, KVM_GET_REGS, &regs) == 0 ? regs.rip : ~0ull;
	char extra[128] = "";
	if (run->exit_reason == KVM_EXIT_INTERNAL_ERROR)
		snprintf(extra, sizeof(extra), ", suberror %u, ndata %u", run->internal.suberror,
			 run->internal.ndata);
	if (run->exit_reason == KVM_EXIT_MEMORY_FAULT) {
		struct kvm_run_memory_fault *mf = kvm_run_mem_fault(run);
		snprintf(extra, sizeof(extra), ", gpa 0x%llx size 0x%llx flags 0x%llx",
			 (unsigned long long)mf->gpa, (unsigned long long)mf->size,
			 (unsigned long long)mf->flags);
	}
	vcpu_fail(v, "%s: exit reason %u%s, RIP 0x%llx, phase %s", what, run->exit_reason, extra,
		  rip, phases[atomic_load(&v->phase)].name);
}

/* True: run the vCPU again. */
static bool handle_exit(struct vcpu *v)
{
	switch (v->run->exit_reason) {
	case KVM_EXIT_IO:
		return handle_io(v);
	case KVM_EXIT_MMIO:
		return handle_mmio(v);
	case KVM_EXIT_HYPERCALL:
		return handle_hypercall(v);
	case KVM_EXIT_HLT: {
		v->exits[EX_HLT]++;
		int p = atomic_load(&v->phase);
		if (p == PH_DONE || p == PH_ERROR) {
			v->t_halt = now();
			return false;
		}
		describe_stop(v, "HLT before the firmware finished");
		return false;
	}
	default:
		describe_stop(v, "unexpected exit");
		return false;
	}
}

static void kick(int sig) { (void)sig; }

static void stop_all(void)
{
	atomic_store(&gb.stop, true);
	for (int c = 0; c < gb.nr_vcpus; c++) {
		struct vcpu *v = &gb.vcpus[c];
		v->run->immediate_exit = 1;
		if (v->started)
			pthread_kill(v->thread, SIGUSR1);
	}
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	while (!atomic_load(&gb.stop)) {
		int r = ioctl(v->fd, KVM_RUN, 0);
		if (r < 0 && errno == EINTR) {
			v->exits[EX_INTR]++;
			continue;
		}
		if (r < 0 && v->run->exit_reason == KVM_EXIT_MEMORY_FAULT) {
			char what[64];
			snprintf(what, sizeof(what), "KVM_RUN: %s", strerror(errno));
			describe_stop(v, what);
			break;
		}
		if (r < 0) {
			vcpu_fail(v, "KVM_RUN: %s", strerror(errno));
			break;
		}
		if (!handle_exit(v))
			break;
	}
	if (v->fail[0] || atomic_load(&v->phase) == PH_ERROR)
		stop_all();
	atomic_fetch_sub(&gb.running, 1);
	return NULL;
}

/* ============================================================= progress */

static uint64_t work_done(void)
{
	uint64_t done = 0;
	for (int c = 0; c < gb.nr_vcpus; c++)
		done += atomic_load(&gb.vcpus[c].pages_done);
	return done;
}

static void progress_line(bool final)
{
	static int next_decile = 1;
	sample_stats();
	uint64_t done = work_done();
	unsigned pct = gb.total_work ? (unsigned)(done * 100 / gb.total_work) : 0;
	if (!gb.stdout_tty && !final && pct < (unsigned)next_decile * 10)
		return;
	while (next_decile * 10 <= (int)pct)
		next_decile++;

	char line[512], v[8][32];
	const char *fname;
	uint64_t faults = faults_now(&fname);
	size_t n = (size_t)snprintf(line, sizeof(line), "[%3u%%] ", pct);
	for (int i = 0; i < gb.nr_vcpus; i++)
		n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%s", i ? "/" : "",
				      phases[atomic_load(&gb.vcpus[i].phase)].name);
	n += (size_t)snprintf(line + n, sizeof(line) - n, "  pages %llu/%llu  %s %s",
			      (unsigned long long)done, (unsigned long long)gb.total_work, fname,
			      fmt_stat(faults, v[0], sizeof(v[0])));
	if (gb.vm_val[VS_FAULT_RETRIES] != NO_STAT)
		n += (size_t)snprintf(line + n, sizeof(line) - n, " (%llu retries)",
				      (unsigned long long)gb.vm_val[VS_FAULT_RETRIES]);
	n += (size_t)snprintf(line + n, sizeof(line) - n,
			      "  pages_4k %s  zaps %s  exits %s: io %s mmio %s hc %s",
			      fmt_stat(gb.vm_val[VS_PAGES_4K], v[1], sizeof(v[1])),
			      fmt_stat(gb.vm_val[VS_ZAPS], v[2], sizeof(v[2])),
			      fmt_stat(vcpu_sum(CS_EXITS), v[3], sizeof(v[3])),
			      fmt_stat(vcpu_sum(CS_IO), v[4], sizeof(v[4])),
			      fmt_stat(vcpu_sum(CS_MMIO), v[5], sizeof(v[5])),
			      fmt_stat(vcpu_sum(CS_HYPERCALLS), v[6], sizeof(v[6])));
	if (gb.sw_protected)
		n += (size_t)snprintf(line + n, sizeof(line) - n, "  conversions %llu",
				      (unsigned long long)(atomic_load(&gb.to_shared) +
							   atomic_load(&gb.to_private)));
	snprintf(line + n, sizeof(line) - n, "  %.1fs", now() - gb.t_setup);
	if (gb.stdout_tty) {
		struct winsize ws;
		if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 &&
		    strlen(line) >= ws.ws_col)
			line[ws.ws_col - 1] = 0;
		printf("\r%s\033[K%s", line, final ? "\n" : "");
	} else {
		printf("%s\n", line);
	}
	fflush(stdout);
}

static void run_guest(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick; /* no SA_RESTART: KVM_RUN returns EINTR */
	sigemptyset(&sa.sa_mask);
	check(sigaction(SIGUSR1, &sa, NULL), "sigaction(SIGUSR1)");

	gb.t_setup = now();
	atomic_store(&gb.running, gb.nr_vcpus);
	for (int c = 0; c < gb.nr_vcpus; c++) {
		int err = pthread_create(&gb.vcpus[c].thread, NULL, vcpu_thread, &gb.vcpus[c]);
		if (err)
			fail("pthread_create: %s", strerror(err));
		gb.vcpus[c].started = true;
	}
	bool timed_out = false;
	while (atomic_load(&gb.running) > 0) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
		if (atomic_load(&gb.running) > 0)
			progress_line(false);
		if (!timed_out && now() - gb.t_setup > gb.timeout_s) {
			timed_out = true;
			stop_all();
		}
	}
	for (int c = 0; c < gb.nr_vcpus; c++)
		pthread_join(gb.vcpus[c].thread, NULL);
	gb.t_guest = now();
	progress_line(true);
	if (timed_out)
		for (int c = 0; c < gb.nr_vcpus; c++)
			if (atomic_load(&gb.vcpus[c].phase) != PH_DONE)
				vcpu_fail(&gb.vcpus[c], "still in phase %s after the %u s timeout (-T)",
					  phases[atomic_load(&gb.vcpus[c].phase)].name, gb.timeout_s);
}

/* ============================================================== checking */

static int failures;

static void __attribute__((format(printf, 2, 3))) result(bool ok, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(" %s\n", ok ? "OK" : "FAILED");
	failures += !ok;
}

/* The guest's checksums against the VMM's, and what the host can see of the memory. */
static void check_results(void)
{
	bool finished = true;
	for (int c = 0; c < gb.nr_vcpus; c++) {
		struct vcpu *v = &gb.vcpus[c];
		int p = atomic_load(&v->phase);
		finished &= p == PH_DONE && !v->fail[0];
		if (v->fail[0]) {
			printf("  vCPU %d          %s FAILED\n", c, v->fail);
			failures++;
		} else if (p == PH_ERROR) {
			uint32_t e = v->err_code;
			printf("  vCPU %d          the firmware stopped: %s (error %u, GPA 0x%x) FAILED\n",
			       c, e < sizeof(guest_errors) / sizeof(guest_errors[0]) && guest_errors[e]
				      ? guest_errors[e] : "unknown error", e, v->err_gpa);
			failures++;
		} else if (p != PH_DONE) {
			printf("  vCPU %d          stopped in phase %s: another vCPU failed FAILED\n", c,
			       phases[p].name);
			failures++;
		}
	}
	for (int c = 0; c < gb.nr_vcpus; c++) {
		struct vcpu *v = &gb.vcpus[c];
		uint32_t want = expected_checksum(v->cfg[W_SEED / 4], v->cfg[W_BASE / 4],
						  v->cfg[W_PAGES / 4]);
		if (v->have_checksum)
			result(v->checksum == want,
			       "  checksum        vCPU %d: 0x%08x from the device register, the VMM "
			       "computes 0x%08x over %u pages;", c, v->checksum, want,
			       v->cfg[W_PAGES / 4]);
	}
	if (!finished) {
		printf("  host view       not checked: the guest did not finish\n");
	} else if (!gb.sw_protected) {
		/* The host reads the guest's memory through the guest_memfd mapping. */
		bool ok = true;
		for (int c = 0; c < gb.nr_vcpus && ok; c++) {
			struct vcpu *v = &gb.vcpus[c];
			uint64_t base = v->cfg[W_BASE / 4], pages = v->cfg[W_PAGES / 4];
			for (uint64_t p = 0; p < pages && ok; p++) {
				uint64_t gpa = base + p * PAGE_SIZE;
				int i = page_mismatch(gb.gmem_map + gpa, v->cfg[W_SEED / 4], gpa);
				if (i >= 0) {
					printf("  host view       GPA 0x%llx reads 0x%08x\n",
					       (unsigned long long)(gpa + 4 * (unsigned)i),
					       *(uint32_t *)(gb.gmem_map + gpa + 4 * (unsigned)i));
					ok = false;
				}
			}
			if (ok && v->have_checksum)
				ok = memory_checksum(gb.gmem_map + base, pages) == v->checksum;
		}
		result(ok, "  host view       the guest_memfd mapping shows every page the guest wrote "
			   "(%llu MiB) and the same checksums;", (unsigned long long)gb.mib);
	} else {
		/* Private memory is nowhere the host can read: the shared part stays zero. */
		uint64_t bad = 0;
		bool ok = all_zero(gb.shared, gb.gmem_size, &bad);
		if (!ok)
			printf("  host view       the shared memory at GPA 0x%llx is not zero\n",
			       (unsigned long long)bad);
		result(ok, "  host view       the shared memory holds none of the guest's private data "
			   "(%llu MiB of zeros);", (unsigned long long)(gb.gmem_size / MiB));
	}
}

static uint64_t resident_pages(const uint8_t *map, uint64_t len)
{
	uint64_t pages = len / PAGE_SIZE, n = 0;
	unsigned char *vec = malloc(pages);
	if (!vec || mincore((void *)map, len, vec) != 0) {
		free(vec);
		return NO_STAT;
	}
	for (uint64_t i = 0; i < pages; i++)
		n += vec[i] & 1;
	free(vec);
	return n;
}

static void report(void)
{
	char a[32], b[32], c[32], d[32], e[32], f[32], g[32];
	const char *fname;
	uint64_t faults = faults_now(&fname);
	(void)fname;

	/* faults: "-" where the backend has no counter of that name */
	printf("  guest faults    VM: faults %s, fault_retries %s; vCPUs: pf_fixed %s, pf_retry %s, "
	       "pf_taken %s, memory_fault_exits %s\n",
	       fmt_stat(gb.vm_val[VS_FAULTS], a, sizeof(a)),
	       fmt_stat(gb.vm_val[VS_FAULT_RETRIES], b, sizeof(b)),
	       fmt_stat(vcpu_sum(CS_PF_FIXED), c, sizeof(c)),
	       fmt_stat(vcpu_sum(CS_PF_RETRY), d, sizeof(d)),
	       fmt_stat(vcpu_sum(CS_PF_TAKEN), e, sizeof(e)),
	       fmt_stat(vcpu_sum(CS_MEMFAULT), f, sizeof(f)));
	uint64_t insns = vcpu_sum(CS_INSN);
	if (!gb.kvmlike && faults == 0 && insns != NO_STAT && insns > 0)
		printf("                  (the kernel ran the guest in its instruction emulator, "
		       "insn_emulation %llu: it reaches guest memory through the slots' host mapping, "
		       "so no second-level faults)\n", (unsigned long long)insns);

	/* the cost of a first touch: touch minus re-touch, per page */
	double touch = 0, retouch = 0;
	uint64_t pages = 0;
	bool timed = true;
	for (int i = 0; i < gb.nr_vcpus; i++) {
		struct vcpu *v = &gb.vcpus[i];
		if (!v->t_phase[PH_TOUCH] || !v->t_phase[PH_RETOUCH] || !v->t_phase[PH_FILL]) {
			timed = false;
			continue;
		}
		touch += v->t_phase[PH_RETOUCH] - v->t_phase[PH_TOUCH];
		retouch += v->t_phase[PH_FILL] - v->t_phase[PH_RETOUCH];
		pages += v->cfg[W_PAGES / 4];
	}
	if (timed && pages) {
		double first = touch / (double)pages, again = retouch / (double)pages;
		if (first > again)
			snprintf(c, sizeof(c), "%.2f us", (first - again) * 1e6);
		else
			snprintf(c, sizeof(c), "n/a (too few pages to time)");
		printf("  time per fault  %s: first write to each page %.2f us, the same write again "
		       "%.2f us (%llu pages, %s and %s of vCPU time)%s\n",
		       c, first * 1e6, again * 1e6, (unsigned long long)pages,
		       fmt_time(touch, a, sizeof(a)), fmt_time(retouch, b, sizeof(b)),
		       faults && faults != NO_STAT ? ""
			       : ";\n                  no guest faults here: the difference is the "
				 "host's first touch of the guest_memfd pages");
	}

	printf("  zaps            zaps %s, zapped_pages %s, remote_tlb_flush %s\n",
	       fmt_stat(gb.vm_val[VS_ZAPS], a, sizeof(a)),
	       fmt_stat(gb.vm_val[VS_ZAPPED_PAGES], b, sizeof(b)),
	       fmt_stat(gb.vm_val[VS_TLB_FLUSH], c, sizeof(c)));

	/* resident memory */
	uint64_t inode_pages = NO_STAT;
	if (gb.kvmlike) {
		struct objects o = read_objects(gb.kvm);
		for (uint32_t i = 0; i < o.nr; i++)
			if (o.v[i].kind == KVMLIKE_OBJ_INODE)
				inode_pages = (inode_pages == NO_STAT ? 0 : inode_pages) + o.v[i].pages;
		free(o.v);
	}
	printf("  resident        pages_4k %s, pages_2m %s (second-level leaves); guest_memfd inode "
	       "pages %s (KVMLIKE_DEBUG_OBJECTS) of %llu;\n"
	       "                  %s mapping: %s pages resident (mincore, when the guest halted)\n",
	       fmt_stat(gb.vm_val[VS_PAGES_4K], a, sizeof(a)),
	       fmt_stat(gb.vm_val[VS_PAGES_2M], b, sizeof(b)),
	       fmt_stat(inode_pages, c, sizeof(c)), (unsigned long long)(gb.gmem_size / PAGE_SIZE),
	       gb.sw_protected ? "shared (anonymous)" : "guest_memfd",
	       fmt_stat(gb.host_resident, d, sizeof(d)));
	if (gb.kvmlike) {
		struct kvmlike_pool_info pool;
		memset(&pool, 0, sizeof(pool));
		if (ioctl(gb.kvm, KVMLIKE_POOL_INFO, &pool) == 0)
			printf("                  kvmlike's private pool: %llu frames, %llu free\n",
			       (unsigned long long)pool.frames_total, (unsigned long long)pool.frames_free);
		struct kvmlike_walk_gpa w;
		memset(&w, 0, sizeof(w));
		w.gpa = RAM_GPA;
		if (ioctl(gb.vm, KVMLIKE_WALK_GPA, &w) == 0)
			printf("                  GPA 0x%llx: %s leaf, %s%s%s, %s%s\n",
			       (unsigned long long)RAM_GPA, w.level == 1 ? "4 KiB" : "2 MiB",
			       w.perm & KVMLIKE_PERM_READ ? "r" : "-",
			       w.perm & KVMLIKE_PERM_WRITE ? "w" : "-",
			       w.perm & KVMLIKE_PERM_EXEC ? "x" : "-",
			       w.format == KVMLIKE_TDP_NPT ? "NPT" : "EPT",
			       w.flags & KVMLIKE_LEAF_DIRTY ? ", accessed+dirty" : "");
	}

	if (gb.sw_protected) {
		unsigned ranges = 0;
		for (int i = 0; i < gb.nr_vcpus; i++)
			ranges += atomic_load(&gb.vcpus[i].ranges_done);
		printf("  conversions     %llu private->shared, %llu shared->private, %llu pages "
		       "(KVM_HC_MAP_GPA_RANGE, carried out with fallocate + KVM_SET_MEMORY_ATTRIBUTES); "
		       "the guest completed %u round trips\n",
		       (unsigned long long)atomic_load(&gb.to_shared),
		       (unsigned long long)atomic_load(&gb.to_private),
		       (unsigned long long)atomic_load(&gb.pages_converted), ranges);
	}

	/* exits seen by the VMM, then the stats */
	uint64_t k[NR_EXIT_KINDS] = { 0 };
	for (int i = 0; i < gb.nr_vcpus; i++)
		for (int j = 0; j < NR_EXIT_KINDS; j++)
			k[j] += gb.vcpus[i].exits[j];
	uint64_t io = k[EX_POST] + k[EX_PROGRESS] + k[EX_CONVERTED];
	printf("  exits (VMM)     io %llu (POST %llu, progress %llu, conversions %llu), mmio %llu "
	       "(read %llu, write %llu), hypercall %llu, hlt %llu, total %llu",
	       (unsigned long long)io, (unsigned long long)k[EX_POST],
	       (unsigned long long)k[EX_PROGRESS], (unsigned long long)k[EX_CONVERTED],
	       (unsigned long long)(k[EX_MMIO_READ] + k[EX_MMIO_WRITE]),
	       (unsigned long long)k[EX_MMIO_READ], (unsigned long long)k[EX_MMIO_WRITE],
	       (unsigned long long)k[EX_HYPERCALL], (unsigned long long)k[EX_HLT],
	       (unsigned long long)(io + k[EX_MMIO_READ] + k[EX_MMIO_WRITE] + k[EX_HYPERCALL] +
				    k[EX_HLT]));
	if (k[EX_INTR])
		printf("; KVM_RUN interrupted (EINTR) %llu", (unsigned long long)k[EX_INTR]);
	putchar('\n');
	printf("  exits (stats)   exits %s, io_exits %s, mmio_exits %s, hypercalls %s, halt_exits %s, "
	       "signal_exits %s, insn_emulation %s\n",
	       fmt_stat(vcpu_sum(CS_EXITS), a, sizeof(a)), fmt_stat(vcpu_sum(CS_IO), b, sizeof(b)),
	       fmt_stat(vcpu_sum(CS_MMIO), c, sizeof(c)), fmt_stat(vcpu_sum(CS_HYPERCALLS), d, sizeof(d)),
	       fmt_stat(vcpu_sum(CS_HALT), e, sizeof(e)), fmt_stat(vcpu_sum(CS_SIGNAL), f, sizeof(f)),
	       fmt_stat(vcpu_sum(CS_INSN), g, sizeof(g)));

	/* phases */
	for (int i = 0; i < gb.nr_vcpus; i++) {
		struct vcpu *v = &gb.vcpus[i];
		printf("  vCPU %d phases   ", i);
		double prev = 0;
		int prev_p = -1;
		for (int p = PH_RESET; p <= PH_DONE; p++) {
			if (!v->t_phase[p])
				continue;
			if (prev_p >= 0)
				printf("%s %s, ", phases[prev_p].name,
				       fmt_time(v->t_phase[p] - prev, a, sizeof(a)));
			prev = v->t_phase[p];
			prev_p = p;
		}
		if (prev_p >= 0 && prev_p != PH_DONE)
			printf("%s (not finished), ", phases[prev_p].name);
		printf("from the reset vector to HLT %s\n",
		       v->t_halt && v->t_phase[PH_RESET]
			       ? fmt_time(v->t_halt - v->t_phase[PH_RESET], a, sizeof(a))
			       : "-");
	}
}

static void print_setup(void)
{
	printf("guest_boot: %s\n", gb.kvmlike ? "kvmlike (KVMLIKE_PROBE answered)" : "Linux KVM");
	printf("  VM              %s, %d vCPU(s) in their reset state (ESI = vCPU index)\n",
	       gb.sw_protected ? "KVM_X86_SW_PROTECTED_VM" : "KVM_X86_DEFAULT_VM", gb.nr_vcpus);
	if (gb.sw_protected)
		printf("  memory          guest_memfd of %llu MiB, flags 0 (private pages), plus as much "
		       "anonymous memory for shared pages; all RAM PRIVATE at boot\n",
		       (unsigned long long)(gb.gmem_size / MiB));
	else
		printf("  memory          guest_memfd of %llu MiB, flags MMAP|INIT_SHARED, mmap'd: the "
		       "slots' userspace_addr\n", (unsigned long long)(gb.gmem_size / MiB));
	printf("  memslots        0: GPA 0x0, 1 MiB low memory (guest_memfd offset 0); 1: GPA 0x%llx, "
	       "%llu MiB test RAM (offset 0x%llx); 2: GPA 0x%llx, 64 KiB %sflash\n",
	       (unsigned long long)RAM_GPA, (unsigned long long)gb.mib, (unsigned long long)RAM_GPA,
	       (unsigned long long)FLASH_GPA, gb.flash_readonly ? "read-only " : "");
	printf("  firmware        %zu bytes at 0x%llx, reset vector at 0x%llx; device at 0x%llx; "
	       "POST codes on port 0x%x\n",
	       sizeof(firmware), (unsigned long long)FW_GPA, (unsigned long long)RESET_GPA,
	       (unsigned long long)DEV_GPA, PORT_POST);
	if (gb.sw_protected && gb.ranges)
		printf("  conversions     %d ranges of %u pages per vCPU, private -> shared -> private "
		       "(KVM_CAP_EXIT_HYPERCALL: KVM_HC_MAP_GPA_RANGE)\n",
		       gb.ranges, gb.vcpus[0].cfg[W_CPAGES / 4]);
	fflush(stdout);
}

/* =============================================================== teardown */

static void teardown(void)
{
	for (int c = 0; c < gb.nr_vcpus; c++) {
		struct vcpu *v = &gb.vcpus[c];
		stats_close(&v->st);
		munmap(v->run, gb.run_size);
		close(v->fd);
	}
	stats_close(&gb.vm_st);
	/* The guest_memfd goes before the VM: its slots keep the file until the VM dies. */
	if (gb.gmem_map)
		munmap(gb.gmem_map, gb.gmem_size);
	close(gb.gmem);
	close(gb.vm);
	if (gb.shared)
		munmap(gb.shared, gb.gmem_size);
	munmap(gb.flash, FLASH_SIZE);
}

/* Under kvmlike: nothing may be left once everything is closed. */
static void leak_check(void)
{
	if (!gb.kvmlike)
		return;
	struct objects o = read_objects(gb.kvm);
	if (o.nr) {
		printf("  leak check      KVMLIKE_DEBUG_OBJECTS lists %u live object(s) after close:\n",
		       o.nr);
		for (uint32_t i = 0; i < o.nr; i++)
			printf("                    %-8s id %u users %lld refs %lld parent %llu pages %llu "
			       "aux %llu\n",
			       kind_name(o.v[i].kind), o.v[i].id, (long long)o.v[i].users,
			       (long long)o.v[i].refs, (unsigned long long)o.v[i].parent,
			       (unsigned long long)o.v[i].pages, (unsigned long long)o.v[i].aux);
	}
	result(o.nr == 0, "  leak check      KVMLIKE_DEBUG_OBJECTS after closing every fd and "
			  "mapping: %u live objects;", o.nr);
	free(o.v);
	struct kvmlike_pool_info pool;
	memset(&pool, 0, sizeof(pool));
	if (ioctl(gb.kvm, KVMLIKE_POOL_INFO, &pool) == 0)
		result(pool.frames_free == pool.frames_total,
		       "                  kvmlike's private pool: %llu of %llu frames free;",
		       (unsigned long long)pool.frames_free, (unsigned long long)pool.frames_total);
}

/* =================================================================== main */

static void __attribute__((noreturn)) usage(const char *argv0, int status)
{
	fprintf(status ? stderr : stdout,
		"usage: %s [--kernel] [-m MIB] [-c VCPUS] [-t TYPE] [-n RANGES] [-T SECONDS]\n"
		"  Boots a guest firmware on guest_memfd-backed memory and checks what it did.\n"
		"  --kernel  the real /dev/kvm is expected (fails if kvmlike answers)\n"
		"  -m MIB    test RAM (default %d under kvmlike, %d on the kernel, whose\n"
		"            instruction emulator runs these guests)\n"
		"  -c VCPUS  1 or 2 (default 2)\n"
		"  -t TYPE   VM type: 0 default, 1 SW_PROTECTED (default: 1 when offered)\n"
		"  -n RANGES conversion ranges per vCPU on a SW_PROTECTED VM (default %d)\n"
		"  -T SECONDS stop the guest after this long (default %d)\n",
		argv0, DEFAULT_MIB_KVMLIKE, DEFAULT_MIB_KERNEL, DEFAULT_RANGES, DEFAULT_TIMEOUT_S);
	exit(status);
}

static long number(const char *argv0, const char *s, long lo, long hi)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 0);
	if (errno || *end || end == s || v < lo || v > hi)
		usage(argv0, 2);
	return v;
}

int main(int argc, char **argv)
{
	long mib = 0;
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		bool has_val = i + 1 < argc;
		if (strcmp(arg, "--kernel") == 0)
			gb.kernel = true;
		else if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0)
			usage(argv[0], 0);
		else if (strcmp(arg, "-m") == 0 && has_val)
			mib = number(argv[0], argv[++i], 1, 3 * 1024);
		else if (strcmp(arg, "-c") == 0 && has_val)
			gb.nr_vcpus = (int)number(argv[0], argv[++i], 1, MAX_VCPUS);
		else if (strcmp(arg, "-t") == 0 && has_val)
			gb.vm_type = (int)number(argv[0], argv[++i], 0, 1);
		else if (strcmp(arg, "-n") == 0 && has_val)
			gb.ranges = (int)number(argv[0], argv[++i], 0, 1024);
		else if (strcmp(arg, "-T") == 0 && has_val)
			gb.timeout_s = (unsigned)number(argv[0], argv[++i], 1, 3600);
		else
			usage(argv[0], 2);
	}
	gb.stdout_tty = isatty(STDOUT_FILENO);
	gb.t_start = now();

	open_kvm();
	gb.mib = mib ? (uint64_t)mib : gb.kvmlike ? DEFAULT_MIB_KVMLIKE : DEFAULT_MIB_KERNEL;
	create_vm();
	setup_memory();
	create_vcpus();
	print_setup();

	double t_run = now();
	run_guest();
	sample_stats(); /* the figures of the report: everything is still alive */
	gb.host_resident = resident_pages(gb.host_view, gb.gmem_size); /* before the host reads it */
	printf("guest_boot: report (%s, %s VM, %d vCPU(s), %llu MiB)\n",
	       gb.kvmlike ? "kvmlike" : "Linux KVM", gb.sw_protected ? "SW_PROTECTED" : "default",
	       gb.nr_vcpus, (unsigned long long)gb.mib);
	check_results();
	gb.t_checks = now();
	report();
	teardown();
	gb.t_end = now();
	char a[32], b[32], c[32], d[32], e[32];
	printf("  time            total %s: setup %s, guest %s, host checks %s, teardown %s\n",
	       fmt_time(gb.t_end - gb.t_start, a, sizeof(a)), fmt_time(t_run - gb.t_start, b, sizeof(b)),
	       fmt_time(gb.t_guest - t_run, c, sizeof(c)),
	       fmt_time(gb.t_checks - gb.t_guest, d, sizeof(d)),
	       fmt_time(gb.t_end - gb.t_checks, e, sizeof(e)));
	leak_check();
	close(gb.kvm);
	if (failures) {
		fflush(stdout);
		fprintf(stderr, "guest_boot: FAILED: %d check(s) failed (see above)\n", failures);
		return 1;
	}
	printf("guest_boot: OK (%s)\n", gb.kvmlike ? "kvmlike, nothing leaked" : "Linux KVM");
	return 0;
}
