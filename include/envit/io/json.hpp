// envit/io/json.hpp — the JSON subset a safetensors header uses: objects, arrays, strings (every
// escape, UTF-8 checked) and non-negative integers. Floats, negative numbers, true/false/null are
// rejected: a header never contains them, and refusing them keeps the parser small and strict.
// Errors carry the byte offset into the parsed text; callers add the file name and base offset.
// Deliberately not a general JSON library (no DOM editing, no pretty printing, no floats).
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "envit/core/error.hpp"

namespace envit::json {

// Malformed text: `pos` is the byte offset (into the parsed text) where the problem was found.
struct ParseError : Error {
  std::size_t pos;
  ParseError(std::size_t p, const std::string& what) : Error(what), pos(p) {}
};

struct Value {
  enum class Kind : std::uint8_t { integer, string, array, object };
  Kind kind = Kind::integer;
  std::size_t pos = 0;              // byte offset of the value's first character
  std::uint64_t integer = 0;        // Kind::integer
  std::string str;                  // Kind::string (decoded, valid UTF-8)
  std::vector<Value> items;         // array elements, or object values (same order as keys)
  std::vector<std::string> keys;    // object keys in file order; duplicates kept (callers decide)
  std::vector<std::size_t> key_pos; // byte offset of each key

  const char* kind_name() const {
    switch (kind) {
      case Kind::integer: return "integer";
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
  explicit Parser(std::string_view text, int max_depth = 64) : s_(text), max_depth_(max_depth) {}

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
    if (c >= '0' && c <= '9') return number();
    if (c == '-') fail(p_, "negative number (a safetensors header has only non-negative integers)");
    if (c == 't' || c == 'f' || c == 'n')
      fail(p_, "true/false/null are not used in a safetensors header");
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
    return v;
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
};

inline Value parse(std::string_view text, int max_depth = 64) { return Parser(text, max_depth).parse(); }

}  // namespace envit::json
