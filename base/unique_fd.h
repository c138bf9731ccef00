// A kernel fd with one owner.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <utility>

namespace base {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) { reset(); fd_ = std::exchange(o.fd_, -1); }
    return *this;
  }
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }
  void reset() { if (fd_ >= 0) ::close(std::exchange(fd_, -1)); }

 private:
  int fd_ = -1;
};

// kvmlike's own fds sit high, away from the numbers programs expect to get.
inline constexpr int kOwnFdMin = 1000;

// A close-on-exec duplicate of fd numbered kOwnFdMin or above; invalid (errno
// set) on failure.
inline UniqueFd DupOwnFd(int fd) { return UniqueFd(fcntl(fd, F_DUPFD_CLOEXEC, kOwnFdMin)); }

}  // namespace base
