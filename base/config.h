// Kconfig options as constexpr values (the generated autoconf.h omits options
// that are 'n'). Code tests them with `if constexpr`, never with #ifdef.
#pragma once

#include <cstdint>

#include "generated/autoconf.h"

namespace base::config {

#ifdef CONFIG_VM_TYPE_SW_PROTECTED
inline constexpr bool kVmTypeSwProtected = true;
#else
inline constexpr bool kVmTypeSwProtected = false;
#endif

inline constexpr uint32_t kMaxMemslots = CONFIG_MAX_MEMSLOTS;

#ifdef CONFIG_GMEM_OVERLAP_EEXIST
inline constexpr bool kGmemOverlapEexist = true;
#else
inline constexpr bool kGmemOverlapEexist = false;
#endif

#ifdef CONFIG_GMEM_SLOTS_KEEP_FILE_IN_USE
inline constexpr bool kSlotsKeepFileInUse = true;
#else
inline constexpr bool kSlotsKeepFileInUse = false;
#endif

inline constexpr uint64_t kPoolReserveGiB = CONFIG_POOL_RESERVE_GIB;

// Second-level table format override: 0 by VM type, 1 EPT, 2 NPT.
#if defined(CONFIG_TDP_FORMAT_EPT)
inline constexpr int kTdpFormatOverride = 1;
#elif defined(CONFIG_TDP_FORMAT_NPT)
inline constexpr int kTdpFormatOverride = 2;
#else
inline constexpr int kTdpFormatOverride = 0;
#endif

#ifdef CONFIG_X86_TRANSLATOR
inline constexpr bool kX86Translator = true;
#else
inline constexpr bool kX86Translator = false;
#endif

#ifdef CONFIG_DEBUG_CHECKS
inline constexpr bool kDebugChecks = true;
#else
inline constexpr bool kDebugChecks = false;
#endif

}  // namespace base::config
