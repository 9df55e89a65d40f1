// tests/mpi/compare_runs.cpp — checks for the MPI tests (tests/mpi.cmake):
//   compare_runs steps A.jsonl B.jsonl TOL [FIRST]  every step >= FIRST present in both --step-log
//                                                   files, losses within TOL relative
//   compare_runs weights A.safetensors B.safetensors TOL [HEAD_TOL]
//                                                   every F32 tensor: |a-b| / |a| <= TOL (L2); the
//                                                   entries of LGViT conv heads (with BatchNorm) and
//                                                   their optimiser moments within HEAD_TOL (default TOL)
// Except the key third of each attention qkv bias: its gradient is zero in exact arithmetic (softmax
// is invariant to a shift of the keys' bias), so it holds only AdamW-normalised rounding noise,
// different for any change of summation order. It is checked to stay below 1e-3 in magnitude.
// Likewise in LGViT conv heads: the conv2 bias and the beta of the BatchNorm feeding conv2
// (proj_bn in conv1_1 heads, conv1.2 in conv2_1 heads) only shift the input of BatchNorm conv2.1
// per channel, which it removes, so their gradients are zero in exact arithmetic; they, their
// optimiser moments and conv2.1's running mean (which follows the conv2 bias) are checked to stay
// below 0.1 in magnitude (AdamW moves an entry by about lr per step: 20 steps at 3e-3 < 0.1).
// The other entries of those heads are nearly such shifts (the conv1 and depthwise biases before a
// GELU and a BatchNorm; the running means): AdamW amplifies the rounding of their small gradients,
// so any change of summation order moves them by ~1e-4 relative (also 1 against 2 threads of one
// process: 1.6e-4 on conv1.0.bias), hence HEAD_TOL.
// Exit 0 when the check holds, 1 (with the worst case named) otherwise.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <string>

#include "envit/io/safetensors.hpp"

