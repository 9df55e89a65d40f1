// envit/ops/patch_embed.hpp — ViT patch embedding: Conv2d(C -> D, kernel P, stride P, bias) as
// im2col + GEMM, then the class token and the learned position embedding (timm's PatchEmbed plus
// VisionTransformer._pos_embed with one class token, no distillation token, no padding, no
// dynamic image size). Images get no gradient: this is always the first layer.
// Letters: B = batch, C = channels, H x W = image size, P = patch, D = dim,
//          Gh = H/P, Gw = W/P, Np = Gh*Gw patches (row-major over the grid), K = C*P*P.
#pragma once
#include <cstddef>
#include <cstring>

#include "envit/core/error.hpp"
#include "envit/core/parallel.hpp"
#include "envit/kernels/gemm.hpp"

namespace envit {

struct PatchEmbedShape { std::ptrdiff_t batch, channels, height, width, patch, dim; };
template <class T> struct PatchEmbedParams {
  const T* w;    // (D, C, P, P)  = (D, K) row-major, as torch's Conv2d weight
  const T* b;    // (D)
  const T* cls;  // (D)
  const T* pos;  // (Np + 1, D)
};
template <class T> struct PatchEmbedGrads { T *dw, *db, *dcls, *dpos; };  // accumulated (+=)
template <class T> struct PatchEmbedCache {
  T* cols;  // (B*Np, K)  im2col of the images; column c*P*P + ky*P + kx
};
template <class T> struct PatchEmbedWorkspace {
  T* dconv;  // (B*Np, D)  patch rows of dtokens made contiguous; overwritten on every call
};

inline void patch_embed_check(const PatchEmbedShape& s) {
  ENVIT_CHECK(s.batch >= 0 && s.channels > 0 && s.height > 0 && s.width > 0 && s.patch > 0 &&
                  s.dim > 0,
              ShapeError, "patch_embed: invalid shape batch=", s.batch, " channels=", s.channels,
              " height=", s.height, " width=", s.width, " patch=", s.patch, " dim=", s.dim);
  ENVIT_CHECK(s.height % s.patch == 0 && s.width % s.patch == 0, ShapeError,
              "patch_embed: image ", s.height, "x", s.width, " is not divisible by patch ", s.patch);
}
inline std::ptrdiff_t patch_embed_patches(const PatchEmbedShape& s) {  // Np
  patch_embed_check(s);
  return (s.height / s.patch) * (s.width / s.patch);
}
inline std::ptrdiff_t patch_embed_tokens(const PatchEmbedShape& s) {  // Np + 1
  return patch_embed_patches(s) + 1;
}

// Cache for `s.batch` (the largest batch it will serve); smaller batches use its prefix.
template <class T, class A>
PatchEmbedCache<T> patch_embed_cache_take(A& arena, PatchEmbedShape s) {
  const std::ptrdiff_t Np = patch_embed_patches(s), K = s.channels * s.patch * s.patch;
  PatchEmbedCache<T> c;
  c.cols = arena.take(std::size_t(s.batch * Np * K));
  return c;
}

template <class T, class A>
PatchEmbedWorkspace<T> patch_embed_workspace_take(A& arena, PatchEmbedShape s) {
  const std::ptrdiff_t Np = patch_embed_patches(s);
  PatchEmbedWorkspace<T> w;
  w.dconv = arena.take(std::size_t(s.batch * Np * s.dim));
  return w;
}

// cols[b*Np + gy*Gw + gx, c*P*P + ky*P + kx] = images[b, c, gy*P + ky, gx*P + kx]
// tokens[b, 0]     = cls + pos[0]
// tokens[b, 1 + p] = cols[b*Np + p] W^T + bias + pos[1 + p]
template <class T>
void patch_embed_forward(T* tokens,               // (B, Np+1, D)  overwritten
                         PatchEmbedCache<T> c,    // written here, read by backward
                         const T* images,         // (B, C, H, W)
                         PatchEmbedParams<T> p, PatchEmbedShape s) {
  const std::ptrdiff_t Np = patch_embed_patches(s);
  const std::ptrdiff_t C = s.channels, Hh = s.height, Ww = s.width, P = s.patch, D = s.dim;
  const std::ptrdiff_t Gw = Ww / P, K = C * P * P, Nt = Np + 1;
  parallel_for(s.batch * Np, double(K), [&](std::ptrdiff_t r0, std::ptrdiff_t r1) {
    for (std::ptrdiff_t r = r0; r < r1; ++r) {
      const std::ptrdiff_t b = r / Np, gy = (r % Np) / Gw, gx = (r % Np) % Gw;
      T* col = c.cols + r * K;
      for (std::ptrdiff_t ch = 0; ch < C; ++ch)
        for (std::ptrdiff_t ky = 0; ky < P; ++ky) {
          const T* src = images + ((b * C + ch) * Hh + gy * P + ky) * Ww + gx * P;
          std::memcpy(col + (ch * P + ky) * P, src, sizeof(T) * std::size_t(P));
        }
    }
  });
  // One GEMM per image (its patch rows are contiguous in tokens, after the class row); images
  // are independent, and GEMMs inside the parallel region stay serial.
  parallel_for(s.batch, 2.0 * double(Np * D * K), [&](std::ptrdiff_t b0, std::ptrdiff_t b1) {
    for (std::ptrdiff_t b = b0; b < b1; ++b) {
      T* tb = tokens + b * Nt * D;
      gemm<T>(Trans::N, Trans::T, Np, D, K, T(1), c.cols + b * Np * K, K, p.w, K, T(0), tb + D, D);
      for (std::ptrdiff_t d = 0; d < D; ++d) tb[d] = p.cls[d] + p.pos[d];
      for (std::ptrdiff_t t = 1; t < Nt; ++t) {
        T* row = tb + t * D;
        const T* pr = p.pos + t * D;
        for (std::ptrdiff_t d = 0; d < D; ++d) row[d] += p.b[d] + pr[d];
      }
    }
  });
}

// Gradients (G = dtokens):
//   dcls += sum_b G[b, 0]          dpos[t] += sum_b G[b, t]
//   db   += sum_b sum_{t>=1} G[b, t]
//   dW   += dconv^T cols           dconv = G[:, 1:] as (B*Np, D)
// The three batch sums split columns over threads and add rows in a fixed (b, t) order, so they
// are bitwise-identical for any thread count; dW is one GEMM (deterministic per thread count).
template <class T>
void patch_embed_backward(PatchEmbedGrads<T> g,       // accumulated (+=); members may be nullptr
                          const T* dtokens,           // (B, Np+1, D)
                          PatchEmbedCache<T> c, PatchEmbedParams<T> p, PatchEmbedShape s,
                          PatchEmbedWorkspace<T> w) {
  (void)p;
  const std::ptrdiff_t Np = patch_embed_patches(s);
  const std::ptrdiff_t D = s.dim, K = s.channels * s.patch * s.patch, Nt = Np + 1, B = s.batch;
  if (g.dw) {
    parallel_for(B * Np, double(D), [&](std::ptrdiff_t r0, std::ptrdiff_t r1) {
      for (std::ptrdiff_t r = r0; r < r1; ++r) {
        const std::ptrdiff_t b = r / Np, t = 1 + r % Np;
        std::memcpy(w.dconv + r * D, dtokens + (b * Nt + t) * D, sizeof(T) * std::size_t(D));
      }
    });
    gemm<T>(Trans::T, Trans::N, D, K, B * Np, T(1), w.dconv, D, c.cols, K, T(1), g.dw, K);
  }
  if (g.db || g.dcls || g.dpos) {
    parallel_for(D, 2.0 * double(B * Nt), [&](std::ptrdiff_t d0, std::ptrdiff_t d1) {
      for (std::ptrdiff_t b = 0; b < B; ++b) {
        const T* gb = dtokens + b * Nt * D;
        for (std::ptrdiff_t d = d0; d < d1; ++d) {
          if (g.dcls) g.dcls[d] += gb[d];
          if (g.dpos) g.dpos[d] += gb[d];
        }
        for (std::ptrdiff_t t = 1; t < Nt; ++t) {
          const T* row = gb + t * D;
          for (std::ptrdiff_t d = d0; d < d1; ++d) {
            if (g.db) g.db[d] += row[d];
            if (g.dpos) g.dpos[t * D + d] += row[d];
          }
        }
      }
    });
  }
}

}  // namespace envit
