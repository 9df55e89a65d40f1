// examples/envit/warmup.hpp — how many linear warm-up steps `envit train` gives the learning-rate
// schedule (envit/optim/schedule.hpp: linear warm-up, then cosine decay over the rest of the run).
//
// In order of precedence, for a run of `total` optimisation steps:
//   1. --warmup-steps N (alias --warmup): N steps, as given (a note when N >= total: the run then
//      never leaves warm-up).
//   2. --resume: the checkpoint's warm-up, so the resumed run continues the same schedule (also when
//      --epochs is raised).
//   3. --warmup-frac F: round(F x total) steps.
//   4. the preset's absolute warm-up S when S <= kPresetWarmupMaxFrac x total; otherwise
//      round(kDefaultWarmupFrac x total) and a note (a preset sized for the full dataset must not
//      keep a short run in warm-up: 400 steps of a 198-step run on 1,500 images).
#pragma once
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>

namespace envit::cli {

inline constexpr double kDefaultWarmupFrac = 0.05;
inline constexpr double kPresetWarmupMaxFrac = 0.2;

struct Warmup {
  std::int64_t steps = 0;
  std::string note;  // non-empty: why the value differs from what the flags or preset suggest
};

inline std::int64_t warmup_from_fraction(double frac, std::int64_t total) {
  return std::llround(frac * double(total));
}

inline Warmup resolve_warmup(std::int64_t total, std::optional<std::int64_t> steps_flag,
                             std::optional<double> frac_flag, std::optional<std::int64_t> resumed,
                             std::int64_t preset_steps, const std::string& preset_name) {
  const std::string run = std::to_string(total) + "-step run";
  if (steps_flag) {
    Warmup w{*steps_flag, ""};
    if (w.steps >= total && total > 0)
      w.note = "--warmup-steps " + std::to_string(w.steps) + " is not shorter than this " + run +
               ": the learning rate stays in warm-up throughout";
    return w;
  }
  if (resumed) return {*resumed, ""};
  if (frac_flag) return {warmup_from_fraction(*frac_flag, total), ""};
  if (double(preset_steps) <= kPresetWarmupMaxFrac * double(total)) return {preset_steps, ""};
  Warmup w{warmup_from_fraction(kDefaultWarmupFrac, total), ""};
  w.note = "preset " + preset_name + "'s " + std::to_string(preset_steps) + " warm-up steps are more than " +
           std::to_string(int(kPresetWarmupMaxFrac * 100)) + "% of this " + run + "; warming up for " +
           std::to_string(w.steps) + " steps instead (--warmup-frac " + std::to_string(kDefaultWarmupFrac).substr(0, 4) +
           "; --warmup-steps N sets it)";
  return w;
}

}  // namespace envit::cli
