// envit/core/error.hpp — the exception types and check macros every envit header uses.
// Does not log or abort: every failure is an exception whose message names what was wrong.
#pragma once
#include <cmath>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace envit {

// The base of every exception an envit header throws: `catch (const envit::Error&)` catches them all.
struct Error : std::runtime_error { using std::runtime_error::runtime_error; };
// A shape or size did not match what an operation needs.
struct ShapeError : Error { using Error::Error; };
// A value (index, option, configuration field) is out of its valid range.
struct ValueError : Error { using Error::Error; };
// A file could not be read or is malformed; message names the file and the offset.
struct IoError : Error { using Error::Error; };

namespace detail {
// Writes one message part; a NaN prints as "nan" whatever its sign bit, which differs between CPUs
// for the same computation (x86-64 and ARM64), so a message reads the same on every CPU.
template <class A> void cat_part(std::ostringstream& os, const A& a) {
  if constexpr (std::is_floating_point_v<A>) {
    if (std::isnan(a)) {
      os << "nan";
      return;
    }
  }
  os << a;
}
template <class... A> std::string cat(const A&... a) {
  std::ostringstream os;
  (cat_part(os, a), ...);
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
