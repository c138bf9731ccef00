// A stand-in for the front-end's fd table, for unit tests of kvmlike alone.
#pragma once

#include <unistd.h>

#include <map>

#include "kvmlike/fd_object.h"

namespace kvmlike::testing {

class FakeFds final : public FdDirectory {
 public:
  ~FakeFds() { CloseAll(); }
  void CloseAll() {
    while (!fds_.empty()) Close(fds_.begin()->first);
  }
  int Install(base::UniqueFd fd, base::RefPtr<FdObject> obj) override {
    int n = fd.release();
    fds_[n] = std::move(obj);
    return n;
  }
  base::RefPtr<FdObject> Lookup(int fd) override {
    auto it = fds_.find(fd);
    return it == fds_.end() ? nullptr : it->second;
  }
  int Dup(int fd) {
    int n = dup(fd);
    fds_[n] = fds_.at(fd);
    fds_[n]->AddUser();
    return n;
  }
  void Close(int fd) {
    base::RefPtr<FdObject> obj = std::move(fds_.at(fd));
    fds_.erase(fd);
    close(fd);
    obj->DropUser();
  }
  size_t size() const { return fds_.size(); }

 private:
  std::map<int, base::RefPtr<FdObject>> fds_;
};

}  // namespace kvmlike::testing
