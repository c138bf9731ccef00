// Errors are values. Fallible functions return Result<T> (or Status) carrying an
// internal Error; the ioctl boundary is the only place an Error becomes an errno
// (ToErrno). Propagate with TRY / TRY_ASSIGN.
#pragma once

#include <cerrno>
#include <cstdint>
#include <utility>
#include <variant>

namespace base {

enum class Error : uint8_t {
  kInvalid,        // EINVAL: malformed argument
  kExists,         // EEXIST: overlaps something that exists
  kNoMemory,       // ENOMEM
  kBadFd,          // EBADF
  kFault,          // EFAULT: user memory not accessible
  kNotSupported,   // EOPNOTSUPP
  kNoDevice,       // ENODEV: e.g. mmap of a file that has no mmap
  kNoTty,          // ENOTTY: ioctl not known on this fd
  kIo,             // EIO: VM used from another process
  kSeek,           // ESPIPE
  kTooBig,         // E2BIG
  kNotFound,       // ENOENT
  kBusy,           // EBUSY
  kAgain,          // EAGAIN
  kInterrupted,    // EINTR
  kPermission,     // EPERM
  kHwPoison,       // EHWPOISON
  kFileTooBig,     // EFBIG
};

constexpr int ToErrno(Error e) {
  switch (e) {
    case Error::kInvalid: return EINVAL;
    case Error::kExists: return EEXIST;
    case Error::kNoMemory: return ENOMEM;
    case Error::kBadFd: return EBADF;
    case Error::kFault: return EFAULT;
    case Error::kNotSupported: return EOPNOTSUPP;
    case Error::kNoDevice: return ENODEV;
    case Error::kNoTty: return ENOTTY;
    case Error::kIo: return EIO;
    case Error::kSeek: return ESPIPE;
    case Error::kTooBig: return E2BIG;
    case Error::kNotFound: return ENOENT;
    case Error::kBusy: return EBUSY;
    case Error::kAgain: return EAGAIN;
    case Error::kInterrupted: return EINTR;
    case Error::kPermission: return EPERM;
    case Error::kHwPoison: return EHWPOISON;
    case Error::kFileTooBig: return EFBIG;
  }
  return EINVAL;
}

const char* ErrorName(Error e);
// The Error for an errno a host syscall gave (kInvalid for ones without a kind).
Error FromErrno(int err);

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Error e) : v_(e) {}                 // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  Error error() const { return std::get<1>(v_); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  T& operator*() & { return value(); }

 private:
  std::variant<T, Error> v_;
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error e) : ok_(false), e_(e) {}  // NOLINT
  static Status Ok() { return Status(); }
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  Error error() const { return e_; }

 private:
  bool ok_ = true;
  Error e_ = Error::kInvalid;
};

}  // namespace base

#define BASE_CONCAT_INNER(a, b) a##b
#define BASE_CONCAT(a, b) BASE_CONCAT_INNER(a, b)

// TRY(expr): return the error of a Status/Result expression.
#define TRY(expr)                                      \
  do {                                                 \
    auto&& _try_r = (expr);                            \
    if (!_try_r.ok()) return _try_r.error();           \
  } while (0)

// TRY_ASSIGN(lhs, expr): lhs = value of a Result, or return its error.
#define TRY_ASSIGN(lhs, expr) TRY_ASSIGN_IMPL(BASE_CONCAT(_try_v, __LINE__), lhs, expr)
#define TRY_ASSIGN_IMPL(tmp, lhs, expr)      \
  auto tmp = (expr);                         \
  if (!tmp.ok()) return tmp.error();         \
  lhs = std::move(tmp).value()
