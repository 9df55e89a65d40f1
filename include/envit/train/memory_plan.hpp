// envit/train/memory_plan.hpp — the memory a training run holds, known before it allocates: the
// parameter, gradient and AdamW arenas, the training step's activation arenas at the batch size,
// the evaluation workspace, the float batch buffers and the data set in memory (all computed from
// the same plans the arenas are carved from), and the memory the machine offers: MemAvailable and
// MemTotal from /proc/meminfo and the cgroup's limit (v2 memory.max, v1 memory.limit_in_bytes).
// Not counted: the program's code and libraries, OpenMP thread stacks and small heap vectors (a
// few tens of MB; docs/usage.md gives the measured ratio of plan to peak resident size).
#pragma once
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "envit/core/error.hpp"
#include "envit/infer/early_exit.hpp"
#include "envit/model/params.hpp"
#include "envit/model/vit.hpp"
#include "envit/train/lgvit.hpp"

namespace envit {

struct MemoryPlan {
  std::uint64_t params = 0, grads = 0, optimizer = 0;  // bytes: values, gradients, AdamW m and v
  std::uint64_t activations = 0;  // the step's arenas (model caches, objective, LGViT distillation) + batch buffer
  std::uint64_t eval = 0;         // the per-epoch evaluation's inference workspace and buffers
  std::uint64_t data = 0;         // images and labels of the splits in memory
  std::uint64_t total() const { return params + grads + optimizer + activations + eval + data; }
};

// The plan for training `cfg` at `batch` (evaluating at `eval_batch`) with `data_bytes` of data in memory.
inline MemoryPlan plan_training_memory(const VitConfig& cfg, int batch, int eval_batch, std::uint64_t data_bytes) {
  constexpr std::uint64_t F = sizeof(float);
  MemoryPlan m;
  const std::uint64_t n = ViTParams<float>::planned_size(cfg);
  m.params = m.grads = n * F;
  m.optimizer = 2 * n * F;
  const std::uint64_t BC = arena_round<float>(std::size_t(batch) * std::size_t(cfg.classes));
  const std::uint64_t image = std::uint64_t(cfg.channels) * std::uint64_t(cfg.image_size) * std::uint64_t(cfg.image_size);
  m.activations = (ViTWorkspace<float>::planned_elements(cfg, batch) + BC * (1 + 3 * std::uint64_t(cfg.num_exits())) +
                   (cfg.lgvit() ? LgvitDistillWorkspace<float>::planned_elements(cfg, batch) : 0) +
                   std::uint64_t(batch) * image) * F;
  m.eval = (InferenceWorkspace<float>::planned_elements(cfg, eval_batch) + std::uint64_t(eval_batch) * image +
            std::uint64_t(cfg.num_exits()) * std::uint64_t(eval_batch) * std::uint64_t(cfg.classes)) * F;
  m.data = data_bytes;
  return m;
}

// "1.23 GiB", "45.6 MiB", "789 KiB" (binary units).
inline std::string format_bytes(std::uint64_t b) {
  std::ostringstream os;
  os.setf(std::ios::fixed);
  os.precision(b >= (std::uint64_t{1} << 30) ? 2 : 1);
  if (b >= (std::uint64_t{1} << 30)) os << double(b) / double(std::uint64_t{1} << 30) << " GiB";
  else if (b >= (std::uint64_t{1} << 20)) os << double(b) / double(std::uint64_t{1} << 20) << " MiB";
  else os << double(b) / 1024.0 << " KiB";
  return os.str();
}

// Parses "2G", "512M", "1.5GiB", "800000000" (bytes; K, M, G, T are powers of 1024, an optional
// "i" and "B" after them). Throws ValueError naming `what` for anything else or a value of 0.
inline std::uint64_t parse_bytes(const std::string& s, const std::string& what) {
  char* end = nullptr;
  const double x = std::strtod(s.c_str(), &end);
  std::string unit(end ? end : "");
  for (char& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  double mul = 0;
  if (unit.empty() || unit == "B") mul = 1;
  const char* units[] = {"K", "M", "G", "T"};
  for (int k = 0; k < 4; ++k)
    if (unit == units[k] || unit == std::string(units[k]) + "B" || unit == std::string(units[k]) + "IB")
      mul = std::ldexp(1.0, 10 * (k + 1));
  ENVIT_CHECK(end != s.c_str() && mul > 0 && x > 0 && x * mul < 1.8e19, ValueError, what, ": '", s,
              "' is not a memory size (e.g. 2G, 512M, 1500000000)");
  return static_cast<std::uint64_t>(x * mul);
}

// The memory a new run can use and where that figure comes from.
struct MemoryBudget {
  std::uint64_t bytes = 0;  // 0: unknown (no /proc/meminfo, no limit)
  std::string source;       // e.g. "MemAvailable in /proc/meminfo", "cgroup memory.max"
};

namespace detail {
inline std::uint64_t meminfo_kib(const std::string& key) {
  std::ifstream f("/proc/meminfo");
  std::string k;
  std::uint64_t v = 0;
  std::string unit;
  while (f >> k >> v) {
    std::getline(f, unit);
    if (k == key + ":") return v;
  }
  return 0;
}
// The cgroup limit in bytes (0: none or unknown): v2 memory.max of this process's cgroup, else v1.
inline std::uint64_t cgroup_limit(std::string* where) {
  std::ifstream cg("/proc/self/cgroup");
  std::string line, v2path, v1path;
  while (std::getline(cg, line)) {
    if (line.rfind("0::", 0) == 0) v2path = line.substr(3);
    const auto c1 = line.find(':'), c2 = line.find(':', c1 + 1);
    if (c1 != std::string::npos && c2 != std::string::npos) {
      std::stringstream ctrls(line.substr(c1 + 1, c2 - c1 - 1));
      for (std::string c; std::getline(ctrls, c, ',');)
        if (c == "memory") v1path = line.substr(c2 + 1);
    }
  }
  auto read = [&](const std::string& path) -> std::uint64_t {
    std::ifstream f(path);
    std::string s;
    if (!(f >> s) || s == "max") return 0;
    const unsigned long long x = std::strtoull(s.c_str(), nullptr, 10);
    if (x == 0 || x >= (std::uint64_t{1} << 60)) return 0;  // v1 "no limit" is a page-rounded 2^63
    if (where) *where = path;
    return x;
  };
  std::uint64_t lim = 0;
  if (!v2path.empty()) lim = read("/sys/fs/cgroup" + (v2path == "/" ? std::string() : v2path) + "/memory.max");
  if (!lim && !v1path.empty())
    lim = read("/sys/fs/cgroup/memory" + (v1path == "/" ? std::string() : v1path) + "/memory.limit_in_bytes");
  return lim;
}
}  // namespace detail

// The budget: `given` (a --memory-limit or ENVIT_MEMORY_LIMIT, in bytes) when non-zero, else the
// smaller of MemAvailable (MemTotal when the kernel has no MemAvailable) and the cgroup limit.
inline MemoryBudget memory_budget(std::uint64_t given, const std::string& given_source) {
  if (given) return {given, given_source};
  MemoryBudget b;
  if (std::uint64_t kib = detail::meminfo_kib("MemAvailable")) b = {kib * 1024, "MemAvailable in /proc/meminfo"};
  else if (std::uint64_t t = detail::meminfo_kib("MemTotal")) b = {t * 1024, "MemTotal in /proc/meminfo"};
  std::string where;
  if (std::uint64_t lim = detail::cgroup_limit(&where); lim && (!b.bytes || lim < b.bytes)) b = {lim, "cgroup limit " + where};
  return b;
}

}  // namespace envit
