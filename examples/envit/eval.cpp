// examples/envit/eval.cpp — `envit eval` (placeholder until the inference library lands).
#include "cli.hpp"
namespace envit::cli {
int cmd_eval(int, char**) { throw UsageError("eval is not built yet"); }
}  // namespace envit::cli
