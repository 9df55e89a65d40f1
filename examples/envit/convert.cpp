// examples/envit/convert.cpp — `envit convert`: pretrained ViTs between the layouts envit reads and
// writes. Input: an envit checkpoint, a timm or torchvision safetensors state dict, or a Hugging Face
// directory (weights/pretrained.hpp); output: an envit weights-only checkpoint (timm names, config and
// normalisation in the metadata; what `--to timm` writes too) or a Hugging Face directory
// (weights/pretrained_export.hpp), or an ONNX model (weights/onnx_export.hpp): every exit's logits, or with
// --early-exit RULE the early-exit graph. Exit heads can be added (fresh), the position embedding
// resampled to another image size and the classifier replaced; every change is reported.
//   envit convert --from hf DIR --out vit.safetensors [--image-size S] [--exits 4,8,12]
//   envit convert --to hf run/last.safetensors --out hf_dir
//   envit convert --to onnx run/last.safetensors --out vit.onnx [--early-exit confidence|entropy]
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "commands.hpp"
#include "common.hpp"
#include "envit/data/normalize.hpp"
#include "envit/weights/onnx_export.hpp"
#include "envit/weights/pretrained_export.hpp"
#include "envit/weights/pretrained_load.hpp"
#include "envit/train/checkpoint.hpp"

namespace envit::cli {

CLI::App* add_convert_command(CLI::App& app, ConvertArgs& a) {
  CLI::App* c = app.add_subcommand("convert", "pretrained ViTs in (timm, Hugging Face, torchvision) and out (hf, timm)");
  c->footer(std::string(kExitCodesHelp) + ".\n");
  c->add_option("src", a.src, "the source: a safetensors file or a Hugging Face directory")->required();
  c->add_option("--from", a.from, "source format")
      ->capture_default_str()->check(CLI::IsMember({"detect", "envit", "timm", "hf", "torchvision"}));
  c->add_option("--to", a.to, "output: envit (timm names + envit metadata), timm (the same file), hf (a directory), "
                              "onnx (an ONNX model, opset 17)")
      ->capture_default_str()->check(CLI::IsMember({"envit", "timm", "hf", "onnx"}));
  c->add_option("--out", a.out, "output file (envit, timm, onnx) or directory (hf)")->required();
  c->add_option("--early-exit", a.early_exit, "--to onnx: write the early-exit graph for this exit rule (confidence or "
                                              "entropy; batch 1, threshold an input) instead of the all-exits graph");
  c->add_option("--image-size", a.image_size, "resample the position embedding for this image size (default: the "
                                              "source's)")->check(CLI::Range(1, 4096));
  c->add_option("--exits", a.exits, "blocks after which exits sit, e.g. 4,8,12; new exit heads are initialised fresh "
                                    "(default: the source's exits)")->delimiter(',')->check(CLI::Range(1, 1024));
  c->add_option("--classes", a.classes, "classifier size (default: the source's; needed when it has none)")
      ->check(CLI::Range(2, 1 << 24));
  c->add_flag("--allow-new-heads", a.allow_new_heads,
              "replace a classifier whose class count differs from --classes with a fresh one");
  c->add_option("--heads", a.heads, "attention heads (sources without a config: timm, torchvision)")
      ->check(CLI::Range(1, 4096));
  add_real(*c, "--ln-eps", a.ln_eps, "LayerNorm epsilon (sources without a config; timm and torchvision ViTs: 1e-6)",
           0, 1, false);
  c->add_option("--norm", a.norm, "record this normalisation: imagenet, inception, MEAN,STD, C means then C stds "
                                  "(default: the source's, if it records one)");
  c->add_option("--seed", a.seed, "seed for freshly initialised heads")->capture_default_str()->check(at_least(0));
  return c;
}

int run_convert(const ConvertArgs& a, const CLI::App& c) {
  auto given = [&](const char* flag) { return c.count(flag) > 0; };
  OnnxExportOptions onnx;
  ENVIT_CHECK(a.early_exit.empty() || a.to == "onnx", UsageError, "--early-exit needs --to onnx");
  if (!a.early_exit.empty()) {
    onnx.kind = OnnxGraphKind::early_exit;
    as_usage_error([&] {
      onnx.rule = parse_exit_rule(a.early_exit);
      onnx_check_rule(onnx);
    });
  }
  Pretrained src = pretrained_read(a.src, parse_weight_format(a.from),
                                   {given("--heads") ? a.heads : 0, given("--ln-eps") ? a.ln_eps : -1.0});
  const int classes = given("--classes") ? a.classes : src.cfg.classes;
  ENVIT_CHECK(classes > 1, UsageError, "'", a.src, "' has no classifier: pass --classes N (a fresh one is made)");
  VitConfig cfg;
  as_usage_error([&] {
    cfg = pretrained_run_config(src, a.image_size, classes, a.exits.empty() ? src.cfg.exits : a.exits);
  });
  ViTParams<float> P(cfg, /*with_grads=*/false);
  P.init(std::uint64_t(a.seed));
  PretrainedReport r;
  as_usage_error([&] { r = pretrained_load(src, P, {a.allow_new_heads || src.cfg.classes == 0}); });
  std::fprintf(stderr, "%s\n", r.str().c_str());

  ChannelStats norm{src.mean, src.std};
  std::string norm_name = src.mean.empty() ? "" : "recorded in " + src.norm_origin;
  if (!a.norm.empty()) {
    as_usage_error([&] {
      norm = norm_stats(a.norm, cfg.channels, []() -> ChannelStats {
        throw UsageError("--norm dataset has no meaning for convert (no dataset): use imagenet, inception or MEAN,STD");
      });
    });
    norm_name = a.norm;
  }
  std::map<std::string, std::string> norm_meta;  // data.mean, data.std, data.norm (when known)
  if (!norm.mean.empty()) {
    norm_meta = norm.to_map();
    norm_meta["data.norm"] = norm_name;
  }
  if (a.to == "hf") {
    pretrained_save_hf(a.out, P, norm.mean, norm.std);
  } else if (a.to == "onnx") {
    onnx.metadata = norm_meta;
    onnx_save(a.out, P, onnx);
  } else {
    std::map<std::string, std::string> meta = norm_meta;
    meta["convert.source"] = a.src;
    meta["convert.source_format"] = weight_format_name(src.format);
    checkpoint_save(a.out, P, static_cast<const AdamWState<float>*>(nullptr), meta);
  }
  std::fprintf(stderr, "wrote %s (%s): %s\n", a.out.c_str(), a.to.c_str(), cfg.str().c_str());
  return kExitOk;
}

}  // namespace envit::cli
