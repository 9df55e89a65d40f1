// tests/onnx/test_protobuf_writer.cpp — io/protobuf_writer.hpp against byte strings worked out from
// the protobuf encoding reference (varint 150 -> 96 01, the "testing" string, the packed
// [3, 270, 86942] example), plus the ONNX-level encoders of weights/onnx_export.hpp on small messages.
// The whole ONNX files are decoded by python3-onnx in onnx_check.py.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "envit/weights/onnx_export.hpp"
#include "envit/io/protobuf_writer.hpp"

using envit::ProtoWriter;

namespace {
std::string hex(const std::string& s) {
  static const char* d = "0123456789abcdef";
  std::string h;
  for (unsigned char c : s) {
    if (!h.empty()) h += ' ';
    h += d[c >> 4];
    h += d[c & 15];
  }
  return h;
}
}  // namespace

TEST_CASE("protobuf varints", "[protobuf]") {
  const std::vector<std::pair<std::uint64_t, std::string>> cases = {
      {0, "00"}, {1, "01"}, {127, "7f"}, {128, "80 01"}, {150, "96 01"}, {300, "ac 02"}, {16384, "80 80 01"},
      {~std::uint64_t(0), "ff ff ff ff ff ff ff ff ff 01"}};
  for (auto& [v, want] : cases) {
    std::string s;
    ProtoWriter::append_varint(s, v);
    INFO("value " << v);
    CHECK(hex(s) == want);
  }
}

TEST_CASE("protobuf fields", "[protobuf]") {
  CHECK(hex(ProtoWriter().varint(1, 150).str()) == "08 96 01");
  CHECK(hex(ProtoWriter().bytes(2, "testing").str()) == "12 07 74 65 73 74 69 6e 67");
  CHECK(hex(ProtoWriter().packed_varints(4, {3, 270, 86942}).str()) == "22 06 03 8e 02 9e a7 05");
  CHECK(hex(ProtoWriter().varint(2, -1).str()) == "10 ff ff ff ff ff ff ff ff ff 01");
  CHECK(hex(ProtoWriter().fixed_float(2, 1.0f).str()) == "15 00 00 80 3f");
  CHECK(hex(ProtoWriter().packed_floats(7, {1.0f, -2.0f}).str()) == "3a 08 00 00 80 3f 00 00 00 c0");
  CHECK(hex(ProtoWriter().bytes(16, "").str()) == "82 01 00");  // field 16: a two-byte key
  ProtoWriter inner;
  inner.varint(1, 150);
  CHECK(hex(ProtoWriter().message(3, inner).str()) == "1a 03 08 96 01");
}

TEST_CASE("ONNX messages", "[protobuf][onnx]") {
  namespace ox = envit::onnx;
  // TensorProto{dims: [2], data_type: INT64, name: "c", raw_data: 1, -1 as little-endian int64}
  CHECK(hex(ox::encode_tensor(ox::tensor_i64("c", {2}, {1, -1}))) ==
        "08 02 10 07 42 01 63 4a 10 01 00 00 00 00 00 00 00 ff ff ff ff ff ff ff ff");
  // ValueInfoProto{name "x", type{tensor_type{elem_type FLOAT, shape{dim{dim_param "batch"}, dim{dim_value 3}}}}}
  CHECK(hex(ox::encode_value({"x", ox::kFloat, {-1, 3}})) ==
        "0a 01 78 12 13 0a 11 08 01 12 0d 0a 07 12 05 62 61 74 63 68 0a 02 08 03");
  // AttributeProto{name "perm", ints [0, 2, 1], type INTS} (unpacked, as onnx writes repeated ints)
  CHECK(hex(ox::encode_attr(ox::attr_ints("perm", {0, 2, 1}))) == "0a 04 70 65 72 6d 40 00 40 02 40 01 a0 01 07");
  CHECK(hex(ox::encode_attr(ox::attr_f("epsilon", 1.0f))) == "0a 07 65 70 73 69 6c 6f 6e 15 00 00 80 3f a0 01 01");
}

TEST_CASE("ONNX export refuses what it cannot write, by name", "[onnx]") {
  using namespace envit;
  // LGViT heads are exported (local heads as Conv + BatchNormalization, global ones as attention).
  VitConfig lg = vit_preset("readme").config;
  lg.exit_head = "lgvit";
  const ViTParams<float> P(lg, false);
  const onnx::Graph g = onnx_graph(P);
  int conv = 0, bn = 0;
  for (const auto& n : g.nodes) {
    conv += n.op == "Conv";
    bn += n.op == "BatchNormalization";
  }
  CHECK(conv > 0);
  CHECK(bn > 0);
  const ViTParams<float> Q(vit_preset("readme").config, false);
  for (ExitRule r : {ExitRule::patience, ExitRule::beem, ExitRule::energy}) {
    OnnxExportOptions o{OnnxGraphKind::early_exit, r, true, {}};
    CHECK_THROWS_WITH(onnx_graph(Q, o), Catch::Contains(std::string("exit rule '") + exit_rule_name(r) + "' is not exported"));
    o.kind = OnnxGraphKind::all_exits;  // the rule matters only to the early-exit graph
    CHECK_NOTHROW(onnx_graph(Q, o));
  }
}

TEST_CASE("ONNX early-exit graph: one If per exit before the last, nested in the else branches", "[onnx]") {
  using namespace envit;
  VitConfig c = vit_preset("readme").config;  // exits after blocks 2, 4, 6
  const ViTParams<float> P(c, false);
  const onnx::Graph g = onnx_graph(P, {OnnxGraphKind::early_exit, ExitRule::entropy, true, {}});
  REQUIRE(g.outputs.size() == 3);
  CHECK(g.outputs[0].name == "prediction");
  CHECK(g.outputs[1].name == "exit");
  CHECK(g.outputs[2].name == "logits");
  // Count the blocks (one LayerNormalization pair each, plus one per exit head) per nesting level.
  const onnx::Graph* level = &g;
  std::vector<int> layernorms;
  while (level) {
    int ln = 0;
    const onnx::Graph* next = nullptr;
    for (const onnx::Node& n : level->nodes) {
      ln += n.op == "LayerNormalization";
      if (n.op == "If")
        for (const onnx::Attr& a : n.attrs)
          if (a.name == "else_branch") next = a.g.get();
    }
    layernorms.push_back(ln);
    level = next;
  }
  // top level: blocks 1-2 (4 LayerNorms) + head 0; then blocks 3-4 + head 1; then blocks 5-6 + head 2.
  CHECK(layernorms == std::vector<int>{5, 5, 5});
  // Weights live in the root graph only.
  CHECK(g.inits.size() > P.table().size() / 2);
}
