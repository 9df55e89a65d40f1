// tests/fuzz/fuzz_util.hpp — what the libFuzzer harnesses share: the envit readers open files by
// path, so each input is written to an anonymous in-memory file (memfd) reached as /proc/self/fd/N.
#pragma once
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace envit::fuzz {

class MemFile {
 public:
  MemFile() : fd_(::memfd_create("envit-fuzz", MFD_CLOEXEC)) {
    if (fd_ < 0) std::abort();
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  ~MemFile() { ::close(fd_); }
  // Replaces the file's content with data[0..n).
  const std::string& set(const std::uint8_t* data, std::size_t n) {
    if (::ftruncate(fd_, 0) != 0) std::abort();
    std::size_t done = 0;
    while (done < n) {
      ssize_t r = ::pwrite(fd_, data + done, n - done, static_cast<off_t>(done));
      if (r <= 0) std::abort();
      done += static_cast<std::size_t>(r);
    }
    return path_;
  }
  const std::string& path() const { return path_; }

 private:
  int fd_;
  std::string path_;
};

}  // namespace envit::fuzz
