// envit/io/json.hpp — envit's JSON reader and writer.
//   Reader, two grammars:
//     Grammar::safetensors_header (default)  what a safetensors header uses: objects, arrays, strings
//        (every escape, UTF-8 checked) and non-negative integers. Floats, negative numbers and
//        true/false/null are refused: a header never contains them, and refusing them keeps it strict.
//     Grammar::full  RFC 8259 JSON (Hugging Face config.json, preprocessor_config.json): adds
//        true/false/null and any number (a non-negative integer literal is Kind::integer, every other
//        number Kind::number as a double; a number a double cannot hold is refused).
//     Errors carry the byte offset into the parsed text; callers add the file name and base offset.
//     Objects keep every key in file order, duplicates included; Value::find returns the last one.
//   Writer: objects, arrays, strings, integers, doubles, booleans and null, compact or indented
//     (the layouts of Python's json.dumps(separators=(",", ":")) and json.dumps(indent=N)).
// Deliberately not a general JSON library: no DOM editing, no comments, no streaming parse.
#pragma once
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#include "envit/core/error.hpp"

namespace envit::json {

// Malformed text: `pos` is the byte offset (into the parsed text) where the problem was found.
struct ParseError : Error {
  std::size_t pos;
  ParseError(std::size_t p, const std::string& what) : Error(what), pos(p) {}
};

enum class Grammar : std::uint8_t { safetensors_header, full };

struct Value {
  enum class Kind : std::uint8_t { null, boolean, integer, number, string, array, object };
  Kind kind = Kind::integer;
  std::size_t pos = 0;              // byte offset of the value's first character
  std::uint64_t integer = 0;        // Kind::integer: a non-negative integer literal
  double number = 0;                // Kind::number, and Kind::integer converted to double
  bool boolean = false;             // Kind::boolean
  std::string str;                  // Kind::string (decoded, valid UTF-8)
  std::vector<Value> items;         // array elements, or object values (same order as keys)
  std::vector<std::string> keys;    // object keys in file order; duplicates kept (callers decide)
  std::vector<std::size_t> key_pos; // byte offset of each key

  // The value of `key` in an object (the last one if the key repeats, as Python's json reads it);
  // nullptr if absent or if this is not an object.
  const Value* find(std::string_view key) const {
    if (kind != Kind::object) return nullptr;
    for (std::size_t i = keys.size(); i-- > 0;)
      if (keys[i] == key) return &items[i];
    return nullptr;
  }

  const char* kind_name() const {
    switch (kind) {
      case Kind::null: return "null";
      case Kind::boolean: return "boolean";
      case Kind::integer: return "integer";
      case Kind::number: return "number";
      case Kind::string: return "string";
      case Kind::array: return "array";
      default: return "object";
    }
  }
};

// Length (1..4) of the UTF-8 sequence starting at s[i], or 0 if it is not valid UTF-8
// (overlong forms, surrogates U+D800..DFFF and code points above U+10FFFF are invalid).
inline std::size_t utf8_seq_len(std::string_view s, std::size_t i) {
  auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  unsigned char c = b(0);
  auto cont = [&](std::size_t k) { return i + k < s.size() && (b(k) & 0xC0) == 0x80; };
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    if (c == 0xE0 && b(1) < 0xA0) return 0;  // overlong
    if (c == 0xED && b(1) >= 0xA0) return 0; // surrogate
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (c == 0xF0 && b(1) < 0x90) return 0;  // overlong
    if (c == 0xF4 && b(1) >= 0x90) return 0; // > U+10FFFF
    return 4;
  }
  return 0;
}

