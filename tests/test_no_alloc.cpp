// Proves that a whole training step (train_step: mask draw, zero_grads,
// teacher forward (complete model), training forward with skipped samples, objective, backward,
// gradient clipping and AdamW, for scheme envit with p_M = 0.3 on VitConfig::tiny28().
//
// This executable replaces every global operator new / delete (plain, array, nothrow, aligned)
// with counting versions, and on glibc also interposes malloc / calloc / realloc / memalign /
// posix_memalign / aligned_alloc (forwarding to glibc's own __libc_* entry points), so heap use by
// Eigen, libgomp or the C library is counted too, not only C++ `new`. Counting is switched on only
// around the step itself (Catch2's macros allocate). Counts are atomic: OpenMP workers are counted.
#include <catch2/catch.hpp>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <vector>

#include "envit/optim/adamw.hpp"
#include "envit/train/step.hpp"
#include "envit/train/objective.hpp"

namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_new_calls{0};     // global operator new (all forms)
std::atomic<long> g_malloc_calls{0};  // C allocation functions (includes those behind operator new)
inline void count_new() {
  if (g_counting.load(std::memory_order_relaxed)) g_new_calls.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

// ---- C allocation functions (glibc only) ---------------------------------------------------------
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__)  // ASan owns malloc; interposing it would bypass ASan
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
void __libc_free(void*);

static inline void count_malloc() {
  if (g_counting.load(std::memory_order_relaxed)) g_malloc_calls.fetch_add(1, std::memory_order_relaxed);
}
void* malloc(std::size_t n) {
  count_malloc();
  return __libc_malloc(n);
}
void* calloc(std::size_t a, std::size_t b) {
  count_malloc();
  return __libc_calloc(a, b);
}
void* realloc(void* p, std::size_t n) {
  count_malloc();
  return __libc_realloc(p, n);
}
void free(void* p) { __libc_free(p); }
void* memalign(std::size_t al, std::size_t n) {
  count_malloc();
  return __libc_memalign(al, n);
}
void* aligned_alloc(std::size_t al, std::size_t n) {
  count_malloc();
  return __libc_memalign(al, n);
}
int posix_memalign(void** out, std::size_t al, std::size_t n) {
  count_malloc();
  if (al < sizeof(void*) || (al & (al - 1)) != 0) return EINVAL;
  void* p = __libc_memalign(al, n);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}
}  // extern "C"
#endif

