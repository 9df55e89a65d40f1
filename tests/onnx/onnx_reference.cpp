// tests/onnx/onnx_reference.cpp — envit's own answers for the ONNX parity test (onnx_parity.mjs):
// the first n Fashion-MNIST test images normalised as the checkpoint records, every exit's logits
// from the evaluator (infer_all_exits) and, per threshold of a sweep, the exit and prediction of
// envit's real early exit (early_exit_one, batch 1) with the score of every exit in double.
//   onnx_reference CHECKPOINT FASHION_MNIST_DIR N OUT.safetensors RULE T1,T2,...|auto
// auto: nine thresholds between the exit-0 scores at the 10%, 20%, ..., 90% quantiles (midway
// between two neighbouring scores), so every model, however little trained, exits at several exits.
//   onnx_reference --random PRESET EXIT_HEAD OUT.safetensors   (a randomly initialised checkpoint of
//                  a preset, e.g. vit-b16, with linear or lgvit exit heads; ImageNet normalisation)
// OUT holds images (N, C, H, W) f32, logits (M, N, C) f32, thresholds (K) f64, exit and pred
// (K, N) i32, scores (M, N) f64 (exit_score of each exit's logits under RULE).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "envit/data/idx.hpp"
#include "envit/infer/early_exit.hpp"
#include "envit/io/safetensors.hpp"
#include "envit/weights/checkpoint.hpp"

int main(int argc, char** argv) {
  using namespace envit;
  if (argc == 5 && std::string(argv[1]) == "--random") try {
      VitConfig c = vit_preset(argv[2]).config;
      c.exit_head = argv[3];
      ViTParams<float> P(c, /*with_grads=*/false);
      P.init(1);
      safetensors_write(argv[4], checkpoint_weights(P, {{"data.mean", "0.485,0.456,0.406"}, {"data.std", "0.229,0.224,0.225"}}));
      std::printf("onnx_reference: random %s -> %s\n", c.str().c_str(), argv[4]);
      return 0;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "onnx_reference: %s\n", e.what());
      return 1;
    }
  if (argc != 7) {
    std::fprintf(stderr, "usage: onnx_reference CHECKPOINT FASHION_MNIST_DIR N OUT RULE T1,T2,...\n");
    return 2;
  }
  try {
    const StFile f = safetensors_read(argv[1]);
    const ViTParams<float> P = checkpoint_model<float>(f);
    const VitConfig& c = P.config();
    const Normalizer norm(ChannelStats::from_map(f.metadata, c.channels, f.where()));
    const Dataset test = fashion_mnist_load(argv[2], false);
    const int n = std::atoi(argv[3]), M = c.num_exits(), C = c.classes;
    const ExitRule rule = parse_exit_rule(argv[5]);

    std::vector<std::int64_t> idx(std::size_t(n), 0);
    std::iota(idx.begin(), idx.end(), 0);
    const std::size_t img = std::size_t(test.image_size());
    std::vector<float> images(std::size_t(n) * img), logits(std::size_t(M) * n * C);
    make_batch(images.data(), nullptr, test, idx.data(), n, norm, Augment{}, 0, 0);
    InferenceWorkspace<float> ws(c, 64), ws1(c, 1);
    ws.prepack(P);
    ws1.prepack(P);
    infer_all_exits_dataset<float>(ws, P, images.data(), n, logits.data(), 64);

    ExitCriterion base{rule, {0.0}, true, {}};
    std::vector<double> scores(std::size_t(M) * n);
    for (int i = 0; i < n; ++i) {
      ExitTrack track;
      for (int j = 0; j < M; ++j)
        scores[std::size_t(j) * n + i] = exit_score(base, logits.data() + (std::size_t(j) * n + i) * C, C, track).score;
    }
    std::vector<double> thr;
    if (std::string(argv[6]) == "auto") {
      std::vector<double> s0(scores.begin(), scores.begin() + n);
      std::sort(s0.begin(), s0.end());
      for (int q = 1; q <= 9; ++q) {
        const std::size_t i = std::size_t(q) * std::size_t(n) / 10;
        thr.push_back(0.5 * (s0[i - 1] + s0[i]));
      }
    } else {
      std::stringstream ss(argv[6]);
      for (std::string item; std::getline(ss, item, ',');) thr.push_back(std::stod(item));
    }
    const int K = int(thr.size());
    std::vector<std::int32_t> ex(std::size_t(K) * n), pr(std::size_t(K) * n);
    for (int k = 0; k < K; ++k)
      for (int i = 0; i < n; ++i) {
        const ExitResult r = early_exit_one<float>(ws1, P, images.data() + std::size_t(i) * img, base.with_threshold(thr[k]), nullptr);
        ex[std::size_t(k) * n + i] = r.exit;
        pr[std::size_t(k) * n + i] = r.pred;
      }
    StFile out;
    out.metadata = {{"checkpoint", argv[1]}, {"rule", argv[5]}};
    out.add<float>("images", images.data(), {n, c.channels, c.image_size, c.image_size});
    out.add<float>("logits", logits.data(), {M, n, C});
    out.add<double>("thresholds", thr.data(), {K});
    out.add<std::int32_t>("exit", ex.data(), {K, n});
    out.add<std::int32_t>("pred", pr.data(), {K, n});
    out.add<double>("scores", scores.data(), {M, n});
    safetensors_write(argv[4], out);
    std::printf("onnx_reference: %d images, %d exits, %d thresholds (%s) -> %s\n", n, M, K, argv[5], argv[4]);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "onnx_reference: %s\n", e.what());
    return 1;
  }
}