inline bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    std::size_t n = utf8_seq_len(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

// Appends s as a JSON string literal. Escapes '"', '\\' and control characters; other bytes are
// copied (s must be valid UTF-8, else ValueError — a strict reader such as Python's would refuse it).
inline void write_string(std::string& out, std::string_view s) {
  ENVIT_CHECK(valid_utf8(s), ValueError, "json: string is not valid UTF-8: '", s, "'");
  static const char* hex = "0123456789abcdef";
  out += '"';
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 15];
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

class Parser {
 public:
  explicit Parser(std::string_view text, int max_depth = 64, Grammar g = Grammar::safetensors_header)
      : s_(text), max_depth_(max_depth), full_(g == Grammar::full) {}

  // The whole text must be one value followed only by whitespace.
  Value parse() {
    ws();
    Value v = value(0);
    ws();
    if (p_ != s_.size()) fail(p_, "unexpected '" + printable(s_[p_]) + "' after the end of the JSON value");
    return v;
  }

 private:
  [[noreturn]] void fail(std::size_t at, const std::string& what) const { throw ParseError(at, what); }
  static std::string printable(char c) {
    auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7F) return std::string(1, c);
    static const char* hex = "0123456789abcdef";
    return std::string("\\x") + hex[u >> 4] + hex[u & 15];
  }
  void ws() {
    while (p_ < s_.size() && (s_[p_] == ' ' || s_[p_] == '\t' || s_[p_] == '\n' || s_[p_] == '\r')) ++p_;
  }
  char peek() const {
    if (p_ >= s_.size()) fail(p_, "unexpected end of text");
    return s_[p_];
  }
  void expect(char c) {
    if (peek() != c) fail(p_, std::string("expected '") + c + "', found '" + printable(s_[p_]) + "'");
    ++p_;
  }

  Value value(int depth) {
    if (depth > max_depth_) fail(p_, "nesting deeper than " + std::to_string(max_depth_));
    char c = peek();
    if (c == '{') return object(depth);
    if (c == '[') return array(depth);
    if (c == '"') {
      Value v;
      v.kind = Value::Kind::string;
      v.pos = p_;
      v.str = string();
      return v;
    }
    if (full_ && (c == '-' || (c >= '0' && c <= '9'))) return any_number();
    if (c >= '0' && c <= '9') return number();
    if (c == '-') fail(p_, "negative number (a safetensors header has only non-negative integers)");
    if (c == 't' || c == 'f' || c == 'n') {
      if (!full_) fail(p_, "true/false/null are not used in a safetensors header");
      return literal();
    }
    fail(p_, "unexpected '" + printable(c) + "' where a value should start");
  }

  Value number() {
    Value v;
    v.pos = p_;
    if (s_[p_] == '0' && p_ + 1 < s_.size() && s_[p_ + 1] >= '0' && s_[p_ + 1] <= '9')
      fail(p_, "number with a leading zero");
    std::uint64_t x = 0;
    while (p_ < s_.size() && s_[p_] >= '0' && s_[p_] <= '9') {
      auto d = static_cast<std::uint64_t>(s_[p_] - '0');
      if (x > (UINT64_MAX - d) / 10) fail(v.pos, "integer does not fit in 64 bits");
      x = x * 10 + d;
      ++p_;
    }
    if (p_ < s_.size() && (s_[p_] == '.' || s_[p_] == 'e' || s_[p_] == 'E'))
      fail(v.pos, "non-integer number (a safetensors header has only integers)");
    v.integer = x;
    v.number = static_cast<double>(x);
    return v;
  }

  // RFC 8259 number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
  Value any_number() {
    const std::size_t start = p_;
    auto digits = [&](const char* what) {
      if (p_ >= s_.size() || s_[p_] < '0' || s_[p_] > '9') fail(p_, std::string("expected a digit ") + what);
      while (p_ < s_.size() && s_[p_] >= '0' && s_[p_] <= '9') ++p_;
    };
    const bool negative = s_[p_] == '-';
    if (negative) ++p_;
    if (p_ < s_.size() && s_[p_] == '0' && p_ + 1 < s_.size() && s_[p_ + 1] >= '0' && s_[p_ + 1] <= '9')
      fail(p_, "number with a leading zero");
    digits(negative ? "after '-'" : "");
    bool integral = !negative;
    if (p_ < s_.size() && s_[p_] == '.') {
      ++p_;
      digits("after the decimal point");
      integral = false;
    }
    if (p_ < s_.size() && (s_[p_] == 'e' || s_[p_] == 'E')) {
      ++p_;
      if (p_ < s_.size() && (s_[p_] == '+' || s_[p_] == '-')) ++p_;
      digits("in the exponent");
      integral = false;
    }
    if (integral) {  // a non-negative integer literal that fits in 64 bits stays exact
      Value v;
      std::uint64_t x = 0;
      bool fits = true;
      for (std::size_t i = start; i < p_ && fits; ++i) {
        auto d = static_cast<std::uint64_t>(s_[i] - '0');
        fits = x <= (UINT64_MAX - d) / 10;
        x = x * 10 + d;
      }
      if (fits) {
        v.pos = start;
        v.integer = x;
        v.number = static_cast<double>(x);
        return v;
      }
    }
    Value v;
    v.kind = Value::Kind::number;
    v.pos = start;
    auto [end, ec] = std::from_chars(s_.data() + start, s_.data() + p_, v.number);
    if (ec != std::errc() || end != s_.data() + p_ || !std::isfinite(v.number))
      fail(start, "number '" + std::string(s_.substr(start, p_ - start)) + "' is out of the range of a double");
    return v;
  }

  Value literal() {
    Value v;
    v.pos = p_;
    for (const char* w : {"true", "false", "null"}) {
      if (s_.substr(p_, std::char_traits<char>::length(w)) != w) continue;
      p_ += std::char_traits<char>::length(w);
      v.kind = w[0] == 'n' ? Value::Kind::null : Value::Kind::boolean;
      v.boolean = w[0] == 't';
      return v;
    }
    fail(p_, "unexpected '" + printable(s_[p_]) + "' where a value should start");
  }

  static void put_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  std::uint32_t hex4() {
    if (p_ + 4 > s_.size()) fail(p_, "truncated \\u escape");
    std::uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      char c = s_[p_ + k];
      int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10
            : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
      if (d < 0) fail(p_ + k, "invalid hex digit '" + printable(c) + "' in \\u escape");
      v = v * 16 + static_cast<std::uint32_t>(d);
    }
    p_ += 4;
    return v;
  }

  std::string string() {
    std::size_t start = p_;
    expect('"');
    std::string out;
    for (;;) {
      if (p_ >= s_.size()) fail(start, "unterminated string");
      auto c = static_cast<unsigned char>(s_[p_]);
      if (c == '"') {
        ++p_;
        return out;
      }
      if (c < 0x20) fail(p_, "raw control character " + printable(s_[p_]) + " in string (must be escaped)");
      if (c == '\\') {
        std::size_t esc = p_++;
        char e = peek();
        ++p_;
        switch (e) {
          case '"': out += '"'; break;
          case '\\': out += '\\'; break;
          case '/': out += '/'; break;
          case 'b': out += '\b'; break;
          case 'f': out += '\f'; break;
          case 'n': out += '\n'; break;
          case 'r': out += '\r'; break;
          case 't': out += '\t'; break;
          case 'u': {
            std::uint32_t cp = hex4();
            if (cp >= 0xDC00 && cp <= 0xDFFF) fail(esc, "unpaired low surrogate in \\u escape");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
              if (p_ + 2 > s_.size() || s_[p_] != '\\' || s_[p_ + 1] != 'u')
                fail(esc, "high surrogate not followed by a low surrogate");
              p_ += 2;
              std::uint32_t lo = hex4();
              if (lo < 0xDC00 || lo > 0xDFFF) fail(esc, "high surrogate not followed by a low surrogate");
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            put_utf8(out, cp);
            break;
          }
          default: fail(esc, "invalid escape '\\" + printable(e) + "'");
        }
        continue;
      }
      std::size_t n = utf8_seq_len(s_, p_);
      if (n == 0) fail(p_, "invalid UTF-8 byte " + printable(s_[p_]) + " in string");
      out.append(s_.substr(p_, n));
      p_ += n;
    }
  }

  Value array(int depth) {
    Value v;
    v.kind = Value::Kind::array;
    v.pos = p_;
    expect('[');
    ws();
    if (peek() == ']') {
      ++p_;
      return v;
    }
    for (;;) {
      ws();
      v.items.push_back(value(depth + 1));
      ws();
      if (peek() == ']') {
        ++p_;
        return v;
      }
      expect(',');
    }
  }

  Value object(int depth) {
    Value v;
    v.kind = Value::Kind::object;
    v.pos = p_;
    expect('{');
    ws();
    if (peek() == '}') {
      ++p_;
      return v;
    }
    for (;;) {
      ws();
      if (peek() != '"') fail(p_, "expected a string key, found '" + printable(s_[p_]) + "'");
      v.key_pos.push_back(p_);
      v.keys.push_back(string());
      ws();
      expect(':');
      ws();
      v.items.push_back(value(depth + 1));
      ws();
      if (peek() == '}') {
        ++p_;
        return v;
      }
      expect(',');
    }
  }

  std::string_view s_;
  std::size_t p_ = 0;
  int max_depth_;
  bool full_;
};

