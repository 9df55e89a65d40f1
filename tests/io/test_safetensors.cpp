// Tests of envit/io/safetensors.hpp and envit/io/json.hpp: bit-exact round trips, byte-exact
// agreement with the reference serialiser, every corruption the reader must reject (with the file,
// tensor and offset in the message), a truncation sweep, a byte-flip fuzz, and Python interop.
#include <catch2/catch.hpp>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "skip.hpp"
#include "envit/core/rng.hpp"
#include "envit/io/safetensors.hpp"
#include "io/io_util.hpp"

using namespace envit;
using envit::testing::message_of;
using envit::testing::read_bytes;
using envit::testing::TempDir;
using envit::testing::write_bytes;
using Catch::Matchers::Contains;

namespace {

std::string le64(std::uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(v >> (8 * i));
  return s;
}
// A raw safetensors file: le64(N) + header + data, N = header size unless given.
std::string st_raw(const std::string& header, const std::string& data, std::uint64_t n = UINT64_MAX) {
  return le64(n == UINT64_MAX ? header.size() : n) + header + data;
}
std::string floats_bytes(std::vector<float> v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}
// Writes `bytes` to a file and returns the IoError message of reading it (fails if it reads).
std::string read_error(const TempDir& dir, const std::string& bytes) {
  std::string p = dir.file("bad.safetensors");
  write_bytes(p, bytes);
  return message_of<IoError>([&] { safetensors_read(p); });
}

StFile sample_file() {
  StFile f;
  // Awkward float values must survive bit-exactly: -0, denormal, inf, NaN with a payload.
  float nan_payload;
  std::uint32_t bits = 0x7FC01234u;
  std::memcpy(&nan_payload, &bits, 4);
  std::vector<float> w = {1.5f, -0.0f, 1e-45f, std::numeric_limits<float>::infinity(), nan_payload, 3.25f};
  f.add<float>("blocks.0.attn.qkv.weight", w.data(), {2, 3});
  std::vector<double> d = {0.1, -1e300, 5e-324};
  f.add<double>("optim.m.blocks.0.attn.qkv.weight", d.data(), {3});
  std::vector<std::int64_t> l = {INT64_MIN, -1, 0, INT64_MAX};
  f.add<std::int64_t>("step", l.data(), {2, 1, 2});
  std::vector<std::int32_t> i32 = {-7};
  f.add<std::int32_t>("scalar", i32.data(), {});
  std::vector<std::uint8_t> u8 = {0, 255, 128};
  f.add<std::uint8_t>("mask", u8.data(), {3});
  f.add<float>("empty", nullptr, {0, 4});
  std::vector<std::uint64_t> rng = {0xDEADBEEFCAFEF00Dull, 42};
  f.add<std::uint64_t>("rng.state", rng.data(), {2});
  std::uint16_t bf16[2] = {0x3F80, 0xC000};  // 1.0, -2.0 in bfloat16
  f.add_bytes("head.bias", "BF16", {2}, bf16);
  f.set_meta("config", "{\"depth\": 12, \"name\": \"vit \\\"tiny\\\"\"}\n\ttab\x01");
  f.set_meta("unicode", "\xC2\xB5 \xE2\x82\xAC \xF0\x9F\x98\x80");  // µ € 😀
  f.set_meta_int("epoch", -3);
  f.set_meta_double("lr", 0.1);
  f.set_meta("format", "envit");
  return f;
}

}  // namespace

