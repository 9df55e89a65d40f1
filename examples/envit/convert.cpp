// examples/envit/convert.cpp — `envit convert`: pretrained ViTs between the layouts envit reads and
// writes. Input: an envit checkpoint, a timm or torchvision safetensors state dict, or a Hugging Face
// directory (io/pretrained.hpp); output: an envit weights-only checkpoint (timm names, config and
// normalisation in the metadata; what `--to timm` writes too) or a Hugging Face directory
// (io/pretrained_export.hpp). Exit heads can be added (fresh), the position embedding resampled to
// another image size and the classifier replaced; every change is reported.
//   envit convert --from hf DIR --out vit.safetensors [--image-size S] [--exits 4,8,12]
//   envit convert --to hf run/last.safetensors --out hf_dir
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "common.hpp"
#include "envit/data/normalize.hpp"
#include "envit/io/pretrained_export.hpp"
#include "envit/model/pretrained_load.hpp"
#include "envit/train/checkpoint.hpp"
#include "envit/train/trainer.hpp"

namespace envit::cli {

int cmd_convert(int argc, char** argv) {
  Args a("envit convert", "Convert a pretrained ViT: `--from FORMAT SRC` into an envit checkpoint, or "
                          "`--to hf|timm SRC` out of one (SRC may follow --from/--to or be given as --src).");
  a.flag("src", "", "the source: a safetensors file or a Hugging Face directory");
  a.flag("from", "detect", "source format: detect, envit, timm, hf, torchvision");
  a.flag("to", "envit", "output format: envit (= timm names + envit metadata), timm, hf (a directory)");
  a.flag("out", "", "output file (envit, timm) or directory (hf)");
  a.flag("image-size", "", "resample the position embedding for this image size (default: the source's)");
  a.flag("exits", "", "blocks after which exits sit, e.g. 4,8,12; new exit heads are initialised fresh "
                      "(default: the source's exits)");
  a.flag("classes", "", "classifier size (default: the source's; needed when the source has none)");
  a.toggle("allow-new-heads", "replace a classifier whose class count differs from --classes with a fresh one");
  a.flag("heads", "", "attention heads (sources without a config: timm, torchvision)");
  a.flag("ln-eps", "", "LayerNorm epsilon (sources without a config: timm and torchvision ViTs use 1e-6)");
  a.flag("norm", "", "record this normalisation (imagenet, inception, MEAN,STD, ...; default: the source's, if any)");
  a.flag("seed", "0", "seed for freshly initialised heads");
  // `--from FORMAT SRC` / `--to FORMAT SRC`: the word after the format is the source.
  std::vector<char*> args(argv, argv + argc);
  std::string positional;
  for (std::size_t i = 2; i + 2 < args.size() + 0; ++i)
    if ((!std::strcmp(args[i], "--from") || !std::strcmp(args[i], "--to")) && std::strncmp(args[i + 2], "--", 2) != 0) {
      positional = args[i + 2];
      args.erase(args.begin() + std::ptrdiff_t(i) + 2);
      break;
    }
  if (!a.parse(int(args.size()), args.data(), 2)) return 0;
  const std::string src_path = !positional.empty() ? positional : a.str("src");
  if (src_path.empty()) throw UsageError("no source: `envit convert --from FORMAT SRC --out F` (see --help)");
  const std::string out = a.str("out"), to = a.str("to");
  if (out.empty()) throw UsageError("--out is required");
  if (to != "envit" && to != "timm" && to != "hf") throw UsageError("--to must be envit, timm or hf, got '" + to + "'");

  Pretrained src = pretrained_read(src_path, parse_weight_format(a.str("from")),
                                   {a.str("heads").empty() ? 0 : int(a.integer("heads", 1, 4096)),
                                    a.str("ln-eps").empty() ? -1.0 : a.real("ln-eps", 0, 1)});
  const int classes = a.str("classes").empty() ? src.cfg.classes : int(a.integer("classes", 2, 1 << 24));
  ENVIT_CHECK(classes > 1, UsageError, "'", src_path, "' has no classifier: pass --classes N (a fresh one is made)");
  const int image_size = a.str("image-size").empty() ? 0 : int(a.integer("image-size", 1, 4096));
  std::vector<int> exits = a.str("exits").empty() ? src.cfg.exits : VitConfig::parse_exits(a.str("exits"));
  const VitConfig cfg = pretrained_run_config(src, image_size, classes, exits);
  ViTParams<float> P(cfg, /*with_grads=*/false);
  P.init(std::uint64_t(a.integer("seed", 0, INT64_MAX)));
  PretrainedReport r = pretrained_load(src, P, {a.on("allow-new-heads") || (src.cfg.classes == 0)});
  std::fprintf(stderr, "%s\n", r.str().c_str());

  ChannelStats norm{src.mean, src.std};
  std::string norm_name = src.mean.empty() ? "" : src.norm_origin;
  if (!a.str("norm").empty()) {
    norm = norm_stats(a.str("norm"), cfg.channels, []() -> ChannelStats {
      throw UsageError("--norm dataset has no meaning for convert (no dataset): use imagenet, inception or MEAN,STD");
    });
    norm_name = a.str("norm");
  }
  if (to == "hf") {
    pretrained_save_hf(out, P, norm.mean, norm.std);
  } else {
    std::map<std::string, std::string> meta{{"convert.source", src_path},
                                            {"convert.source_format", weight_format_name(src.format)}};
    if (!norm.mean.empty()) {
      meta["data.mean"] = Trainer::join(norm.mean);
      meta["data.std"] = Trainer::join(norm.std);
      meta["data.norm"] = norm_name;
    }
    checkpoint_save(out, P, static_cast<const AdamWState<float>*>(nullptr), meta);
  }
  std::fprintf(stderr, "wrote %s (%s): %s\n", out.c_str(), to.c_str(), cfg.str().c_str());
  return 0;
}

}  // namespace envit::cli
