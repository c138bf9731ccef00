// Frontend: the per-process owner of kvmlike — the FdTable and the System
// built on it. The only global: created on first use, never destroyed (its
// objects must stay valid for atexit handlers and forked children).
#pragma once

#include "frontends/capi/fd_table.h"
#include "kvmlike/system.h"

namespace frontend {

struct Frontend {
  FdTable fds;
  kvmlike::System system{fds};
};

// The process's Frontend, created on the first call.
Frontend& Get();
// The process's Frontend if one exists (lock-free), else null.
Frontend* GetIfCreated();

}  // namespace frontend