// ---- global operator new / delete ------------------------------------------------------------------
namespace {
void* alloc_or_throw(std::size_t n) {
  count_new();
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* aligned_or_throw(std::size_t n, std::align_val_t al) {
  count_new();
  const std::size_t a = std::max(static_cast<std::size_t>(al), sizeof(void*));
  void* p = nullptr;
  if (::posix_memalign(&p, a, n ? n : 1) == 0) return p;
  throw std::bad_alloc();
}
}  // namespace

void* operator new(std::size_t n) { return alloc_or_throw(n); }
void* operator new[](std::size_t n) { return alloc_or_throw(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try { return alloc_or_throw(n); } catch (...) { return nullptr; }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  try { return alloc_or_throw(n); } catch (...) { return nullptr; }
}
void* operator new(std::size_t n, std::align_val_t al) { return aligned_or_throw(n, al); }
void* operator new[](std::size_t n, std::align_val_t al) { return aligned_or_throw(n, al); }
void* operator new(std::size_t n, std::align_val_t al, const std::nothrow_t&) noexcept {
  try { return aligned_or_throw(n, al); } catch (...) { return nullptr; }
}
void* operator new[](std::size_t n, std::align_val_t al, const std::nothrow_t&) noexcept {
  try { return aligned_or_throw(n, al); } catch (...) { return nullptr; }
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }

using namespace envit;

namespace {

struct Counts { long news, mallocs; };
template <class F>
Counts count_allocs(F&& f) {
  g_new_calls = 0;
  g_malloc_calls = 0;
  g_counting = true;
  f();
  g_counting = false;
  return {g_new_calls.load(), g_malloc_calls.load()};
}

}  // namespace

TEST_CASE("the counters see allocations (self-test)", "[alloc]") {
  Counts c = count_allocs([] {
    auto* v = new std::vector<int>(100);
    delete v;
    void* p = std::malloc(10);
    std::free(p);
    auto a = aligned_buffer<float>(33);  // envit's aligned operator new
  });
  CHECK(c.news == 3);
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__)  // ASan owns malloc; interposing it would bypass ASan
  CHECK(c.mallocs >= 4);
#endif
}

// tiny28's layer sizes (dim 192, 3 heads, MLP 768: GEMMs with K above the packing depth, several
// k blocks, threaded tiles) on fewer blocks so the test stays quick.
VitConfig alloc_test_config(int depth, std::vector<int> exits) {
  VitConfig cfg = VitConfig::tiny28();
  cfg.depth = depth;
  cfg.exits = std::move(exits);
  cfg.validate();
  return cfg;
}

// A whole envit step (p_M = 0.3) with its matrix products in `precision`.
void check_step_allocations(Precision precision) {
  const VitConfig cfg = alloc_test_config(6, {2, 4, 6});
  const int B = 6;
  ViTParams<float> P(cfg);
  P.init(1);
  AdamWState<float> opt(P.size());
  StepWorkspace<float> w(cfg, B, precision);
  ObjectiveConfig o;
  o.scheme = Scheme::envit;
  o.p_max = 0.3;
  o.validate();
  const std::vector<double> p = o.block_probs(cfg);
  const LayerMasks& masks = w.masks;
  const StepStats& st = w.stats;
  std::vector<float> images(std::size_t(B) * cfg.channels * cfg.image_size * cfg.image_size);
  for (std::size_t i = 0; i < images.size(); ++i) images[i] = float((i * 37) % 101) / 50.0f - 1.0f;
  std::vector<std::int32_t> labels(B);
  for (int b = 0; b < B; ++b) labels[b] = (b * 3) % cfg.classes;

  StepSettings ss;
  ss.seed = 42;
  ss.progress = 0.5;
  ss.lr = 1e-4;
  ss.clip = 1.0;
  auto step = [&](std::uint64_t k) {
    ss.step = k;
    train_step<float>(w, P, opt, images.data(), labels.data(), B, o, p, ss);
  };
  step(0);  // warm-up: OpenMP thread pool, thread-local GEMM pack buffers, vector capacities
  for (std::uint64_t k = 1; k <= 4; ++k) {
    Counts c = count_allocs([&] { step(k); });
    INFO("step " << k << ": executed block fraction " << masks.executed_fraction() << ", loss " << st.loss);
    CHECK(c.news == 0);
    CHECK(c.mallocs == 0);
    CHECK(std::isfinite(st.loss));
    // The step really dropped samples (sub-batches) and so ran the complete-model teacher pass.
    CHECK(masks.executed_fraction() < 1.0);
    CHECK(teacher_needs_full_pass(o, masks));
  }
}

TEST_CASE("a warmed-up envit training step (p_M = 0.3) performs no heap allocation", "[alloc][model]") {
  check_step_allocations(Precision::fp32);
}
// BF16: the weights' conversion happens in the GEMM's packing, into the same reused buffers.
TEST_CASE("a warmed-up envit training step in bf16 performs no heap allocation", "[alloc][model][bf16]") {
  check_step_allocations(Precision::bf16);
}

// Adversarial case for buffers that grow on first use: a sub-batch smaller than the warm-up batch
// can need a larger GEMM block (blocks are balanced: 600 rows split into 2 x 300, 500 rows into one
// of 504), so warming up on the full batch alone does not size such buffers for every later step.
TEST_CASE("a sub-batch smaller than every warm-up batch does not allocate", "[alloc][model]") {
  const VitConfig cfg = alloc_test_config(2, {1, 2});
  const int B = 12;                            // 600 rows of 50 tokens
  ViTParams<float> P(cfg);
  P.init(1);
  ViTWorkspace<float> ws(cfg, B);
  ObjectiveWorkspace<float> ow(cfg, B);
  ObjectiveConfig o;
  o.scheme = Scheme::envit;
  o.p_max = 0.3;
  const std::vector<double> p = o.block_probs(cfg);
  LayerMasks masks(cfg.depth, B);
  masks.all(B);
  StepStats st;
  std::vector<float> images(std::size_t(B) * cfg.channels * cfg.image_size * cfg.image_size, 0.25f);
  std::vector<std::int32_t> labels(B, 1);
  auto step = [&] {
    P.zero_grads();
    train_step_grads<float>(st, ws, ow, P, images.data(), labels.data(), masks, o, p, 0.5);
  };
  step();  // warm-up on the full batch
  masks.exec[1] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};  // block 2 runs 10 of 12 samples: 500 rows
  Counts c = count_allocs(step);
  INFO("operator new calls " << c.news << ", C allocations " << c.mallocs);
  CHECK(c.news == 0);
  CHECK(c.mallocs == 0);
}

