// envit/io/safetensors.hpp — read and write the safetensors format (Hugging Face), the container for
// envit's weights and checkpoints:
//   [8 bytes: N, little-endian u64][N bytes: JSON header, space-padded to a multiple of 8][data]
//   header = {"__metadata__": {str: str}, "<name>": {"dtype": "F32", "shape": [..],
//             "data_offsets": [begin, end]}, ...}, offsets relative to the start of the data.
// This header knows nothing of checkpoints: what envit writes into the container (parameters under
// timm names, `optimizer.exp_avg.*` / `optimizer.exp_avg_sq.*`, string metadata) is
// weights/checkpoint.hpp and train/checkpoint.hpp's, described in docs/formats.md.
// Reading validates like the reference implementation (contiguous, in-bounds, size-consistent
// ranges covering the whole data buffer) and throws IoError naming the file, the tensor and the
// byte offset. Whole tensors are loaded into memory: no mmap, no lazy slices, no big-endian hosts.
#pragma once
#include <algorithm>
#include <bit>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "envit/core/error.hpp"
#include "envit/io/file.hpp"
#include "envit/io/json.hpp"

namespace envit {

static_assert(std::endian::native == std::endian::little, "envit's safetensors I/O assumes a little-endian host");

inline constexpr std::uint64_t kStMaxHeaderBytes = 100'000'000;  // same limit as the reference

// Bytes per element of a safetensors dtype name, 0 if unknown.
inline int st_dtype_size(std::string_view d) {
  struct E { std::string_view name; int size; };
  static constexpr E table[] = {{"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8},
                                {"I32", 4}, {"I16", 2}, {"I8", 1},  {"U64", 8},  {"U32", 4},
                                {"U16", 2}, {"U8", 1},  {"BOOL", 1}, {"F8_E5M2", 1}, {"F8_E4M3", 1}};
  for (const E& e : table)
    if (e.name == d) return e.size;
  return 0;
}

// The dtype name of a C++ element type (float -> "F32", ...).
template <class T> constexpr const char* st_dtype_of() {
  using U = std::remove_cv_t<T>;
  if constexpr (std::is_same_v<U, float>) return "F32";
  else if constexpr (std::is_same_v<U, double>) return "F64";
  else if constexpr (std::is_same_v<U, std::int64_t>) return "I64";
  else if constexpr (std::is_same_v<U, std::int32_t>) return "I32";
  else if constexpr (std::is_same_v<U, std::int16_t>) return "I16";
  else if constexpr (std::is_same_v<U, std::int8_t>) return "I8";
  else if constexpr (std::is_same_v<U, std::uint64_t>) return "U64";
  else if constexpr (std::is_same_v<U, std::uint32_t>) return "U32";
  else if constexpr (std::is_same_v<U, std::uint16_t>) return "U16";
  else if constexpr (std::is_same_v<U, std::uint8_t>) return "U8";
  else if constexpr (std::is_same_v<U, bool>) return "BOOL";
  else static_assert(sizeof(U) == 0, "no safetensors dtype for this type");
}

inline std::string st_shape_str(const std::vector<std::int64_t>& s) {
  std::string o = "[";
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i) o += ", ";
    o += std::to_string(s[i]);
  }
  return o + "]";
}

// Number of elements of `shape`, or -1 if a dimension is negative or the product overflows int64.
inline std::int64_t st_numel(const std::vector<std::int64_t>& shape) {
  std::int64_t n = 1;
  for (std::int64_t d : shape)
    if (d < 0 || __builtin_mul_overflow(n, d, &n)) return -1;
  return n;
}

struct StTensor {
  std::string name;
  std::string dtype;                // "F32", "F64", "I64", "I32", "U8", ...
  std::vector<std::int64_t> shape;  // row-major; [] is a scalar
  std::vector<std::byte> data;      // numel * dtype size bytes, little-endian
  std::int64_t numel() const { return st_numel(shape); }
};

struct StFile {
  std::map<std::string, std::string> metadata;  // the header's "__metadata__"
  std::vector<StTensor> tensors;                 // in data-buffer order
  std::string source;                            // path it was read from (for messages)

  std::string where() const { return source.empty() ? "safetensors (in memory)" : "safetensors '" + source + "'"; }

