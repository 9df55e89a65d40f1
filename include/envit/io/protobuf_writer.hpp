// envit/io/protobuf_writer.hpp — the protocol-buffers wire format, write side only: varints,
// fixed 32-bit floats and length-delimited fields (strings, bytes, packed repeated numbers, nested
// messages), appended to a byte string. What weights/onnx_export.hpp needs to write ONNX models; it
// knows no schema (the caller passes field numbers). Not here: reading, groups, zig-zag (sint)
// encoding, fixed64, maps — ONNX's ModelProto as envit writes it uses none of them.
// Wire format (protobuf's "Encoding" reference): a field is a key varint (number << 3 | wire type)
// then its payload; wire type 0 = varint, 2 = length-delimited (length varint + bytes), 5 = 32-bit
// little-endian. Negative int64 values take 10 bytes (two's complement as uint64).
#pragma once
#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace envit {

class ProtoWriter {
 public:
  enum WireType : std::uint32_t { kVarint = 0, kLengthDelimited = 2, kFixed32 = 5 };

  // Appends v as a base-128 varint (7 bits per byte, least significant group first).
  static void append_varint(std::string& out, std::uint64_t v) {
    while (v >= 0x80) {
      out.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out.push_back(static_cast<char>(v));
  }
  // The key that precedes field `field` of wire type `wt`.
  static std::string key(std::uint32_t field, WireType wt) {
    std::string k;
    append_varint(k, (std::uint64_t(field) << 3) | wt);
    return k;
  }

  // int32, int64, uint64, bool and enum fields (int32/enum: negative values sign-extended to 64 bits).
  ProtoWriter& varint(std::uint32_t field, std::int64_t v) {
    put_key(field, kVarint);
    append_varint(buf_, static_cast<std::uint64_t>(v));
    return *this;
  }
  ProtoWriter& fixed_float(std::uint32_t field, float v) {
    put_key(field, kFixed32);
    put_float(v);
    return *this;
  }
  // string, bytes and nested messages (pass the nested message's bytes).
  ProtoWriter& bytes(std::uint32_t field, std::string_view v) {
    put_key(field, kLengthDelimited);
    append_varint(buf_, v.size());
    buf_.append(v.data(), v.size());
    return *this;
  }
  ProtoWriter& message(std::uint32_t field, const ProtoWriter& m) { return bytes(field, m.str()); }
  // Packed repeated int64 (one length-delimited field of varints) and float (of fixed32s).
  ProtoWriter& packed_varints(std::uint32_t field, const std::vector<std::int64_t>& v) {
    std::string body;
    for (std::int64_t x : v) append_varint(body, static_cast<std::uint64_t>(x));
    return bytes(field, body);
  }
  ProtoWriter& packed_floats(std::uint32_t field, const std::vector<float>& v) {
    put_key(field, kLengthDelimited);
    append_varint(buf_, 4 * v.size());
    for (float x : v) put_float(x);
    return *this;
  }

  const std::string& str() const { return buf_; }
  std::string take() { return std::move(buf_); }
  std::size_t size() const { return buf_.size(); }

 private:
  void put_key(std::uint32_t field, WireType wt) { append_varint(buf_, (std::uint64_t(field) << 3) | wt); }
  void put_float(float v) {
    const std::uint32_t u = std::bit_cast<std::uint32_t>(v);
    for (int b = 0; b < 4; ++b) buf_.push_back(static_cast<char>((u >> (8 * b)) & 0xff));
  }
  std::string buf_;
};

}  // namespace envit
