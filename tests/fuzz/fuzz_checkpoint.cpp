// libFuzzer harness: loading a checkpoint against a model, as `envit train --resume`, `--init` and
// `envit eval` do: read the safetensors file, take the model config from its metadata, build that
// model (bounded below, so the fuzzer spends its time in the checks rather than in allocation) and
// restore parameters and optimiser moments, then load the weights alone. Everything that is not a
// consistent checkpoint must throw IoError (or ValueError/ShapeError from the config checks).
#include <cstdlib>

#include "envit/train/checkpoint.hpp"
#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static envit::fuzz::MemFile mem;
  try {
    envit::StFile f = envit::safetensors_read(mem.set(data, size));
    envit::VitConfig c = envit::checkpoint_config(f);
    if (c.image_size > 64 || c.channels > 4 || c.dim > 64 || c.depth > 6 || c.mlp_hidden > 256 || c.classes > 100)
      return 0;
    envit::ViTParams<float> P(c, /*with_grads=*/false);
    envit::AdamWState<float> opt(P.size());
    try {
      envit::checkpoint_restore(f, P, opt);
    } catch (const envit::IoError&) {
    }
    envit::ViTParams<float> Q(c, /*with_grads=*/false);
    (void)envit::load_weights(f, Q, true);
  } catch (const envit::IoError&) {
  } catch (const envit::ValueError&) {
  } catch (const envit::ShapeError&) {
  }
  return 0;
}
