// envit/io/dir_lock.hpp — exclusive use of an output directory: DirLock takes flock(LOCK_EX) on
// `<dir>/.envit.lock` for its lifetime, so a second trainer pointed at the same directory refuses at
// once (with the holder's pid) instead of interleaving checkpoints. The kernel drops the lock when
// the holder exits in any way, kill -9 included, so a stale lock file never blocks a later run.
// While the lock is held no other envit process writes in the directory, so leftover temporaries of
// interrupted atomic writes (`<name>.tmp.<pid>`) are stale and remove_stale_temporaries() deletes them.
#pragma once
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <string>
#include <vector>

#include "envit/core/error.hpp"
#include "envit/io/file.hpp"

namespace envit::io {

class DirLock {
 public:
  explicit DirLock(std::string dir) : dir_(std::move(dir)), path_(dir_ + "/.envit.lock") {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) {
      int e = errno;
      throw IoError(detail::cat("cannot create the lock file '", path_, "': ", errno_message(e)));
    }
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      int e = errno;
      char buf[32] = {};
      ssize_t r = ::pread(fd_, buf, sizeof buf - 1, 0);
      std::string holder = r > 0 ? std::string(buf, static_cast<std::size_t>(r)) : "?";
      while (!holder.empty() && std::isspace(static_cast<unsigned char>(holder.back()))) holder.pop_back();
      ::close(fd_);
      if (e == EWOULDBLOCK)
        throw IoError(detail::cat("output directory '", dir_, "' is in use by another envit process (pid ", holder,
                                  " holds '", path_, "'); wait for it to finish or choose another output directory"));
      throw IoError(detail::cat("cannot lock '", path_, "': ", errno_message(e)));
    }
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
      // The pid only improves the message a second process prints; the lock itself holds.
    }
  }
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;
  ~DirLock() {
    if (fd_ >= 0) ::close(fd_);  // releases the lock; the file stays (removing it would race a new locker)
  }

  const std::string& path() const { return path_; }

  // Deletes `<name>.tmp.<digits>` files in the directory; returns their names.
  std::vector<std::string> remove_stale_temporaries() const {
    std::vector<std::string> removed;
    DIR* d = ::opendir(dir_.c_str());
    if (!d) return removed;
    while (const dirent* ent = ::readdir(d)) {
      const std::string n = ent->d_name;
      const auto t = n.rfind(".tmp.");
      if (t == std::string::npos || t == 0 || t + 5 == n.size()) continue;
      bool digits = true;
      for (std::size_t i = t + 5; i < n.size(); ++i) digits = digits && std::isdigit(static_cast<unsigned char>(n[i]));
      if (digits && ::unlink((dir_ + "/" + n).c_str()) == 0) removed.push_back(n);
    }
    ::closedir(d);
    return removed;
  }

 private:
  std::string dir_, path_;
  int fd_ = -1;
};

}  // namespace envit::io
