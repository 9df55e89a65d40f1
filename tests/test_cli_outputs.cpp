// The `envit` program's text writers (examples/envit/report.hpp, plot.hpp) and its warm-up rule
// (examples/envit/warmup.hpp): CSV quoting, XML escaping, JSON numbers (non-finite -> null),
// atomic whole-file writes, the warm-up steps chosen for long and short runs, the epochs of a run
// shorter than its preset's step floor (schedule.hpp), and the memory plan (envit/train/memory_plan.hpp)
// against the arenas the trainer really allocates.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>

#include "plot.hpp"
#include "envit/optim/adamw.hpp"
#include "envit/train/memory_plan.hpp"
#include "envit/train/step.hpp"
#include "report.hpp"
#include "schedule.hpp"
#include "warmup.hpp"

using namespace envit::cli;
namespace fs = std::filesystem;

TEST_CASE("csv_field quotes fields holding commas, quotes or line breaks (RFC 4180)", "[cli]") {
  CHECK(csv_field("envit (run1)") == "envit (run1)");
  CHECK(csv_field("a,b") == "\"a,b\"");
  CHECK(csv_field("say \"hi\"") == "\"say \"\"hi\"\"\"");
  CHECK(csv_field("two\nlines") == "\"two\nlines\"");
  CHECK(csv_field("") == "");
}

TEST_CASE("xml_escape escapes markup and drops control characters", "[cli]") {
  CHECK(xml_escape("r&d <1> \"q\" 'a'") == "r&amp;d &lt;1&gt; &quot;q&quot; &apos;a&apos;");
  CHECK(xml_escape(std::string("a\x01" "b\tc")) == "a?b\tc");
}

TEST_CASE("json_number: shortest round-trip text, null for non-finite values", "[cli]") {
  const double inf = std::numeric_limits<double>::infinity();
  CHECK(json_number(inf) == "null");
  CHECK(json_number(-inf) == "null");
  CHECK(json_number(std::nan("")) == "null");
  CHECK(json_number(0.1) == "0.1");
  CHECK(json_number(400) == "400");
  for (double v : {0.3, 1.0 / 3.0, 2e-3, -1e-300, 0.41999999999999998, 1e308})
    CHECK(std::strtod(json_number(v).c_str(), nullptr) == v);
  CHECK(csv_number(inf) == "inf");
  CHECK(csv_number(-inf) == "-inf");
  CHECK(csv_number(std::nan("")) == "nan");
  CHECK(json_string("a\"b\\c\n") == "\"a\\\"b\\\\c\\n\"");
}

TEST_CASE("svg_plot escapes labels and leaves out non-finite points", "[cli]") {
  const double inf = std::numeric_limits<double>::infinity();
  Curve c{"envit (r&d,<1>)", {1.0, 2.0, inf, std::nan("")}, {50.0, 60.0, 70.0, 80.0}};
  const std::string svg = svg_plot({c}, "title <b>", "x & y", "y");
  CHECK(svg.find("envit (r&amp;d,&lt;1&gt;)") != std::string::npos);
  CHECK(svg.find("<1>") == std::string::npos);
  CHECK(svg.find("title &lt;b&gt;") != std::string::npos);
  CHECK(svg.find("x &amp; y") != std::string::npos);
  std::size_t circles = 0;
  for (std::size_t p = svg.find("<circle"); p != std::string::npos; p = svg.find("<circle", p + 1)) ++circles;
  CHECK(circles == 2);
  CHECK(svg.find("nan") == std::string::npos);
  CHECK(svg.find("inf") == std::string::npos);
}

