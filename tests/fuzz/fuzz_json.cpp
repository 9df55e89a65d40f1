// libFuzzer harness: envit's JSON reader and writer. Any input must either parse or throw
// json::ParseError with an offset inside the text, in both grammars (the safetensors header subset
// and full JSON); a value parsed as full JSON, written compact by json::Writer, must parse again
// and write the same text.
#include <cstdlib>
#include <string>
#include <string_view>

#include "envit/io/json.hpp"

namespace {
void write(envit::json::Writer& w, const envit::json::Value& v) {
  using K = envit::json::Value::Kind;
  switch (v.kind) {
    case K::null: w.null(); break;
    case K::boolean: w.value(v.boolean); break;
    case K::integer: w.value(v.integer); break;
    case K::number: w.value(v.number); break;
    case K::string: w.value(v.str); break;
    case K::array:
      w.begin_array();
      for (const auto& x : v.items) write(w, x);
      w.end_array();
      break;
    case K::object:
      w.begin_object();
      for (std::size_t i = 0; i < v.items.size(); ++i) {
        w.key(v.keys[i]);
        write(w, v.items[i]);
      }
      w.end_object();
      break;
  }
}
std::string text_of(const envit::json::Value& v) {
  envit::json::Writer w;
  write(w, v);
  return w.str();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    envit::json::Value v = envit::json::parse(text);
    if (v.pos > size) std::abort();
  } catch (const envit::json::ParseError& e) {
    if (e.pos > size) std::abort();  // an error offset must point into (or just past) the text
  }
  envit::json::Value v;
  try {
    v = envit::json::parse(text, envit::json::Grammar::full);
  } catch (const envit::json::ParseError& e) {
    if (e.pos > size) std::abort();
    return 0;
  }
  // Outside the try: the writer's own output failing to parse is a finding, not an invalid input.
  const std::string once = text_of(v);
  if (text_of(envit::json::parse(once, envit::json::Grammar::full)) != once) std::abort();
  return 0;
}
