// examples/envit/eval.cpp — `envit eval`: per-exit accuracy, early-exit threshold sweeps with MAC
// (eq. 19) and measured wall-clock speed-ups, exact agreement between the simulated curve and real
// early exit, calibration on a validation split, and CSV/JSON/safetensors/SVG outputs; a quantized
// checkpoint (envit quantize, weights/quantize.hpp) runs in INT8.
// All inference logic is in include/envit/infer/; this file orchestrates and reports.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>
#include <sstream>

#include "commands.hpp"
#include "common.hpp"
#include "envit/core/stats.hpp"
#include "envit/infer/early_exit.hpp"
#include "envit/weights/quantize.hpp"
#include "envit/infer/simulate.hpp"
#include "envit/weights/checkpoint.hpp"
#include "plot.hpp"
#include "report.hpp"

namespace envit::cli {

namespace {

using clk = std::chrono::steady_clock;
double since(clk::time_point t0) { return std::chrono::duration<double>(clk::now() - t0).count(); }

struct Loaded {
  std::string path, label;
  StFile file;
  VitConfig cfg;
  Normalizer norm;
  bool quantized = false;  // an INT8 checkpoint (weights/quantize.hpp): Q holds its integers and scales
  QuantizedModel Q;
};

// Sets ws to `precision` and packs P's weights for it: a quantized checkpoint's own INT8 values and
// scales under int8, else P's weights (quantized per channel with dynamic activation scales when
// an FP32 checkpoint is evaluated with --precision int8).
void prepack_for(InferenceWorkspace<float>& ws, const Loaded& L, const ViTParams<float>& P, Precision precision) {
  ws.precision = precision;
  if (L.quantized && precision == Precision::int8) prepack_int8(ws, P, L.Q);
  else ws.prepack(P);
}

// All images of `idx` normalised into one (n, C, H, W) buffer, labels alongside.
void load_images(std::vector<float>& images, std::vector<std::int32_t>& labels, const Dataset& d,
                 const std::vector<std::int64_t>& idx, const Normalizer& norm) {
  images.resize(idx.size() * std::size_t(d.image_size()));
  labels.resize(idx.size());
  make_batch(images.data(), labels.data(), d, idx.data(), int(idx.size()), norm, Augment{}, 0, 0);
}

// Every exit's logits (M, n_val, C) on the validation split carved at training time, and its labels.
void validation_logits(std::vector<float>& vlog, std::vector<std::int32_t>& vlab, const Loaded& L,
                       const std::string& dataset, const std::string& data_dir, int batch,
                       InferenceWorkspace<float>& ws, const ViTParams<float>& P, const char* why) {
  const Dataset val = checkpoint_validation_set(L.file, L.path, L.cfg, dataset, data_dir, why);
  std::vector<std::int64_t> all(std::size_t(val.n));
  std::iota(all.begin(), all.end(), 0);
  std::vector<float> vimg;
  load_images(vimg, vlab, val, all, L.norm);
  vlog.resize(std::size_t(L.cfg.num_exits()) * all.size() * L.cfg.classes);
  infer_all_exits_dataset<float>(ws, P, vimg.data(), int(all.size()), vlog.data(), batch);
}

// --beem-weights: cost (BEEM-C), accuracy (BEEM-A: each exit's validation accuracy) or M values.
std::vector<double> beem_weights(const std::string& spec, const Loaded& L, const std::string& dataset,
                                 const std::string& data_dir, int batch, const ViTParams<float>& P,
                                 Precision precision) {
  const int M = L.cfg.num_exits();
  if (spec == "cost") return beem_weights_cost(vit_macs(L.cfg));
  if (spec == "accuracy") {
    InferenceWorkspace<float> ws(L.cfg, batch);
    prepack_for(ws, L, P, precision);
    std::vector<float> vlog;
    std::vector<std::int32_t> vlab;
    validation_logits(vlog, vlab, L, dataset, data_dir, batch, ws, P, "--beem-weights accuracy");
    return beem_weights_accuracy(exit_scores(vlog.data(), M, int(vlab.size()), L.cfg.classes, ExitRule::confidence),
                                 vlab.data());
  }
  std::vector<double> w = parse_doubles(spec, "--beem-weights");
  ENVIT_CHECK(int(w.size()) == M, UsageError, "--beem-weights: ", w.size(), " values for ", M,
              " exits (or use cost / accuracy)");
  return w;
}

template <class F>
double best_time(int repeats, F&& f) {
  double best = 1e300;
  for (int r = 0; r < repeats; ++r) {
    auto t0 = clk::now();
    f();
    best = std::min(best, since(t0));
  }
  return best;
}

// Speed-up of `fast` over `base`, robust to drifts of a shared machine: the two are timed
// alternately (base, fast, base, fast, ...) `repeats` times and the median of the per-pair ratios
// t_base / t_fast is returned (timing each once, minutes apart, swung by +-20% on the 2-core VM).
template <class F, class G>
double paired_speedup(int repeats, F&& base, G&& fast) {
  std::vector<double> r;
  for (int i = 0; i < repeats; ++i) {
    auto t0 = clk::now();
    base();
    const double tb = since(t0);
    t0 = clk::now();
    fast();
    r.push_back(tb / since(t0));
  }
  return median(r);
}

}  // namespace

CLI::App* add_eval_command(CLI::App& app, EvalArgs& a) {
  CLI::App* c = app.add_subcommand("eval", "per-exit accuracy, early-exit threshold sweep, speed-ups, plots");
  c->footer(std::string(kExitCodesHelp) + ".\n");
  c->add_option("--checkpoint", a.checkpoints, "checkpoint(s) written by envit train, comma-separated (one curve each)")
      ->required()->delimiter(',');
  c->add_option("--dataset", a.dataset, "dataset (default: the one the checkpoint was trained on)")
      ->check(CLI::IsMember({"fashion-mnist", "mnist", "idx", "cifar10", "cifar100", "folder"}));
  c->add_option("--data", a.data, "dataset directory (default: the checkpoint's data.dir, the training run's --data)");
  c->add_option("--rule", a.rule,
                "exit criterion: confidence (eq. 18), entropy (normalised by log C), patience, beem (BEEM's running "
                "score), energy (COSEE's signal)")
      ->capture_default_str()->check(CLI::IsMember({"confidence", "entropy", "patience", "beem", "energy"}));
  c->add_option("--beem-weights", a.beem_weights,
                "beem exit weights: cost (BEEM-C), accuracy (BEEM-A, on the validation split) or M comma-separated "
                "values")
      ->capture_default_str();
  c->add_option("--thresholds", a.thresholds, "comma-separated thresholds to sweep, or auto")->capture_default_str();
  c->add_option("--points", a.points, "number of thresholds for --thresholds auto")
      ->capture_default_str()->check(CLI::Range(2, 100000));
  c->add_option("--exit-thresholds", a.exit_thresholds,
                "per-exit thresholds (M-1 values, comma-separated, one for each exit before the last) for one "
                "more operating point, reported after the sweep");
  c->add_option("--batch", a.batch, "batch size for batched inference")->capture_default_str()->check(CLI::Range(1, 1 << 16));
  add_threads_option(*c, a.threads);
  c->add_option("--time-samples", a.time_samples, "test samples used for the real early-exit runs and timings (0: all)")
      ->capture_default_str()->check(at_least(0));
  c->add_option("--stream-samples", a.stream_samples, "samples for one-at-a-time streaming timings (0: skip streaming)")
      ->capture_default_str()->check(at_least(0));
  c->add_option("--repeats", a.repeats,
                "timing repetitions: full-model rates report the minimum time; speed-ups the median of paired ratios "
                "(full model and early exit timed alternately)")
      ->capture_default_str()->check(CLI::Range(1, 100));
  c->add_option("--target-speedup", a.target_speedups,
                "calibrate: the most accurate threshold reaching this MAC speed-up on the validation split "
                "(comma-separated for several, e.g. 1.5,2)");
  add_real(*c, "--max-drop", a.max_drop,
           "calibrate: fastest threshold within this accuracy drop (e.g. 0.01) on validation", 0, 1, false);
  c->add_option("--out", a.out, "output directory (default: <checkpoint dir>/eval)");
  add_precision_option(*c, a.precision,
                       "matrix products in fp32, bf16 (BF16 operands, FP32 accumulation) or int8 (the block Linear "
                       "layers in INT8; docs/method.md). Default: int8 for a quantized checkpoint (envit quantize), "
                       "else the precision it was trained in (train.precision; fp32 if none)",
                       /*inference=*/true);
  return c;
}

int run_eval(const EvalArgs& a, const CLI::App& cmd) {
  set_num_threads(a.threads);
  // a bad --precision is reported before any work
  (void)precision_flag(cmd.count("--precision") > 0, a.precision, Precision::fp32, /*inference=*/true);
  const std::vector<std::string>& paths = a.checkpoints;
  std::string out = a.out;
  if (out.empty()) {
    auto slash = paths[0].find_last_of('/');
    out = (slash == std::string::npos ? std::string(".") : paths[0].substr(0, slash)) + "/eval";
  }
  const bool want_speedup = cmd.count("--target-speedup") > 0, want_drop = cmd.count("--max-drop") > 0;
  const std::vector<double> targets = parse_doubles(a.target_speedups, "--target-speedup");
  for (double t : targets)
    ENVIT_CHECK(t >= 1e-3 && t <= 1e3, UsageError, "--target-speedup: ", t, " is outside [0.001, 1000]");
  ENVIT_CHECK(!want_speedup || !targets.empty(), UsageError, "--target-speedup needs at least one value");
  std::vector<double> exit_thr;
  if (!a.exit_thresholds.empty()) exit_thr = parse_doubles(a.exit_thresholds, "--exit-thresholds");
  std::vector<double> sweep_thr;
  if (a.thresholds != "auto") sweep_thr = parse_doubles(a.thresholds, "--thresholds");
  make_dirs(out);
  const int batch = a.batch, repeats = a.repeats;
  const std::string& rule_name = a.rule;
  const ExitRule rule = parse_exit_rule(rule_name);

  std::ostringstream csv, js;
  csv << "checkpoint,rule,threshold,accuracy,speedup_macs,speedup_wall,speedup_stream,agree,exit_histogram\n";
  js << "{\"rule\":" << json_string(rule_name) << ",\"kernels\":" << json_string(kernel_set_info())
     << ",\"checkpoints\":[";
  std::vector<Curve> curves, wall_curves;

  for (std::size_t ci = 0; ci < paths.size(); ++ci) {
    Loaded L;
    L.path = paths[ci];
    L.file = safetensors_read(L.path);
    L.cfg = checkpoint_config(L.file);
    L.quantized = is_quantized_checkpoint(L.file);
    ViTParams<float> P = [&] {
      if (!L.quantized) return checkpoint_model<float>(L.file);
      LoadedQuantized lq = load_quantized(L.file);
      L.Q = std::move(lq.Q);
      return std::move(lq.P);
    }();
    L.norm = Normalizer(ChannelStats::from_map(L.file.metadata, L.cfg.channels, L.file.where()));
    std::string stem = L.path.substr(L.path.find_last_of('/') + 1);
    std::string dir = L.path.substr(0, L.path.find_last_of('/') == std::string::npos ? 0 : L.path.find_last_of('/'));
    std::string run = dir.substr(dir.find_last_of('/') + 1);
    L.label = L.file.meta_or("train.scheme", "?") + " (" + (run.empty() ? stem : run) + ")";
    const std::string dataset = a.dataset.empty() ? L.file.meta_or("data.dataset", "fashion-mnist") : a.dataset;
    const std::string data_dir = a.data.empty() ? L.file.meta_or("data.dir", "") : a.data;  // the training run's
    const Precision precision = precision_flag(
        cmd.count("--precision") > 0, a.precision,
        L.quantized ? Precision::int8
                    : parse_precision(L.file.meta_or("train.precision", "fp32"), L.file.where() + ": train.precision"),
        /*inference=*/true);
    Dataset test = load_checkpoint_dataset(dataset, data_dir, false, L.file, L.cfg);
    test.check_fits(L.cfg.channels, L.cfg.image_size, L.cfg.image_size, L.cfg.classes, "checkpoint '" + L.path + "'");
    const int M = L.cfg.num_exits(), C = L.cfg.classes;
    // The rule with its beem weights; thresholds are set per operating point.
    ExitCriterion base{rule, {0.0}, true, {}};
    if (rule == ExitRule::beem) {
      base.weights = beem_weights(a.beem_weights, L, dataset, data_dir, batch, P, precision);
      std::printf("  beem exit weights (%s):", a.beem_weights.c_str());
      for (double w : base.weights) std::printf(" %.4g", w);
      std::printf("\n");
    }
    ExitCriterion per_exit{rule, exit_thr, true, base.weights};
    if (!exit_thr.empty()) {
      ENVIT_CHECK(int(exit_thr.size()) == M - 1, UsageError, "--exit-thresholds: ", exit_thr.size(),
                  " values, checkpoint '", L.path, "' has ", M, " exits (give ", M - 1, ", one per exit before the last)");
      as_usage_error([&] { per_exit.validate(M); });
    }
    std::vector<std::int64_t> all(std::size_t(test.n));
    std::iota(all.begin(), all.end(), 0);
    std::vector<float> images;
    std::vector<std::int32_t> labels;
    load_images(images, labels, test, all, L.norm);
    const int N = int(test.n);

    // 1. The complete model: every exit's logits.
    InferenceWorkspace<float> ws(L.cfg, batch);
    prepack_for(ws, L, P, precision);  // weights are fixed from here on: pack them once (for `precision`) for every pass below
    std::vector<float> logits(std::size_t(M) * N * C);
    infer_all_exits_dataset<float>(ws, P, images.data(), N, logits.data(), batch);
    const VitMacs macs = vit_macs(L.cfg);
    ExitScores scores = exit_scores(logits.data(), M, N, C, base);
    std::printf("\n%s  [%s]\n  %s\n  data: %s, %d images\n  precision %s, %s\n  per-exit test accuracy (complete model):",
                L.path.c_str(), L.label.c_str(), L.cfg.str().c_str(), test.name.c_str(), N, precision_name(precision),
                kernel_set_info().c_str());
    std::vector<double> exit_acc(static_cast<std::size_t>(M));
    for (int j = 0; j < M; ++j) {
      exit_acc[j] = exit_accuracy(scores, labels.data(), j);
      std::printf(" %.2f%%", 100 * exit_acc[j]);
    }
    std::printf("\n  full model (final exit): %.2f%%; MACs per sample: full %.3g, exits:", 100 * exit_acc[M - 1],
                double(macs.full()));
    for (int j = 0; j < M; ++j) std::printf(" %.3g", double(macs.to_exit(j)));
    std::printf("\n");
    {
      StFile lf;
      lf.metadata = {{"checkpoint", L.path}, {"dataset", test.name}, {"layout", "logits (M, N, C), labels (N)"},
                     {"precision", precision_name(precision)}};
      lf.add<float>("logits", logits.data(), {M, N, C});
      lf.add<std::int32_t>("labels", labels.data(), {N});
      safetensors_write(out + "/logits_" + std::to_string(ci) + ".safetensors", lf);
    }

    // 2. Thresholds.
    const std::vector<double> thr = a.thresholds == "auto" ? threshold_candidates(scores, a.points) : sweep_thr;
    std::vector<SweepPoint> sweep = threshold_sweep(scores, labels.data(), macs, thr);

    // 3. Real early exit: timing and exact agreement with the simulation on the first K samples.
    const int K = a.time_samples == 0 ? N : int(std::min<std::int64_t>(a.time_samples, N));
    std::vector<float> final_logits(std::size_t(batch) * C);
    // The baselines of every speed-up: the model without early exits on the same samples.
    const auto run_full = [&] {
      for (int s = 0; s < K; s += batch)
        infer_final<float>(ws, P, images.data() + std::size_t(s) * test.image_size(), std::min(batch, K - s),
                           final_logits.data());
    };
    const double t_full = best_time(repeats, run_full);
    const int S = int(std::min<std::int64_t>(a.stream_samples, K));
    InferenceWorkspace<float> ws1(L.cfg, 1);
    prepack_for(ws1, L, P, precision);
    std::vector<float> one(static_cast<std::size_t>(C));
    const auto run_full_stream = [&] {
      for (int s = 0; s < S; ++s) infer_final<float>(ws1, P, images.data() + std::size_t(s) * test.image_size(), 1, one.data());
    };
    const double t_full1 = S > 0 ? best_time(repeats, run_full_stream) : 0.0;
    std::printf("  full model: %.1f img/s at batch %d, %.3f ms per image streaming\n", K / t_full, batch,
                S > 0 ? 1e3 * t_full1 / S : 0.0);
    std::printf("  %-10s %8s %9s %9s %9s  %s\n", "threshold", "acc%", "MACs x", "wall x", "stream x", "exit histogram");

    // One operating point: its statistics on every test sample (simulated from the logits), and
    // real early exit on the first K samples, timed against the full model and checked against
    // the simulation.
    struct Point {
      ExitStats st;
      double wall = 0, stream = 0;
      std::int64_t disagree = 0;
      std::string hist;
    };
    std::vector<int> ex(static_cast<std::size_t>(K)), pr(static_cast<std::size_t>(K));
    ExitDecisions sim;
    const auto measure = [&](const ExitCriterion& crit) {
      Point p;
      exit_decide(sim, scores, crit);
      p.st = exit_stats(sim, labels.data(), macs);
      p.wall = paired_speedup(repeats, run_full, [&] {
        early_exit_dataset<float>(ws, P, images.data(), K, batch, crit, ExitOutput<float>{ex.data(), pr.data(), nullptr});
      });
      for (int i = 0; i < K; ++i) p.disagree += ex[i] != sim.exit[i] || pr[i] != sim.pred[i];
      if (S > 0)
        p.stream = paired_speedup(repeats, run_full_stream, [&] {
          for (int s = 0; s < S; ++s)
            early_exit_one<float>(ws1, P, images.data() + std::size_t(s) * test.image_size(), crit, nullptr);
        });
      for (int j = 0; j < M; ++j) p.hist += (j ? "/" : "") + std::to_string(p.st.histogram[j]);
      return p;
    };
    const auto report = [&](const std::string& shown, const std::string& thr_text, const Point& p) {
      std::printf("  %-10s %8.2f %9.3f %9.3f %9.3f  %s%s\n", shown.c_str(), 100 * p.st.accuracy, p.st.speedup, p.wall,
                  p.stream, p.hist.c_str(), p.disagree ? "  MISMATCH" : "");
      csv << csv_field(L.label) << "," << csv_field(rule_name) << "," << csv_field(thr_text) << ","
          << csv_number(p.st.accuracy) << "," << csv_number(p.st.speedup) << "," << csv_number(p.wall) << ","
          << csv_number(p.stream) << "," << (p.disagree == 0 ? "yes" : "no") << "," << p.hist << "\n";
    };
    const auto point_json = [&](const Point& p) {
      std::string s = ",\"accuracy\":" + json_number(p.st.accuracy) + ",\"speedup_macs\":" + json_number(p.st.speedup) +
                      ",\"speedup_wall\":" + json_number(p.wall) + ",\"speedup_stream\":" + json_number(p.stream) +
                      ",\"mismatches\":" + std::to_string(p.disagree) + ",\"histogram\":[";
      for (int j = 0; j < M; ++j) s += (j ? "," : "") + std::to_string(p.st.histogram[j]);
      return s + "]}";
    };

    js << (ci ? "," : "") << "{\"checkpoint\":" << json_string(L.path) << ",\"label\":" << json_string(L.label)
       << ",\"dataset\":" << json_string(test.name) << ",\"precision\":" << json_string(precision_name(precision))
       << ",\"exits\":[";
    for (int j = 0; j < M; ++j) js << (j ? "," : "") << L.cfg.exits[j];
    js << "],\"exit_accuracy\":[";
    for (int j = 0; j < M; ++j) js << (j ? "," : "") << json_number(exit_acc[j]);
    js << "],\"full_accuracy\":" << json_number(exit_acc[M - 1]) << ",\"macs_full\":" << macs.full()
       << ",\"full_images_per_s\":" << json_number(K / t_full) << ",\"sweep\":[";
    std::int64_t disagree_total = 0;
    Curve cmac{L.label, {}, {}}, cwall{L.label + " wall-clock", {}, {}};
    for (std::size_t k = 0; k < sweep.size(); ++k) {
      const Point p = measure(base.with_threshold(sweep[k].threshold));
      disagree_total += p.disagree;
      char shown[32];
      std::snprintf(shown, sizeof shown, "%.4g", sweep[k].threshold);
      report(shown, csv_number(sweep[k].threshold), p);
      js << (k ? "," : "") << "{\"threshold\":" << json_number(sweep[k].threshold) << point_json(p);
      cmac.x.push_back(p.st.speedup);
      cmac.y.push_back(100 * p.st.accuracy);
      cwall.x.push_back(p.wall);
      cwall.y.push_back(100 * p.st.accuracy);
    }
    js << "]";
    if (!exit_thr.empty()) {  // the per-exit operating point
      const Point p = measure(per_exit);
      disagree_total += p.disagree;
      std::string text;
      for (std::size_t j = 0; j < exit_thr.size(); ++j) text += (j ? "," : "") + csv_number(exit_thr[j]);
      std::printf("  per-exit thresholds %s:\n", text.c_str());
      report("per-exit", text, p);
      js << ",\"exit_thresholds\":{\"thresholds\":[";
      for (std::size_t j = 0; j < exit_thr.size(); ++j) js << (j ? "," : "") << json_number(exit_thr[j]);
      js << "]" << point_json(p);
    }
    js << ",\"mismatches\":" << disagree_total;
    std::printf("  simulated vs real early exit on %d samples: %s\n", K,
                disagree_total == 0 ? "identical exits and predictions at every threshold"
                                    : ("MISMATCHES: " + std::to_string(disagree_total)).c_str());
    curves.push_back(cmac);
    wall_curves.push_back(cwall);

    // 4. Calibration on the validation split carved at training time.
    if (want_speedup || want_drop) {
      std::vector<float> vlog;
      std::vector<std::int32_t> vlab;
      validation_logits(vlog, vlab, L, dataset, data_dir, batch, ws, P, "calibration");
      ExitScores vs = exit_scores(vlog.data(), M, int(vlab.size()), C, base);
      struct Goal { const char* what; double target; Calibration cal; };
      std::vector<Goal> cals;
      if (want_speedup)
        for (double t : targets) cals.push_back({"target speed-up", t, calibrate_for_speedup(vs, vlab.data(), macs, t)});
      if (want_drop)
        cals.push_back({"max accuracy drop", a.max_drop, calibrate_for_accuracy(vs, vlab.data(), macs, a.max_drop)});
      js << ",\"calibration\":[";
      for (std::size_t c = 0; c < cals.size(); ++c) {
        const auto& [what, target, cal] = cals[c];
        ExitDecisions d = exit_decide(scores, cal.criterion);
        ExitStats ts = exit_stats(d, labels.data(), macs);
        // Measured at the calibrated threshold: real batched early exit on the timing samples.
        const double wall = paired_speedup(repeats, run_full, [&] {
          early_exit_dataset<float>(ws, P, images.data(), K, batch, cal.criterion,
                                    ExitOutput<float>{ex.data(), pr.data(), nullptr});
        });
        std::printf("  calibrated on %zu validation samples (%s %g%s): threshold %.6g -> val %.2f%% at %.3fx; "
                    "test %.2f%% at %.3fx MACs, %.3fx wall-clock\n",
                    vlab.size(), what, target, cal.met ? "" : ", target NOT reachable", cal.criterion.thresholds[0],
                    100 * cal.val.accuracy, cal.val.speedup, 100 * ts.accuracy, ts.speedup, wall);
        js << (c ? "," : "") << "{\"goal\":" << json_string(what) << ",\"target\":" << json_number(target)
           << ",\"met\":" << (cal.met ? "true" : "false")
           << ",\"threshold\":" << json_number(cal.criterion.thresholds[0])
           << ",\"val_accuracy\":" << json_number(cal.val.accuracy) << ",\"val_speedup\":" << json_number(cal.val.speedup)
           << ",\"test_accuracy\":" << json_number(ts.accuracy) << ",\"test_speedup\":" << json_number(ts.speedup)
           << ",\"test_speedup_wall\":" << json_number(wall) << ",\"histogram\":[";
        for (int j = 0; j < M; ++j) js << (j ? "," : "") << ts.histogram[j];
        js << "]}";
      }
      js << "]";
    }
    js << "}";
  }
  js << "]}\n";
  write_text_atomic(out + "/sweep.csv", csv.str());
  write_text_atomic(out + "/eval.json", js.str());
  write_svg_plot(out + "/tradeoff.svg", curves, "Accuracy vs MAC speed-up (eq. 19), rule: " + rule_name,
                 "speed-up (MACs, eq. 19)", "test accuracy (%)");
  write_svg_plot(out + "/tradeoff_wall.svg", wall_curves, "Accuracy vs measured wall-clock speed-up",
                 "speed-up (wall-clock, batched with compaction)", "test accuracy (%)");
  std::printf("\nwrote %s/{sweep.csv, eval.json, tradeoff.svg, tradeoff_wall.svg, logits_*.safetensors}\n", out.c_str());
  return kExitOk;
}

}  // namespace envit::cli
