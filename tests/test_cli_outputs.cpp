// The `envit` program's text writers (examples/envit/report.hpp, plot.hpp) and its warm-up rule
// (examples/envit/warmup.hpp): CSV quoting, XML escaping, JSON numbers (non-finite -> null),
// atomic whole-file writes, and the warm-up steps chosen for long and short runs.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "plot.hpp"
#include "report.hpp"
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
