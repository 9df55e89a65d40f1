// tests/layers/layer_check.hpp — checks envit's layer order on a source tree: every
// `#include "envit/..."` (or <envit/...>) line of every header under <include>/envit/ and every
// source under <src>/ must name a header of its own layer or of a layer listed before it in the
// layer table (tests/layers/layer_order.txt). A violation names the file and line, the include,
// and the rule it breaks. Used by tests/layers/test_layers.cpp on the real tree and on temporary
// trees that break the rules on purpose.
#pragma once
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "envit/core/error.hpp"

namespace envit_test {

namespace fs = std::filesystem;

// The layers in order, lowest first (rank = position).
struct LayerTable {
  std::vector<std::string> names;
  std::map<std::string, int> rank;

  // "version < core < kernels < ..." — the line docs/library.md quotes.
  std::string order_line() const {
    std::string s;
    for (std::size_t i = 0; i < names.size(); ++i) s += (i ? " < " : "") + names[i];
    return s;
  }
};

// Reads a table: one layer per line, its name first (lower-case letters, digits, '_'), then an
// optional description; '#' starts a comment line. A malformed or repeated name is a ValueError
// naming the file and the line.
inline LayerTable read_layer_table(const fs::path& path) {
  std::ifstream in(path);
  ENVIT_CHECK(in.good(), envit::IoError, path.string(), ": cannot open the layer table");
  LayerTable t;
  std::string line;
  for (int no = 1; std::getline(in, line); ++no) {
    std::istringstream ls(line);
    std::string name;
    if (!(ls >> name) || name[0] == '#') continue;
    const bool ok = std::all_of(name.begin(), name.end(), [](unsigned char c) {
      return std::islower(c) || std::isdigit(c) || c == '_';
    });
    ENVIT_CHECK(ok, envit::ValueError, path.string(), ":", no, ": layer name '", name,
                "' is not lower-case letters, digits and '_'");
    ENVIT_CHECK(!t.rank.count(name), envit::ValueError, path.string(), ":", no, ": layer '", name,
                "' is listed twice (first at position ", t.rank[name] + 1, ")");
    t.rank[name] = int(t.names.size());
    t.names.push_back(name);
  }
  ENVIT_CHECK(!t.names.empty(), envit::ValueError, path.string(), ": lists no layers");
  return t;
}

struct LayerViolation {
  std::string file;     // as given to the checker's report: <root label>/<relative path>
  int line = 0;         // 1-based; 0 for a file whose own layer is unknown
  std::string include;  // the included path, e.g. "envit/model/params.hpp"; empty for an unknown layer
  std::string message;  // file:line: include: the rule broken
};

namespace detail {

// The layer of a path relative to include/envit/ or src/: its first directory, or the stem of a
// top-level file ("version.hpp" -> "version").
inline std::string layer_of(const fs::path& rel) {
  auto it = rel.begin();
  if (std::next(it) == rel.end()) return rel.stem().string();
  return it->string();
}

inline bool is_source(const fs::path& p) {
  const auto e = p.extension().string();
  return e == ".hpp" || e == ".h" || e == ".cpp" || e == ".cc" || e == ".ipp";
}

inline void check_file(const fs::path& file, const fs::path& rel, const std::string& label,
                       const LayerTable& t, std::vector<LayerViolation>& out) {
  const std::string name = label + "/" + rel.generic_string();
  const std::string own = layer_of(rel);
  const auto own_it = t.rank.find(own);
  if (own_it == t.rank.end()) {
    out.push_back({name, 0, "",
                   name + ": is in layer '" + own + "', which the layer table does not list (layers: " +
                       t.order_line() + ")"});
    return;
  }
  static const std::regex inc(R"(^\s*#\s*include\s*[<"](envit/[^">]+)[">])");
  std::ifstream in(file);
  ENVIT_CHECK(in.good(), envit::IoError, file.string(), ": cannot open");
  std::string line;
  for (int no = 1; std::getline(in, line); ++no) {
    std::smatch m;
    if (!std::regex_search(line, m, inc)) continue;
    const std::string target = m[1].str();
    const std::string tl = layer_of(fs::path(target.substr(6)));  // strip "envit/"
    const std::string where = name + ":" + std::to_string(no) + ": #include \"" + target + "\": ";
    const auto tr = t.rank.find(tl);
    if (tr == t.rank.end()) {
      out.push_back({name, no, target,
                     where + "layer '" + tl + "' is not in the layer table (layers: " + t.order_line() + ")"});
    } else if (tr->second > own_it->second) {
      out.push_back({name, no, target,
                     where + "layer '" + own + "' may not include layer '" + tl + "', which comes after it (" +
                         t.order_line() + ")"});
    }
  }
}

inline void check_root(const fs::path& root, const std::string& label, const LayerTable& t,
                       std::vector<LayerViolation>& out) {
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file() && is_source(e.path())) files.push_back(e.path());
  std::sort(files.begin(), files.end());  // a stable report order
  for (const auto& f : files) check_file(f, fs::relative(f, root), label, t, out);
}

}  // namespace detail

// Checks <include_dir>/envit/** and, when src_dir is not empty, <src_dir>/**; returns every
// violation in path order (empty: the tree keeps the order). Missing directories are IoErrors.
inline std::vector<LayerViolation> check_layers(const fs::path& include_dir, const fs::path& src_dir,
                                                const LayerTable& t) {
  std::vector<LayerViolation> out;
  const fs::path envit = include_dir / "envit";
  ENVIT_CHECK(fs::is_directory(envit), envit::IoError, envit.string(), ": no such directory (the public headers)");
  detail::check_root(envit, "include/envit", t, out);
  if (!src_dir.empty()) {
    ENVIT_CHECK(fs::is_directory(src_dir), envit::IoError, src_dir.string(), ": no such directory (the sources)");
    detail::check_root(src_dir, "src", t, out);
  }
  return out;
}

}  // namespace envit_test
