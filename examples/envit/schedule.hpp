// examples/envit/schedule.hpp — how many epochs `envit train` runs when the flags do not say.
//
// In order of precedence:
//   1. --epochs N or --steps N: as given.
//   2. --resume of a run whose epochs were raised (metadata train.min_steps): the checkpoint's epochs,
//      so the resumed run continues the same schedule.
//   3. the preset's epochs, raised to ceil(min_steps / steps_per_epoch) when the preset has a step
//      floor (VitPreset::min_steps) and its epochs give fewer steps than that floor on this data set;
//      a note says so before training. README command 1 (7,722 steps) is above the floor: unchanged.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "envit/model/config.hpp"

namespace envit::cli {

struct Schedule {
  std::int64_t epochs = 0;
  std::int64_t min_steps = 0;  // the floor applied (0: none), recorded as train.min_steps
  std::string note;            // non-empty: the epochs were raised, and why
};

inline Schedule resolve_epochs(const VitPreset& preset, std::int64_t steps_per_epoch, bool epochs_or_steps_given,
                               std::optional<std::int64_t> resumed_epochs, std::int64_t resumed_min_steps) {
  Schedule s{preset.epochs, 0, ""};
  if (epochs_or_steps_given) return s;  // the caller takes the flags' values
  if (resumed_epochs && resumed_min_steps > 0) return {*resumed_epochs, resumed_min_steps, ""};
  const std::int64_t planned = steps_per_epoch * preset.epochs;
  if (preset.min_steps <= 0 || steps_per_epoch <= 0 || planned >= preset.min_steps) return s;
  s.min_steps = preset.min_steps;
  s.epochs = (preset.min_steps + steps_per_epoch - 1) / steps_per_epoch;
  s.note = "schedule: preset " + std::string(preset.name) + "'s " + std::to_string(preset.epochs) + " epochs are " +
           std::to_string(planned) + " steps on this data set (" + std::to_string(steps_per_epoch) +
           " per epoch), far fewer than the " + std::to_string(preset.tuned_steps) +
           " it was tuned for; raised to " + std::to_string(s.epochs) + " epochs (" +
           std::to_string(s.epochs * steps_per_epoch) + " steps, the preset's floor of " +
           std::to_string(preset.min_steps) + "). --epochs or --steps sets the length";
  return s;
}

}  // namespace envit::cli
