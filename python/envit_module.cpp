// python/envit_module.cpp — the `envit` Python module (pybind11): load a checkpoint, every exit's
// logits, real early exit, threshold sweeps and calibration as `envit eval` computes them, and
// training configured exactly like `envit train` (its own flag parser), with numpy arrays in and out.
// The GIL is released while envit computes; envit's errors become ValueError (bad values, shapes,
// usage), OSError (files) and KeyboardInterrupt (Ctrl-C during Trainer.fit). docs/python.md is the
// reference.
// The low-level step (Trainer.forward / objective / backward / zero_grads / clip_grad_norm /
// adamw_step) lets a loss written in numpy drive envit's kernels.
// INT8: envit.load reads a quantized checkpoint (envit quantize) and runs it in INT8, or any checkpoint
// with precision='int8', as envit eval does. Not here: wall-clock timings (bench/python_bench.py).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <sstream>

#include "commands.hpp"
#include "common.hpp"
#include "envit/infer/early_exit.hpp"
#include "envit/infer/simulate.hpp"
#include "envit/io/dir_lock.hpp"
#include "envit/weights/pretrained.hpp"
#include "envit/weights/checkpoint.hpp"
#include "envit/weights/pretrained_load.hpp"
#include "envit/weights/quantize.hpp"
#include "envit/train/finite.hpp"
#include "envit/train/interrupt.hpp"
#include "envit/version.hpp"
#include "train_setup.hpp"

namespace py = pybind11;
using namespace envit;

