// examples/envit/report.hpp — the text outputs of `envit` (log.jsonl, sweep.csv, eval.json, SVG):
// numbers as JSON and CSV fields, CSV quoting, XML escaping, and whole-file atomic writes.
//
//   json_number:  shortest text that reads back as the same double; non-finite values (NaN, +-inf)
//                 are written as null, since JSON has no literal for them.
//   csv_number:   the same text for finite values; inf, -inf, nan otherwise (what spreadsheet
//                 programs and pandas read back).
//   csv_field:    RFC 4180: a field holding a comma, a double quote, CR or LF is enclosed in double
//                 quotes, its double quotes doubled.
//   xml_escape:   & < > " ' as entities, other C0 control characters as '?' (SVG text and attributes).
//   write_text_atomic: the whole text to path.tmp.<pid>, fsync, rename over `path` (io::AtomicWriter);
//                 on any failure `path` keeps its previous content and no temporary file remains.
#pragma once
#include <charconv>
#include <cmath>
#include <string>
#include <string_view>
#include <system_error>

#include "envit/io/file.hpp"
#include "envit/io/json.hpp"

namespace envit::cli {

// Shortest round-trip decimal form of a finite double ("0.1", "1e-05", "400").
inline std::string shortest(double v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc() ? std::string(buf, end) : std::string("?");
}

inline std::string json_number(double v) { return std::isfinite(v) ? shortest(v) : std::string("null"); }

inline std::string json_string(std::string_view s) {
  std::string out;
  json::write_string(out, s);
  return out;
}

inline std::string csv_number(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return shortest(v);
}

inline std::string csv_field(std::string_view s) {
  if (s.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(s);
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

inline std::string xml_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:  // XML 1.0 forbids C0 controls other than tab, LF and CR, even as references
        out += (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r') ? '?' : c;
    }
  }
  return out;
}

inline void write_text_atomic(const std::string& path, std::string_view text) {
  io::AtomicWriter w(path);
  w.write(text.data(), text.size());
  w.commit();
}

}  // namespace envit::cli
