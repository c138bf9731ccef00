// A stand-in for the front-end's fd table, for unit tests of kvmlike alone.
// Thread-safe like the real table: the stress test looks fds up from vCPU and
// mutator threads while kvmlike itself looks up guest_memfd fds (slot binds).
#pragma once

#include <unistd.h>

#include <map>
#include <mutex>

#include "kvmlike/fd_object.h"

namespace kvmlike::testing {

class FakeFds final : public FdDirectory {
 public:
  ~FakeFds() { CloseAll(); }
  void CloseAll() {
    for (;;) {
      int fd;
      {
        std::lock_guard g(lock_);
        if (fds_.empty()) return;
        fd = fds_.begin()->first;
      }
      Close(fd);
    }
  }
  int Install(base::UniqueFd fd, base::RefPtr<FdObject> obj) override {
    int n = fd.release();
    std::lock_guard g(lock_);
    fds_[n] = std::move(obj);
    return n;
  }
  base::RefPtr<FdObject> Lookup(int fd) override {
    std::lock_guard g(lock_);
    auto it = fds_.find(fd);
    return it == fds_.end() ? nullptr : it->second;
  }
  int Dup(int fd) {
    int n = dup(fd);
    std::lock_guard g(lock_);
    fds_[n] = fds_.at(fd);
    fds_[n]->AddUser();
    return n;
  }
  // The object's user goes outside the table lock: dropping the last one
  // tears objects down, which may look fds up again.
  void Close(int fd) {
    base::RefPtr<FdObject> obj;
    {
      std::lock_guard g(lock_);
      obj = std::move(fds_.at(fd));
      fds_.erase(fd);
    }
    close(fd);
    obj->DropUser();
  }
  size_t size() const {
    std::lock_guard g(lock_);
    return fds_.size();
  }

 private:
  mutable std::mutex lock_;
  std::map<int, base::RefPtr<FdObject>> fds_;
};

}  // namespace kvmlike::testing
