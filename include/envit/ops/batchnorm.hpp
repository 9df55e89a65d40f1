// envit/ops/batchnorm.hpp — BatchNorm over tokens (PyTorch's BatchNorm2d on a (B, D, G, G) map, with
// the map stored token-major as (R, D) rows, R = B * G * G): per channel d,
//   train: mean_d, var_d over the R rows (biased var normalises; the unbiased one feeds the
//          running statistics through batchnorm_running_update, momentum 0.1 as in PyTorch),
//   eval:  mean_d = running_mean_d, var_d = running_var_d,
//   y = (x - mean_d) / sqrt(var_d + eps) * gamma_d + beta_d.
// The running statistics are buffers (no gradient) kept beside the parameters and saved in
// checkpoints. Not fused with anything; num_batches_tracked is not kept (momentum is fixed).
// Column statistics: channels split over threads, each summing its columns over all rows in
// double (deterministic for any thread count). Letters: R = rows, D = channels.
// Data parallelism (BatchNormGroup): the R rows are one process's shard of the batch; the column
// sums are summed over the processes, two-pass as on one process (the sums of x and the row count,
// then the sums of (x - mean)^2 around the whole batch's mean), so each shard is normalised with
// the whole batch's statistics, and the backward's column sums of dy and dy*xhat likewise.
#pragma once
#include <cmath>
#include <cstddef>

#include "envit/core/batch_reduce.hpp"
#include "envit/core/error.hpp"
#include "envit/core/parallel.hpp"

