// examples/envit/quantize.cpp — `envit quantize`: post-training INT8 quantization of a trained
// checkpoint (weights/quantize.hpp) into a quantized checkpoint that `envit eval` runs in INT8.
// Calibration images (for static activation scales) come from the checkpoint's validation split
// when it has one, else from the samples it was trained on (evenly spaced); never from the test
// split.
#include <cstdio>

#include "commands.hpp"
#include "common.hpp"
#include "envit/weights/quantize.hpp"

namespace envit::cli {

CLI::App* add_quantize_command(CLI::App& app, QuantizeArgs& a) {
  CLI::App* c = app.add_subcommand("quantize", "post-training INT8 quantization of a checkpoint (docs/method.md)");
  c->footer(std::string(kExitCodesHelp) + ".\n");
  c->add_option("--checkpoint", a.checkpoint, "FP32 (or BF16-trained) checkpoint written by envit train")->required();
  c->add_option("--out", a.out, "quantized checkpoint to write (safetensors)")->required();
  c->add_option("--calib", a.calib,
                "calibration images for static activation scales (validation split, else training samples)")
      ->capture_default_str()->check(at_least(0));
  c->add_option("--act", a.act,
                "activation scales per layer family qkv,proj,fc1,fc2: dynamic (per token) or static (calibrated), "
                "comma-separated, or one value for all")
      ->capture_default_str();
  c->add_option("--dataset", a.dataset, "dataset (default: the one the checkpoint was trained on)")
      ->check(CLI::IsMember({"fashion-mnist", "mnist", "idx", "cifar10", "cifar100", "folder"}));
  c->add_option("--data", a.data, "dataset directory (default: the checkpoint's data.dir)");
  c->add_option("--batch", a.batch, "batch size of the calibration passes")->capture_default_str()->check(CLI::Range(1, 1 << 16));
  add_threads_option(*c, a.threads);
  return c;
}

int run_quantize(const QuantizeArgs& a, const CLI::App&) {
  set_num_threads(a.threads);
  std::array<ActScaling, 4> act{};
  {
    std::vector<std::string> v;
    std::string cur;
    for (char ch : a.act + ",") {
      if (ch == ',') v.push_back(cur), cur.clear();
      else cur += ch;
    }
    ENVIT_CHECK(v.size() == 1 || v.size() == 4, UsageError, "--act: ", v.size(),
                " values (expected one, or four for qkv,proj,fc1,fc2)");
    for (int f = 0; f < 4; ++f) {
      try {
        act[std::size_t(f)] = parse_act_scaling(v[v.size() == 1 ? 0 : std::size_t(f)], "--act");
      } catch (const ValueError& e) {
        throw UsageError(e.what());
      }
    }
  }
  bool any_static = false;
  for (ActScaling s : act) any_static |= s == ActScaling::calibrated;
  ENVIT_CHECK(!any_static || a.calib > 0, UsageError, "--act static needs --calib N > 0 calibration images");
  const StFile file = safetensors_read(a.checkpoint);
  ENVIT_CHECK(!is_quantized_checkpoint(file), UsageError, file.where(), " is already quantized (",
              file.meta_or("quantization", ""), ")");
  const VitConfig cfg = checkpoint_config(file);
  ViTParams<float> P(cfg, /*with_grads=*/false);
  load_weights(file, P, false);
  std::vector<float> images;
  std::string source = "none";
  int n = 0;
  if (any_static) {
    const Normalizer norm(ChannelStats::from_map(file.metadata, cfg.channels, file.where()));
    const std::string dataset = a.dataset.empty() ? file.meta_or("data.dataset", "fashion-mnist") : a.dataset;
    const std::string data_dir = a.data.empty() ? file.meta_or("data.dir", "") : a.data;
    const SplitSpec spec = SplitSpec::from_map(file.metadata, file.where());
    Dataset d = load_checkpoint_dataset(dataset, data_dir, true, file, cfg);
    d.check_fits(cfg.channels, cfg.image_size, cfg.image_size, cfg.classes, "checkpoint '" + a.checkpoint + "'");
    if (spec.n_val > 0) {
      d = checkpoint_validation_set(file, a.checkpoint, cfg, dataset, data_dir, "--calib");
      source = "validation split";
    } else {
      const std::vector<std::int64_t> used = spec.samples(d);
      d = dataset_subset(d, used.data(), std::int64_t(used.size()));
      source = "training samples";
    }
    n = int(std::min<std::int64_t>(a.calib, d.n));
    std::vector<std::int64_t> idx(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) idx[std::size_t(i)] = std::int64_t(i) * d.n / n;  // evenly spaced
    std::vector<std::int32_t> labels(static_cast<std::size_t>(n));
    images.resize(std::size_t(n) * std::size_t(d.image_size()));
    make_batch(images.data(), labels.data(), d, idx.data(), n, norm, Augment{}, 0, 0);
  }
  const QuantizedModel Q = quantize_model(P, act, images.data(), n, a.batch);
  std::map<std::string, std::string> meta;
  for (const auto& [k, v] : file.metadata)
    if (k != "format" && k.rfind("config.", 0) != 0) meta[k] = v;
  meta["quantization.source"] = a.checkpoint;
  meta["quantization.calib_split"] = source;
  const auto slash = a.out.find_last_of('/');
  if (slash != std::string::npos && slash > 0) make_dirs(a.out.substr(0, slash));
  safetensors_write(a.out, quantized_checkpoint(P, Q, meta));
  std::printf("%s: INT8 weights per output channel for %d Linear layers; activations qkv %s, proj %s, fc1 %s, "
              "fc2 %s; %d calibration images (%s); %s\n",
              a.out.c_str(), 4 * cfg.depth, act_scaling_name(act[0]), act_scaling_name(act[1]),
              act_scaling_name(act[2]), act_scaling_name(act[3]), n, source.c_str(), kernel_set_info().c_str());
  return 0;
}

}  // namespace envit::cli
