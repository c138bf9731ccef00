#include "frontends/preload/preload_real.h"

#include <dlfcn.h>

namespace preload {

char kRealMissing;

namespace {

// Set while this thread is inside dlsym(). initial-exec TLS: reading it is a plain
// %fs-relative load, never a __tls_get_addr() call that could itself allocate.
__attribute__((tls_model("initial-exec"))) thread_local bool t_resolving = false;

}  // namespace

void* ResolveReal(const char* name, std::atomic<void*>& slot) {
  if (t_resolving) return nullptr;
  t_resolving = true;
  void* fn = dlsym(RTLD_NEXT, name);
  t_resolving = false;
  if (fn == nullptr) fn = &kRealMissing;
  slot.store(fn, std::memory_order_release);
  return fn;
}

namespace real {

void ResolveAll() {
#define PRELOAD_RESOLVE_REAL(name) static_cast<void>(name.Get());
  PRELOAD_REAL_SYMBOLS(PRELOAD_RESOLVE_REAL)
#undef PRELOAD_RESOLVE_REAL
}

}  // namespace real

}  // namespace preload
