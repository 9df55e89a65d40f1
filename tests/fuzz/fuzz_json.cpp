// libFuzzer harness: envit's JSON parser (the safetensors header subset). Any input must either
// parse or throw json::ParseError with an offset inside the text; nothing else.
#include <cstdlib>
#include <string_view>

#include "envit/io/json.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    envit::json::Value v = envit::json::parse(text);
    if (v.pos > size) std::abort();
  } catch (const envit::json::ParseError& e) {
    if (e.pos > size) std::abort();  // an error offset must point into (or just past) the text
  }
  return 0;
}
