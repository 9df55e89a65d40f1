// Early-exit inference from a checkpoint: load the model (no optimiser, no training code), normalise
// a batch of test images with the statistics stored in the checkpoint, and let each image leave at
// the first exit whose softmax confidence reaches the threshold (eq. 18). Prints where the images
// left, the accuracy, and the speed-up in multiply-accumulates over running every block.
//   early_exit_inference CHECKPOINT [DATA_DIR] [THRESHOLD]
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "envit/data/idx.hpp"
#include "envit/infer/early_exit.hpp"
#include "envit/infer/macs.hpp"
#include "envit/weights/checkpoint.hpp"

using namespace envit;

int main(int argc, char** argv) try {
  if (argc < 2) {
    std::fprintf(stderr, "usage: early_exit_inference CHECKPOINT [DATA_DIR] [THRESHOLD]\n");
    return 2;
  }
  const StFile file = safetensors_read(argv[1]);
  const ViTParams<float> P = checkpoint_model<float>(file);
  const VitConfig& cfg = P.config();
  const Normalizer norm(ChannelStats::from_map(file.metadata, cfg.channels, file.where()));
  const Dataset test = fashion_mnist_load(argc > 2 ? argv[2] : kFashionMnistDir, false);
  const double threshold = argc > 3 ? std::atof(argv[3]) : 0.3;

  // One batch of 256 test images.
  const int B = 256;
  std::vector<std::int64_t> idx(B);
  for (int i = 0; i < B; ++i) idx[std::size_t(i)] = i;
  std::vector<float> images(std::size_t(B) * cfg.channels * cfg.image_size * cfg.image_size);
  std::vector<std::int32_t> labels(B);
  make_batch(images.data(), labels.data(), test, idx.data(), B, norm, Augment{}, 0, 0);

  InferenceWorkspace<float> ws(cfg, B);
  ws.prepack(P);  // pack the block weights once for the GEMMs
  std::vector<int> exit(B), pred(B);
  early_exit_batch<float>(ws, P, images.data(), B, ExitCriterion::confidence(threshold),
                          {exit.data(), pred.data(), nullptr});

  const int M = cfg.num_exits();
  std::vector<std::int64_t> left(std::size_t(M), 0);
  int correct = 0;
  for (int i = 0; i < B; ++i) {
    ++left[std::size_t(exit[i])];
    correct += pred[i] == labels[i];
  }
  for (int j = 0; j < M; ++j)
    std::printf("exit %d (after block %d): %lld images\n", j, cfg.exits[j], (long long)left[std::size_t(j)]);
  const double speedup = macs_speedup(vit_macs(cfg), left);
  std::printf("confidence >= %.2f: accuracy %.1f%%, MAC speed-up %.2fx\n", threshold, 100.0 * correct / B, speedup);
  return speedup >= 1.0 && 10 * correct > 3 * B ? 0 : 1;  // three times chance
} catch (const Error& e) {
  std::fprintf(stderr, "early_exit_inference: %s\n", e.what());
  return 1;
}
