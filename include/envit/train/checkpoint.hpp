// envit/train/checkpoint.hpp — resumable checkpoints: weights/checkpoint.hpp's file (config and
// parameters) plus the AdamW state:
//   tensors:  `optimizer.exp_avg.<name>` / `optimizer.exp_avg_sq.<name>` for every parameter;
//   metadata: `optimizer.step`.
// All random streams in envit are counter-based, keyed by (seed, step/epoch, ...), so the seed and
// the step/epoch counters stored in the metadata are the complete generator state.
// Writes are atomic (temporary file, fsync, rename): a crash never leaves a half-written checkpoint.
#pragma once
#include <map>
#include <string>

#include "envit/io/safetensors.hpp"
#include "envit/weights/checkpoint.hpp"
#include "envit/model/params.hpp"
#include "envit/optim/adamw.hpp"
#include "envit/train/finite.hpp"

namespace envit {

// Builds the safetensors content of a checkpoint. `opt` may be null (weights only).
template <class T>
StFile checkpoint_build(const ViTParams<T>& P, const AdamWState<T>* opt,
                        const std::map<std::string, std::string>& meta) {
  StFile f = checkpoint_weights(P, meta);
  if (opt) {
    f.set_meta_int("optimizer.step", opt->step);
    for (const ParamEntry& e : P.table()) f.add<T>("optimizer.exp_avg." + e.name, opt->m.data() + e.offset, e.shape);
    for (const ParamEntry& e : P.table())
      f.add<T>("optimizer.exp_avg_sq." + e.name, opt->v.data() + e.offset, e.shape);
  }
  return f;
}

template <class T>
void checkpoint_save(const std::string& path, const ViTParams<T>& P, const AdamWState<T>* opt,
                     const std::map<std::string, std::string>& meta) {
  safetensors_write(path, checkpoint_build(P, opt, meta));
}

// Restores a resumable checkpoint exactly: every parameter and both moments must be present with
// the right dtype and shape, and the file's config must equal P's.
template <class T>
void checkpoint_restore(const StFile& f, ViTParams<T>& P, AdamWState<T>& opt) {
  ENVIT_CHECK(f.meta_or("format", "") == kCheckpointFormat, IoError, f.where(), ": format is '",
              f.meta_or("format", "(none)"), "', expected ", kCheckpointFormat);
  VitConfig c = checkpoint_config(f);
  ENVIT_CHECK(c.to_map() == P.config().to_map(), IoError, f.where(), ": model config [", c.str(),
              "] differs from the run's [", P.config().str(), "]");
  ENVIT_CHECK(f.has_meta("optimizer.step"), IoError, f.where(),
              ": no optimizer state (a weights-only file cannot be resumed; load its weights with load_weights)");
  for (const ParamEntry& e : P.table()) {
    f.copy_to<T>(e.name, P.values() + e.offset, e.shape);
    f.copy_to<T>("optimizer.exp_avg." + e.name, opt.m.data() + e.offset, e.shape);
    f.copy_to<T>("optimizer.exp_avg_sq." + e.name, opt.v.data() + e.offset, e.shape);
  }
  for (auto [arena, what] : {std::pair{static_cast<const T*>(P.values()), "parameter"},
                             {opt.m.data(), "optimizer.exp_avg of"}, {opt.v.data(), "optimizer.exp_avg_sq of"}}) {
    const std::string bad = non_finite_in(P, arena, what);
    ENVIT_CHECK(bad.empty(), IoError, f.where(), ": non-finite value in ", bad);
  }
  opt.step = f.meta_int("optimizer.step");
}

}  // namespace envit
