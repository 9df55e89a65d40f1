// envit/optim/schedule.hpp — learning-rate schedule: linear warm-up then cosine decay to a floor.
#pragma once
#include <cmath>
#include <cstdint>

#include "envit/core/error.hpp"

namespace envit {

struct LrSchedule {
  double base_lr = 1e-3;
  double min_lr = 1e-5;       // cosine floor
  std::int64_t warmup = 0;    // steps of linear warm-up from base_lr/warmup to base_lr
  std::int64_t total = 1;     // total steps

  // Learning rate for step t (0-based): (t+1)/warmup * base during warm-up, then
  // min + (base - min) * 0.5 * (1 + cos(pi * (t - warmup) / (total - warmup))).
  double at(std::int64_t t) const {
    ENVIT_CHECK(total >= 1 && warmup >= 0 && base_lr >= 0 && min_lr >= 0, ValueError,
                "LrSchedule: invalid settings (total ", total, ", warmup ", warmup, ")");
    if (t < warmup) return base_lr * double(t + 1) / double(warmup);
    const double span = double(std::max<std::int64_t>(1, total - warmup));
    const double x = std::min(1.0, double(t - warmup) / span);
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + std::cos(3.14159265358979323846 * x));
  }
};

}  // namespace envit