TEST_CASE("write_text_atomic replaces the whole file or leaves it as it was", "[cli]") {
  const fs::path dir = fs::temp_directory_path() / ("envit_cli_atomic_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string path = (dir / "eval.json").string();
  auto read = [&] {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  write_text_atomic(path, "{\"old\":1}\n");
  CHECK(read() == "{\"old\":1}\n");
  // The temporary file cannot be created (a directory holds its name): the write fails and the
  // previous content stays whole.
  fs::create_directories(path + ".tmp." + std::to_string(::getpid()));
  CHECK_THROWS_AS(write_text_atomic(path, "{\"new\":2}\n"), envit::IoError);
  CHECK(read() == "{\"old\":1}\n");
  fs::remove_all(path + ".tmp." + std::to_string(::getpid()));
  // The rename fails (the target is a directory): the exception names the file, no temporary remains.
  const std::string as_dir = (dir / "sweep.csv").string();
  fs::create_directories(as_dir);
  CHECK_THROWS_WITH(write_text_atomic(as_dir, "a,b\n"), Catch::Contains("sweep.csv"));
  std::size_t entries = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    CHECK(e.path().filename().string().find(".tmp.") == std::string::npos);
    ++entries;
  }
  CHECK(entries == 2);
  fs::remove_all(dir);
}

TEST_CASE("resolve_warmup: the preset's steps on long runs, a fraction of short ones", "[cli]") {
  // scripts/main.sh's run: 7722 steps; the readme preset's 400 are 5.2% of it and stay.
  Warmup w = resolve_warmup(7722, std::nullopt, std::nullopt, std::nullopt, 400, "readme");
  CHECK(w.steps == 400);
  CHECK(w.note.empty());
  // 1,500 images: 198 steps; 400 would never leave warm-up: 5% of 198 = 9.9 -> 10, with a note.
  w = resolve_warmup(198, std::nullopt, std::nullopt, std::nullopt, 400, "readme");
  CHECK(w.steps == 10);
  CHECK_THAT(w.note, Catch::Contains("400") && Catch::Contains("198-step run"));
  // Exactly kPresetWarmupMaxFrac of the run still keeps the preset.
  CHECK(resolve_warmup(2000, std::nullopt, std::nullopt, std::nullopt, 400, "readme").steps == 400);
  CHECK(resolve_warmup(1999, std::nullopt, std::nullopt, std::nullopt, 400, "readme").steps == 100);
  // --warmup-frac, --warmup-steps, resume.
  CHECK(resolve_warmup(198, std::nullopt, 0.1, std::nullopt, 400, "readme").steps == 20);
  CHECK(resolve_warmup(198, std::nullopt, 0.0, std::nullopt, 400, "readme").steps == 0);
  w = resolve_warmup(198, 7, 0.1, std::nullopt, 400, "readme");
  CHECK(w.steps == 7);
  CHECK(w.note.empty());
  w = resolve_warmup(198, 300, std::nullopt, std::nullopt, 400, "readme");
  CHECK(w.steps == 300);
  CHECK_THAT(w.note, Catch::Contains("stays in warm-up"));
  CHECK(resolve_warmup(198, std::nullopt, 0.1, 400, 400, "readme").steps == 400);
}

TEST_CASE("resolve_epochs: a short run is raised to the preset's step floor; flags and resume decide otherwise", "[cli]") {
  const envit::VitPreset& readme = envit::vit_preset("readme");
  // README command 1: 55,000 images, 429 steps per epoch x 18 = 7,722, above the floor: unchanged.
  Schedule s = resolve_epochs(readme, 429, false, std::nullopt, 0);
  CHECK(s.epochs == 18);
  CHECK(s.min_steps == 0);
  CHECK(s.note.empty());
  // 1,500 images at batch 128: 11 steps per epoch.
  s = resolve_epochs(readme, 11, false, std::nullopt, 0);
  CHECK(s.epochs == (envit::kReadmeMinSteps + 10) / 11);
  CHECK(s.epochs * 11 >= envit::kReadmeMinSteps);
  CHECK((s.epochs - 1) * 11 < envit::kReadmeMinSteps);
  CHECK(s.min_steps == envit::kReadmeMinSteps);
  CHECK(s.note.find("18 epochs are 198 steps on this data set (11 per epoch), far fewer than the 7722") !=
        std::string::npos);
  // --epochs / --steps (or --init) given: the preset's epochs, no note (the caller applies the flags).
  s = resolve_epochs(readme, 11, true, std::nullopt, 0);
  CHECK((s.epochs == 18 && s.min_steps == 0 && s.note.empty()));
  // A resume of a raised run keeps the checkpoint's epochs, silently.
  s = resolve_epochs(readme, 11, false, std::optional<std::int64_t>(77), envit::kReadmeMinSteps);
  CHECK((s.epochs == 77 && s.min_steps == envit::kReadmeMinSteps && s.note.empty()));
  // Presets without a floor are never raised.
  CHECK(resolve_epochs(envit::vit_preset("vit-b16"), 3, false, std::nullopt, 0).epochs == 10);
}

TEST_CASE("memory plan: the arenas the trainer allocates, and sizes parsed from flags", "[cli]") {
  envit::VitConfig cfg = envit::vit_preset("readme").config;
  const int B = 32, EB = 64;
  const envit::MemoryPlan m = envit::plan_training_memory(cfg, B, EB, 12345);
  envit::ViTParams<float> P(cfg);
  envit::AdamWState<float> adam(P.size());
  envit::StepWorkspace<float> sw(cfg, B);
  envit::InferenceWorkspace<float> iw(cfg, EB);
  CHECK(m.params == P.size() * sizeof(float));
  CHECK(m.grads == m.params);
  CHECK(m.optimizer == (adam.m.capacity() + adam.v.capacity()) * sizeof(float));
  const std::size_t image = std::size_t(cfg.channels) * cfg.image_size * cfg.image_size;
  CHECK(m.activations == (sw.ws.arena.capacity() + sw.ow.arena.capacity() + B * image) * sizeof(float));
  CHECK(m.eval == (iw.arena.capacity() + EB * image + std::size_t(cfg.num_exits()) * EB * cfg.classes) * sizeof(float));
  CHECK(m.data == 12345);
  CHECK(m.total() == m.params + m.grads + m.optimizer + m.activations + m.eval + m.data);

  CHECK(envit::parse_bytes("2G", "x") == (std::uint64_t{2} << 30));
  CHECK(envit::parse_bytes("512MiB", "x") == (std::uint64_t{512} << 20));
  CHECK(envit::parse_bytes("1.5k", "x") == 1536);
  CHECK(envit::parse_bytes("800000000", "x") == 800000000);
  for (const char* bad : {"", "G", "-1G", "0", "2X", "1e30"})
    CHECK_THROWS_AS(envit::parse_bytes(bad, "--memory-limit"), envit::ValueError);
  CHECK(envit::format_bytes(std::uint64_t{3} << 29) == "1.50 GiB");
  CHECK(envit::format_bytes(std::uint64_t{45} << 20) == "45.0 MiB");
  // The machine's budget: a given limit wins; otherwise /proc/meminfo (always there on Linux).
  CHECK(envit::memory_budget(1000, "--memory-limit").bytes == 1000);
  CHECK(envit::memory_budget(0, "").bytes > 0);
}
