// The layer order of envit (tests/layers/layer_order.txt) holds on the real tree, the docs state
// it, and the checker finds every kind of violation on temporary trees built to break it.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "layers/layer_check.hpp"

namespace fs = std::filesystem;
using envit_test::check_layers;
using envit_test::LayerTable;
using envit_test::LayerViolation;
using envit_test::read_layer_table;

namespace {

const fs::path kRoot = ENVIT_SOURCE_DIR;
const fs::path kTable = kRoot / "tests" / "layers" / "layer_order.txt";

std::string report(const std::vector<LayerViolation>& v) {
  std::string s;
  for (const auto& x : v) s += x.message + "\n";
  return s;
}

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

// A fresh directory under the system temp dir, removed when the test ends.
struct TempTree {
  fs::path dir;
  explicit TempTree(const std::string& name) : dir(fs::temp_directory_path() / ("envit_layers_" + name)) {
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~TempTree() { std::error_code ec; fs::remove_all(dir, ec); }
};

LayerTable small_table(const TempTree& t) {
  write(t.dir / "order.txt", "# lowest first\ncore  basics\nops   operations\nmodel the model\n");
  return read_layer_table(t.dir / "order.txt");
}

}  // namespace

TEST_CASE("layers: every header and source of envit includes only its own and lower layers", "[layers]") {
  const LayerTable t = read_layer_table(kTable);
  const auto v = check_layers(kRoot / "include", kRoot / "src", t);
  INFO(report(v));
  CHECK(v.empty());
}

TEST_CASE("layers: every folder under include/envit is a layer of the table", "[layers]") {
  const LayerTable t = read_layer_table(kTable);
  for (const auto& e : fs::directory_iterator(kRoot / "include" / "envit")) {
    const std::string name = e.is_directory() ? e.path().filename().string() : e.path().stem().string();
    INFO("include/envit/" << e.path().filename().string());
    CHECK(t.rank.count(name) == 1);
  }
  CHECK(t.order_line() == "version < core < kernels < ops < io < data < model < infer < optim < weights < train");
}

TEST_CASE("layers: docs/library.md states the order of the table", "[layers]") {
  const LayerTable t = read_layer_table(kTable);
  std::ifstream in(kRoot / "docs" / "library.md");
  REQUIRE(in.good());
  const std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  INFO("docs/library.md should contain the line: " << t.order_line());
  CHECK(doc.find(t.order_line()) != std::string::npos);
}

TEST_CASE("layers: the checker reports an include of a higher layer, naming file, include and rule", "[layers]") {
  TempTree tree("upward");
  const LayerTable t = small_table(tree);
  const fs::path inc = tree.dir / "include";
  write(inc / "envit/core/a.hpp", "#pragma once\n");
  write(inc / "envit/ops/b.hpp", "#pragma once\n#include \"envit/core/a.hpp\"\n#include \"envit/ops/c.hpp\"\n");
  write(inc / "envit/ops/c.hpp", "#pragma once\n");
  // The clean tree passes.
  REQUIRE(check_layers(inc, {}, t).empty());
  // ops may include core and ops, not model; core may not include ops (an angle-bracket include,
  // indented, under a preprocessor condition).
  write(inc / "envit/model/m.hpp", "#pragma once\n#include \"envit/ops/b.hpp\"\n");
  write(inc / "envit/ops/b.hpp", "#pragma once\n#include \"envit/core/a.hpp\"\n#include \"envit/model/m.hpp\"\n");
  write(inc / "envit/core/a.hpp", "#pragma once\n#if 1\n  #  include <envit/ops/c.hpp>\n#endif\n");
  const auto v = check_layers(inc, {}, t);
  INFO(report(v));
  REQUIRE(v.size() == 2);
  CHECK(v[0].file == "include/envit/core/a.hpp");
  CHECK(v[0].line == 3);
  CHECK(v[0].include == "envit/ops/c.hpp");
  CHECK(v[0].message ==
        "include/envit/core/a.hpp:3: #include \"envit/ops/c.hpp\": layer 'core' may not include layer 'ops', "
        "which comes after it (core < ops < model)");
  CHECK(v[1].file == "include/envit/ops/b.hpp");
  CHECK(v[1].line == 3);
  CHECK(v[1].include == "envit/model/m.hpp");
  CHECK(v[1].message ==
        "include/envit/ops/b.hpp:3: #include \"envit/model/m.hpp\": layer 'ops' may not include layer 'model', "
        "which comes after it (core < ops < model)");
}

TEST_CASE("layers: the checker reports unknown layers and checks sources too", "[layers]") {
  TempTree tree("unknown");
  const LayerTable t = small_table(tree);
  const fs::path inc = tree.dir / "include";
  write(inc / "envit/core/a.hpp", "#include \"envit/io/file.hpp\"\n");  // io is not a layer here
  write(inc / "envit/extra/x.hpp", "#pragma once\n");                    // nor is extra
  write(inc / "envit/top.hpp", "#pragma once\n");                        // a top-level header: layer 'top'
  write(tree.dir / "src/ops/k.cpp", "// a kernel\n#include \"envit/model/m.hpp\"\n");
  const auto v = check_layers(inc, tree.dir / "src", t);
  INFO(report(v));
  REQUIRE(v.size() == 4);
  CHECK(v[0].message == "include/envit/core/a.hpp:1: #include \"envit/io/file.hpp\": layer 'io' is not in the layer "
                        "table (layers: core < ops < model)");
  CHECK(v[1].message == "include/envit/extra/x.hpp: is in layer 'extra', which the layer table does not list "
                        "(layers: core < ops < model)");
  CHECK(v[2].message == "include/envit/top.hpp: is in layer 'top', which the layer table does not list "
                        "(layers: core < ops < model)");
  CHECK(v[3].message == "src/ops/k.cpp:2: #include \"envit/model/m.hpp\": layer 'ops' may not include layer "
                        "'model', which comes after it (core < ops < model)");
}

TEST_CASE("layers: a malformed layer table or a missing tree is a clear error", "[layers]") {
  TempTree tree("table");
  write(tree.dir / "dup.txt", "core\nops\ncore again\n");
  CHECK_THROWS_WITH(read_layer_table(tree.dir / "dup.txt"),
                    Catch::Contains("dup.txt:3: layer 'core' is listed twice (first at position 1)"));
  write(tree.dir / "bad.txt", "# comment\nCore\n");
  CHECK_THROWS_WITH(read_layer_table(tree.dir / "bad.txt"),
                    Catch::Contains("bad.txt:2: layer name 'Core' is not lower-case"));
  write(tree.dir / "empty.txt", "# nothing\n\n");
  CHECK_THROWS_WITH(read_layer_table(tree.dir / "empty.txt"), Catch::Contains("empty.txt: lists no layers"));
  CHECK_THROWS_WITH(read_layer_table(tree.dir / "missing.txt"), Catch::Contains("missing.txt: cannot open"));
  const LayerTable t = read_layer_table(kTable);
  CHECK_THROWS_WITH(check_layers(tree.dir / "no_include", {}, t), Catch::Contains("no such directory"));
}
