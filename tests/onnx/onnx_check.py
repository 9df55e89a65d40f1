#!/usr/bin/python3
"""tests/onnx/onnx_check.py — an exported ONNX model against onnx.checker (Debian python3-onnx) and
against what docs/formats.md promises: opset 17 of the default domain only, the inputs and outputs
by name, type and shape, and for the early-exit graph M-1 nested If nodes; with `lgvit`, the LGViT
heads' operators (BatchNormalization, Slice, ReduceMean, a grouped Conv) present.
  onnx_check.py MODEL.onnx all|early M C CHANNELS IMAGE_SIZE [lgvit]
Exit 77 (ctest SKIP_RETURN_CODE) when the onnx module is missing."""
import sys

try:
    import onnx
    from onnx import TensorProto
except ImportError:
    print("onnx_check: python3 module onnx (Debian python3-onnx) not found: skipped")
    sys.exit(77)

path, kind = sys.argv[1], sys.argv[2]
M, C, CH, S = (int(v) for v in sys.argv[3:7])
lgvit = sys.argv[7:] == ["lgvit"]
model = onnx.load(path)
onnx.checker.check_model(model, full_check=True)  # full_check: strict shape inference as well

errors = []
def expect(cond, what):
    if not cond:
        errors.append(what)

expect([(o.domain, o.version) for o in model.opset_import] == [("", 17)],
       f"opset_import {[(o.domain, o.version) for o in model.opset_import]}, expected [('', 17)]")
expect(model.ir_version == 8, f"ir_version {model.ir_version}")

def shape(v):
    return [d.dim_param if d.HasField("dim_param") else d.dim_value for d in v.type.tensor_type.shape.dim]
def io(vs):
    return [(v.name, v.type.tensor_type.elem_type, shape(v)) for v in vs]

F, I64 = TensorProto.FLOAT, TensorProto.INT64
g = model.graph
if kind == "all":
    expect(io(g.input) == [("image", F, ["batch", CH, S, S])], f"inputs {io(g.input)}")
    expect(io(g.output) == [(f"logits_{j}", F, ["batch", C]) for j in range(M)], f"outputs {io(g.output)}")
else:
    expect(io(g.input) == [("image", F, [1, CH, S, S]), ("threshold", F, [])], f"inputs {io(g.input)}")
    expect(io(g.output) == [("prediction", I64, [1]), ("exit", I64, [1]), ("logits", F, [1, C])],
           f"outputs {io(g.output)}")

ops, depth, grouped = set(), 0, False
def walk(graph, level):
    global depth, grouped
    depth = max(depth, level)
    for n in graph.node:
        expect(n.domain == "", f"node {n.name} in domain '{n.domain}'")
        ops.add(n.op_type)
        grouped |= n.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in n.attribute)
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                walk(a.g, level + (1 if a.name == "else_branch" else 0))
walk(g, 0)
standard = {"Conv", "Reshape", "Transpose", "Shape", "Concat", "Expand", "Add", "Gather", "LayerNormalization",
            "MatMul", "Mul", "Div", "Softmax", "Erf", "Gemm", "ReduceMax", "LogSoftmax", "ReduceSum", "Neg", "Max",
            "GreaterOrEqual", "LessOrEqual", "ArgMax", "Identity", "If", "Slice", "BatchNormalization", "ReduceMean"}
expect(ops <= standard, f"operators outside the documented set: {sorted(ops - standard)}")
lgvit_ops = {"Slice", "BatchNormalization", "ReduceMean"}
if lgvit:
    expect(lgvit_ops <= ops and grouped, f"LGViT heads' operators missing: {sorted(lgvit_ops - ops)}"
           + ("" if grouped else ", no grouped (depthwise) Conv"))
else:
    expect(not (lgvit_ops & ops), f"LGViT heads' operators in a linear-head model: {sorted(lgvit_ops & ops)}")
if kind == "early":
    expect("If" in ops or M == 1, "no If node")
    expect(depth == M - 1, f"If nesting depth {depth}, expected {M - 1} (one per exit before the last)")
else:
    expect("If" not in ops, "If in the all-exits graph")

if errors:
    print(f"onnx_check {path}: FAILED\n  " + "\n  ".join(errors))
    sys.exit(1)
print(f"onnx_check {path}: ok ({kind}, {len(g.node)} top-level nodes, {len(g.initializer)} initializers, "
      f"operators {sorted(ops)})")