// The public low-level step with the caller's masks (refilled each step in their reserved
// capacity) and the caller's gradients in the caller's buffers: forward, loss, backward, clip and
// AdamW allocate nothing after a warm-up step.
TEST_CASE("a warmed-up low-level step with the caller's masks and gradients performs no heap allocation",
          "[alloc][model][api]") {
  const VitConfig cfg = alloc_test_config(4, {2, 4});
  const int B = 6, M = cfg.num_exits(), C = cfg.classes;
  ViTParams<float> P(cfg);
  P.init(1);
  AdamWState<float> opt(P.size());
  ViTWorkspace<float> ws(cfg, B);
  LayerMasks masks(cfg.depth, B);
  std::vector<ExitOut<float>> out(static_cast<std::size_t>(M));
  std::vector<ExitGrad<float>> grads(static_cast<std::size_t>(M));
  std::vector<float> dz(std::size_t(M) * B * C);
  std::vector<float> images(std::size_t(B) * cfg.channels * cfg.image_size * cfg.image_size);
  for (std::size_t i = 0; i < images.size(); ++i) images[i] = float((i * 37) % 101) / 50.0f - 1.0f;
  double z2 = 0;
  auto step = [&](int k) {
    masks.batch = B;  // sample i skips block l >= 2 when (i + k + l) % 3 == 0
    for (int l = 0; l < cfg.depth; ++l) {
      masks.exec[std::size_t(l)].clear();
      for (int i = 0; i < B; ++i)
        if (l < 2 || (i + k + l) % 3 != 0) masks.exec[std::size_t(l)].push_back(i);
    }
    P.zero_grads();
    vit_forward_exits<float>(out, ws, P, images.data(), masks);
    z2 = 0;
    for (int j = 0; j < M; ++j) {  // L = sum z^2 / B: dL/dz = 2 z / B
      float* d = dz.data() + std::size_t(j) * B * C;
      const ExitOut<float>& e = out[std::size_t(j)];
      for (std::size_t r = 0; r < std::size_t(e.n) * C; ++r) {
        z2 += double(e.logits[r]) * e.logits[r] / B;
        d[r] = 2.0f * e.logits[r] / float(B);
      }
      grads[std::size_t(j)] = {d, nullptr};
    }
    vit_backward_exits<float>(P, ws, grads, masks);
    clip_grad_norm(P, 1.0);
    adamw_step(P, opt, AdamWConfig{}, 1e-4);
  };
  step(0);
  for (int k = 1; k <= 3; ++k) {
    Counts c = count_allocs([&] { step(k); });
    INFO("step " << k << ": executed block fraction " << masks.executed_fraction());
    CHECK(c.news == 0);
    CHECK(c.mallocs == 0);
    CHECK(std::isfinite(z2));
    CHECK(masks.executed_fraction() < 1.0);
  }
}

// The baseline schemes with their own buffers (cosee's signals, coefficients and exit weights;
// byot-mmrazor's hint; beem's weights) allocate nothing after a warm-up step either.
TEST_CASE("warmed-up cosee, beem and byot-mmrazor training steps perform no heap allocation", "[alloc][model]") {
  const VitConfig cfg = alloc_test_config(4, {1, 2, 3, 4});
  const int B = 6;
  ViTParams<float> P(cfg);
  P.init(1);
  ViTWorkspace<float> ws(cfg, B);
  ObjectiveWorkspace<float> ow(cfg, B);
  LayerMasks masks(cfg.depth, B);
  masks.all(B);
  StepStats st;
  std::vector<float> images(std::size_t(B) * cfg.channels * cfg.image_size * cfg.image_size);
  for (std::size_t i = 0; i < images.size(); ++i) images[i] = float((i * 37) % 101) / 50.0f - 1.0f;
  std::vector<std::int32_t> labels(B);
  for (int b = 0; b < B; ++b) labels[b] = (b * 3) % cfg.classes;
  for (const char* name : {"cosee", "beem", "byot"}) {
    INFO(name);
    ObjectiveConfig o;
    o.scheme = parse_scheme(name);
    o.set_byot(ByotVariant::mmrazor);
    o.p_max = 0;
    const std::vector<double> p = o.block_probs(cfg);
    auto step = [&](double progress) {
      ow.cosee.thresholds.resize(5);
      for (int r = 0; r < 5; ++r) ow.cosee.thresholds[r] = 0.05 * (r + 1);
      P.zero_grads();
      train_step_grads<float>(st, ws, ow, P, images.data(), labels.data(), masks, o, p, progress);
    };
    step(0.1);
    Counts c = count_allocs([&] { step(0.6); });
    CHECK(c.news == 0);
    CHECK(c.mallocs == 0);
    CHECK(std::isfinite(st.loss));
  }
}
