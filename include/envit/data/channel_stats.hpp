// envit/data/channel_stats.hpp — per-channel normalisation statistics (ChannelStats) and their
// form in checkpoint metadata. A header of its own so that readers of checkpoints and pretrained
// weights (weights/) reach the struct without the dataset machinery of data/dataset.hpp.
#pragma once
#include <exception>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "envit/core/error.hpp"

namespace envit {

// Per-channel mean and standard deviation of pixel/255 (population std, as torchvision recipes).
// Recorded in checkpoints as comma-separated decimals (metadata keys data.mean, data.std).
struct ChannelStats {
  std::vector<double> mean, std;  // (C) each

  static std::string join(const std::vector<double>& v) {
    std::ostringstream os;
    os.precision(17);
    for (std::size_t i = 0; i < v.size(); ++i) os << (i ? "," : "") << v[i];
    return os.str();
  }
  std::map<std::string, std::string> to_map() const { return {{"data.mean", join(mean)}, {"data.std", join(std)}}; }
  // Reads data.mean / data.std, which must hold `channels` numbers each; `where` names the source.
  static ChannelStats from_map(const std::map<std::string, std::string>& m, int channels, const std::string& where) {
    auto get = [&](const char* k) {
      auto it = m.find(k);
      ENVIT_CHECK(it != m.end(), ValueError, where, ": no metadata ", k, " (the normalisation statistics)");
      std::vector<double> v;
      std::stringstream ss(it->second);
      std::string item;
      while (std::getline(ss, item, ',')) {
        std::size_t pos = 0;
        double x = 0;
        try { x = std::stod(item, &pos); } catch (const std::exception&) { pos = std::string::npos; }
        ENVIT_CHECK(pos == item.size() && !item.empty(), ValueError, where, ": metadata ", k, ": '", item,
                    "' is not a number");
        v.push_back(x);
      }
      ENVIT_CHECK(int(v.size()) == channels, ValueError, where, ": metadata ", k, " holds ", v.size(),
                  " values, expected ", channels, " (one per channel)");
      return v;
    };
    return {get("data.mean"), get("data.std")};
  }
};

}  // namespace envit
