// envit/io/file.hpp — POSIX file helpers shared by envit's readers and writers: a read-only file
// with exact positional reads (errors name the file, what was being read and the byte offset),
// and an atomic writer (path.tmp.<pid>, fsync, rename, fsync of the directory).
// Deliberately not a stream library: no buffering, no text mode, Linux/POSIX only.
#pragma once
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>
#include <system_error>
#include <utility>

#include "envit/core/error.hpp"

namespace envit::io {

inline std::string errno_message(int e) { return std::error_code(e, std::generic_category()).message(); }

inline bool file_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// A regular file opened for reading; size known up front.
class InFile {
 public:
  // `hint` is appended to the message when the file does not exist (how to obtain it).
  explicit InFile(std::string path, const std::string& hint = {}) : path_(std::move(path)) {
    fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) {
      int e = errno;
      throw IoError(detail::cat("cannot open '", path_, "': ", errno_message(e),
                                (e == ENOENT && !hint.empty()) ? ". " : "", e == ENOENT ? hint : ""));
    }
    struct stat st;
    if (::fstat(fd_, &st) != 0) {
      int e = errno;
      ::close(fd_);
      throw IoError(detail::cat("cannot stat '", path_, "': ", errno_message(e)));
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd_);
      throw IoError(detail::cat("'", path_, "' is not a regular file"));
    }
    size_ = static_cast<std::uint64_t>(st.st_size);
  }
  InFile(const InFile&) = delete;
  InFile& operator=(const InFile&) = delete;
  ~InFile() {
    if (fd_ >= 0) ::close(fd_);
  }

  const std::string& path() const { return path_; }
  std::uint64_t size() const { return size_; }

  // Reads up to n bytes at offset `off`; returns the count (short only at end of file).
  std::size_t read_some(void* dst, std::size_t n, std::uint64_t off) const {
    auto* p = static_cast<unsigned char*>(dst);
    std::size_t got = 0;
    while (got < n) {
      std::size_t chunk = std::min<std::size_t>(n - got, std::size_t{1} << 30);
      ssize_t r = ::pread(fd_, p + got, chunk, static_cast<off_t>(off + got));
      if (r < 0) {
        if (errno == EINTR) continue;
        int e = errno;
        throw IoError(detail::cat("'", path_, "': read error at byte offset ", off + got, ": ",
                                  errno_message(e)));
      }
      if (r == 0) break;
      got += static_cast<std::size_t>(r);
    }
    return got;
  }
  // Reads exactly n bytes at `off` or throws, naming `what` was being read.
  void read_exact(void* dst, std::size_t n, std::uint64_t off, const char* what) const {
    std::size_t got = read_some(dst, n, off);
    ENVIT_CHECK(got == n, IoError, "'", path_, "': truncated while reading ", what, " at byte offset ",
                off, ": expected ", n, " bytes, got ", got);
  }

 private:
  std::string path_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
};

// Writes `path` atomically: bytes go to path.tmp.<pid>; commit() fsyncs, renames over `path` and
// fsyncs the directory. Destroying an uncommitted writer removes the temporary file, so a crash or
// exception mid-write never leaves a half-written `path` (the previous version stays intact).
class AtomicWriter {
 public:
  explicit AtomicWriter(std::string path) : path_(std::move(path)) {
    tmp_ = detail::cat(path_, ".tmp.", ::getpid());
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) {
      int e = errno;
      throw IoError(detail::cat("cannot create '", tmp_, "' (to write '", path_, "'): ", errno_message(e)));
    }
  }
  AtomicWriter(const AtomicWriter&) = delete;
  AtomicWriter& operator=(const AtomicWriter&) = delete;
  ~AtomicWriter() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_.c_str());
  }

  void write(const void* src, std::size_t n) {
    const auto* p = static_cast<const unsigned char*>(src);
    while (n > 0) {
      ssize_t r = ::write(fd_, p, std::min<std::size_t>(n, std::size_t{1} << 30));
      if (r < 0) {
        if (errno == EINTR) continue;
        fail("write");
      }
      p += r;
      n -= static_cast<std::size_t>(r);
      written_ += static_cast<std::uint64_t>(r);
    }
  }
  std::uint64_t written() const { return written_; }

  void commit() {
    if (::fsync(fd_) != 0) fail("fsync");
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail("close");
    if (::rename(tmp_.c_str(), path_.c_str()) != 0) fail("rename");
    committed_ = true;
    // Make the rename itself durable; best effort (some filesystems refuse fsync on directories).
    auto slash = path_.find_last_of('/');
    std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path_.substr(0, slash);
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      (void)::fsync(dfd);
      ::close(dfd);
    }
  }

 private:
  [[noreturn]] void fail(const char* op) {
    int e = errno;
    throw IoError(detail::cat("cannot write '", path_, "' (", op, " of '", tmp_, "' after ", written_,
                              " bytes): ", errno_message(e)));
  }
  std::string path_, tmp_;
  int fd_ = -1;
  bool committed_ = false;
  std::uint64_t written_ = 0;
};

}  // namespace envit::io
