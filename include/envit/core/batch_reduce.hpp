// envit/core/batch_reduce.hpp — the one hook through which the library reaches the other processes
// of a data-parallel job: sums and maxima of a few doubles over the processes that each hold a
// shard of the global batch. Batch statistics (BatchNorm's mean and variance in LGViT heads, COSEE's
// signal range and calibration counts, the per-exit sample counts of the `remaining` loss
// reduction, BYOT mmrazor's hint norm) go through it, so every shard computes with the whole
// batch's values. The library has no transport: a program supplies the functions (examples/envit/
// dist.hpp: MPI_Allreduce). Empty functions: one process, values unchanged.
// Every process of the job must make the same calls in the same order (they are collectives); the
// callers do, because the calls depend only on the model, the scheme and the step, never on the
// shard's own samples. Called from the calling thread only, outside parallel regions.
#pragma once
#include <functional>

namespace envit {

struct BatchReduce {
  std::function<void(double* x, int n)> sum_fn;  // x (n): in place, the sum over the processes
  std::function<void(double* x, int n)> max_fn;  // x (n): in place, the maximum over the processes
  bool active() const { return bool(sum_fn); }
  void sum(double* x, int n) const {
    if (sum_fn) sum_fn(x, n);
  }
  void max(double* x, int n) const {
    if (max_fn) max_fn(x, n);
  }
};

// Where a loss's B samples sit in a data-parallel step.
struct BatchShard {
  const BatchReduce* reduce = nullptr;  // sums over the processes (nullptr: one process)
  int global_batch = 0;                 // samples over all processes (0: these B are the batch)
  bool leader = true;                   // holds global position 0: carries the loss terms that are
                                        // not sums over samples, so the shards' losses sum to the total
  int total(int B) const { return global_batch > 0 ? global_batch : B; }
};

// Sums x (n) in place over reduce's processes; a no-op for nullptr (one process).
inline void batch_sum(const BatchReduce* reduce, double* x, int n) {
  if (reduce) reduce->sum(x, n);
}
inline void batch_max(const BatchReduce* reduce, double* x, int n) {
  if (reduce) reduce->max(x, n);
}

}  // namespace envit
