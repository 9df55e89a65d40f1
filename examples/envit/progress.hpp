// examples/envit/progress.hpp — terminal progress for training: a live bar per epoch (loss,
// images/s, ETA) when stderr is a terminal, plain lines at ~10% steps otherwise (logs, CI).
#pragma once
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

namespace envit::cli {

class ProgressBar {
 public:
  ProgressBar(std::string title, std::int64_t total, int images_per_step)
      : title_(std::move(title)), total_(total), ipb_(images_per_step),
        tty_(::isatty(STDERR_FILENO) != 0), t0_(clock::now()) {}

  void update(std::int64_t done, double loss) {
    const double secs = seconds();
    const double ips = secs > 0 ? double(done - start_) * ipb_ / secs : 0.0;
    const double eta = done > start_ ? secs / double(done - start_) * double(total_ - done) : 0.0;
    if (tty_) {
      const int width = 28;
      const int fill = total_ > 0 ? int(double(done) / double(total_) * width) : width;
      std::string bar(std::size_t(fill), '#');
      bar.resize(width, '.');
      std::fprintf(stderr, "\r%s [%s] %lld/%lld loss %.4f  %.0f img/s  ETA %s   ", title_.c_str(), bar.c_str(),
                   (long long)done, (long long)total_, loss, ips, fmt(eta).c_str());
      std::fflush(stderr);
    } else {
      const std::int64_t tenth = std::max<std::int64_t>(1, total_ / 10);
      if (done == total_ || done / tenth != last_ / tenth)
        std::fprintf(stderr, "%s %lld/%lld loss %.4f  %.0f img/s  ETA %s\n", title_.c_str(), (long long)done,
                     (long long)total_, loss, ips, fmt(eta).c_str());
    }
    last_ = done;
  }
  void start_at(std::int64_t done) { start_ = last_ = done; t0_ = clock::now(); }
  void finish() {
    if (tty_) std::fprintf(stderr, "\n");
  }
  double seconds() const { return std::chrono::duration<double>(clock::now() - t0_).count(); }

  static std::string fmt(double s) {
    char buf[32];
    long t = long(s + 0.5);
    if (t >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
    return buf;
  }

 private:
  using clock = std::chrono::steady_clock;
  std::string title_;
  std::int64_t total_;
  int ipb_;
  bool tty_;
  clock::time_point t0_;
  std::int64_t start_ = 0, last_ = 0;
};

}  // namespace envit::cli