TEST_CASE("safetensors round trip is bit-exact and the layout is canonical", "[io][safetensors]") {
  TempDir dir;
  const std::string p = dir.file("ckpt.safetensors");
  const StFile f = sample_file();
  safetensors_write(p, f);
  REQUIRE(dir.entries() == std::vector<std::string>{"ckpt.safetensors"});  // no temporary left

  StFile g = safetensors_read(p);
  CHECK(g.source == p);
  CHECK(g.metadata == f.metadata);
  REQUIRE(g.tensors.size() == f.tensors.size());
  for (std::size_t i = 0; i < f.tensors.size(); ++i) {
    INFO("tensor " << i << " '" << f.tensors[i].name << "'");
    CHECK(g.tensors[i].name == f.tensors[i].name);  // data order = write order
    CHECK(g.tensors[i].dtype == f.tensors[i].dtype);
    CHECK(g.tensors[i].shape == f.tensors[i].shape);
    CHECK(g.tensors[i].data == f.tensors[i].data);
  }
  // Layout: header length a multiple of 8, starts with '{', padded with spaces, no trailing bytes.
  std::string raw = read_bytes(p);
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(raw[i]);
  CHECK(n % 8 == 0);
  CHECK(raw[8] == '{');
  std::size_t close = raw.find_last_of('}', 8 + n - 1);
  for (std::size_t k = close + 1; k < 8 + n; ++k) CHECK(raw[k] == ' ');
  std::size_t data_bytes = 0;
  for (const auto& t : f.tensors) data_bytes += t.data.size();
  CHECK(raw.size() == 8 + n + data_bytes);

  // Rewriting over an existing file replaces it atomically and leaves nothing else behind.
  StFile h;
  std::vector<float> one = {7.f};
  h.add<float>("x", one.data(), {1});
  safetensors_write(p, h);
  CHECK(dir.entries() == std::vector<std::string>{"ckpt.safetensors"});
  CHECK(safetensors_read(p).at("x").shape == std::vector<std::int64_t>{1});
}

TEST_CASE("safetensors writer matches the reference serialiser byte for byte", "[io][safetensors]") {
  // Expected bytes as the reference implementation's own tests state them: compact JSON, metadata
  // first, space padding to a multiple of 8 (none needed for the first case).
  TempDir dir;
  const std::string p = dir.file("ref.safetensors");
  std::vector<float> v = {0, 1, 2, 3, 4, 5};

  StFile a;
  a.add<float>("attn.0", v.data(), {1, 2, 3});
  safetensors_write(p, a);
  std::string h1 = R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})";
  REQUIRE(h1.size() == 64);
  CHECK(read_bytes(p) == le64(64) + h1 + floats_bytes(v));

  StFile b;
  b.add<float>("attn0", v.data(), {1, 1, 2, 3});
  safetensors_write(p, b);
  std::string h2 = R"({"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}})" + std::string(7, ' ');
  CHECK(read_bytes(p) == le64(72) + h2 + floats_bytes(v));

  safetensors_write(p, StFile{});
  CHECK(read_bytes(p) == le64(8) + "{}" + std::string(6, ' '));

  StFile m;
  m.set_meta("framework", "pt");
  safetensors_write(p, m);
  CHECK(read_bytes(p) == le64(40) + R"({"__metadata__":{"framework":"pt"}})" + std::string(5, ' '));
  CHECK(safetensors_read(p).meta("framework") == "pt");
}

TEST_CASE("safetensors typed helpers check dtype, shape and name", "[io][safetensors]") {
  TempDir dir;
  const std::string p = dir.file("t.safetensors");
  safetensors_write(p, sample_file());
  StFile f = safetensors_read(p);

  std::vector<float> w(6);
  f.copy_to<float>("blocks.0.attn.qkv.weight", w.data(), {2, 3});
  CHECK(w[0] == 1.5f);
  CHECK(std::signbit(w[1]));
  CHECK(std::isnan(w[4]));

  std::string m = message_of<IoError>([&] { f.copy_to<float>("blocks.0.attn.qkv.weight", w.data(), {3, 2}); });
  CHECK_THAT(m, Contains(p) && Contains("blocks.0.attn.qkv.weight") && Contains("[2, 3]") && Contains("[3, 2]"));
  m = message_of<IoError>([&] { f.copy_to<float>("optim.m.blocks.0.attn.qkv.weight", w.data(), {3}); });
  CHECK_THAT(m, Contains("optim.m.blocks.0.attn.qkv.weight") && Contains("F64") && Contains("expected F32"));
  m = message_of<IoError>([&] { f.copy_to<float>("blocks.0.mlp.fc1.weight", w.data(), {1}); });
  CHECK_THAT(m, Contains("no tensor named 'blocks.0.mlp.fc1.weight'"));

  std::vector<std::int64_t> shape;
  auto steps = f.get<std::int64_t>("step", &shape);
  CHECK(shape == std::vector<std::int64_t>{2, 1, 2});
  CHECK(steps == std::vector<std::int64_t>{INT64_MIN, -1, 0, INT64_MAX});
  CHECK(f.get<std::int32_t>("scalar") == std::vector<std::int32_t>{-7});
  CHECK(f.get<float>("empty", &shape).empty());
  CHECK(shape == std::vector<std::int64_t>{0, 4});
  CHECK(f.get<std::uint64_t>("rng.state")[0] == 0xDEADBEEFCAFEF00Dull);

  CHECK(f.meta_int("epoch") == -3);
  CHECK(f.meta_double("lr") == 0.1);
  CHECK(f.meta_or("missing", "dflt") == "dflt");
  CHECK_THAT(message_of<IoError>([&] { f.meta("missing"); }), Contains("'missing'"));
  CHECK_THAT(message_of<IoError>([&] { f.meta_int("lr"); }), Contains("'lr' = '0.1'"));
  StFile e;
  e.set_meta_double("tiny", 5e-324);
  e.set_meta_double("third", 1.0 / 3.0);
  e.set_meta_int("min", INT64_MIN);
  CHECK(e.meta_double("tiny") == 5e-324);
  CHECK(e.meta_double("third") == 1.0 / 3.0);
  CHECK(e.meta_int("min") == INT64_MIN);
}