namespace envit {

enum class BnMode { train, eval };
struct BatchNormShape { std::ptrdiff_t rows, dim; };
template <class T> struct BatchNormParams {
  const T* gamma; const T* beta;               // (D) each
  const T* running_mean; const T* running_var; // (D) each, read in eval mode
};
template <class T> struct BatchNormGrads { T* dgamma; T* dbeta; };   // (D) each, accumulated (+=)
template <class T> struct BatchNormCache { T* mean; T* var; T* rstd; };  // (D) each: statistics used

// The processes sharing a train-mode batch: reduce sums over them (nullptr: the rows are the whole
// batch); acc: (2D + 1) doubles of scratch, needed with reduce.
struct BatchNormGroup { const BatchReduce* reduce = nullptr; double* acc = nullptr; };

inline void batchnorm_check(const BatchNormShape& s, const char* op) {
  ENVIT_CHECK(s.rows >= 1 && s.dim > 0, ShapeError, op, ": invalid shape rows=", s.rows, " dim=", s.dim);
}

template <class T>
void batchnorm_forward(T* y,                  // (R, D)  overwritten; may not alias x
                       BatchNormCache<T> c,   // written here, read by backward and running update
                       const T* x,            // (R, D)
                       BatchNormParams<T> p, BatchNormShape s, T eps, BnMode mode, BatchNormGroup grp = {}) {
  batchnorm_check(s, "batchnorm_forward");
  const std::ptrdiff_t R = s.rows, D = s.dim;
  using Acc = decltype(T() + double());
  auto col_sum = [&](std::ptrdiff_t d) {
    Acc sum = 0;
    for (std::ptrdiff_t r = 0; r < R; ++r) sum += Acc(x[r * D + d]);
    return sum;
  };
  auto col_sq = [&](std::ptrdiff_t d, Acc mean) {
    Acc sq = 0;
    for (std::ptrdiff_t r = 0; r < R; ++r) { const Acc e = Acc(x[r * D + d]) - mean; sq += e * e; }
    return sq;
  };
  auto set = [&](std::ptrdiff_t d, Acc mean, Acc var) {
    c.mean[d] = T(mean);
    c.var[d] = T(var);
    c.rstd[d] = T(Acc(1) / std::sqrt(var + Acc(eps)));
  };
  if (mode == BnMode::train && !grp.reduce) {
    ENVIT_CHECK(R > 1, ShapeError, "batchnorm_forward: training mode needs more than one value per channel, got rows=", R);
    parallel_for(D, 3.0 * double(R), [&](std::ptrdiff_t d0, std::ptrdiff_t d1) {
      for (std::ptrdiff_t d = d0; d < d1; ++d) {
        const Acc mean = col_sum(d) / Acc(R);
        set(d, mean, col_sq(d, mean) / Acc(R));
      }
    });
  } else if (mode == BnMode::train) {  // acc: column sums (D), row count, then centred squares (D)
    ENVIT_CHECK(grp.acc, ValueError, "batchnorm_forward: a BatchNormGroup with reduce needs acc (2D + 1 doubles)");
    double* acc = grp.acc;
    parallel_for(D, double(R), [&](std::ptrdiff_t d0, std::ptrdiff_t d1) {
      for (std::ptrdiff_t d = d0; d < d1; ++d) acc[d] = double(col_sum(d));
    });
    acc[D] = double(R);
    grp.reduce->sum(acc, int(D + 1));
    const double rows = acc[D];
    ENVIT_CHECK(rows > 1, ShapeError, "batchnorm_forward: training mode needs more than one value per channel, got ",
                rows, " rows over the processes");
    parallel_for(D, 2.0 * double(R), [&](std::ptrdiff_t d0, std::ptrdiff_t d1) {
      for (std::ptrdiff_t d = d0; d < d1; ++d) acc[D + 1 + d] = double(col_sq(d, Acc(acc[d]) / Acc(rows)));
    });
    grp.reduce->sum(acc + D + 1, int(D));
    for (std::ptrdiff_t d = 0; d < D; ++d) set(d, Acc(acc[d]) / Acc(rows), Acc(acc[D + 1 + d]) / Acc(rows));
  } else {
    for (std::ptrdiff_t d = 0; d < D; ++d) {
      c.mean[d] = p.running_mean[d];
      c.var[d] = p.running_var[d];
      c.rstd[d] = T(Acc(1) / std::sqrt(Acc(p.running_var[d]) + Acc(eps)));
    }
  }
  parallel_for(R, 3.0 * double(D), [&](std::ptrdiff_t r0, std::ptrdiff_t r1) {
    for (std::ptrdiff_t r = r0; r < r1; ++r)
      for (std::ptrdiff_t d = 0; d < D; ++d)
        y[r * D + d] = (x[r * D + d] - c.mean[d]) * c.rstd[d] * p.gamma[d] + p.beta[d];
  });
}

// PyTorch's running-statistics update after a training-mode forward over R rows (under data
// parallelism: the rows of every process):
//   running_mean = (1 - m) running_mean + m mean,   running_var = (1 - m) running_var + m var R/(R-1)
template <class T>
void batchnorm_running_update(T* running_mean,  // (D)  updated in place
                              T* running_var,   // (D)  updated in place
                              BatchNormCache<T> c, BatchNormShape s, double momentum = 0.1) {
  batchnorm_check(s, "batchnorm_running_update");
  ENVIT_CHECK(s.rows > 1, ShapeError, "batchnorm_running_update: needs rows > 1, got ", s.rows);
  const T m = T(momentum), unbias = T(double(s.rows) / double(s.rows - 1));
  for (std::ptrdiff_t d = 0; d < s.dim; ++d) {
    running_mean[d] = (T(1) - m) * running_mean[d] + m * c.mean[d];
    running_var[d] = (T(1) - m) * running_var[d] + m * c.var[d] * unbias;
  }
}

// With xhat = (x - mean) * rstd and y = xhat * gamma + beta, per channel over the R rows:
//   dgamma += sum_r dy xhat,  dbeta += sum_r dy,  g = dy * gamma
//   train (mean, var depend on x):  dx = rstd * (g - mean_r(g) - xhat * mean_r(g xhat))
//   eval  (running statistics):     dx = rstd * g
// dx accumulated (+=) or nullptr. With grp.reduce (train mode), mean_r runs over the rows of every
// process; dgamma and dbeta get this shard's sums (parameter gradients are summed over the
// processes with the others).
template <class T>
void batchnorm_backward(T* dx,                  // (R, D)  accumulated (+=), or nullptr
                        BatchNormGrads<T> g,    // (D) each, accumulated (+=); members may be nullptr
                        const T* dy,            // (R, D)
                        const T* x,             // (R, D)  the forward input
                        BatchNormCache<T> c, BatchNormParams<T> p, BatchNormShape s, BnMode mode,
                        BatchNormGroup grp = {}) {
  batchnorm_check(s, "batchnorm_backward");
  const std::ptrdiff_t R = s.rows, D = s.dim;
  using Acc = decltype(T() + double());
  auto sums = [&](std::ptrdiff_t d, Acc& sdy, Acc& sdyx) {
    const T mean = c.mean[d], rstd = c.rstd[d];
    sdy = 0, sdyx = 0;
    for (std::ptrdiff_t r = 0; r < R; ++r) {
      const Acc dyr = Acc(dy[r * D + d]);
      sdy += dyr;
      sdyx += dyr * Acc((x[r * D + d] - mean) * rstd);
    }
    if (g.dgamma) g.dgamma[d] += T(sdyx);
    if (g.dbeta) g.dbeta[d] += T(sdy);
  };
  auto input_grad = [&](std::ptrdiff_t d, Acc sdy, Acc sdyx, Acc rows) {
    const T mean = c.mean[d], rstd = c.rstd[d], gam = p.gamma[d];
    if (mode == BnMode::train) {
      const T mg = T(Acc(gam) * sdy / rows), mgx = T(Acc(gam) * sdyx / rows);
      for (std::ptrdiff_t r = 0; r < R; ++r) {
        const T xh = (x[r * D + d] - mean) * rstd;
        dx[r * D + d] += rstd * (dy[r * D + d] * gam - mg - xh * mgx);
      }
    } else {
      for (std::ptrdiff_t r = 0; r < R; ++r) dx[r * D + d] += rstd * gam * dy[r * D + d];
    }
  };
  if (!grp.reduce || mode == BnMode::eval || !dx) {
    parallel_for(D, 6.0 * double(R), [&](std::ptrdiff_t d0, std::ptrdiff_t d1) {
      for (std::ptrdiff_t d = d0; d < d1; ++d) {
        Acc sdy, sdyx;
        sums(d, sdy, sdyx);
        if (dx) input_grad(d, sdy, sdyx, Acc(R));
      }
    });
    return;
  }
  // acc: column sums of dy (D), of dy*xhat (D), the row count; summed over the processes
  ENVIT_CHECK(grp.acc, ValueError, "batchnorm_backward: a BatchNormGroup with reduce needs acc (2D + 1 doubles)");
  double* acc = grp.acc;
  parallel_for(D, 3.0 * double(R), [&](std::ptrdiff_t d0, std::ptrdiff_t d1) {
    for (std::ptrdiff_t d = d0; d < d1; ++d) {
      Acc sdy, sdyx;
      sums(d, sdy, sdyx);
      acc[d] = double(sdy), acc[D + d] = double(sdyx);
    }
  });
  acc[2 * D] = double(R);
  grp.reduce->sum(acc, int(2 * D + 1));
  parallel_for(D, 3.0 * double(R), [&](std::ptrdiff_t d0, std::ptrdiff_t d1) {
    for (std::ptrdiff_t d = d0; d < d1; ++d) input_grad(d, Acc(acc[d]), Acc(acc[D + d]), Acc(acc[2 * D]));
  });
}

}  // namespace envit