  const StTensor* find(std::string_view name) const {
    for (const StTensor& t : tensors)
      if (t.name == name) return &t;
    return nullptr;
  }
  const StTensor& at(std::string_view name) const {
    const StTensor* t = find(name);
    ENVIT_CHECK(t, IoError, where(), ": no tensor named '", name, "' (file has ", tensors.size(), " tensors)");
    return *t;
  }

  // Appends a tensor with raw little-endian bytes (any known dtype, e.g. BF16). Returns it.
  StTensor& add_bytes(std::string name, std::string dtype, std::vector<std::int64_t> shape, const void* bytes) {
    int es = st_dtype_size(dtype);
    ENVIT_CHECK(es > 0, ValueError, where(), ": tensor '", name, "': unknown dtype '", dtype, "'");
    ENVIT_CHECK(name != "__metadata__", ValueError, where(), ": '__metadata__' is reserved, not a tensor name");
    ENVIT_CHECK(!find(name), ValueError, where(), ": duplicate tensor name '", name, "'");
    std::int64_t n = st_numel(shape);
    std::int64_t nbytes = 0;
    ENVIT_CHECK(n >= 0 && !__builtin_mul_overflow(n, std::int64_t{es}, &nbytes), ValueError, where(),
                ": tensor '", name, "': invalid shape ", st_shape_str(shape));
    StTensor t{std::move(name), std::move(dtype), std::move(shape), std::vector<std::byte>(static_cast<std::size_t>(nbytes))};
    if (nbytes) std::memcpy(t.data.data(), bytes, static_cast<std::size_t>(nbytes));
    tensors.push_back(std::move(t));
    return tensors.back();
  }
  // Appends a copy of `data` (prod(shape) elements of T) as a tensor of T's dtype.
  template <class T>
  StTensor& add(std::string name, const T* data, std::vector<std::int64_t> shape) {
    return add_bytes(std::move(name), st_dtype_of<T>(), std::move(shape), data);
  }

  // Copies tensor `name` into out (prod(expected_shape) elements); its dtype must be T's and its
  // shape exactly expected_shape, else IoError naming the tensor, expected and got.
  template <class T>
  void copy_to(std::string_view name, T* out, const std::vector<std::int64_t>& expected_shape) const {
    const StTensor& t = at(name);
    check_dtype<T>(t);
    ENVIT_CHECK(t.shape == expected_shape, IoError, where(), ": tensor '", name, "' has shape ",
                st_shape_str(t.shape), ", expected ", st_shape_str(expected_shape));
    if (!t.data.empty()) std::memcpy(out, t.data.data(), t.data.size());
  }
  // The tensor's elements as a vector of T (dtype must be T's); its shape goes to *shape if given.
  template <class T>
  std::vector<T> get(std::string_view name, std::vector<std::int64_t>* shape = nullptr) const {
    const StTensor& t = at(name);
    check_dtype<T>(t);
    std::vector<T> v(t.data.size() / sizeof(T));
    if (!v.empty()) std::memcpy(v.data(), t.data.data(), t.data.size());
    if (shape) *shape = t.shape;
    return v;
  }

  // Metadata: strings, with integer/double helpers that round-trip exactly.
  void set_meta(const std::string& key, std::string value) { metadata[key] = std::move(value); }
  void set_meta_int(const std::string& key, std::int64_t v) { metadata[key] = std::to_string(v); }
  void set_meta_double(const std::string& key, double v) {
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, v);  // shortest form that round-trips
    metadata[key] = std::string(buf, r.ptr);
  }
  bool has_meta(const std::string& key) const { return metadata.count(key) != 0; }
  const std::string& meta(const std::string& key) const {
    auto it = metadata.find(key);
    ENVIT_CHECK(it != metadata.end(), IoError, where(), ": __metadata__ has no key '", key, "'");
    return it->second;
  }
  std::string meta_or(const std::string& key, std::string fallback) const {
    auto it = metadata.find(key);
    return it == metadata.end() ? fallback : it->second;
  }
  std::int64_t meta_int(const std::string& key) const { return parse_meta<std::int64_t>(key); }
  double meta_double(const std::string& key) const { return parse_meta<double>(key); }

 private:
  template <class T> void check_dtype(const StTensor& t) const {
    ENVIT_CHECK(t.dtype == st_dtype_of<T>(), IoError, where(), ": tensor '", t.name, "' has dtype ", t.dtype,
                ", expected ", st_dtype_of<T>());
  }
  template <class T> T parse_meta(const std::string& key) const {
    const std::string& s = meta(key);
    T v{};
    auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    ENVIT_CHECK(r.ec == std::errc() && r.ptr == s.data() + s.size() && !s.empty(), IoError, where(),
                ": __metadata__ '", key, "' = '", s, "' is not a valid ",
                std::is_integral_v<T> ? "64-bit integer" : "number");
    return v;
  }
};

