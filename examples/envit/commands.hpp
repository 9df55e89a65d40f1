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
  std::string scheme = "envit", teacher = "full", byot_variant = "released", reduction = "batch",
              clip_mode = "absolute";
  double p_max = 0.3, alpha = 0.5, tau = 4;
  double lgvit_stage1_frac = 0.5;
  bool lgvit_kd_per_batch = false, lgvit_teacher_ln = false, lgvit_detach_hom = false;
  std::vector<int> exits;
  int image_size = 0, patch = 0, dim = 0, depth = 0, heads = 0, mlp = 0;
  double ln_eps = 1e-6;
  int epochs = 0, batch = 128;
  std::int64_t steps = -1, warmup_steps = 0;
  double lr = 0, min_lr = 1e-5, weight_decay = 0.05, warmup_frac = 0.05, clip = 1.0;
  int crop_pad = 0;
  bool hflip = false;
  std::string dataset = "fashion-mnist", data;
  std::int64_t val = 0, skip = 0, subset = 0, seed = 0, save_every = 0;
  std::vector<int> classes;
  int threads = 1, eval_batch = 256;
  std::string out = "out/run", resume, init, init_format = "detect", norm = "auto", step_log;
  std::string precision;  // fp32 or bf16; empty: fp32, or the checkpoint's with --resume
  double rrc_scale = 0, folder_val = 0.1, crop_fraction = 0.875;
  bool allow_new_heads = false, print_config = false;
  int channels = 0;          // 0: the data's (a folder: 1 when every image is grey-scale)
  std::string memory_limit;  // empty: ENVIT_MEMORY_LIMIT, else what the machine has
};
CLI::App* add_train_command(CLI::App& app, TrainArgs& a);
int run_train(const TrainArgs& a, const CLI::App& cmd);

// `envit eval`.
struct EvalArgs {
  std::vector<std::string> checkpoints;
  std::string dataset, data, rule = "confidence", thresholds = "auto", exit_thresholds, out,
      beem_weights = "cost";
  std::string precision;  // fp32 or bf16; empty: the precision each checkpoint was trained in
  int points = 12, batch = 128, threads = 1, repeats = 3;
  std::int64_t time_samples = 0, stream_samples = 200;
  std::string target_speedups;  // comma list
  double max_drop = 0;
};
CLI::App* add_eval_command(CLI::App& app, EvalArgs& a);
int run_eval(const EvalArgs& a, const CLI::App& cmd);

// `envit convert`.
struct ConvertArgs {
  std::string from = "detect", to = "envit", src, out, norm, early_exit;
  int image_size = 0, classes = 0, heads = 0;
  std::vector<int> exits;
  double ln_eps = -1;
  bool allow_new_heads = false;
  std::int64_t seed = 0;
};
CLI::App* add_convert_command(CLI::App& app, ConvertArgs& a);
int run_convert(const ConvertArgs& a, const CLI::App& cmd);

// `envit quantize`.
struct QuantizeArgs {
  std::string checkpoint, out, dataset, data;
  std::string act = "dynamic";  // one value, or qkv,proj,fc1,fc2
  std::int64_t calib = 0;
  int batch = 128, threads = 1;
};
CLI::App* add_quantize_command(CLI::App& app, QuantizeArgs& a);
int run_quantize(const QuantizeArgs& a, const CLI::App& cmd);

}  // namespace envit::cli