TEST_CASE("safetensors writer rejects inconsistent input and leaves no file", "[io][safetensors]") {
  TempDir dir;
  const std::string p = dir.file("w.safetensors");
  std::vector<float> v(6);
  StFile f;
  f.add<float>("a", v.data(), {6});
  CHECK_THROWS_AS(f.add<float>("a", v.data(), {6}), ValueError);                 // duplicate
  CHECK_THROWS_AS(f.add<float>("__metadata__", v.data(), {6}), ValueError);      // reserved
  CHECK_THROWS_AS(f.add<float>("neg", v.data(), {-1}), ValueError);              // bad shape
  CHECK_THROWS_AS(f.add_bytes("x", "F17", {1}, v.data()), ValueError);           // unknown dtype

  StFile g = f;
  g.tensors[0].data.pop_back();
  CHECK_THAT(message_of<ValueError>([&] { safetensors_write(p, g); }), Contains("'a' holds 23 bytes") && Contains("needs 24"));
  g = f;
  g.tensors.push_back(g.tensors[0]);
  CHECK_THAT(message_of<ValueError>([&] { safetensors_write(p, g); }), Contains("duplicate tensor name 'a'"));
  g = f;
  g.tensors[0].name = "bad\xFF";
  CHECK_THAT(message_of<ValueError>([&] { safetensors_write(p, g); }), Contains("UTF-8"));
  g = f;
  g.set_meta("k", std::string("\xC3", 1));
  CHECK_THROWS_AS(safetensors_write(p, g), ValueError);
  CHECK(dir.entries().empty());

  std::string m = message_of<IoError>([&] { safetensors_write(dir.file("no/such/dir/x.safetensors"), f); });
  CHECK_THAT(m, Contains("no/such/dir/x.safetensors"));
  CHECK(dir.entries().empty());
}

TEST_CASE("safetensors reader rejects broken framing", "[io][safetensors]") {
  TempDir dir;
  CHECK_THAT(read_error(dir, ""), Contains("bad.safetensors") && Contains("0 bytes, shorter than the 8-byte"));
  CHECK_THAT(read_error(dir, std::string("\x08\0\0\0\0", 5)), Contains("5 bytes, shorter than the 8-byte"));
  CHECK_THAT(read_error(dir, st_raw("{}", "", 200)), Contains("header length 200 runs past the end of the file (10 bytes)"));
  CHECK_THAT(read_error(dir, st_raw("{}", "", 100'000'001)), Contains("header length 100000001 is absurd"));
  CHECK_THAT(read_error(dir, st_raw("{}", "", UINT64_MAX - 1)), Contains("is absurd"));
  CHECK_THAT(message_of<IoError>([&] { safetensors_read(dir.file("missing.safetensors")); }),
             Contains("cannot open") && Contains("missing.safetensors"));
  CHECK_THAT(message_of<IoError>([&] { safetensors_read(dir.path); }), Contains("not a regular file"));
  // An empty header (N = 0) is not JSON.
  CHECK_THAT(read_error(dir, st_raw("", "")), Contains("invalid JSON header at header byte 0 (file offset 8)"));
}

