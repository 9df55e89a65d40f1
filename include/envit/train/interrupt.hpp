// envit/train/interrupt.hpp — Ctrl-C that keeps the work: while a StopSignals object lives, the first
// SIGINT or SIGTERM only sets a flag that a training loop polls between steps (it then writes a
// checkpoint and returns); a second one restores the default action and re-raises, so the process
// stops at once. Checkpoint writes are atomic (envit/io/file.hpp), so stopping at any instant, even
// by SIGKILL, leaves the previous checkpoint intact.
// One object at a time per process (the flag is process-wide, as signal dispositions are).
#pragma once
#include <signal.h>

#include <csignal>

#include "envit/core/error.hpp"

namespace envit {

namespace detail {
inline volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" inline void envit_stop_handler(int sig) {
  if (g_stop_signal != 0) {  // second signal: stop now with the default action
    ::signal(sig, SIG_DFL);
    ::raise(sig);
    return;
  }
  g_stop_signal = sig;
}
}  // namespace detail

class StopSignals {
 public:
  StopSignals() {
    detail::g_stop_signal = 0;
    struct sigaction sa {};
    sa.sa_handler = detail::envit_stop_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    ENVIT_CHECK(::sigaction(SIGINT, &sa, &old_int_) == 0 && ::sigaction(SIGTERM, &sa, &old_term_) == 0, IoError,
                "cannot install the SIGINT/SIGTERM handlers");
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  ~StopSignals() {
    ::sigaction(SIGINT, &old_int_, nullptr);
    ::sigaction(SIGTERM, &old_term_, nullptr);
  }
  // The signal received (SIGINT or SIGTERM), or 0 while none has arrived.
  int received() const { return detail::g_stop_signal; }
  bool requested() const { return detail::g_stop_signal != 0; }

 private:
  struct sigaction old_int_ {}, old_term_ {};
};

}  // namespace envit