namespace {

bool ends_with(const std::string& s, const std::string& t) {
  return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
}
// An LGViT head entry whose gradient is zero in exact arithmetic (see the file comment).
bool bn_shift(const std::string& name, const envit::StFile& f) {
  if (ends_with(name, "mlp.conv2.0.bias") || ends_with(name, "mlp.conv2.1.running_mean") ||
      ends_with(name, "mlp.proj_bn.bias"))
    return true;
  if (!ends_with(name, "mlp.conv1.2.bias")) return false;
  const std::string head = name.substr(0, name.size() - std::string("conv1.2.bias").size());
  for (const envit::StTensor& t : f.tensors)
    if (t.name == head + "proj_bn.bias") return false;  // conv1_1: conv1.2 feeds the depthwise conv
  return true;
}

std::map<long long, double> read_steps(const char* path) {
  std::ifstream in(path);
  if (!in) throw envit::IoError(std::string("cannot open step log '") + path + "'");
  std::map<long long, double> m;
  std::string line;
  while (std::getline(in, line)) {
    long long s = 0;
    double loss = 0;
    if (std::sscanf(line.c_str(), "{\"step\":%lld,\"loss\":%lf", &s, &loss) == 2) m[s] = loss;
  }
  return m;
}

int steps(const char* a, const char* b, double tol, long long first) {
  auto A = read_steps(a), B = read_steps(b);
  int n = 0;
  double worst = 0;
  for (auto& [s, la] : B) {
    if (s < first) continue;
    auto it = A.find(s);
    if (it == A.end()) { std::fprintf(stderr, "step %lld missing from %s\n", s, a); return 1; }
    const double rel = std::fabs(it->second - la) / std::max(std::fabs(it->second), 1e-30);
    worst = std::max(worst, rel);
    if (!(rel <= tol)) {
      std::fprintf(stderr, "step %lld: loss %.17g vs %.17g (relative %.3g > %.3g)\n", s, it->second, la, rel, tol);
      return 1;
    }
    ++n;
  }
  if (n == 0) { std::fprintf(stderr, "no steps >= %lld to compare in %s\n", first, b); return 1; }
  std::printf("%d steps agree; worst relative loss difference %.3g\n", n, worst);
  return 0;
}

// An entry (or its optimiser moment) of an LGViT head with BatchNorm.
bool bn_head(const std::string& name, const envit::StFile& f) {
  const std::size_t m = name.find(".mlp.");
  if (name.find("exits.") == std::string::npos || m == std::string::npos) return false;
  std::string head = name.substr(0, m + 5);
  for (const char* opt : {"optimizer.exp_avg_sq.", "optimizer.exp_avg."})
    if (head.rfind(opt, 0) == 0) { head = head.substr(std::strlen(opt)); break; }
  for (const envit::StTensor& t : f.tensors)
    if (t.name == head + "conv1.2.weight") return true;
  return false;
}

int weights(const char* a, const char* b, double tol, double head_tol) {
  envit::StFile A = envit::safetensors_read(a), B = envit::safetensors_read(b);
  int n = 0;
  double worst = 0, worst_head = 0;
  for (const envit::StTensor& ta : A.tensors) {
    if (ta.dtype != "F32") continue;
    const envit::StTensor& tb = B.at(ta.name);
    if (tb.data.size() != ta.data.size()) { std::fprintf(stderr, "%s: sizes differ\n", ta.name.c_str()); return 1; }
    const float* x = reinterpret_cast<const float*>(ta.data.data());
    const float* y = reinterpret_cast<const float*>(tb.data.data());
    const std::int64_t n_el = ta.numel();
    const bool qkv_bias = ends_with(ta.name, "attn.qkv.bias");
    if (bn_shift(ta.name, A)) {
      for (std::int64_t i = 0; i < n_el; ++i)
        if (!(std::fabs(x[i]) < 0.1f && std::fabs(y[i]) < 0.1f)) {
          std::fprintf(stderr, "%s[%lld]: %g / %g not below 0.1 (a shift BatchNorm removes)\n", ta.name.c_str(),
                       (long long)i, x[i], y[i]);
          return 1;
        }
      continue;
    }
    double d2 = 0, a2 = 0;
    for (std::int64_t i = 0; i < n_el; ++i) {
      if (qkv_bias && i >= n_el / 3 && i < 2 * n_el / 3) {
        if (!(std::fabs(x[i]) < 1e-3f && std::fabs(y[i]) < 1e-3f)) {
          std::fprintf(stderr, "%s[%lld]: key bias %g / %g not near zero\n", ta.name.c_str(), (long long)i, x[i], y[i]);
          return 1;
        }
        continue;
      }
      d2 += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
      a2 += double(x[i]) * x[i];
    }
    const double rel = std::sqrt(d2) / std::max(std::sqrt(a2), 1e-30);
    const bool head = bn_head(ta.name, A);
    (head ? worst_head : worst) = std::max(head ? worst_head : worst, rel);
    if (!(rel <= (head ? head_tol : tol))) {
      std::fprintf(stderr, "%s: relative L2 difference %.3g > %.3g\n", ta.name.c_str(), rel, head ? head_tol : tol);
      return 1;
    }
    ++n;
  }
  if (n == 0) { std::fprintf(stderr, "no F32 tensors in %s\n", a); return 1; }
  std::printf("%d tensors agree; worst relative L2 difference %.3g", n, worst);
  if (worst_head > 0) std::printf(" (LGViT BatchNorm heads: %.3g)", worst_head);
  std::printf("\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc >= 5 && !std::strcmp(argv[1], "steps"))
      return steps(argv[2], argv[3], std::atof(argv[4]), argc > 5 ? std::atoll(argv[5]) : 0);
    if ((argc == 5 || argc == 6) && !std::strcmp(argv[1], "weights"))
      return weights(argv[2], argv[3], std::atof(argv[4]), std::atof(argv[argc == 6 ? 5 : 4]));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "compare_runs: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "usage: compare_runs steps A.jsonl B.jsonl TOL [FIRST] | weights A B TOL\n");
  return 2;
}
