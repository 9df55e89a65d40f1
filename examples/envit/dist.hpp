// examples/envit/dist.hpp — data-parallel `envit train` on MPI (built when ENVIT_MPI is defined;
// the library itself has no MPI). Under `mpirun -np R`, each process is one rank; without mpirun
// (no Open MPI launch variables) MPI is not initialised and the program is a single process.
//
// Gradients are summed with MPI_Allreduce (MPI_SUM, in place, float): the summation order is
// Open MPI's, so R ranks agree with one process to rounding (tested to 1e-5 relative), not
// bit for bit. Every rank then clips and takes the same AdamW step on the same summed gradient.
// Batch statistics inside a step (LGViT heads' BatchNorm, COSEE's signal range and calibration,
// the `remaining` reduction's counts, BYOT mmrazor's hint norm) are summed or maximised over the
// ranks through the library's BatchReduce hook (MPI_Allreduce on doubles), so every rank computes
// with the whole global batch's values.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "envit/core/batch_reduce.hpp"
#include "envit/train/step.hpp"
#ifdef ENVIT_MPI
#include <mpi.h>
#endif

namespace envit::cli {

class Dist {
 public:
  int rank = 0, world = 1;
  bool root() const { return rank == 0; }
  bool active() const { return active_; }

  // Initialises MPI only when launched by mpirun (OMPI_COMM_WORLD_SIZE or PMIX_RANK set).
  void init(int* argc, char*** argv) {
#ifdef ENVIT_MPI
    if (!std::getenv("OMPI_COMM_WORLD_SIZE") && !std::getenv("PMIX_RANK")) return;
    int provided = 0;
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    active_ = true;
#else
    (void)argc, (void)argv;
#endif
  }
  // Ends the job: a clean finalize when every rank succeeded, otherwise MPI_Abort with `code` so
  // ranks blocked in a collective do not hang. Returns the exit code.
  int finish(int code) {
#ifdef ENVIT_MPI
    if (!active_) return code;
    if (code != 0) {
      std::fprintf(stderr, "envit: rank %d of %d failed (exit code %d); aborting the job\n", rank, world, code);
      std::fflush(stderr);
      MPI_Abort(MPI_COMM_WORLD, code);
    }
    MPI_Finalize();
#endif
    return code;
  }
  // In-place sums over the ranks.
  void sum(double* x, int n) const {
#ifdef ENVIT_MPI
    if (active_ && world > 1) MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
#else
    (void)x, (void)n;
#endif
  }
  void sum(std::int64_t* x, int n) const {
#ifdef ENVIT_MPI
    if (active_ && world > 1) MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
#else
    (void)x, (void)n;
#endif
  }
  // The Trainer's gradient reduction: parameter gradients (the whole arena, padding included: it
  // is zero) and the step's statistics, summed. Empty for a single process.
  GradReduce<float> grad_reduce() {
#ifdef ENVIT_MPI
    if (!active_ || world == 1) return {};
    return [this](ViTParams<float>& P, StepStats& st) {
      double t0 = MPI_Wtime();
      MPI_Allreduce(MPI_IN_PLACE, P.grads(), int(P.size()), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      allreduce_seconds += MPI_Wtime() - t0;
      const std::size_t M = st.ce.size();
      buf_.resize(1 + 5 * M);
      buf_[0] = st.loss;
      for (std::size_t j = 0; j < M; ++j) {
        buf_[1 + j] = st.ce[j];
        buf_[1 + M + j] = st.kl[j];
        buf_[1 + 2 * M + j] = st.feat[j];
        buf_[1 + 3 * M + j] = st.n[j];
        buf_[1 + 4 * M + j] = st.correct[j];
      }
      sum(buf_.data(), int(buf_.size()));
      st.loss = buf_[0];
      for (std::size_t j = 0; j < M; ++j) {
        st.ce[j] = buf_[1 + j];
        st.kl[j] = buf_[1 + M + j];
        st.feat[j] = buf_[1 + 2 * M + j];
        st.n[j] = int(buf_[1 + 3 * M + j]);
        st.correct[j] = int(buf_[1 + 4 * M + j]);
      }
    };
#else
    return {};
#endif
  }
  // The Trainer's batch-statistics hook: in-place sums and maxima of doubles over the ranks. Empty
  // for a single process.
  BatchReduce batch_reduce() {
#ifdef ENVIT_MPI
    if (!active_ || world == 1) return {};
    auto all = [](MPI_Op op) {
      return [op](double* x, int n) { MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, op, MPI_COMM_WORLD); };
    };
    return {all(MPI_SUM), all(MPI_MAX)};
#else
    return {};
#endif
  }
  double allreduce_seconds = 0;  // time spent in the gradient MPI_Allreduce

 private:
  bool active_ = false;
  std::vector<double> buf_;
};

// The process's communicator state (one per program).
inline Dist& dist() {
  static Dist d;
  return d;
}

}  // namespace envit::cli