namespace detail {

// Serialises the header exactly as the reference does (no spaces; __metadata__ first, omitted when
// empty), then pads with spaces to a multiple of 8 so the data starts 8-byte aligned.
inline std::string st_header_json(const StFile& f) {
  json::Writer w;
  w.begin_object();
  if (!f.metadata.empty()) {
    w.key("__metadata__").begin_object();
    for (const auto& [k, v] : f.metadata) w.key(k).value(v);
    w.end_object();
  }
  std::uint64_t off = 0;
  for (const StTensor& t : f.tensors) {
    w.key(t.name).begin_object().key("dtype").value(t.dtype).key("shape").values(t.shape);
    w.key("data_offsets").begin_array().value(off);
    off += t.data.size();
    w.value(off).end_array().end_object();
  }
  std::string h = w.end_object().str();
  h.append((8 - h.size() % 8) % 8, ' ');
  return h;
}

struct StEntry { std::string name, dtype; std::vector<std::int64_t> shape; std::uint64_t begin, end; };

// A header that is valid JSON but not a valid safetensors header; pos = header byte offset or npos.
struct StHeaderError : Error {
  std::size_t pos;
  StHeaderError(std::size_t p, const std::string& m) : Error(m), pos(p) {}
};
[[noreturn]] inline void st_fail(std::size_t pos, const std::string& msg) { throw StHeaderError(pos, msg); }

// Interprets and validates the parsed header against a data buffer of `data_size` bytes.
// Returns the tensors sorted by offset; throws StHeaderError.
inline std::vector<StEntry> st_interpret(const json::Value& root, std::uint64_t data_size,
                                         std::map<std::string, std::string>& metadata) {
  using K = json::Value::Kind;
  constexpr std::size_t npos = std::string::npos;
  if (root.kind != K::object) st_fail(root.pos, std::string("header is a JSON ") + root.kind_name() + ", expected an object");
  std::vector<StEntry> out;
  std::vector<std::string> seen = root.keys;
  std::sort(seen.begin(), seen.end());
  for (std::size_t i = 0; i + 1 < seen.size(); ++i)
    if (seen[i] == seen[i + 1]) {
      std::size_t at = 0;  // position of the second occurrence
      for (std::size_t k = 0, c = 0; k < root.keys.size(); ++k)
        if (root.keys[k] == seen[i] && c++ == 1) at = root.key_pos[k];
      st_fail(at, "duplicate name '" + seen[i] + "'");
    }
  for (std::size_t i = 0; i < root.keys.size(); ++i) {
    const std::string& name = root.keys[i];
    const json::Value& v = root.items[i];
    if (name == "__metadata__") {
      if (v.kind != K::object) st_fail(v.pos, std::string("__metadata__ is a ") + v.kind_name() + ", expected an object of strings");
      for (std::size_t k = 0; k < v.keys.size(); ++k) {
        if (v.items[k].kind != K::string)
          st_fail(v.items[k].pos, "__metadata__ value for '" + v.keys[k] + "' is a " + v.items[k].kind_name() + ", expected a string");
        if (!metadata.emplace(v.keys[k], v.items[k].str).second) st_fail(v.key_pos[k], "duplicate __metadata__ key '" + v.keys[k] + "'");
      }
      continue;
    }
    std::string tn = "tensor '" + name + "': ";
    if (v.kind != K::object) st_fail(v.pos, tn + "entry is a " + v.kind_name() + ", expected an object");
    const json::Value *dt = nullptr, *sh = nullptr, *of = nullptr;
    for (std::size_t k = 0; k < v.keys.size(); ++k) {
      const json::Value** slot = v.keys[k] == "dtype" ? &dt : v.keys[k] == "shape" ? &sh
                               : v.keys[k] == "data_offsets" ? &of : nullptr;
      if (!slot) st_fail(v.key_pos[k], tn + "unknown field '" + v.keys[k] + "'");
      if (*slot) st_fail(v.key_pos[k], tn + "duplicate field '" + v.keys[k] + "'");
      *slot = &v.items[k];
    }
    if (!dt || !sh || !of) st_fail(v.pos, tn + "missing field '" + (!dt ? "dtype" : !sh ? "shape" : "data_offsets") + "'");
    if (dt->kind != K::string) st_fail(dt->pos, tn + "dtype is not a string");
    int es = st_dtype_size(dt->str);
    if (es == 0) st_fail(dt->pos, tn + "unknown dtype '" + dt->str + "'");
    if (sh->kind != K::array) st_fail(sh->pos, tn + "shape is not an array");
    StEntry e{name, dt->str, {}, 0, 0};
    std::uint64_t numel = 1;
    for (const json::Value& d : sh->items) {
      if (d.kind != K::integer) st_fail(d.pos, tn + "shape entry is a " + d.kind_name() + ", expected an integer");
      if (d.integer > static_cast<std::uint64_t>(INT64_MAX) || __builtin_mul_overflow(numel, d.integer, &numel) ||
          numel > static_cast<std::uint64_t>(INT64_MAX))
        st_fail(d.pos, tn + "shape product overflows 64 bits");
      e.shape.push_back(static_cast<std::int64_t>(d.integer));
    }
    std::uint64_t nbytes = 0;
    if (__builtin_mul_overflow(numel, static_cast<std::uint64_t>(es), &nbytes))
      st_fail(sh->pos, tn + "byte size (shape product x dtype size) overflows 64 bits");
    if (of->kind != K::array || of->items.size() != 2 || of->items[0].kind != K::integer || of->items[1].kind != K::integer)
      st_fail(of->pos, tn + "data_offsets must be an array of two integers [begin, end]");
    e.begin = of->items[0].integer;
    e.end = of->items[1].integer;
    std::string range = "[" + std::to_string(e.begin) + ", " + std::to_string(e.end) + "]";
    if (e.end < e.begin) st_fail(of->pos, tn + "data_offsets " + range + " end before begin");
    if (e.end - e.begin != nbytes)
      st_fail(of->pos, tn + "data_offsets " + range + " span " + std::to_string(e.end - e.begin) + " bytes but dtype " +
                        e.dtype + " x shape " + st_shape_str(e.shape) + " needs " + std::to_string(nbytes));
    if (e.end > data_size)
      st_fail(of->pos, tn + "data_offsets " + range + " end past the end of the file (data buffer holds " +
                        std::to_string(data_size) + " bytes)");
    out.push_back(std::move(e));
  }
  // Like the reference: order by offsets (the header's key order does not matter), then require
  // the ranges to tile [0, data_size) exactly — no overlap, no gap, no trailing bytes.
  std::sort(out.begin(), out.end(), [](const StEntry& a, const StEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  std::uint64_t pos = 0;
  const StEntry* prev = nullptr;
  for (const StEntry& e : out) {
    if (e.begin < pos)
      st_fail(npos, "tensors '" + prev->name + "' [" + std::to_string(prev->begin) + ", " + std::to_string(prev->end) +
                  "] and '" + e.name + "' [" + std::to_string(e.begin) + ", " + std::to_string(e.end) + "] overlap");
    if (e.begin > pos)
      st_fail(npos, "data bytes [" + std::to_string(pos) + ", " + std::to_string(e.begin) +
                  ") belong to no tensor (gap before '" + e.name + "')");
    pos = e.end;
    prev = &e;
  }
  if (pos != data_size)
    st_fail(npos, "data buffer holds " + std::to_string(data_size) + " bytes but the tensors cover only " +
                std::to_string(pos) + " (" + std::to_string(data_size - pos) + " trailing bytes)");
  return out;
}

}  // namespace detail

// Reads and validates a whole safetensors file. Throws IoError naming the file and the problem.
inline StFile safetensors_read(const std::string& path) {
  io::InFile in(path);
  const std::string w = "safetensors '" + path + "': ";
  ENVIT_CHECK(in.size() >= 8, IoError, w, "file is ", in.size(), " bytes, shorter than the 8-byte header length");
  unsigned char len8[8];
  in.read_exact(len8, 8, 0, "the header length");
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len8[i];
  ENVIT_CHECK(n <= kStMaxHeaderBytes, IoError, w, "header length ", n, " is absurd (limit ", kStMaxHeaderBytes,
              " bytes); not a safetensors file?");
  ENVIT_CHECK(n <= in.size() - 8, IoError, w, "header length ", n, " runs past the end of the file (",
              in.size(), " bytes)");
  std::string header(static_cast<std::size_t>(n), '\0');
  in.read_exact(header.data(), header.size(), 8, "the JSON header");
  const std::uint64_t data_start = 8 + n, data_size = in.size() - data_start;

  StFile f;
  f.source = path;
  std::vector<detail::StEntry> entries;
  try {
    json::Value root = json::parse(header);
    entries = detail::st_interpret(root, data_size, f.metadata);
  } catch (const detail::StHeaderError& e) {
    if (e.pos == std::string::npos) throw IoError(w + e.what());
    throw IoError(detail::cat(w, e.what(), " (header byte ", e.pos, ", file offset ", 8 + e.pos, ")"));
  } catch (const json::ParseError& e) {
    throw IoError(detail::cat(w, "invalid JSON header at header byte ", e.pos, " (file offset ", 8 + e.pos,
                              "): ", e.what()));
  }
  f.tensors.reserve(entries.size());
  for (detail::StEntry& e : entries) {
    StTensor t{std::move(e.name), std::move(e.dtype), std::move(e.shape),
               std::vector<std::byte>(static_cast<std::size_t>(e.end - e.begin))};
    in.read_exact(t.data.data(), t.data.size(), data_start + e.begin, "tensor data");
    f.tensors.push_back(std::move(t));
  }
  return f;
}

// Writes f atomically (path.tmp.<pid>, fsync, rename): tensors in the order given, header padded
// with spaces to a multiple of 8. Throws ValueError for an inconsistent StFile (unknown dtype,
// data size not dtype size x numel, duplicate or reserved name, non-UTF-8 string) and IoError
// if the file cannot be written.
inline void safetensors_write(const std::string& path, const StFile& f) {
  for (std::size_t i = 0; i < f.tensors.size(); ++i) {
    const StTensor& t = f.tensors[i];
    int es = st_dtype_size(t.dtype);
    ENVIT_CHECK(es > 0, ValueError, "safetensors_write '", path, "': tensor '", t.name, "': unknown dtype '", t.dtype, "'");
    ENVIT_CHECK(t.name != "__metadata__", ValueError, "safetensors_write '", path, "': '__metadata__' is reserved");
    std::int64_t n = t.numel();
    ENVIT_CHECK(n >= 0 && static_cast<std::uint64_t>(n) * static_cast<std::uint64_t>(es) == t.data.size(), ValueError,
                "safetensors_write '", path, "': tensor '", t.name, "' holds ", t.data.size(), " bytes but dtype ",
                t.dtype, " x shape ", st_shape_str(t.shape), " needs ", n < 0 ? -1 : n * es);
    for (std::size_t j = 0; j < i; ++j)
      ENVIT_CHECK(f.tensors[j].name != t.name, ValueError, "safetensors_write '", path, "': duplicate tensor name '", t.name, "'");
  }
  std::string header = detail::st_header_json(f);
  ENVIT_CHECK(header.size() <= kStMaxHeaderBytes, ValueError, "safetensors_write '", path, "': header of ",
              header.size(), " bytes exceeds the ", kStMaxHeaderBytes, "-byte limit readers enforce");
  unsigned char len8[8];
  for (int i = 0; i < 8; ++i) len8[i] = static_cast<unsigned char>(static_cast<std::uint64_t>(header.size()) >> (8 * i));
  io::AtomicWriter out(path);
  out.write(len8, 8);
  out.write(header.data(), header.size());
  for (const StTensor& t : f.tensors)
    if (!t.data.empty()) out.write(t.data.data(), t.data.size());
  out.commit();
}

}  // namespace envit
