// Tests of envit/io/json.hpp beyond the safetensors header subset (which test_safetensors.cpp
// covers): the full JSON grammar, Python's float text, and the writer's compact and indented
// layouts, each against what Python's json module reads and writes.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "envit/io/json.hpp"
#include "io/io_util.hpp"

using namespace envit;
using envit::testing::message_of;
using Catch::Matchers::Contains;
using K = json::Value::Kind;

namespace {
json::Value full(std::string_view s) { return json::parse(s, json::Grammar::full); }
std::string number_text(double v) {
  std::string s;
  json::write_number(s, v);
  return s;
}
}  // namespace

TEST_CASE("json full grammar: literals, every number form, duplicate keys", "[io][json]") {
  json::Value v = full(R"( {"t": true, "f": false, "n": null, "i": 768, "neg": -3, "x": 1e-12, "y": 0.5,
                           "big": 18446744073709551616, "max": 18446744073709551615, "d": 1, "d": 2} )");
  REQUIRE(v.kind == K::object);
  CHECK(v.find("t")->kind == K::boolean);
  CHECK(v.find("t")->boolean);
  CHECK_FALSE(v.find("f")->boolean);
  CHECK(v.find("n")->kind == K::null);
  CHECK(v.find("i")->kind == K::integer);
  CHECK(v.find("i")->integer == 768);
  CHECK(v.find("i")->number == 768.0);
  CHECK(v.find("neg")->kind == K::number);
  CHECK(v.find("neg")->number == -3.0);
  CHECK(v.find("x")->number == 1e-12);
  CHECK(v.find("y")->number == 0.5);
  CHECK(v.find("big")->kind == K::number);  // beyond 64 bits: a double, as Python's float() of it
  CHECK(v.find("big")->number == 18446744073709551616.0);
  CHECK(v.find("max")->integer == UINT64_MAX);
  CHECK(v.find("d")->integer == 2);  // the last of a repeated key, as Python's json.loads
  CHECK(v.find("missing") == nullptr);
  CHECK(full("[1]").find("d") == nullptr);
  CHECK(full("-0.0").number == 0.0);
  CHECK(std::signbit(full("-0.0").number));
  CHECK(full("2E+3").number == 2000.0);
}

TEST_CASE("json full grammar: malformed numbers and literals name the offset", "[io][json]") {
  struct Case { std::string text, what; std::size_t pos; };
  const std::vector<Case> cases = {
      {"[1.]", "expected a digit after the decimal point", 3},
      {"[-]", "expected a digit after '-'", 2},
      {"[-01]", "leading zero", 2},
      {"[1e]", "expected a digit in the exponent", 3},
      {"[1e+]", "expected a digit in the exponent", 4},
      {"[.5]", "where a value should start", 1},
      {"[+1]", "where a value should start", 1},
      {"[tru]", "where a value should start", 1},
      {"[nul", "where a value should start", 1},
      {"[1e400]", "number '1e400' is out of the range of a double", 1},
      {"[true false]", "expected ','", 6},
  };
  for (const Case& c : cases) {
    INFO(c.text);
    try {
      full(c.text);
      FAIL("parsed");
    } catch (const json::ParseError& e) {
      CHECK_THAT(e.what(), Contains(c.what));
      CHECK(e.pos == c.pos);
    }
  }
  // The safetensors header grammar still refuses what the full grammar adds.
  CHECK_THROWS_AS(json::parse("[true]"), json::ParseError);
  CHECK_THROWS_AS(json::parse("[0.5]"), json::ParseError);
  CHECK_THROWS_AS(json::parse("[-1]"), json::ParseError);
}

TEST_CASE("json::write_number writes Python's float text, which reads back exactly", "[io][json]") {
  // Expected texts: Python 3's json.dumps(v) for each v.
  const std::vector<std::pair<double, std::string>> cases = {
      {0.0, "0.0"}, {-0.0, "-0.0"}, {0.02, "0.02"}, {1e-12, "1e-12"}, {1e-6, "1e-06"},
      {1.0 / 255.0, "0.00392156862745098"}, {768.0, "768.0"}, {1e15, "1000000000000000.0"}, {1e16, "1e+16"},
      {0.0001, "0.0001"}, {0.00001, "1e-05"}, {1.5e300, "1.5e+300"}, {123.456, "123.456"}, {5e-324, "5e-324"},
      {1.7976931348623157e308, "1.7976931348623157e+308"}, {-2.5e-7, "-2.5e-07"}, {0.1 + 0.2, "0.30000000000000004"},
  };
  for (const auto& [v, want] : cases) {
    INFO(want);
    CHECK(number_text(v) == want);
    CHECK(full(want).number == v);
  }
  CHECK(number_text(std::numeric_limits<double>::quiet_NaN()) == "null");
  CHECK(number_text(-std::numeric_limits<double>::infinity()) == "null");
}

TEST_CASE("json::Writer: Python's indented and compact layouts, and misuse is a ValueError", "[io][json]") {
  auto build = [](json::Writer& w) {
    w.begin_object().key("a").begin_array().value(1).value(2.5).begin_object();
    w.key("b").null().key("c").value(true).end_object().end_array();
    w.key("e").begin_object().end_object().key("f").values(std::vector<int>{}).key("s").value("q\"\n");
    w.end_object();
  };
  json::Writer pretty(2), compact;
  build(pretty);
  build(compact);
  // Python: json.dumps({"a": [1, 2.5, {"b": None, "c": True}], "e": {}, "f": [], "s": "q\"\n"}, indent=2)
  CHECK(pretty.str() == "{\n  \"a\": [\n    1,\n    2.5,\n    {\n      \"b\": null,\n      \"c\": true\n    }\n"
                        "  ],\n  \"e\": {},\n  \"f\": [],\n  \"s\": \"q\\\"\\n\"\n}");
  // ... and with separators=(",", ":")
  CHECK(compact.str() == R"({"a":[1,2.5,{"b":null,"c":true}],"e":{},"f":[],"s":"q\"\n"})");
  CHECK(full(pretty.str()).find("a")->items[2].find("c")->boolean);

  CHECK_THAT(message_of<ValueError>([] { json::Writer w; w.begin_object().value(1); }), Contains("needs a key"));
  CHECK_THAT(message_of<ValueError>([] { json::Writer w; w.key("k"); }), Contains("outside an object"));
  CHECK_THAT(message_of<ValueError>([] { json::Writer w; w.begin_array().end_object(); }), Contains("does not close"));
  CHECK_THAT(message_of<ValueError>([] { json::Writer w; w.begin_array(); (void)w.str(); }), Contains("not closed"));
  CHECK_THAT(message_of<ValueError>([] { json::Writer w; w.value(1).value(2); }), Contains("second top-level"));
}