namespace {

// ---- threads ------------------------------------------------------------------------------------
// OpenMP keeps the thread count per calling thread (a thread Python starts gets OpenMP's default),
// so the count envit.set_threads (or Trainer(threads=)) chose is kept here and applied by every
// call that computes: a model or trainer used from another Python thread runs with the same count,
// and so gives the same bits, as from the thread that set it. 0: never set (OpenMP's default).
std::atomic<int> g_threads{0};
void threads_set(int n) {
  g_threads = n;
  set_num_threads(n);
}
void threads_apply() {
  if (const int n = g_threads.load()) set_num_threads(n);
}

// ---- inputs -------------------------------------------------------------------------------------

std::string shape_text(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

// Images as one contiguous float32 (N, C, H, W) buffer for a model of geometry cfg: float32
// C-contiguous arrays are used in place; other float arrays are converted (one copy); uint8 arrays
// are raw pixels, normalised with the model's recorded normalisation (`norm`, as envit does).
struct Images {
  py::array_t<float, py::array::c_style> arr;  // holds the data (the caller's or a converted copy)
  int n = 0;
  const float* data() const { return arr.data(); }
};

Images to_images(const py::array& in, const VitConfig& cfg, const Normalizer* norm, const char* who) {
  const int C = cfg.channels, H = cfg.image_size;
  ENVIT_CHECK(in.ndim() == 4 && in.shape(1) == C && in.shape(2) == H && in.shape(3) == H, ShapeError, who,
              ": images must be (N, C, H, W) = (N, ", C, ", ", H, ", ", H, ") for this model, got shape ",
              shape_text(in));
  ENVIT_CHECK(in.shape(0) >= 1 && in.shape(0) <= (1 << 30), ShapeError, who, ": got ", in.shape(0),
              " images; give at least one");
  Images out;
  out.n = int(in.shape(0));
  const char kind = in.dtype().kind();
  if (in.dtype().is(py::dtype::of<std::uint8_t>())) {
    ENVIT_CHECK(norm != nullptr, ValueError, who, ": uint8 images are raw pixels, normalised with the model's "
                "recorded normalisation, and this model records none: pass normalised float32 images");
    auto px = py::array_t<std::uint8_t, py::array::c_style | py::array::forcecast>::ensure(in);
    out.arr = py::array_t<float, py::array::c_style>({py::ssize_t(out.n), py::ssize_t(C), py::ssize_t(H), py::ssize_t(H)});
    const std::uint8_t* src = px.data();
    float* dst = out.arr.mutable_data();
    const std::size_t plane = std::size_t(H) * H;
    for (std::size_t i = 0, total = std::size_t(out.n) * C * plane; i < total; ++i)
      dst[i] = (*norm)(int((i / plane) % std::size_t(C)), src[i]);
    return out;
  }
  ENVIT_CHECK(kind == 'f', ValueError, who, ": images must be float32 (normalised; float64 and other float types "
              "are converted) or uint8 (raw pixels), got dtype ", std::string(py::str(in.dtype())));
  out.arr = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(in);
  ENVIT_CHECK(out.arr, ValueError, who, ": cannot convert the images to float32");
  const float* p = out.arr.data();
  const std::size_t total = std::size_t(out.n) * C * H * H;
  for (std::size_t i = 0; i < total; ++i)
    if (!std::isfinite(p[i]))
      throw ValueError(detail::cat(who, ": image ", i / (std::size_t(C) * H * H), " holds a non-finite value (",
                                   p[i], " at flat index ", i, "); envit needs finite inputs"));
  return out;
}

std::vector<std::int32_t> to_labels(const py::array& in, int n, int classes, const char* who) {
  ENVIT_CHECK(in.ndim() == 1 && in.shape(0) == n, ShapeError, who, ": labels must be (N,) = (", n,
              ",), one per image, got shape ", shape_text(in));
  ENVIT_CHECK(in.dtype().kind() == 'i' || in.dtype().kind() == 'u', ValueError, who,
              ": labels must be integers, got dtype ", std::string(py::str(in.dtype())));
  auto l = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>::ensure(in);
  std::vector<std::int32_t> out(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    ENVIT_CHECK(l.data()[i] >= 0 && l.data()[i] < classes, ValueError, who, ": label ", l.data()[i], " of sample ", i,
                " is outside [0, ", classes, ")");
    out[std::size_t(i)] = std::int32_t(l.data()[i]);
  }
  return out;
}

// ---- the exit rule ------------------------------------------------------------------------------

// One threshold's valid range for a rule of a model with M exits ("never exit early" allowed as
// +-inf): confidence, entropy (normalised) and energy scores lie in [0, 1]; patience counts exits
// (1..M); beem's running score is >= 0; an unnormalised entropy is >= 0.
void check_threshold(ExitRule r, bool entropy_normalized, double t, int M, const char* who) {
  ENVIT_CHECK(!std::isnan(t), ValueError, who, ": threshold is NaN");
  if (t == ExitCriterion::never(r)) return;
  switch (r) {
    case ExitRule::confidence:
    case ExitRule::energy:
      ENVIT_CHECK(t >= 0 && t <= 1, ValueError, who, ": threshold ", t, " is outside [0, 1] for rule ",
                  exit_rule_name(r), " (", r == ExitRule::energy ? "-inf" : "inf", " never exits early)");
      return;
    case ExitRule::entropy:
      ENVIT_CHECK(t >= 0 && (!entropy_normalized || t <= 1), ValueError, who, ": threshold ", t, " is outside ",
                  entropy_normalized ? "[0, 1]" : "[0, inf)", " for rule entropy (-inf never exits early)");
      return;
    case ExitRule::patience:
      ENVIT_CHECK(t >= 1 && t <= M && t == std::floor(t), ValueError, who, ": threshold ", t,
                  " for rule patience must be a whole number of exits in [1, ", M, "] (inf never exits early)");
      return;
    case ExitRule::beem:
      ENVIT_CHECK(t >= 0, ValueError, who, ": threshold ", t, " is outside [0, inf) for rule beem");
      return;
  }
}

std::vector<double> to_doubles(const py::handle& h, const char* what) {
  try {
    if (py::isinstance<py::float_>(h) || py::isinstance<py::int_>(h)) return {h.cast<double>()};
    return py::cast<std::vector<double>>(h);
  } catch (const py::cast_error&) {
    throw ValueError(detail::cat(what, " must be a number or a sequence of numbers, got ",
                                 std::string(py::str(py::repr(h)))));
  }
}

// ---- the model ----------------------------------------------------------------------------------

class Model {
 public:
  Model(const std::string& path, const std::string& format, int classes, std::vector<int> exits, int image_size,
        int heads, double ln_eps, bool allow_new_heads, std::uint64_t seed, const std::optional<std::string>& precision)
      : path_(path) {
    // A bad precision is refused before any file is read.
    const std::optional<Precision> given =
        precision ? std::optional<Precision>(parse_inference_precision(*precision, "precision")) : std::nullopt;
    WeightFormat fmt = parse_weight_format(format);
    if (fmt == WeightFormat::detect) fmt = pretrained_detect(path);
    ChannelStats stats;
    if (fmt == WeightFormat::envit) {  // as `envit eval` loads it
      file_ = safetensors_read(path);
      cfg_ = checkpoint_config(file_);
      ENVIT_CHECK(classes == 0 && exits.empty() && image_size == 0, ValueError, "'", path,
                  "' is an envit checkpoint: classes, exits and image_size come from it (convert it to change them)");
      quantized_ = is_quantized_checkpoint(file_);
      if (quantized_) {  // an INT8 checkpoint (envit quantize): its integers and scales, as envit eval reads it
        LoadedQuantized lq = load_quantized(file_);
        P_ = std::make_unique<ViTParams<float>>(std::move(lq.P));
        Q_ = std::move(lq.Q);
      } else {
        P_ = std::make_unique<ViTParams<float>>(cfg_, false);
        load_weights(file_, *P_, false);
      }
      if (file_.metadata.count("data.mean")) stats = ChannelStats::from_map(file_.metadata, cfg_.channels, file_.where());
    } else {  // as `envit convert` reads it
      Pretrained src = pretrained_read(path, fmt, {heads, ln_eps});
      const int k = classes ? classes : src.cfg.classes;
      ENVIT_CHECK(k > 1, ValueError, "'", path, "' has no classifier: pass classes=N (a fresh one is made)");
      cfg_ = pretrained_run_config(src, image_size, k, exits.empty() ? src.cfg.exits : exits);
      P_ = std::make_unique<ViTParams<float>>(cfg_, false);
      P_->init(seed);
      pretrained_load(src, *P_, {allow_new_heads || src.cfg.classes == 0});
      stats = {src.mean, src.std};
    }
    if (!stats.mean.empty()) {
      norm_ = Normalizer(stats);
      stats_ = stats;
    }
    macs_ = vit_macs(cfg_);
    // As `envit eval`: int8 for a quantized checkpoint, else the precision the checkpoint was trained
    // in, unless one is given.
    if (given) precision_ = *given;
    else if (quantized_) precision_ = Precision::int8;
    else precision_ = parse_precision(file_.meta_or("train.precision", "fp32"), "'" + path + "': train.precision");
  }

  const VitConfig& config() const { return cfg_; }
  const VitMacs& macs() const { return macs_; }
  const StFile& file() const { return file_; }
  const std::string& path() const { return path_; }
  const ChannelStats& stats() const { return stats_; }
  const Normalizer* norm() const { return norm_ ? &*norm_ : nullptr; }
  int M() const { return cfg_.num_exits(); }
  Precision precision() const { return precision_; }

  Images images(const py::array& a, const char* who) const { return to_images(a, cfg_, norm(), who); }

  // Every exit's logits (M, N, C) in chunks of `batch`, as `envit eval` computes them.
  py::array_t<float> logits(const py::array& a, int batch) {
    check_batch(batch);
    const Images im = images(a, "logits");
    const int C = cfg_.classes;
    py::array_t<float> out({py::ssize_t(M()), py::ssize_t(im.n), py::ssize_t(C)});
    float* o = out.mutable_data();
    {
      py::gil_scoped_release nogil;
      std::lock_guard<std::mutex> lock(mu_);
      threads_apply();
      InferenceWorkspace<float>& ws = workspace(batch);
      infer_all_exits_dataset<float>(ws, *P_, im.data(), im.n, o, std::min(batch, im.n));
    }
    return out;
  }

  ExitCriterion criterion(const py::object& threshold, const std::string& rule, const py::object& beem_weights,
                          bool entropy_normalized, const char* who) const {
    ExitCriterion c{parse_exit_rule(rule), to_doubles(threshold, "threshold"), entropy_normalized, {}};
    if (c.rule == ExitRule::beem) c.weights = beem(beem_weights);
    for (double t : c.thresholds) check_threshold(c.rule, entropy_normalized, t, M(), who);
    c.validate(M());
    return c;
  }

  // Real early exit (batched with compaction; batch 1 streams one sample at a time).
  py::tuple predict(const py::array& a, const py::object& threshold, const std::string& rule, int batch,
                    const py::object& beem_weights, bool entropy_normalized, bool return_logits) {
    check_batch(batch);
    const ExitCriterion crit = criterion(threshold, rule, beem_weights, entropy_normalized, "predict");
    const Images im = images(a, "predict");
    py::array_t<std::int32_t> pred(im.n), exit(im.n);
    py::array_t<float> lg = return_logits ? py::array_t<float>({py::ssize_t(im.n), py::ssize_t(cfg_.classes)})
                                          : py::array_t<float>(0);
    static_assert(sizeof(int) == sizeof(std::int32_t));
    int* pe = reinterpret_cast<int*>(exit.mutable_data());
    int* pp = reinterpret_cast<int*>(pred.mutable_data());
    float* pl = return_logits ? lg.mutable_data() : nullptr;
    {
      py::gil_scoped_release nogil;
      std::lock_guard<std::mutex> lock(mu_);
      threads_apply();
      InferenceWorkspace<float>& ws = workspace(im.n == 1 ? 1 : batch);
      early_exit_dataset<float>(ws, *P_, im.data(), im.n, std::min(batch, im.n), crit,
                                ExitOutput<float>{pe, pp, pl});
    }
    if (return_logits) return py::make_tuple(pred, exit, lg);
    return py::make_tuple(pred, exit);
  }

  // The threshold sweep of `envit eval` (MAC speed-ups, eq. 19; no timings).
  py::dict sweep(const py::array& a, const py::array& labels, const py::object& thresholds, int points,
                 const std::string& rule, const py::object& beem_weights, bool entropy_normalized, int batch) {
    ENVIT_CHECK(points >= 2 && points <= 100000, ValueError, "sweep: points ", points, " is outside [2, 100000]");
    const ExitCriterion base = criterion(py::float_(0.0), rule, beem_weights, entropy_normalized, "sweep");
    std::vector<double> thr;
    const bool automatic = py::isinstance<py::str>(thresholds);
    if (automatic)
      ENVIT_CHECK(thresholds.cast<std::string>() == "auto", ValueError, "sweep: thresholds must be 'auto' or numbers, got '",
                  thresholds.cast<std::string>(), "'");
    else
      thr = to_doubles(thresholds, "thresholds");
    for (double t : thr) check_threshold(base.rule, entropy_normalized, t, M(), "sweep");
    const auto [scores, lab] = scores_of(a, labels, base, batch, "sweep");
    if (automatic) thr = threshold_candidates(scores, points);
    const std::vector<SweepPoint> sw = threshold_sweep(scores, lab.data(), macs_, thr);
    const py::ssize_t K = py::ssize_t(sw.size()), Mx = M();
    py::array_t<double> t(K), acc(K), sp(K), mm(K);
    py::array_t<std::int64_t> hist({K, Mx});
    for (py::ssize_t k = 0; k < K; ++k) {
      t.mutable_at(k) = sw[k].threshold;
      acc.mutable_at(k) = sw[k].stats.accuracy;
      sp.mutable_at(k) = sw[k].stats.speedup;
      mm.mutable_at(k) = sw[k].stats.mean_macs;
      for (py::ssize_t j = 0; j < Mx; ++j) hist.mutable_at(k, j) = sw[k].stats.histogram[j];
    }
    py::array_t<double> ea(Mx);
    for (py::ssize_t j = 0; j < Mx; ++j) ea.mutable_at(j) = exit_accuracy(scores, lab.data(), int(j));
    py::dict d;
    d["rule"] = rule;
    d["threshold"] = t;
    d["accuracy"] = acc;
    d["speedup_macs"] = sp;
    d["mean_macs"] = mm;
    d["histogram"] = hist;
    d["exit_accuracy"] = ea;
    d["full_accuracy"] = ea.at(Mx - 1);
    d["macs_full"] = macs_.full();
    return d;
  }

  // Threshold calibration as `envit eval --target-speedup / --max-drop` does it, on the images given.
  py::dict calibrate(const py::array& a, const py::array& labels, std::optional<double> target_speedup,
                     std::optional<double> max_drop, const std::string& rule, const py::object& beem_weights,
                     bool entropy_normalized, int batch) {
    ENVIT_CHECK(target_speedup.has_value() != max_drop.has_value(), ValueError,
                "calibrate: give exactly one of target_speedup and max_drop");
    if (target_speedup)
      ENVIT_CHECK(*target_speedup >= 1e-3 && *target_speedup <= 1e3, ValueError, "calibrate: target_speedup ",
                  *target_speedup, " is outside [0.001, 1000]");
    if (max_drop)
      ENVIT_CHECK(*max_drop >= 0 && *max_drop <= 1, ValueError, "calibrate: max_drop ", *max_drop,
                  " is outside [0, 1]");
    const ExitCriterion base = criterion(py::float_(0.0), rule, beem_weights, entropy_normalized, "calibrate");
    const auto [scores, lab] = scores_of(a, labels, base, batch, "calibrate");
    const Calibration cal = target_speedup ? calibrate_for_speedup(scores, lab.data(), macs_, *target_speedup)
                                           : calibrate_for_accuracy(scores, lab.data(), macs_, *max_drop);
    py::dict d;
    d["goal"] = target_speedup ? "target speed-up" : "max accuracy drop";
    d["target"] = target_speedup ? *target_speedup : *max_drop;
    d["met"] = cal.met;
    d["threshold"] = cal.criterion.thresholds[0];
    d["accuracy"] = cal.val.accuracy;
    d["speedup_macs"] = cal.val.speedup;
    d["histogram"] = cal.val.histogram;
    d["reference_accuracy"] = cal.reference_accuracy;
    return d;
  }

  // BEEM-A's exit weights: each exit's accuracy on the labelled images given.
  std::vector<double> beem_weights_accuracy_of(const py::array& a, const py::array& labels, int batch) {
    const auto [scores, lab] =
        scores_of(a, labels, ExitCriterion{ExitRule::confidence, {0.0}, true, {}}, batch, "beem_weights_accuracy");
    return beem_weights_accuracy(scores, lab.data());
  }

 private:
  void check_batch(int batch) const {
    ENVIT_CHECK(batch >= 1 && batch <= (1 << 16), ValueError, "batch ", batch, " is outside [1, 65536]");
  }
  std::vector<double> beem(const py::object& w) const {
    if (py::isinstance<py::str>(w)) {
      const std::string s = w.cast<std::string>();
      ENVIT_CHECK(s == "cost", ValueError, "beem_weights: '", s, "' is not 'cost' or ", M(),
                  " numbers (for BEEM-A pass model.beem_weights_accuracy(val_images, val_labels))");
      return beem_weights_cost(macs_);
    }
    std::vector<double> v = to_doubles(w, "beem_weights");
    ENVIT_CHECK(int(v.size()) == M(), ValueError, "beem_weights: ", v.size(), " values for ", M(), " exits");
    return v;
  }
  std::pair<ExitScores, std::vector<std::int32_t>> scores_of(const py::array& a, const py::array& labels,
                                                             const ExitCriterion& base, int batch, const char* who) {
    check_batch(batch);
    const Images im = images(a, who);
    std::vector<std::int32_t> lab = to_labels(labels, im.n, cfg_.classes, who);
    std::vector<float> lg(std::size_t(M()) * im.n * cfg_.classes);
    ExitScores s;
    {
      py::gil_scoped_release nogil;
      std::lock_guard<std::mutex> lock(mu_);
      threads_apply();
      infer_all_exits_dataset<float>(workspace(batch), *P_, im.data(), im.n, lg.data(), std::min(batch, im.n));
      s = exit_scores(lg.data(), M(), im.n, cfg_.classes, base);
    }
    return {std::move(s), std::move(lab)};
  }
  // A prepacked workspace for batches of up to `batch` samples (kept: later calls reuse it).
  InferenceWorkspace<float>& workspace(int batch) {
    auto& slot = batch == 1 ? ws1_ : ws_;
    if (!slot || slot->max_batch < batch || (batch > 1 && slot->max_batch != batch)) {
      slot = std::make_unique<InferenceWorkspace<float>>(cfg_, batch);
      slot->precision = precision_;
      // A quantized checkpoint's own integers and scales under int8; otherwise P's weights (an FP32
      // checkpoint under int8 is quantized per channel with dynamic activation scales), as envit eval.
      if (quantized_ && precision_ == Precision::int8) prepack_int8(*slot, *P_, Q_);
      else slot->prepack(*P_);
    }
    return *slot;
  }

  std::string path_;
  StFile file_;  // an envit checkpoint's tensors and metadata (empty for other formats)
  VitConfig cfg_;
  std::unique_ptr<ViTParams<float>> P_;
  std::optional<Normalizer> norm_;
  ChannelStats stats_;
  VitMacs macs_;
  Precision precision_ = Precision::fp32;  // of every matrix product of this model's inference
  bool quantized_ = false;                 // an INT8 checkpoint: Q_ holds its integers and scales
  QuantizedModel Q_;
  std::mutex mu_;
  std::unique_ptr<InferenceWorkspace<float>> ws_, ws1_;
};

py::dict config_dict(const VitConfig& c) {
  py::dict d;
  d["image_size"] = c.image_size;
  d["channels"] = c.channels;
  d["patch"] = c.patch;
  d["dim"] = c.dim;
  d["depth"] = c.depth;
  d["heads"] = c.heads;
  d["mlp_hidden"] = c.mlp_hidden;
  d["classes"] = c.classes;
  d["exits"] = c.exits;
  d["ln_eps"] = c.ln_eps;
  d["exit_head"] = c.exit_head;
  return d;
}

py::tuple dataset_arrays(const Dataset& d) {
  py::array_t<std::uint8_t> im({py::ssize_t(d.n), py::ssize_t(d.c), py::ssize_t(d.h), py::ssize_t(d.w)});
  std::copy(d.images.begin(), d.images.end(), im.mutable_data());
  py::array_t<std::int32_t> lb(py::ssize_t(d.n));
  std::copy(d.labels.begin(), d.labels.end(), lb.mutable_data());
  return py::make_tuple(im, lb);
}

// A Dataset from uint8 (N, C, H, W) images and integer labels in [0, classes).
Dataset dataset_of(const py::array& images, const py::array& labels, int classes, const std::string& name) {
  ENVIT_CHECK(images.ndim() == 4 && images.shape(0) >= 1, ShapeError, name,
              ": images must be (N, C, H, W) with N >= 1, got shape ", shape_text(images));
  ENVIT_CHECK(images.dtype().is(py::dtype::of<std::uint8_t>()), ValueError, name,
              ": training images must be uint8 pixels (envit normalises and augments them), got dtype ",
              std::string(py::str(images.dtype())));
  Dataset d;
  d.name = name;
  d.n = images.shape(0);
  d.c = int(images.shape(1)), d.h = int(images.shape(2)), d.w = int(images.shape(3));
  d.classes = classes;
  auto px = py::array_t<std::uint8_t, py::array::c_style | py::array::forcecast>::ensure(images);
  d.images.assign(px.data(), px.data() + px.size());
  d.labels = to_labels(labels, int(d.n), classes, name.c_str());
  d.check();
  return d;
}

// ---- training -----------------------------------------------------------------------------------

// `envit train`'s flags from Python keyword arguments: name=value becomes --name value (underscores
// as dashes), True a flag, False omitted, a list comma-joined; parsed by the program's own parser.
std::vector<std::string> train_argv(const py::kwargs& kw) {
  std::vector<std::string> argv{"envit-train"};
  for (auto [k, v] : kw) {
    std::string flag = "--" + k.cast<std::string>();
    for (char& c : flag) c = c == '_' ? '-' : c;
    if (py::isinstance<py::bool_>(v)) {
      if (v.cast<bool>()) argv.push_back(flag);
      continue;
    }
    std::string val;
    if (py::isinstance<py::str>(v)) {
      val = v.cast<std::string>();
    } else if (py::isinstance<py::list>(v) || py::isinstance<py::tuple>(v)) {
      for (auto item : v) val += (val.empty() ? "" : ",") + std::string(py::str(item));
    } else if (py::isinstance<py::float_>(v)) {
      std::ostringstream os;
      os.precision(17);
      os << v.cast<double>();
      val = os.str();
    } else {
      val = std::string(py::str(v));
    }
    argv.push_back(flag);
    argv.push_back(val);
  }
  return argv;
}

class PyTrainer {
 public:
  PyTrainer(std::optional<py::array> train_images, std::optional<py::array> train_labels,
            std::optional<py::array> test_images, std::optional<py::array> test_labels, int classes,
            const py::kwargs& kw) {
    std::vector<std::string> argv = train_argv(kw);
    std::optional<cli::GivenData> data;
    if (train_images || train_labels || test_images || test_labels) {
      ENVIT_CHECK(train_images && train_labels && test_images && test_labels, ValueError,
                  "Trainer: arrays need all of train_images, train_labels, test_images and test_labels");
      ENVIT_CHECK(!kw.contains("dataset") && !kw.contains("data"), ValueError,
                  "Trainer: give either arrays or dataset=/data=, not both");
      if (classes == 0) {
        auto l = py::array_t<std::int64_t, py::array::forcecast>::ensure(*train_labels);
        ENVIT_CHECK(l && l.size() > 0, ValueError, "Trainer: train_labels must be a non-empty integer array");
        for (py::ssize_t i = 0; i < l.size(); ++i) classes = std::max<int>(classes, int(l.data()[i]) + 1);
      }
      ENVIT_CHECK(classes >= 2, ValueError, "Trainer: ", classes, " classes; give classes=N >= 2");
      data = cli::GivenData{dataset_of(*train_images, *train_labels, classes, "arrays/train"),
                            dataset_of(*test_images, *test_labels, classes, "arrays/test")};
    }
    CLI::App app{"envit"};
    cli::TrainArgs& a = args_;
    CLI::App* c = cli::add_train_command(app, a);
    std::vector<std::string> rev(argv.rbegin(), argv.rend() - 1);
    rev.push_back("train");
    try {
      app.parse(rev);
    } catch (const CLI::ParseError& e) {
      throw ValueError(std::string("Trainer: ") + e.what());
    }
    if (data) a.dataset = "arrays";
    given_.clear();
    for (const CLI::Option* o : c->get_options())
      if (o->count() > 0)
        for (const std::string& n : o->get_lnames()) given_.insert("--" + n);
    threads_set(a.threads);
    s_ = std::make_unique<cli::TrainSetup>(
        cli::train_setup(a, [&](const char* f) { return given_.count(f) > 0; }, std::move(data)));
    tr_ = std::make_unique<Trainer>(s_->cfg, s_->o, s_->train, s_->split.train, s_->stats);
    ENVIT_CHECK(tr_->total_steps() == s_->total_steps, std::logic_error, "Trainer: the run has ", tr_->total_steps(),
                " steps, the warm-up was sized for ", s_->total_steps);
    if (s_->src) pretrained_load(*s_->src, tr_->params(), {a.allow_new_heads});
    if (!a.resume.empty()) tr_->restore(s_->resume_file);
  }

  Trainer& trainer() { return *tr_; }
  const cli::TrainSetup& setup() const { return *s_; }
  const cli::TrainArgs& args() const { return args_; }

  void save(const std::string& path) { tr_->save(path, s_->extra); }

  // ---- the low-level step (docs/python.md "The low-level step") ---------------------------------
  // forward -> the caller's loss (or objective()) -> backward -> clip_grad_norm -> adamw_step on
  // this trainer's parameters and AdamW state, with a workspace of its own (Trainer.fit's is not
  // touched). The workspace is sized for the largest batch seen (the trainer's batch at first).

  py::list forward(const py::array& images, const py::object& labels, const py::object& masks, bool features) {
    const Busy busy(ll_busy_, "Trainer.forward");
    const VitConfig& cfg = s_->cfg;
    const Images im = to_images(images, cfg, &s_->norm, "Trainer.forward");
    const int B = im.n, M = cfg.num_exits(), C = cfg.classes;
    std::vector<std::int32_t> lab;
    if (!labels.is_none()) lab = to_labels(py::array::ensure(labels), B, C, "Trainer.forward");
    ll_reserve(B);
    LayerMasks& m = ll_->masks;
    ll_->forwarded = false;
    m.exec.resize(std::size_t(cfg.depth));
    m.first = 0;
    m.global_batch = 0;
    if (masks.is_none()) {
      m.all(B);
    } else if (py::isinstance<py::str>(masks)) {
      ENVIT_CHECK(masks.cast<std::string>() == "draw", ValueError, "Trainer.forward: masks must be 'draw', None or a "
                  "list of sorted integer arrays (one per block), got '", masks.cast<std::string>(), "'");
      m.draw(tr_->options().seed, std::uint64_t(tr_->step()), ll_->probs, B);
    } else {
      ENVIT_CHECK(py::isinstance<py::sequence>(masks), ValueError, "Trainer.forward: masks must be 'draw', None or "
                  "a list of sorted integer arrays (one per block), got ", std::string(py::str(py::repr(masks))));
      const py::sequence seq = masks.cast<py::sequence>();
      m.exec.resize(seq.size());
      for (std::size_t l = 0; l < seq.size(); ++l) {
        const py::array a = py::array::ensure(seq[l]);
        ENVIT_CHECK(a && a.ndim() == 1 && (a.size() == 0 || a.dtype().kind() == 'i' || a.dtype().kind() == 'u'),
                    ValueError, "Trainer.forward: masks[", l, "] (block ", l + 1,
                    ") must be a 1-D array of integer batch positions");
        const auto v = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>::ensure(a);
        m.exec[l].resize(std::size_t(v.size()));
        for (py::ssize_t i = 0; i < v.size(); ++i) {
          const std::int64_t s = v.data()[i];
          ENVIT_CHECK(s >= 0 && s < B, ValueError, "Trainer.forward: masks.exec[", l, "] (block ", l + 1,
                      ") position ", i, ": sample ", s, " out of range, expected 0..", B - 1);
          m.exec[l][std::size_t(i)] = std::int32_t(s);
        }
      }
      m.batch = B;
    }
    m.check(cfg.depth, "Trainer.forward");
    ViTWorkspace<float>& ws = *ll_->ws;
    const ViTParams<float>& P = tr_->params();
    {
      py::gil_scoped_release nogil;
      threads_apply();
      const PrecisionScope scope(ws.precision);
      ll_->teacher_ready = teacher_needs_full_pass(tr_->options().obj, m);
      vit_forward_exits<float>(ws, P, im.data(), m, ll_->teacher_ready ? ws.h2 : nullptr);
      vit_update_running_stats<float>(ws, tr_->params(), m);
      if (ll_->teacher_ready) teacher_from_branches<float>(ws, P, m);
    }
    py::list out;
    for (int j = 0; j < M; ++j) {
      const ExitOut<float>& e = ws.exit_out[std::size_t(j)];
      ll_->n[std::size_t(j)] = e.n;
      ll_->feat_len[std::size_t(j)] = e.feat_len;
      py::array_t<float> z({py::ssize_t(e.n), py::ssize_t(C)});
      std::copy(e.logits, e.logits + std::size_t(e.n) * C, z.mutable_data());
      py::array_t<std::int32_t> rows(py::ssize_t(e.n));
      std::copy(e.rows, e.rows + e.n, rows.mutable_data());
      py::dict d;
      d["exit"] = j;
      d["block"] = cfg.exits[std::size_t(j)];
      d["logits"] = z;
      d["rows"] = rows;
      if (!lab.empty()) {
        py::array_t<std::int32_t> l(py::ssize_t(e.n));
        for (int i = 0; i < e.n; ++i) l.mutable_data()[i] = lab[std::size_t(e.rows[i])];
        d["labels"] = l;
      }
      if (features) {
        py::array_t<float> f({py::ssize_t(e.n), py::ssize_t(e.feat_len)});
        if (e.n) std::copy(e.feat, e.feat + std::size_t(e.n) * e.feat_len, f.mutable_data());
        d["feature"] = f;
      }
      out.append(d);
    }
    ll_->forwarded = true;
    return out;
  }

  // The trainer's own objective (its scheme, weights and teacher) on the last forward: the loss and
  // the gradients it would hand to backward, for a caller adding terms of their own.
  py::dict objective(const py::array& labels) {
    const Busy busy(ll_busy_, "Trainer.objective");
    const VitConfig& cfg = s_->cfg;
    const ObjectiveConfig& o = tr_->options().obj;
    ENVIT_CHECK(ll_ && ll_->forwarded, ValueError, "Trainer.objective: no forward to take the objective of: call "
                "Trainer.forward first");
    ENVIT_CHECK(o.scheme != Scheme::cosee && o.scheme != Scheme::lgvit, ValueError, "Trainer.objective: scheme ",
                scheme_name(o.scheme), " keeps per-step state (", o.scheme == Scheme::cosee ? "thresholds" : "stages",
                ") that only Trainer.fit drives; write the loss in numpy or use fit");
    const int B = ll_->masks.batch, M = cfg.num_exits(), C = cfg.classes;
    const std::vector<std::int32_t> lab = to_labels(labels, B, C, "Trainer.objective");
    ViTWorkspace<float>& ws = *ll_->ws;
    {
      py::gil_scoped_release nogil;
      threads_apply();
      const PrecisionScope scope(ws.precision);
      const double progress = double(tr_->step()) / double(std::max<std::int64_t>(1, tr_->total_steps()));
      objective_forward<float>(ll_->st, ws, *ll_->ow, tr_->params(), lab.data(), ll_->masks, o, ll_->probs, progress,
                               ll_->teacher_ready);
    }
    py::list dz, df;
    for (int j = 0; j < M; ++j) {
      const std::size_t J = std::size_t(j);
      const int n = ll_->n[J], F = ll_->feat_len[J];
      py::array_t<float> z({py::ssize_t(n), py::ssize_t(C)});
      std::copy(ws.dlogits[J], ws.dlogits[J] + std::size_t(n) * C, z.mutable_data());
      dz.append(z);
      const bool lg = tr_->params().exit_is_lgvit(j);
      const float* g = lg ? (ws.dlgfeat_used[J] ? ws.dlgfeat[J] : nullptr) : (ws.dfeat_used[J] ? ws.dfeat[J] : nullptr);
      if (!g) {
        df.append(py::none());
        continue;
      }
      py::array_t<float> f({py::ssize_t(n), py::ssize_t(F)});
      std::copy(g, g + std::size_t(n) * F, f.mutable_data());
      df.append(f);
    }
    py::dict d;
    d["loss"] = ll_->st.loss;
    d["dlogits"] = dz;
    d["dfeature"] = df;
    return d;
  }

  void backward(const py::object& dlogits, const py::object& dfeat) {
    const Busy busy(ll_busy_, "Trainer.backward");
    const VitConfig& cfg = s_->cfg;
    const int M = cfg.num_exits(), C = cfg.classes;
    ENVIT_CHECK(ll_ && ll_->forwarded, ValueError, "Trainer.backward: no forward to differentiate: call "
                "Trainer.forward first (each backward needs its own forward)");
    auto list_of = [&](const py::object& o, const char* what) {
      ENVIT_CHECK(py::isinstance<py::sequence>(o) && !py::isinstance<py::str>(o) && py::len(o) == std::size_t(M),
                  ValueError, "Trainer.backward: ", what, " must be a list of ", M, " arrays (one per exit), got ",
                  std::string(py::str(py::repr(o))).substr(0, 80));
      return o.cast<py::sequence>();
    };
    const py::sequence dz = list_of(dlogits, "dlogits");
    std::optional<py::sequence> df;
    if (!dfeat.is_none()) df = list_of(dfeat, "dfeat");
    std::vector<py::array_t<float, py::array::c_style>> keep;
    keep.reserve(std::size_t(2 * M));
    std::vector<ExitGrad<float>>& g = ll_->grads;
    auto take = [&](const py::handle& h, int j, int cols, const char* what) -> const float* {
      const int n = ll_->n[std::size_t(j)];
      ENVIT_CHECK(!h.is_none() || n == 0 || std::string(what) == "dfeat", ValueError, "Trainer.backward: ", what,
                  "[", j, "] is None, but ", n, " rows reached exit ", j, ": give an (", n, ", ", cols, ") array");
      if (h.is_none()) return nullptr;
      const py::array a = py::array::ensure(h);
      ENVIT_CHECK(a && a.dtype().kind() == 'f', ValueError, "Trainer.backward: ", what, "[", j,
                  "] must be a float array (float32; others are converted)");
      ENVIT_CHECK(a.ndim() == 2 && a.shape(0) == n && a.shape(1) == cols, ShapeError, "Trainer.backward: ", what, "[",
                  j, "] must be (n, ", cols, ") = (", n, ", ", cols, ") for the rows that reached exit ", j,
                  ", got shape ", shape_text(a));
      keep.push_back(py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(a));
      const float* p = keep.back().data();
      for (std::size_t i = 0, total = std::size_t(n) * cols; i < total; ++i)
        ENVIT_CHECK(std::isfinite(p[i]), ValueError, "Trainer.backward: ", what, "[", j, "] holds a non-finite value (",
                    p[i], " at flat index ", i, ")");
      return n ? p : nullptr;
    };
    for (int j = 0; j < M; ++j) {
      g[std::size_t(j)].dlogits = take(dz[std::size_t(j)], j, C, "dlogits");
      g[std::size_t(j)].dfeat = df ? take((*df)[std::size_t(j)], j, ll_->feat_len[std::size_t(j)], "dfeat") : nullptr;
    }
    ViTWorkspace<float>& ws = *ll_->ws;
    {
      py::gil_scoped_release nogil;
      threads_apply();
      const PrecisionScope scope(ws.precision);
      vit_backward_exits<float>(tr_->params(), ws, std::span<const ExitGrad<float>>(g), ll_->masks);
    }
    ll_->forwarded = false;
  }

  void zero_grads() {
    const Busy busy(ll_busy_, "Trainer.zero_grads");
    tr_->params().zero_grads();
  }

  double clip_grad_norm_of(double max_norm) {
    const Busy busy(ll_busy_, "Trainer.clip_grad_norm");
    ENVIT_CHECK(max_norm > 0 && std::isfinite(max_norm), ValueError, "Trainer.clip_grad_norm: max_norm ", max_norm,
                " must be a finite number > 0");
    py::gil_scoped_release nogil;
    threads_apply();
    ll_norm_ = clip_grad_norm(tr_->params(), max_norm);
    return ll_norm_;
  }

  // AdamW with the trainer's betas and weight decay at `lr` (None: the schedule's rate at this
  // step), then the step counts (Trainer.step + 1). Refuses non-finite gradients, parameters unchanged.
  void adamw_step_of(std::optional<double> lr) {
    const Busy busy(ll_busy_, "Trainer.adamw_step");
    const double rate = lr ? *lr : tr_->lr();
    ENVIT_CHECK(std::isfinite(rate) && rate >= 0, ValueError, "Trainer.adamw_step: lr ", rate,
                " must be a finite number >= 0");
    ViTParams<float>& P = tr_->params();
    const std::string bad = non_finite_in(P, P.grads(), "gradient");
    ENVIT_CHECK(bad.empty(), ValueError, "Trainer.adamw_step: ", bad, "; parameters unchanged");
    {
      py::gil_scoped_release nogil;
      threads_apply();
      adamw_step(P, tr_->optimizer(), tr_->options().adamw, rate);
    }
    tr_->count_step(ll_norm_);
  }

  // Every parameter (or gradient) tensor as a float32 numpy view into the trainer's arena, by name.
  py::dict arena_views(const py::object& self, bool grads) {
    ViTParams<float>& P = tr_->params();
    float* base = grads ? P.grads() : P.values();
    py::dict d;
    for (const ParamEntry& e : P.table()) {
      std::vector<py::ssize_t> shape(e.shape.begin(), e.shape.end());
      d[py::str(e.name)] = py::array_t<float>(shape, base + e.offset, self);
    }
    return d;
  }

 private:
  // The low-level step's buffers, made on the first forward and grown for a larger batch.
  struct LowLevel {
    std::unique_ptr<ViTWorkspace<float>> ws;
    std::unique_ptr<ObjectiveWorkspace<float>> ow;
    LayerMasks masks;
    StepStats st;
    std::vector<double> probs;
    std::vector<int> n, feat_len;
    std::vector<ExitGrad<float>> grads;
    bool forwarded = false, teacher_ready = false;
  };
  void ll_reserve(int B) {
    const VitConfig& cfg = s_->cfg;
    if (ll_ && ll_->ws->max_batch >= B) return;
    const int cap = std::max(B, s_->o.batch);
    auto l = std::make_unique<LowLevel>();
    l->ws = std::make_unique<ViTWorkspace<float>>(cfg, cap);
    l->ws->precision = s_->o.precision;
    l->ow = std::make_unique<ObjectiveWorkspace<float>>(cfg, cap, s_->o.obj.cosee.thresholds);
    l->masks = LayerMasks(cfg.depth, cap);
    l->probs = s_->o.obj.block_probs(cfg);
    l->n.assign(std::size_t(cfg.num_exits()), 0);
    l->feat_len.assign(std::size_t(cfg.num_exits()), 0);
    l->grads.assign(std::size_t(cfg.num_exits()), ExitGrad<float>{});
    ll_ = std::move(l);
  }
  std::unique_ptr<LowLevel> ll_;
  double ll_norm_ = 0;
  // One low-level call at a time on a trainer: set and cleared with the GIL held, so a second
  // Python thread entering while the first computes (GIL released) is refused, not raced.
  bool ll_busy_ = false;
  struct Busy {
    bool& b;
    Busy(bool& flag, const char* who) : b(flag) {
      ENVIT_CHECK(!b, ValueError, who, ": another thread is running this trainer's low-level step");
      b = true;
    }
    ~Busy() { b = false; }
  };

 public:

  // Runs the schedule to its end, or `epochs` more epochs; see docs/python.md.
  py::list fit(std::optional<int> epochs, const py::object& callback, std::int64_t every) {
    ENVIT_CHECK(!epochs || *epochs >= 1, ValueError, "fit: epochs must be >= 1, got ", *epochs);
    ENVIT_CHECK(every >= 0, ValueError, "fit: every must be >= 0, got ", every);
    const cli::TrainArgs& a = args_;
    Trainer& tr = *tr_;
    const int M = s_->cfg.num_exits();
    const std::string out = a.out, last = out + "/last.safetensors";
    cli::make_dirs(out);
    io::DirLock lock(out);
    lock.remove_stale_temporaries();
    const std::vector<std::int64_t> eval_idx = s_->eval_idx();
    const std::string eval_key = std::string(s_->eval_name()) + "_acc";
    py::list history;
    threads_apply();  // this thread's OpenMP count (fit may run in another thread than the constructor)
    std::optional<StopSignals> stop;  // first SIGINT/SIGTERM: finish the step, checkpoint, raise KeyboardInterrupt
    stop.emplace();
    for (int run = 0; !tr.done() && (!epochs || run < *epochs); ++run) {
      const std::int64_t e = tr.epoch();
      const std::int64_t end = std::min(tr.total_steps(), (e + 1) * tr.steps_per_epoch());
      double loss_sum = 0, exec_sum = 0;
      std::vector<std::int64_t> corr(std::size_t(M), 0), seen(std::size_t(M), 0);
      std::int64_t steps = 0;
      const auto t0 = std::chrono::steady_clock::now();
      while (tr.step() < end) {
        const StepStats* st = nullptr;
        {
          py::gil_scoped_release nogil;
          st = &tr.step_once();
        }
        loss_sum += st->loss;
        exec_sum += tr.masks().executed_fraction();
        for (int j = 0; j < M; ++j) corr[j] += st->correct[j], seen[j] += st->n[j];
        ++steps;
        if (stop->requested()) {
          save(last);
          stop.reset();  // Python's own SIGINT/SIGTERM handlers back before Python code runs again
          PyErr_SetString(PyExc_KeyboardInterrupt,
                          detail::cat("envit: stopped after step ", tr.step(), ": checkpoint '", last,
                                      "' written; continue with Trainer(resume='", last, "', ...)").c_str());
          throw py::error_already_set();
        }
        if (a.save_every > 0 && tr.step() % a.save_every == 0 && tr.step() < end) save(last);
        if (every > 0 && tr.step() % every == 0 && !callback.is_none()) {
          py::dict m;
          m["kind"] = "step";
          m["epoch"] = e + 1;
          m["step"] = tr.step();
          m["loss"] = st->loss;
          m["grad_norm"] = tr.last_grad_norm();
          m["lr"] = tr.lr();
          callback(m);
        }
      }
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::int64_t n_eval = 0;
      std::vector<std::int64_t> ok;
      {
        py::gil_scoped_release nogil;
        ok = evaluate_exits(tr.params(), s_->eval_set(), eval_idx, s_->norm, a.eval_batch, &n_eval);
      }
      save(last);
      py::dict m;
      m["kind"] = "epoch";
      m["epoch"] = e + 1;
      m["step"] = tr.step();
      m["loss"] = loss_sum / double(steps);
      m["lr"] = tr.lr();
      m["executed_fraction"] = exec_sum / double(steps);
      m["images_per_s"] = double(steps) * s_->o.batch / secs;
      m["seconds"] = secs;
      std::vector<double> ta(static_cast<std::size_t>(M)), va(static_cast<std::size_t>(M));
      for (int j = 0; j < M; ++j) {
        ta[j] = seen[j] ? double(corr[j]) / double(seen[j]) : 0.0;
        va[j] = double(ok[j]) / double(n_eval);
      }
      m["train_acc"] = ta;
      m[py::str(eval_key)] = va;
      m["checkpoint"] = last;
      history.append(m);
      if (!callback.is_none()) callback(m);
    }
    return history;
  }

 private:
  cli::TrainArgs args_;
  std::set<std::string> given_;
  std::unique_ptr<cli::TrainSetup> s_;
  std::unique_ptr<Trainer> tr_;
};

}  // namespace

PYBIND11_MODULE(envit, m) {
  m.doc() = "envit: early-exit Vision Transformers on the CPU (docs/python.md)";
  m.attr("__version__") = ENVIT_VERSION_STRING;

  // envit's errors: bad values, shapes and usage -> ValueError; files -> OSError.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const IoError& e) {
      PyErr_SetString(PyExc_OSError, e.what());
    } catch (const ShapeError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const ValueError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const NonFiniteError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const cli::UsageError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });

  m.def("set_threads", [](int n) {
    ENVIT_CHECK(n >= 1 && n <= 1024, ValueError, "set_threads: ", n, " is outside [1, 1024]");
    threads_set(n);
  }, py::arg("n"), "OpenMP threads envit uses from now on (every model and trainer, from any Python thread).");
  m.def("get_threads", [] {
    const int n = g_threads.load();
    return n ? n : num_threads();
  }, "OpenMP threads envit uses.");
  m.def("kernel_set", [] { return kernel_set_info(); }, "The GEMM kernel set in use (as `envit --version`).");
  m.def("load_dataset", [](const std::string& name, const std::string& split, const std::string& data) {
    ENVIT_CHECK(split == "train" || split == "test", ValueError, "load_dataset: split '", split,
                "' is not 'train' or 'test'");
    return dataset_arrays(cli::load_dataset(name, data, split == "train"));
  }, py::arg("name") = "fashion-mnist", py::arg("split") = "test", py::arg("data") = "",
  "(images uint8 (N, C, H, W), labels int32 (N,)) of a named dataset, as `envit --dataset NAME --data DIR` reads it.");

  py::class_<Model>(m, "Model", "A multi-exit ViT loaded for inference (envit.load).")
      .def_property_readonly("path", &Model::path)
      .def_property_readonly("config", [](const Model& md) { return config_dict(md.config()); })
      .def_property_readonly("exits", [](const Model& md) { return md.config().exits; })
      .def_property_readonly("num_exits", &Model::M)
      .def_property_readonly("classes", [](const Model& md) { return md.config().classes; })
      .def_property_readonly("image_shape", [](const Model& md) {
        return py::make_tuple(md.config().channels, md.config().image_size, md.config().image_size);
      })
      .def_property_readonly("macs_per_exit", [](const Model& md) {
        std::vector<std::int64_t> v;
        for (int j = 0; j < md.M(); ++j) v.push_back(md.macs().to_exit(j));
        return v;
      })
      .def_property_readonly("macs_full", [](const Model& md) { return md.macs().full(); })
      .def_property_readonly("metadata", [](const Model& md) { return md.file().metadata; })
      .def_property_readonly("precision", [](const Model& md) { return std::string(precision_name(md.precision())); })
      .def_property_readonly("normalization", [](const Model& md) -> py::object {
        if (md.stats().mean.empty()) return py::none();
        return py::make_tuple(md.stats().mean, md.stats().std);
      })
      .def("normalize", [](const Model& md, const py::array& a) { return md.images(a, "normalize").arr; },
           py::arg("images"), "uint8 pixels -> float32 with the model's recorded normalisation.")
      .def("test_set", [](const Model& md, const std::string& dataset, const std::string& data) {
        const std::string name = dataset.empty() ? md.file().meta_or("data.dataset", "fashion-mnist") : dataset;
        const std::string dir = data.empty() ? md.file().meta_or("data.dir", "") : data;  // the training run's
        Dataset d = cli::load_checkpoint_dataset(name, dir, false, md.file(), md.config());
        d.check_fits(md.config().channels, md.config().image_size, md.config().image_size, md.config().classes,
                     "checkpoint '" + md.path() + "'");
        return dataset_arrays(d);
      }, py::arg("dataset") = "", py::arg("data") = "",
      "The test images (uint8) and labels `envit eval` uses for this checkpoint.")
      .def("validation_set", [](const Model& md, const std::string& dataset, const std::string& data) {
        const std::string name = dataset.empty() ? md.file().meta_or("data.dataset", "fashion-mnist") : dataset;
        const std::string dir = data.empty() ? md.file().meta_or("data.dir", "") : data;
        return dataset_arrays(cli::checkpoint_validation_set(md.file(), md.path(), md.config(), name, dir,
                                                             "validation_set"));
      }, py::arg("dataset") = "", py::arg("data") = "",
      "The validation split (uint8 images, labels) carved at training time, which `envit eval` calibrates on.")
      .def("logits", &Model::logits, py::arg("images"), py::arg("batch") = 128,
           "Every exit's logits, float32 (M, N, C).")
      .def("predict", &Model::predict, py::arg("images"), py::arg("threshold"), py::arg("rule") = "confidence",
           py::arg("batch") = 128, py::arg("beem_weights") = "cost", py::arg("entropy_normalized") = true,
           py::arg("return_logits") = false,
           "Real early exit: (predictions int32 (N,), exit index int32 (N,)[, logits at the exit (N, C)]).")
      .def("sweep", &Model::sweep, py::arg("images"), py::arg("labels"), py::arg("thresholds") = "auto",
           py::arg("points") = 12, py::arg("rule") = "confidence", py::arg("beem_weights") = "cost",
           py::arg("entropy_normalized") = true, py::arg("batch") = 128)
      .def("calibrate", &Model::calibrate, py::arg("images"), py::arg("labels"), py::kw_only(),
           py::arg("target_speedup") = py::none(), py::arg("max_drop") = py::none(), py::arg("rule") = "confidence",
           py::arg("beem_weights") = "cost", py::arg("entropy_normalized") = true, py::arg("batch") = 128)
      .def("beem_weights_accuracy", &Model::beem_weights_accuracy_of, py::arg("images"), py::arg("labels"),
           py::arg("batch") = 128);

  m.def("load", [](const std::string& path, const std::string& format, int classes, std::vector<int> exits,
                   int image_size, int heads, double ln_eps, bool allow_new_heads, std::uint64_t seed,
                   const std::optional<std::string>& precision) {
    return std::make_unique<Model>(path, format, classes, std::move(exits), image_size, heads, ln_eps,
                                   allow_new_heads, seed, precision);
  }, py::arg("path"), py::arg("format") = "detect", py::arg("classes") = 0, py::arg("exits") = std::vector<int>{},
     py::arg("image_size") = 0, py::arg("heads") = 0, py::arg("ln_eps") = -1.0, py::arg("allow_new_heads") = false,
     py::arg("seed") = 0, py::arg("precision") = py::none(),
     "Loads an envit checkpoint, or weights `envit convert` reads (timm, hf, torchvision; format= forces one). "
     "precision: 'fp32', 'bf16' or 'int8' for every inference call (default: int8 for a quantized checkpoint "
     "(envit quantize), else the checkpoint's train.precision, else fp32).");

  py::class_<PyTrainer>(m, "Trainer", "Training configured like `envit train` (keyword = flag).")
      .def(py::init<std::optional<py::array>, std::optional<py::array>, std::optional<py::array>,
                    std::optional<py::array>, int, const py::kwargs&>(),
           py::kw_only(), py::arg("train_images") = py::none(), py::arg("train_labels") = py::none(),
           py::arg("test_images") = py::none(), py::arg("test_labels") = py::none(), py::arg("classes") = 0)
      .def("fit", &PyTrainer::fit, py::arg("epochs") = py::none(), py::arg("callback") = py::none(),
           py::arg("every") = 0)
      .def("save", &PyTrainer::save, py::arg("path"))
      .def("forward", &PyTrainer::forward, py::arg("images"), py::arg("labels") = py::none(),
           py::arg("masks") = "draw", py::arg("features") = false,
           "The low-level step's forward: per exit a dict with logits float32 (n, C), rows int32 (n,) (batch "
           "positions), exit, block[, labels (n,)][, feature (n, F)]. masks: 'draw' (the scheme's block dropout at "
           "this step), None (every sample runs every block) or one sorted integer array per block.")
      .def("objective", &PyTrainer::objective, py::arg("labels"),
           "The trainer's own objective on the last forward: {'loss', 'dlogits': [...], 'dfeature': [...]}.")
      .def("backward", &PyTrainer::backward, py::arg("dlogits"), py::arg("dfeat") = py::none(),
           "Accumulates parameter gradients from the caller's per-exit gradients (dlogits (n, C) per exit, "
           "dfeat (n, F) or None per exit) of the last forward.")
      .def("zero_grads", &PyTrainer::zero_grads, "Clears the gradients (backward accumulates).")
      .def("clip_grad_norm", &PyTrainer::clip_grad_norm_of, py::arg("max_norm"),
           "Global-norm clipping of the gradients; returns the norm before clipping.")
      .def("adamw_step", &PyTrainer::adamw_step_of, py::arg("lr") = py::none(),
           "AdamW with the trainer's settings at lr (None: the schedule's rate); Trainer.step then advances.")
      .def("parameters", [](py::object self) { return self.cast<PyTrainer&>().arena_views(self, false); },
           "Every parameter tensor by name, as writable float32 views into the trainer's arena.")
      .def("gradients", [](py::object self) { return self.cast<PyTrainer&>().arena_views(self, true); },
           "Every gradient tensor by name, as writable float32 views into the trainer's arena.")
      .def_property_readonly("step", [](PyTrainer& t) { return t.trainer().step(); })
      .def_property_readonly("epoch", [](PyTrainer& t) { return t.trainer().epoch(); })
      .def_property_readonly("total_steps", [](PyTrainer& t) { return t.trainer().total_steps(); })
      .def_property_readonly("steps_per_epoch", [](PyTrainer& t) { return t.trainer().steps_per_epoch(); })
      .def_property_readonly("done", [](PyTrainer& t) { return t.trainer().done(); })
      .def_property_readonly("lr", [](PyTrainer& t) { return t.trainer().lr(); })
      .def_property_readonly("config", [](PyTrainer& t) { return config_dict(t.setup().cfg); })
      .def_property_readonly("out", [](PyTrainer& t) { return t.args().out; })
      .def_property_readonly("metadata", [](PyTrainer& t) { return t.trainer().metadata(t.setup().extra); });
}