TEST_CASE("safetensors reader reports invalid JSON with its position", "[io][safetensors]") {
  TempDir dir;
  struct Case { std::string header, what; std::size_t pos; };
  const std::vector<Case> cases = {
      {R"({"a":)", "unexpected end", 5},
      {R"({"a":{"dtype":"F32",}})", "expected a string key", 20},
      {R"({a:1})", "expected a string key", 1},
      {R"({"a\q":1})", "invalid escape", 3},
      {"{\"a\x01\":1}", "raw control character", 3},
      {"{\"\xC3\x28\":1}", "invalid UTF-8", 2},
      {"{\"\xED\xA0\x80\":1}", "invalid UTF-8", 2},          // encoded surrogate
      {R"({"\udc00":1})", "unpaired low surrogate", 2},
      {R"({"\ud800x":1})", "high surrogate", 2},
      {R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", "non-integer", 29},
      {R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", "negative number", 29},
      {R"({"a":{"dtype":"F32","shape":[01],"data_offsets":[0,4]}})", "leading zero", 29},
      {R"({"a":true})", "true/false/null", 5},
      {R"({"a":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,4]}})", "does not fit in 64 bits", 29},
      {R"({} x)", "after the end of the JSON value", 3},
      {R"({"a":1}})", "after the end", 7},
      {R"({"a":"unterminated)", "unterminated string", 5},
      {std::string(200, '[') + std::string(200, ']'), "nesting deeper than", 65},
  };
  for (const Case& c : cases) {
    INFO("header: " << c.header);
    std::string m = read_error(dir, st_raw(c.header, ""));
    CHECK_THAT(m, Contains("invalid JSON header at header byte " + std::to_string(c.pos) + " (file offset " +
                           std::to_string(8 + c.pos) + ")") && Contains(c.what));
  }
}

TEST_CASE("safetensors reader rejects invalid header contents", "[io][safetensors]") {
  TempDir dir;
  const std::string d24 = std::string(24, '\x01');
  auto err = [&](const std::string& header, const std::string& data) { return read_error(dir, st_raw(header, data)); };

  CHECK_THAT(err("[]", ""), Contains("header is a JSON array, expected an object"));
  CHECK_THAT(err(R"({"a":{"dtype":"F17","shape":[2,3],"data_offsets":[0,24]}})", d24),
             Contains("tensor 'a': unknown dtype 'F17'") && Contains("(header byte 14, file offset 22)"));
  CHECK_THAT(err(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,24]}})", d24),
             Contains("tensor 'a': shape product overflows"));
  CHECK_THAT(err(R"({"a":{"dtype":"F32","shape":[9223372036854775808],"data_offsets":[0,24]}})", d24),
             Contains("overflows"));
  CHECK_THAT(err(R"({"a":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,24]}})", d24),
             Contains("byte size (shape product x dtype size) overflows"));
  CHECK_THAT(err(R"({"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})", d24),
             Contains("tensor 'a': data_offsets [0, 20] span 20 bytes but dtype F32 x shape [2, 3] needs 24"));
  CHECK_THAT(err(R"({"a":{"dtype":"F32","shape":[2,3],"data_offsets":[24,0]}})", d24), Contains("end before begin"));
  CHECK_THAT(err(R"({"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}})", std::string(16, '\0')),
             Contains("[0, 24] end past the end of the file (data buffer holds 16 bytes)"));
  CHECK_THAT(err(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})", d24),
             Contains("'a' [0, 16] and 'b' [8, 24] overlap"));
  CHECK_THAT(err(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[16,24]}})", d24),
             Contains("data bytes [8, 16) belong to no tensor (gap before 'b')"));
  CHECK_THAT(err(R"({"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}})", d24 + "12345678"),
             Contains("data buffer holds 32 bytes but the tensors cover only 24 (8 trailing bytes)"));
  CHECK_THAT(err(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})", "xy"),
             Contains("duplicate name 'a'") && Contains("header byte 53"));
  CHECK_THAT(err(R"({"__metadata__":{"k":"1","k":"2"}})", ""), Contains("duplicate __metadata__ key 'k'"));
  CHECK_THAT(err(R"({"__metadata__":{"epoch":3}})", ""), Contains("__metadata__ value for 'epoch' is a integer, expected a string"));
  CHECK_THAT(err(R"({"__metadata__":["x"]})", ""), Contains("__metadata__ is a array"));
  CHECK_THAT(err(R"({"a":{"dtype":"U8","shape":[1]}})", "x"), Contains("tensor 'a': missing field 'data_offsets'"));
  CHECK_THAT(err(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"extra":1}})", "x"), Contains("unknown field 'extra'"));
  CHECK_THAT(err(R"({"a":{"dtype":"U8","dtype":"U8","shape":[1],"data_offsets":[0,1]}})", "x"), Contains("duplicate field 'dtype'"));
  CHECK_THAT(err(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}})", "x"), Contains("array of two integers"));
  CHECK_THAT(err(R"({"a":{"dtype":"U8","shape":["1"],"data_offsets":[0,1]}})", "x"), Contains("shape entry is a string"));
  CHECK_THAT(err(R"({"a":{"dtype":8,"shape":[1],"data_offsets":[0,1]}})", "x"), Contains("dtype is not a string"));
  CHECK_THAT(err(R"({"a":[1]})", "x"), Contains("tensor 'a': entry is a array"));
}

