// examples/envit/cli.hpp — the command-line conventions shared by `envit` and the bench programs,
// on top of CLI11: exit codes, errors and usage on stderr, `--version`, the default thread count.
//
// Exit codes (listed by every program's --help):
//   0  success (also --help and --version)
//   1  runtime error: unreadable or malformed file, dataset or checkpoint, failed write
//   2  usage error: unknown flag, missing or malformed value, value out of range
//   3  `envit train` only: a non-finite loss or gradient stopped training (last checkpoint kept)
#pragma once
#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>

#include "envit/core/error.hpp"
#include "envit/core/parallel.hpp"
#include "envit/core/precision.hpp"
#include "envit/kernels/dispatch.hpp"
#include "envit/version.hpp"

namespace envit::cli {

enum ExitCode : int { kExitOk = 0, kExitRuntime = 1, kExitUsage = 2, kExitNonFinite = 3 };

inline constexpr const char* kExitCodesHelp =
    "Exit codes: 0 success; 1 runtime error (file, dataset or checkpoint unreadable or malformed, "
    "write failed); 2 usage error (unknown flag, bad or out-of-range value; usage on stderr)";

// A usage error found after parsing (a bad combination of values, a malformed list): exit code 2.
struct UsageError : std::runtime_error { using std::runtime_error::runtime_error; };

// The thread count OpenMP would use: OMP_NUM_THREADS when set, else the cores available.
// Read before anything calls set_num_threads.
inline int default_threads() { return num_threads(); }

// `--threads N` with the OpenMP default, range-checked.
inline CLI::Option* add_threads_option(CLI::App& app, int& threads) {
  threads = default_threads();
  return app.add_option("--threads", threads, "OpenMP threads (default: OMP_NUM_THREADS, else the cores)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
}

// A floating-point option parsed with strtod (correctly rounded, as the C++ literal of the same
// text), finite and within [lo, hi]; CLI11's own conversion goes through long double.
inline CLI::Option* add_real(CLI::App& app, const std::string& name, double& v, const std::string& help, double lo,
                             double hi, bool show_default = true) {
  CLI::Option* o = app.add_option(
      name,
      [&v, name, lo, hi](const CLI::results_t& r) {
        const std::string& s = r.back();
        char* end = nullptr;
        const double x = std::strtod(s.c_str(), &end);
        if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(x))
          throw CLI::ConversionError(name + ": '" + s + "' is not a finite number");
        if (x < lo || x > hi)
          throw CLI::ValidationError(name, "value " + s + " not in range [" + CLI::detail::to_string(lo) + " - " +
                                               CLI::detail::to_string(hi) + "]");
        v = x;
        return true;
      },
      help);
  o->type_name("FLOAT")->expected(1);
  if (show_default) o->default_str(CLI::detail::to_string(v));
  return o;
}

// Runs f, reporting the library's ValueError/ShapeError (a model or option that does not
// validate) as a usage error: the values came from flags.
template <class F>
void as_usage_error(F&& f) {
  try {
    f();
  } catch (const ValueError& e) {
    throw UsageError(e.what());
  } catch (const ShapeError& e) {
    throw UsageError(e.what());
  }
}

// `--precision fp32|bf16` (core/precision.hpp): the arithmetic of the matrix products; with
// inference = true (`envit eval`, the model bench) also int8. Kept as text and read with
// precision_flag, so that a bad value is parse_precision's error naming the flag.
inline CLI::Option* add_precision_option(CLI::App& app, std::string& precision, const std::string& help,
                                         bool inference = false) {
  return app.add_option("--precision", precision, help)->type_name(inference ? "fp32|bf16|int8" : "fp32|bf16");
}
// The value of --precision, or `fallback` when it was not given; a bad value is a usage error.
inline Precision precision_flag(bool given, const std::string& precision, Precision fallback, bool inference = false) {
  if (!given) return fallback;
  try {
    return inference ? parse_inference_precision(precision, "--precision") : parse_precision(precision, "--precision");
  } catch (const ValueError& e) {
    throw UsageError(e.what());
  }
}

// An integer at least `lo` (help shows ">= lo" rather than the full range of the type).
inline CLI::Validator at_least(std::int64_t lo) {
  CLI::Range r(lo, INT64_MAX);
  r.description(">= " + std::to_string(lo));
  return r;
}

// --version, the footer with the exit codes, and errors printed as "<name>: error: ...".
inline void setup_app(CLI::App& app, const std::string& extra_exit_codes = "") {
  app.set_version_flag(
      "--version",
      [name = std::string(app.get_name())] {
        std::string kernels;  // the GEMM kernel set in use; a bad ENVIT_ISA is reported, not thrown
        try {
          kernels = envit::kernel_set_info();
        } catch (const std::exception& e) {
          kernels = std::string("kernels: error: ") + e.what();
        }
        return name + " " + ENVIT_VERSION_STRING + "\n" + kernels;
      },
      "print the version and the kernel set in use, and exit");
  app.footer(std::string(kExitCodesHelp) + extra_exit_codes + ".\n");
}

namespace detail {

inline const CLI::App* deepest_parsed(const CLI::App& app) {
  for (const CLI::App* sub : app.get_subcommands())
    if (sub->parsed()) return deepest_parsed(*sub);
  return &app;
}

inline std::string full_name(const CLI::App& app) {
  const CLI::App* parent = app.get_parent();
  return parent ? full_name(*parent) + " " + app.get_name() : app.get_name();
}

inline int usage_error(const CLI::App& app, const std::string& what) {
  const CLI::App* at = deepest_parsed(app);
  const std::string name = full_name(*at);
  std::string usage = "Usage: " + name;
  if (!at->get_options([](const CLI::Option* o) { return o->nonpositional(); }).empty()) usage += " [OPTIONS]";
  for (const CLI::Option* o : at->get_options([](const CLI::Option* o) { return o->get_positional(); }))
    usage += " " + o->get_name();
  if (!at->get_subcommands({}).empty()) usage += " SUBCOMMAND";
  std::fprintf(stderr, "%s: error: %s\n%s\nRun '%s --help' for the options.\n", name.c_str(), what.c_str(),
               usage.c_str(), name.c_str());
  return kExitUsage;
}

}  // namespace detail

// Parses argv into `app`, then runs body() (which returns the exit code). --help and --version
// print to stdout and give 0; parse errors and UsageError print the error and usage to stderr and
// give 2; any other exception prints "<name>: error: ..." and gives 1.
template <class Body>
int run(CLI::App& app, int argc, char** argv, Body&& body) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    return detail::usage_error(app, e.what());
  }
  try {
    return body();
  } catch (const UsageError& e) {
    return detail::usage_error(app, e.what());
  } catch (const CLI::ParseError& e) {
    return detail::usage_error(app, e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", detail::full_name(*detail::deepest_parsed(app)).c_str(), e.what());
    return kExitRuntime;
  }
}

}  // namespace envit::cli
