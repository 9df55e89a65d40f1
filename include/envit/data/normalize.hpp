// envit/data/normalize.hpp — the input normalisation a run uses, from `--norm`:
//   dataset     per-channel mean/std of the training images (channel_stats)
//   imagenet    mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)  (torchvision, timm defaults)
//   inception   mean 0.5, std 0.5 per channel  (Hugging Face ViT, timm augreg weights)
//   M,S         mean M and std S for every channel, or M1,..,MC,S1,..,SC per channel
// The resulting ChannelStats go to the Trainer, which records them in the checkpoint metadata
// (`data.mean`, `data.std`); the spec itself is recorded as `data.norm`.
#pragma once
#include <string>
#include <vector>

#include "envit/core/error.hpp"
#include "envit/data/dataset.hpp"

namespace envit {

// The statistics for `spec` on a C-channel run; `dataset_stats` is called only for "dataset".
template <class F>
ChannelStats norm_stats(const std::string& spec, int C, F&& dataset_stats) {
  if (spec == "dataset") return dataset_stats();
  if (spec == "imagenet") {
    ENVIT_CHECK(C == 3, ValueError, "--norm imagenet needs 3-channel images, the run has ", C);
    return {{0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}};
  }
  if (spec == "inception") return {std::vector<double>(C, 0.5), std::vector<double>(C, 0.5)};
  std::vector<double> v;
  std::size_t pos = 0;
  while (pos <= spec.size()) {
    std::size_t end = spec.find(',', pos);
    if (end == std::string::npos) end = spec.size();
    const std::string item = spec.substr(pos, end - pos);
    std::size_t used = 0;
    double x = 0;
    try {
      x = std::stod(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    ENVIT_CHECK(!item.empty() && used == item.size(), ValueError, "--norm '", spec,
                "': expected dataset, imagenet, inception, MEAN,STD or C means then C stds ('", item,
                "' is not a number)");
    v.push_back(x);
    pos = end + 1;
  }
  ChannelStats s;
  if (v.size() == 2) {
    s.mean.assign(C, v[0]);
    s.std.assign(C, v[1]);
  } else {
    ENVIT_CHECK(v.size() == 2 * static_cast<std::size_t>(C), ValueError, "--norm '", spec, "': ", v.size(),
                " numbers; expected 2 (MEAN,STD) or ", 2 * C, " (", C, " means, then ", C, " stds)");
    s.mean.assign(v.begin(), v.begin() + C);
    s.std.assign(v.begin() + C, v.end());
  }
  for (int c = 0; c < C; ++c)
    ENVIT_CHECK(s.std[c] > 0, ValueError, "--norm '", spec, "': std of channel ", c, " is ", s.std[c], " (must be > 0)");
  return s;
}

}  // namespace envit