TEST_CASE("safetensors reader follows the reference on ordering and empty tensors", "[io][safetensors]") {
  TempDir dir;
  // The header may list tensors in any order (the reference sorts by offset); zero-size tensors
  // occupy empty ranges. Tensors come back in data order.
  std::string h = R"({"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]},"z":{"dtype":"F32","shape":[0,5],"data_offsets":[3,3]},)"
                  R"("a":{"dtype":"U8","shape":[],"data_offsets":[0,1]}})";
  h.append((8 - h.size() % 8) % 8, ' ');
  std::string p = dir.file("order.safetensors");
  write_bytes(p, st_raw(h, "ABC"));
  StFile f = safetensors_read(p);
  REQUIRE(f.tensors.size() == 3);
  CHECK(f.tensors[0].name == "a");
  CHECK(f.tensors[1].name == "b");
  CHECK(f.tensors[2].name == "z");
  CHECK(f.get<std::uint8_t>("a") == std::vector<std::uint8_t>{'A'});
  CHECK(f.get<std::uint8_t>("b") == std::vector<std::uint8_t>{'B', 'C'});
  CHECK(f.tensors[2].data.empty());
}

TEST_CASE("safetensors reader: every truncation and random byte flips fail cleanly", "[io][safetensors]") {
  TempDir dir;
  const std::string p = dir.file("good.safetensors");
  safetensors_write(p, sample_file());
  const std::string good = read_bytes(p);
  const std::string q = dir.file("cut.safetensors");
  for (std::size_t len = 0; len < good.size(); ++len) {
    INFO("truncated to " << len << " of " << good.size() << " bytes");
    write_bytes(q, good.substr(0, len));
    CHECK_THROWS_AS(safetensors_read(q), IoError);
  }
  // Flip random bytes: the reader either accepts the file (a flip inside tensor data or inside a
  // metadata string) or throws IoError — never another exception, never a crash.
  CounterRng r(7, RngStream::init, 99);
  int accepted = 0, rejected = 0;
  for (int trial = 0; trial < 1500; ++trial) {
    std::string bad = good;
    int flips = 1 + static_cast<int>(r.below(3));
    for (int k = 0; k < flips; ++k) bad[r.below(static_cast<std::uint32_t>(bad.size()))] ^= static_cast<char>(1 + r.below(255));
    write_bytes(q, bad);
    try {
      safetensors_read(q);
      ++accepted;
    } catch (const IoError&) {
      ++rejected;
    } catch (const std::exception& e) {
      FAIL("trial " << trial << ": unexpected exception " << e.what());
    }
  }
  CHECK(accepted > 0);
  CHECK(rejected > 0);
}

