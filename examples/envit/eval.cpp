// examples/envit/eval.cpp — `envit eval`: per-exit accuracy, early-exit threshold sweeps with MAC
// (eq. 19) and measured wall-clock speed-ups, exact agreement between the simulated curve and real
// early exit, calibration on a validation split, and CSV/JSON/safetensors/SVG outputs.
// All inference logic is in include/envit/infer/; this file orchestrates and reports.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <numeric>

#include "common.hpp"
#include "envit/infer/early_exit.hpp"
#include "envit/infer/simulate.hpp"
#include "envit/train/checkpoint.hpp"
#include "plot.hpp"

namespace envit::cli {

namespace {

using clk = std::chrono::steady_clock;
double since(clk::time_point t0) { return std::chrono::duration<double>(clk::now() - t0).count(); }

void declare(Args& a) {
  a.flag("checkpoint", "", "checkpoint(s) written by envit train, comma-separated (one curve each)");
  a.flag("dataset", "", "dataset (default: the one the checkpoint was trained on)");
  a.flag("data", "", "dataset directory");
  a.flag("rule", "confidence", "exit criterion: confidence (eq. 18), entropy (normalised by log C), patience");
  a.flag("thresholds", "auto", "comma-separated thresholds to sweep, or auto");
  a.flag("points", "12", "number of thresholds for --thresholds auto");
  a.flag("exit-thresholds", "", "per-exit thresholds (M-1 values) for one extra operating point");
  a.flag("batch", "128", "batch size for batched inference");
  a.flag("threads", "2", "OpenMP threads");
  a.flag("time-samples", "0", "test samples used for the real early-exit runs and timings (0: all)");
  a.flag("stream-samples", "200", "samples for one-at-a-time streaming timings (0: skip streaming)");
  a.flag("repeats", "3", "timing repetitions: full-model rates report the minimum time; speed-ups the median of "
                         "paired ratios (full model and early exit timed alternately)");
  a.flag("target-speedup", "", "calibrate: threshold reaching this MAC speed-up on the validation split "
                               "(comma-separated for several, e.g. 1.5,2)");
  a.flag("max-drop", "", "calibrate: fastest threshold within this accuracy drop (e.g. 0.01) on validation");
  a.flag("out", "", "output directory (default: <checkpoint dir>/eval)");
}

struct Loaded {
  std::string path, label;
  StFile file;
  VitConfig cfg;
  Normalizer norm;
};

Normalizer normalizer_from(const StFile& f, int channels) {
  auto mean = parse_doubles(f.meta_or("data.mean", ""), f.where() + " data.mean");
  auto sd = parse_doubles(f.meta_or("data.std", ""), f.where() + " data.std");
  ENVIT_CHECK(int(mean.size()) == channels && int(sd.size()) == channels, IoError, f.where(),
              ": metadata data.mean/data.std must hold ", channels, " values each");
  return Normalizer(mean, sd);
}

// All images of `idx` normalised into one (n, C, H, W) buffer, labels alongside.
void load_images(std::vector<float>& images, std::vector<std::int32_t>& labels, const Dataset& d,
                 const std::vector<std::int64_t>& idx, const Normalizer& norm) {
  images.resize(idx.size() * std::size_t(d.image_size()));
  labels.resize(idx.size());
  make_batch(images.data(), labels.data(), d, idx.data(), int(idx.size()), norm, Augment{}, 0, 0);
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
  std::sort(r.begin(), r.end());
  const std::size_t n = r.size();
  return n % 2 ? r[n / 2] : 0.5 * (r[n / 2 - 1] + r[n / 2]);
}

}  // namespace

int cmd_eval(int argc, char** argv) {
  Args a("envit eval", "Evaluate early-exit checkpoints: per-exit accuracy, threshold sweep, speed-ups, plot.");
  declare(a);
  if (!a.parse(argc, argv, 2)) return 0;
  set_num_threads(int(a.integer("threads", 1, 1024)));
  const std::vector<std::string> paths = a.list("checkpoint");
  if (paths.empty()) throw UsageError("--checkpoint is required");
  std::string out = a.str("out");
  if (out.empty()) {
    auto slash = paths[0].find_last_of('/');
    out = (slash == std::string::npos ? std::string(".") : paths[0].substr(0, slash)) + "/eval";
  }
  make_dirs(out);
  const int batch = int(a.integer("batch", 1, 1 << 16));
  const int repeats = int(a.integer("repeats", 1, 100));
  const std::string rule_name = a.str("rule");
  ExitRule rule = rule_name == "confidence" ? ExitRule::confidence
                  : rule_name == "entropy"  ? ExitRule::entropy
                  : rule_name == "patience" ? ExitRule::patience
                                            : throw UsageError("--rule must be confidence, entropy or patience");

  std::ofstream csv(out + "/sweep.csv");
  std::ofstream js(out + "/eval.json");
  ENVIT_CHECK(csv.good() && js.good(), IoError, "cannot write into '", out, "'");
  csv << "checkpoint,rule,threshold,accuracy,speedup_macs,speedup_wall,speedup_stream,agree,exit_histogram\n";
  js << "{\"rule\":\"" << rule_name << "\",\"checkpoints\":[";
  std::vector<Curve> curves, wall_curves;

  for (std::size_t ci = 0; ci < paths.size(); ++ci) {
    Loaded L;
    L.path = paths[ci];
    L.file = safetensors_read(L.path);
    L.cfg = checkpoint_config(L.file);
    ViTParams<float> P(L.cfg, /*with_grads=*/false);
    load_weights(L.file, P, false);
    L.norm = normalizer_from(L.file, L.cfg.channels);
    std::string stem = L.path.substr(L.path.find_last_of('/') + 1);
    std::string dir = L.path.substr(0, L.path.find_last_of('/') == std::string::npos ? 0 : L.path.find_last_of('/'));
    std::string run = dir.substr(dir.find_last_of('/') + 1);
    L.label = L.file.meta_or("train.scheme", "?") + " (" + (run.empty() ? stem : run) + ")";
    const std::string dataset = a.str("dataset").empty() ? L.file.meta_or("data.dataset", "fashion-mnist") : a.str("dataset");
    Dataset test = load_dataset(dataset, a.str("data"), false);
    ENVIT_CHECK(test.c == L.cfg.channels && test.h == L.cfg.image_size && test.w == L.cfg.image_size, ShapeError,
                "dataset '", test.name, "' has ", test.c, "x", test.h, "x", test.w, " images, checkpoint '", L.path,
                "' expects ", L.cfg.channels, "x", L.cfg.image_size, "x", L.cfg.image_size);
    const int M = L.cfg.num_exits(), C = L.cfg.classes;
    std::vector<std::int64_t> all(std::size_t(test.n));
    std::iota(all.begin(), all.end(), 0);
    std::vector<float> images;
    std::vector<std::int32_t> labels;
    load_images(images, labels, test, all, L.norm);
    const int N = int(test.n);

    // 1. The complete model: every exit's logits.
    InferenceWorkspace<float> ws(L.cfg, batch);
    ws.prepack(P);  // weights are fixed from here on: pack them once for every pass below
    std::vector<float> logits(std::size_t(M) * N * C);
    infer_all_exits_dataset<float>(ws, P, images.data(), N, logits.data(), batch);
    const VitMacs macs = vit_macs(L.cfg);
    ExitScores scores = exit_scores(logits.data(), M, N, C, rule);
    std::printf("\n%s  [%s]\n  %s\n  per-exit test accuracy (complete model):", L.path.c_str(), L.label.c_str(),
                L.cfg.str().c_str());
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
      lf.metadata = {{"checkpoint", L.path}, {"dataset", test.name}, {"layout", "logits (M, N, C), labels (N)"}};
      lf.add<float>("logits", logits.data(), {M, N, C});
      lf.add<std::int32_t>("labels", labels.data(), {N});
      safetensors_write(out + "/logits_" + std::to_string(ci) + ".safetensors", lf);
    }

    // 2. Thresholds.
    std::vector<double> thr;
    if (a.str("thresholds") == "auto") {
      thr = threshold_candidates(scores, int(a.integer("points", 2, 100000)));
    } else {
      thr = parse_doubles(a.str("thresholds"), "--thresholds");
    }
    std::vector<SweepPoint> sweep = threshold_sweep(scores, labels.data(), macs, thr);

    // 3. Real early exit: timing and exact agreement with the simulation on the first K samples.
    int K = int(a.integer("time-samples", 0, N));
    if (K == 0) K = N;
    std::vector<float> final_logits(std::size_t(batch) * C);
    // The baselines of every speed-up: the model without early exits on the same samples.
    const auto run_full = [&] {
      for (int s = 0; s < K; s += batch)
        infer_final<float>(ws, P, images.data() + std::size_t(s) * test.image_size(), std::min(batch, K - s),
                           final_logits.data());
    };
    const double t_full = best_time(repeats, run_full);
    const int S = int(std::min<std::int64_t>(a.integer("stream-samples", 0, N), K));
    InferenceWorkspace<float> ws1(L.cfg, 1);
    ws1.prepack(P);
    std::vector<float> one(static_cast<std::size_t>(C));
    const auto run_full_stream = [&] {
      for (int s = 0; s < S; ++s) infer_final<float>(ws1, P, images.data() + std::size_t(s) * test.image_size(), 1, one.data());
    };
    const double t_full1 = S > 0 ? best_time(repeats, run_full_stream) : 0.0;
    std::printf("  full model: %.1f img/s at batch %d, %.3f ms per image streaming\n", K / t_full, batch,
                S > 0 ? 1e3 * t_full1 / S : 0.0);
    std::printf("  %-10s %8s %9s %9s %9s  %s\n", "threshold", "acc%", "MACs x", "wall x", "stream x", "exit histogram");
    std::vector<int> ex(static_cast<std::size_t>(K)), pr(static_cast<std::size_t>(K));
    ExitDecisions sim;
    ExitCriterion crit{rule, {0.0}, true};
    Curve cmac{L.label, {}, {}}, cwall{L.label + " wall-clock", {}, {}};
    js << (ci ? "," : "") << "{\"checkpoint\":\"" << json_escape(L.path) << "\",\"label\":\"" << json_escape(L.label)
       << "\",\"exits\":[";
    for (int j = 0; j < M; ++j) js << (j ? "," : "") << L.cfg.exits[j];
    js << "],\"exit_accuracy\":[";
    for (int j = 0; j < M; ++j) js << (j ? "," : "") << exit_acc[j];
    js << "],\"full_accuracy\":" << exit_acc[M - 1] << ",\"macs_full\":" << macs.full()
       << ",\"full_images_per_s\":" << K / t_full << ",\"sweep\":[";
    std::int64_t disagree_total = 0;
    for (std::size_t k = 0; k < sweep.size(); ++k) {
      crit.thresholds[0] = sweep[k].threshold;
      exit_decide(sim, scores, crit);
      const double wall = paired_speedup(repeats, run_full, [&] {
        early_exit_dataset<float>(ws, P, images.data(), K, batch, crit, ExitOutput<float>{ex.data(), pr.data(), nullptr});
      });
      std::int64_t disagree = 0;
      for (int i = 0; i < K; ++i) disagree += ex[i] != sim.exit[i] || pr[i] != sim.pred[i];
      disagree_total += disagree;
      double stream = 0;
      if (S > 0)
        stream = paired_speedup(repeats, run_full_stream, [&] {
          for (int s = 0; s < S; ++s)
            early_exit_one<float>(ws1, P, images.data() + std::size_t(s) * test.image_size(), crit, nullptr);
        });
      const ExitStats& st = sweep[k].stats;
      std::string hist;
      for (int j = 0; j < M; ++j) hist += (j ? "/" : "") + std::to_string(st.histogram[j]);
      std::printf("  %-10.4g %8.2f %9.3f %9.3f %9.3f  %s%s\n", sweep[k].threshold, 100 * st.accuracy, st.speedup, wall,
                  stream, hist.c_str(), disagree ? "  MISMATCH" : "");
      csv << json_escape(L.label) << "," << rule_name << "," << sweep[k].threshold << "," << st.accuracy << ","
          << st.speedup << "," << wall << "," << stream << "," << (disagree == 0 ? "yes" : "no") << "," << hist << "\n";
      js << (k ? "," : "") << "{\"threshold\":" << (std::isfinite(sweep[k].threshold) ? sweep[k].threshold : 1e308)
         << ",\"accuracy\":" << st.accuracy << ",\"speedup_macs\":" << st.speedup << ",\"speedup_wall\":" << wall
         << ",\"speedup_stream\":" << stream << ",\"mismatches\":" << disagree << ",\"histogram\":[";
      for (int j = 0; j < M; ++j) js << (j ? "," : "") << st.histogram[j];
      js << "]}";
      cmac.x.push_back(st.speedup);
      cmac.y.push_back(100 * st.accuracy);
      cwall.x.push_back(wall);
      cwall.y.push_back(100 * st.accuracy);
    }
    js << "],\"mismatches\":" << disagree_total;
    std::printf("  simulated vs real early exit on %d samples: %s\n", K,
                disagree_total == 0 ? "identical exits and predictions at every threshold"
                                    : ("MISMATCHES: " + std::to_string(disagree_total)).c_str());
    curves.push_back(cmac);
    wall_curves.push_back(cwall);

    // 4. Calibration on the validation split carved at training time.
    if (!a.str("target-speedup").empty() || !a.str("max-drop").empty()) {
      const std::int64_t n_val = std::stoll(L.file.meta_or("data.val", "0"));
      ENVIT_CHECK(n_val > 0, UsageError, "calibration needs a validation split: train with --val N (checkpoint '",
                  L.path, "' has none)");
      Dataset train = load_dataset(dataset, a.str("data"), true);
      const std::vector<std::int64_t> used = training_indices(
          train, std::stoll(L.file.meta_or("data.skip", "0")), std::stoll(L.file.meta_or("data.subset", "0")),
          parse_ints(L.file.meta_or("data.classes", ""), L.path + " data.classes"));
      train = dataset_subset(train, used.data(), std::int64_t(used.size()));
      Split sp = split_train_val(train.n, n_val, std::uint64_t(std::stoull(L.file.meta_or("train.seed", "0"))));
      std::vector<float> vimg;
      std::vector<std::int32_t> vlab;
      load_images(vimg, vlab, train, sp.val, L.norm);
      std::vector<float> vlog(std::size_t(M) * sp.val.size() * C);
      infer_all_exits_dataset<float>(ws, P, vimg.data(), int(sp.val.size()), vlog.data(), batch);
      ExitScores vs = exit_scores(vlog.data(), M, int(sp.val.size()), C, rule);
      std::vector<Calibration> cals;
      std::vector<std::pair<std::string, double>> goals;  // (goal, target)
      for (double t : parse_doubles(a.str("target-speedup"), "--target-speedup")) {
        if (!(t >= 1e-3 && t <= 1e3)) throw UsageError("--target-speedup " + std::to_string(t) + " is outside [0.001, 1000]");
        cals.push_back(calibrate_for_speedup(vs, vlab.data(), macs, t));
        goals.emplace_back("target speed-up", t);
      }
      if (!a.str("max-drop").empty()) {
        cals.push_back(calibrate_for_accuracy(vs, vlab.data(), macs, a.real("max-drop", 0, 1)));
        goals.emplace_back("max accuracy drop", a.real("max-drop", 0, 1));
      }
      js << ",\"calibration\":[";
      for (std::size_t c = 0; c < cals.size(); ++c) {
        const Calibration& cal = cals[c];
        ExitDecisions d = exit_decide(scores, cal.criterion);
        ExitStats ts = exit_stats(d, labels.data(), macs);
        // Measured at the calibrated threshold: real batched early exit on the timing samples.
        const double wall = paired_speedup(repeats, run_full, [&] {
          early_exit_dataset<float>(ws, P, images.data(), K, batch, cal.criterion,
                                    ExitOutput<float>{ex.data(), pr.data(), nullptr});
        });
        std::printf("  calibrated on %zu validation samples (%s %g%s): threshold %.6g -> val %.2f%% at %.3fx; "
                    "test %.2f%% at %.3fx MACs, %.3fx wall-clock\n",
                    sp.val.size(), goals[c].first.c_str(), goals[c].second, cal.met ? "" : ", target NOT reachable",
                    cal.criterion.thresholds[0], 100 * cal.val.accuracy, cal.val.speedup, 100 * ts.accuracy,
                    ts.speedup, wall);
        js << (c ? "," : "") << "{\"goal\":\"" << goals[c].first << "\",\"target\":" << goals[c].second
           << ",\"met\":" << (cal.met ? "true" : "false") << ",\"threshold\":"
           << (std::isfinite(cal.criterion.thresholds[0]) ? cal.criterion.thresholds[0] : 1e308)
           << ",\"val_accuracy\":" << cal.val.accuracy << ",\"val_speedup\":" << cal.val.speedup
           << ",\"test_accuracy\":" << ts.accuracy << ",\"test_speedup\":" << ts.speedup
           << ",\"test_speedup_wall\":" << wall << ",\"histogram\":[";
        for (int j = 0; j < M; ++j) js << (j ? "," : "") << ts.histogram[j];
        js << "]}";
      }
      js << "]";
    }
    js << "}";
  }
  js << "]}\n";
  std::vector<Curve> all_curves = curves;
  write_svg_plot(out + "/tradeoff.svg", curves, "Accuracy vs MAC speed-up (eq. 19), rule: " + rule_name,
                 "speed-up (MACs, eq. 19)", "test accuracy (%)");
  write_svg_plot(out + "/tradeoff_wall.svg", wall_curves, "Accuracy vs measured wall-clock speed-up",
                 "speed-up (wall-clock, batched with compaction)", "test accuracy (%)");
  std::printf("\nwrote %s/{sweep.csv, eval.json, tradeoff.svg, tradeoff_wall.svg, logits_*.safetensors}\n", out.c_str());
  return 0;
}

}  // namespace envit::cli
