// Clang thread-safety annotations (checked by the clang build with
// -Wthread-safety; GCC ignores them).
#pragma once

#if defined(__clang__)
#define TA_ATTR(x) __attribute__((x))
#else
#define TA_ATTR(x)
#endif

#define TA_CAPABILITY(x) TA_ATTR(capability(x))
#define TA_SCOPED_CAPABILITY TA_ATTR(scoped_lockable)
#define TA_GUARDED_BY(x) TA_ATTR(guarded_by(x))
#define TA_PT_GUARDED_BY(x) TA_ATTR(pt_guarded_by(x))
#define TA_ACQUIRED_BEFORE(...) TA_ATTR(acquired_before(__VA_ARGS__))
#define TA_ACQUIRED_AFTER(...) TA_ATTR(acquired_after(__VA_ARGS__))
#define TA_REQUIRES(...) TA_ATTR(requires_capability(__VA_ARGS__))
#define TA_REQUIRES_SHARED(...) TA_ATTR(requires_shared_capability(__VA_ARGS__))
#define TA_ACQUIRE(...) TA_ATTR(acquire_capability(__VA_ARGS__))
#define TA_ACQUIRE_SHARED(...) TA_ATTR(acquire_shared_capability(__VA_ARGS__))
#define TA_RELEASE(...) TA_ATTR(release_capability(__VA_ARGS__))
#define TA_RELEASE_SHARED(...) TA_ATTR(release_shared_capability(__VA_ARGS__))
#define TA_RELEASE_GENERIC(...) TA_ATTR(release_generic_capability(__VA_ARGS__))
#define TA_TRY_ACQUIRE(...) TA_ATTR(try_acquire_capability(__VA_ARGS__))
#define TA_EXCLUDES(...) TA_ATTR(locks_excluded(__VA_ARGS__))
#define TA_ASSERT_CAPABILITY(x) TA_ATTR(assert_capability(x))
#define TA_RETURN_CAPABILITY(x) TA_ATTR(lock_returned(x))
#define TA_NO_THREAD_SAFETY_ANALYSIS TA_ATTR(no_thread_safety_analysis)