inline Value parse(std::string_view text, int max_depth = 64) { return Parser(text, max_depth).parse(); }
inline Value parse(std::string_view text, Grammar g, int max_depth = 64) { return Parser(text, max_depth, g).parse(); }

// Appends a double as Python's json.dumps writes a float (its repr), so Python reads back a float
// equal to v: the shortest round-trip digits, in fixed notation for 1e-4 <= |v| < 1e16 with ".0"
// on integral values ("0.0", "0.02", "768.0"), else as "1e-06", "1.5e+16". A non-finite value has
// no JSON form: it is written as null.
inline void write_number(std::string& out, double v) {
  if (!std::isfinite(v)) {
    out += "null";
    return;
  }
  char buf[40];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);  // "-d.ddde-XX"
  std::string_view sci(buf, static_cast<std::size_t>(end - buf));
  if (sci[0] == '-') {
    out += '-';
    sci.remove_prefix(1);
  }
  const std::size_t e_at = sci.find('e');
  std::string digits(sci.substr(0, e_at));
  if (digits.size() > 1) digits.erase(1, 1);  // drop the '.'
  int exp10 = 0;
  std::string_view es = sci.substr(e_at + 1);
  if (es[0] == '+') es.remove_prefix(1);
  std::from_chars(es.data(), es.data() + es.size(), exp10);
  const int k = static_cast<int>(digits.size()), n = exp10 + 1;  // value = 0.digits * 10^n
  if (k <= n && n <= 16) {
    out += digits;
    out.append(static_cast<std::size_t>(n - k), '0');
    out += ".0";
  } else if (0 < n && n <= 16) {
    out.append(digits, 0, static_cast<std::size_t>(n));
    out += '.';
    out.append(digits, static_cast<std::size_t>(n), std::string::npos);
  } else if (-4 < n && n <= 0) {
    out += "0.";
    out.append(static_cast<std::size_t>(-n), '0');
    out += digits;
  } else {
    out += digits[0];
    if (k > 1) {
      out += '.';
      out.append(digits, 1, std::string::npos);
    }
    const int x = n - 1;
    out += x < 0 ? "e-" : "e+";
    if (std::abs(x) < 10) out += '0';
    out += std::to_string(std::abs(x));
  }
}