namespace {
bool have_python() { return ::access("/usr/bin/python3", X_OK) == 0; }
}  // namespace

TEST_CASE("safetensors files interoperate with a plain Python reader and writer", "[io][safetensors][python]") {
  if (!have_python()) {
    ENVIT_SKIP("/usr/bin/python3 not found: no Python interop check");
  }
  TempDir dir;
  const std::string p = dir.file("ours.safetensors");
  safetensors_write(p, sample_file());
  // Python reads our file with struct + json only and checks it against the spec.
  const std::string script = dir.file("check.py");
  write_bytes(script, R"PY(
import json, struct, sys, math
path, out = sys.argv[1], sys.argv[2]
raw = open(path, 'rb').read()
n, = struct.unpack('<Q', raw[:8])
assert n % 8 == 0, n
hdr = json.loads(raw[8:8 + n].decode('utf-8'))
data = raw[8 + n:]
meta = hdr.pop('__metadata__')
assert meta['unicode'] == '\u00b5 \u20ac \U0001F600', meta['unicode']
assert json.loads(meta['config'].split('\n')[0])['name'] == 'vit "tiny"'
assert meta['epoch'] == '-3' and float(meta['lr']) == 0.1
sizes = {'F32': 4, 'F64': 8, 'I64': 8, 'I32': 4, 'U8': 1, 'U64': 8, 'BF16': 2}
end = 0
for name, t in sorted(hdr.items(), key=lambda kv: kv[1]['data_offsets']):
    b, e = t['data_offsets']
    assert b == end, (name, b, end)
    numel = 1
    for d in t['shape']:
        numel *= d
    assert e - b == numel * sizes[t['dtype']], name
    end = e
assert end == len(data)
w = hdr['blocks.0.attn.qkv.weight']
assert w['dtype'] == 'F32' and w['shape'] == [2, 3]
b, e = w['data_offsets']
v = struct.unpack('<6f', data[b:e])
assert v[0] == 1.5 and math.copysign(1, v[1]) < 0 and math.isinf(v[3]) and math.isnan(v[4])
b, e = hdr['step']['data_offsets']
assert struct.unpack('<4q', data[b:e]) == (-2**63, -1, 0, 2**63 - 1)
assert hdr['scalar']['shape'] == [] and struct.unpack('<i', data[slice(*hdr['scalar']['data_offsets'])])[0] == -7
# Python writes a file the way other writers do: default json separators (with spaces), keys in
# an order unrelated to the data, padding to 8.
tensors = {'z.weight': ('F64', [2], struct.pack('<2d', 0.25, -8.0)), 'a.bias': ('I32', [3], struct.pack('<3i', 1, -2, 3))}
header, blob, off = {'__metadata__': {'written_by': 'python'}}, b'', 0
for name in ['z.weight', 'a.bias']:
    dt, shape, buf = tensors[name]
    header[name] = {'dtype': dt, 'shape': shape, 'data_offsets': [off, off + len(buf)]}
    blob += buf
    off += len(buf)
hj = json.dumps(dict(reversed(list(header.items())))).encode('utf-8')
hj += b' ' * ((8 - len(hj) % 8) % 8)
open(out, 'wb').write(struct.pack('<Q', len(hj)) + hj + blob)
print('python-ok')
)PY");
  const std::string theirs = dir.file("theirs.safetensors");
  const std::string cmd = "/usr/bin/python3 '" + script + "' '" + p + "' '" + theirs + "' > '" + dir.file("py.log") + "' 2>&1";
  int rc = std::system(cmd.c_str());
  INFO("python output:\n" << read_bytes(dir.file("py.log")));
  REQUIRE(rc == 0);
  StFile f = safetensors_read(theirs);
  CHECK(f.meta("written_by") == "python");
  CHECK(f.get<double>("z.weight") == std::vector<double>{0.25, -8.0});
  CHECK(f.get<std::int32_t>("a.bias") == std::vector<std::int32_t>{1, -2, 3});
  CHECK(f.tensors[0].name == "z.weight");  // data order
}
