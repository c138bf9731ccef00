#include "base/result.h"

namespace base {

const char* ErrorName(Error e) {
  switch (e) {
    case Error::kInvalid: return "invalid argument";
    case Error::kExists: return "exists";
    case Error::kNoMemory: return "out of memory";
    case Error::kBadFd: return "bad fd";
    case Error::kFault: return "bad address";
    case Error::kNotSupported: return "not supported";
    case Error::kNoDevice: return "no such device";
    case Error::kNoTty: return "unknown ioctl";
    case Error::kIo: return "I/O error";
    case Error::kSeek: return "illegal seek";
    case Error::kTooBig: return "too big";
    case Error::kNotFound: return "not found";
    case Error::kBusy: return "busy";
    case Error::kAgain: return "try again";
    case Error::kInterrupted: return "interrupted";
    case Error::kPermission: return "not permitted";
    case Error::kHwPoison: return "hardware poison";
    case Error::kFileTooBig: return "file too big";
  }
  return "?";
}

Error FromErrno(int err) {
  for (int i = 0; i <= static_cast<int>(Error::kFileTooBig); i++) {
    auto e = static_cast<Error>(i);
    if (ToErrno(e) == err) return e;
  }
  return Error::kInvalid;
}

}  // namespace base