// Builds JSON text value by value. indent < 0: compact (no whitespace at all, the safetensors
// header layout); indent >= 0: one member or element per line, `indent` spaces per level, ": "
// after keys, empty containers as {} and []. Misuse (a value in an object without its key, an end
// that does not match its begin) is a ValueError.
class Writer {
 public:
  explicit Writer(int indent = -1) : indent_(indent) {}

  Writer& begin_object() { return open('{', true); }
  Writer& end_object() { return close('}', true); }
  Writer& begin_array() { return open('[', false); }
  Writer& end_array() { return close(']', false); }
  Writer& key(std::string_view k) {
    ENVIT_CHECK(!stack_.empty() && stack_.back().object && !keyed_, ValueError,
                "json::Writer: key '", k, "' outside an object or after another key");
    separate();
    write_string(out_, k);
    out_ += indent_ < 0 ? ":" : ": ";
    keyed_ = true;
    return *this;
  }
  Writer& value(std::string_view s) { return scalar([&] { write_string(out_, s); }); }
  Writer& value(const char* s) { return value(std::string_view(s)); }
  Writer& value(bool b) { return scalar([&] { out_ += b ? "true" : "false"; }); }
  Writer& value(double d) { return scalar([&] { write_number(out_, d); }); }
  template <class I, std::enable_if_t<std::is_integral_v<I> && !std::is_same_v<I, bool>, int> = 0>
  Writer& value(I i) { return scalar([&] { out_ += std::to_string(i); }); }
  Writer& null() { return scalar([&] { out_ += "null"; }); }
  // An array of scalars in one call.
  template <class V>
  Writer& values(const std::vector<V>& xs) {
    begin_array();
    for (const V& x : xs) value(x);
    return end_array();
  }

  // The text; every container must be closed.
  const std::string& str() const {
    ENVIT_CHECK(stack_.empty(), ValueError, "json::Writer: ", stack_.size(), " container(s) not closed");
    return out_;
  }

 private:
  struct Level { bool object; std::size_t count; };
  void newline(std::size_t depth) {
    out_ += '\n';
    out_.append(depth * static_cast<std::size_t>(indent_), ' ');
  }
  // Before a member (at its key) or an array element: the comma and the line break.
  void separate() {
    Level& l = stack_.back();
    if (l.count++) out_ += ',';
    if (indent_ >= 0) newline(stack_.size());
  }
  // Before any value: checks it has a place, then positions it.
  void place() {
    if (stack_.empty()) {
      ENVIT_CHECK(!done_, ValueError, "json::Writer: a second top-level value");
      done_ = true;
      return;
    }
    if (stack_.back().object) {
      ENVIT_CHECK(keyed_, ValueError, "json::Writer: a value in an object needs a key first");
      keyed_ = false;
    } else {
      separate();
    }
  }
  template <class F>
  Writer& scalar(F&& write) {
    place();
    write();
    return *this;
  }
  Writer& open(char c, bool object) {
    place();
    out_ += c;
    stack_.push_back({object, 0});
    return *this;
  }
  Writer& close(char c, bool object) {
    ENVIT_CHECK(!stack_.empty() && stack_.back().object == object && !keyed_, ValueError,
                "json::Writer: '", c, "' does not close the open container");
    const bool any = stack_.back().count > 0;
    stack_.pop_back();
    if (any && indent_ >= 0) newline(stack_.size());
    out_ += c;
    return *this;
  }

  std::string out_;
  std::vector<Level> stack_;
  int indent_;
  bool keyed_ = false, done_ = false;
};

}  // namespace envit::json
