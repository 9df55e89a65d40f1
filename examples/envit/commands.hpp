// examples/envit/commands.hpp — the subcommands of the `envit` program: each has its flags (filled
// by CLI11 while parsing) and a function that runs it and returns the exit code (cli.hpp).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "cli.hpp"

namespace envit::cli {

// `envit train`: flags whose default comes from --preset hold their value only when given
// (CLI::App::count tells); run_train fills the rest from the preset.
struct TrainArgs {
  std::string preset = "readme";
  std::string scheme = "envit", teacher = "full";
  double p_max = 0.3, alpha = 0.5, tau = 4;
  std::vector<int> exits;
  int image_size = 0, patch = 0, dim = 0, depth = 0, heads = 0, mlp = 0;
  double ln_eps = 1e-6;
  int epochs = 0, batch = 128;
  std::int64_t steps = -1, warmup_steps = 0;
  double lr = 0, min_lr = 1e-5, weight_decay = 0.05, warmup_frac = 0.05, clip = 1.0;
  int crop_pad = 0;
  bool hflip = false;
  std::string dataset = "fashion-mnist", data;
  std::int64_t val = 0, subset = 0, seed = 0, save_every = 0;
  int threads = 1, eval_batch = 256;
  std::string out = "out/run", resume, init, step_log;
  bool allow_new_heads = false, print_config = false;
};
CLI::App* add_train_command(CLI::App& app, TrainArgs& a);
int run_train(const TrainArgs& a, const CLI::App& cmd);

// `envit eval`.
struct EvalArgs {
  std::vector<std::string> checkpoints;
  std::string dataset, data, rule = "confidence", thresholds = "auto", exit_thresholds, out;
  int points = 12, batch = 128, threads = 1, repeats = 3;
  std::int64_t time_samples = 0, stream_samples = 200;
  double target_speedup = 0, max_drop = 0;
};
CLI::App* add_eval_command(CLI::App& app, EvalArgs& a);
int run_eval(const EvalArgs& a, const CLI::App& cmd);

}  // namespace envit::cli
