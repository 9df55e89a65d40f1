// envit/core/error.hpp — the exception types and check macros every envit header uses.
// Does not log or abort: every failure is an exception whose message names what was wrong.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace envit {

// A shape or size did not match what an operation needs.
struct ShapeError : std::invalid_argument { using std::invalid_argument::invalid_argument; };
// A value (index, option, configuration field) is out of its valid range.
struct ValueError : std::invalid_argument { using std::invalid_argument::invalid_argument; };
// A file could not be read or is malformed; message names the file and the offset.
struct IoError : std::runtime_error { using std::runtime_error::runtime_error; };

namespace detail {
template <class... A> std::string cat(const A&... a) {
  std::ostringstream os;
  (os << ... << a);
  return os.str();
}
}  // namespace detail

}  // namespace envit

// Always-on checks (cheap, at API boundaries). The message is built only on failure.
#define ENVIT_CHECK(cond, Exc, ...)                                              \
  do {                                                                           \
    if (!(cond)) throw Exc(::envit::detail::cat(__VA_ARGS__));                   \
  } while (0)

// Checks inside hot loops: only in debug builds (NDEBUG unset) or with ENVIT_DEBUG_CHECKS.
#if !defined(NDEBUG) || defined(ENVIT_DEBUG_CHECKS)
#define ENVIT_DCHECK(cond, Exc, ...) ENVIT_CHECK(cond, Exc, __VA_ARGS__)
#else
#define ENVIT_DCHECK(cond, Exc, ...) do { } while (0)
#endif
