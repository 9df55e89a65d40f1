// envit_bf16_native_check — BF16 inference on a native BF16 kernel set (avx512_bf16, amx) against
// the emulated reference: an FP32 kernel set run on BF16-rounded operands (kernels/dispatch.hpp),
// which is by construction an FP32 model fed BF16-rounded weights and GEMM inputs. The kernel set
// is fixed per process (ENVIT_ISA), so the check takes two runs (tests/infer.cmake):
//   envit_bf16_native_check write FILE     under ENVIT_ISA=<an FP32 set>: every exit's bf16 logits
//                                          of the models below into FILE;
//   envit_bf16_native_check compare FILE   with the host's best set: the same logits, compared with
//                                          FILE within kNativeTol of each model's logit scale;
//                                          exit code 77 (ctest SKIP_RETURN_CODE) when that set does
//                                          not compute BF16 natively (nothing to compare).
// The two runs differ only in the FP32 accumulation order of the products (the BF16 products are
// exact in FP32), and where that moves a value across a BF16 rounding boundary, in one BF16 ulp of
// the next product's operand; the tolerance is derived and the measured value stated in
// docs/method.md ("BF16").
// Models: the BF16 parity fixture's (tests/data/bf16_fixture.safetensors: D 32, F 64) and tiny28's
// layer sizes on 4 blocks (D 192, F 768: the K of the fc2 product is 768), random parameters.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "envit/core/rng.hpp"
#include "envit/infer/early_exit.hpp"
#include "envit/io/safetensors.hpp"
#include "envit/kernels/dispatch.hpp"

#ifndef ENVIT_PARITY_DATA_DIR
#define ENVIT_PARITY_DATA_DIR "tests/data"
#endif

using namespace envit;

namespace {

constexpr double kNativeTol = 1e-2;  // max |native - emulated| / max |logit|
constexpr int kSkip = 77;


struct Case {
  std::string name;
  ViTParams<float> P;
  std::vector<float> images;
  int B;
};

std::vector<Case> cases() {
  std::vector<Case> v;
  {
    const char* d = std::getenv("ENVIT_TEST_DATA");
    const StFile f = safetensors_read(std::string(d && *d ? d : ENVIT_PARITY_DATA_DIR) + "/bf16_fixture.safetensors");
    VitConfig cfg = VitConfig::from_map(f.metadata);
    ViTParams<float> P(cfg, false);
    for (const ParamEntry& e : P.table()) f.copy_to<float>("param." + e.name, P.values() + e.offset, e.shape);
    const int B = int(f.meta_int("batch"));
    v.push_back({"fixture", std::move(P), f.get<float>("images"), B});
  }
  {
    VitConfig cfg = VitConfig::tiny28();
    cfg.depth = 4;
    cfg.exits = {2, 4};
    ViTParams<float> P(cfg, false);
    P.init(3);
    const int B = 8;
    std::vector<float> img(std::size_t(B) * 28 * 28);
    CounterRng r(11, RngStream::init, 5);
    for (float& x : img) x = float(2 * r.uniform() - 1);
    v.push_back({"tiny28x4", std::move(P), std::move(img), B});
  }
  return v;
}

std::vector<float> bf16_logits(Case& c) {
  const VitConfig& cfg = c.P.config();
  InferenceWorkspace<float> ws(cfg, c.B);
  ws.precision = Precision::bf16;
  ws.prepack(c.P);
  std::vector<float> z(std::size_t(cfg.num_exits()) * c.B * cfg.classes);
  infer_all_exits<float>(ws, c.P, c.images.data(), c.B, z.data(), std::ptrdiff_t(c.B) * cfg.classes);
  return z;
}

int write(const std::string& path) {
  StFile f;
  f.metadata["kernels"] = kernel_set_info();
  for (Case& c : cases()) {
    const VitConfig& cfg = c.P.config();
    f.add<float>(c.name, bf16_logits(c).data(), {cfg.num_exits(), c.B, cfg.classes});
  }
  safetensors_write(path, f);
  std::printf("wrote the bf16 logits of the %s set to %s\n", kernel_set_name(), path.c_str());
  return 0;
}

int compare(const std::string& path) {
  if (!gemm_kernels().bf16_native) {
    std::printf("SKIPPED: the kernel set in use (%s) has no native BF16 products; nothing to compare with the "
                "emulated reference\n", kernel_set_name());
    return kSkip;
  }
  const StFile f = safetensors_read(path);
  int bad = 0;
  for (Case& c : cases()) {
    const VitConfig& cfg = c.P.config();
    const std::vector<float> z = bf16_logits(c);
    std::vector<float> ref(z.size());
    f.copy_to<float>(c.name, ref.data(), {cfg.num_exits(), c.B, cfg.classes});
    double scale = 0, worst = 0;
    std::size_t at = 0, differ = 0;
    for (std::size_t i = 0; i < z.size(); ++i) {
      scale = std::max(scale, std::abs(double(ref[i])));
      const double d = std::abs(double(z[i]) - double(ref[i]));
      differ += std::memcmp(&z[i], &ref[i], sizeof(float)) != 0;
      if (!(d <= worst)) worst = d, at = i;
    }
    const bool ok = worst <= kNativeTol * scale;
    std::printf("%s: %s (%s) vs emulated reference (%s): %zu of %zu logits differ, max |diff| %.4g = %.3g of the "
                "logit scale %.4g (at %zu: %.9g vs %.9g); tolerance %.3g: %s\n",
                c.name.c_str(), kernel_set_name(), gemm_kernels().bf16, f.meta_or("kernels", "?").c_str(), differ, z.size(),
                worst, worst / scale, scale, at, double(z[at]), double(ref[at]), kNativeTol, ok ? "ok" : "FAILED");
    bad += !ok;
  }
  return bad ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc == 3 ? argv[1] : "";
  if (mode != "write" && mode != "compare") {
    std::fprintf(stderr, "usage: %s write|compare FILE\n", argv[0]);
    return 2;
  }
  try {
    return mode == "write" ? write(argv[2]) : compare(argv[2]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", argv[0], e.what());
    return 1;
  }
}
