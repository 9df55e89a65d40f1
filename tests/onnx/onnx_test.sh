#!/usr/bin/env bash
# tests/onnx/onnx_test.sh — the ONNX export tests that start programs (tests/onnx.cmake registers
# each part as its own ctest test; exit 77 = skipped, for a missing tool).
#   onnx_test.sh models   ENVIT REFERENCE DIR   train a README-shaped model and an LGViT-headed one
#                         (exits after blocks 1, 2, 3, 4, 6: one head of each kind conv1_1, conv2_1,
#                         attn_r2, attn_r3) for a few steps on a Fashion-MNIST subset, export their
#                         three graphs each, write envit's references
#   onnx_test.sh checker  ENVIT REFERENCE DIR   onnx.checker (python3-onnx) on those graphs
#   onnx_test.sh checker_b16  ENVIT REFERENCE DIR   onnx.checker on a random ViT-B/16's two graphs
#                         (344 MB each; minutes: label slow); DIR is its own scratch directory
#   onnx_test.sh parity   ENVIT REFERENCE DIR NODE_DIR   ONNX Runtime (npm onnxruntime-node, installed
#                         into NODE_DIR with --ignore-scripts when missing) against envit
#   onnx_test.sh refused  ENVIT REFERENCE DIR   what cannot be exported is refused by name
# The README model's files are in DIR, the LGViT model's in DIR/lgvit.
set -euo pipefail
part=$1 envit=$2 reference=$3 dir=$4
here=$(cd "$(dirname "$0")" && pwd)
readonly ORT_VERSION=1.20.1  # onnxruntime-node, pinned; its package carries the CPU library
fmnist=/usr/share/datasets/fashion-mnist
n=1000

run() {  # run LOG CMD...: the command's output goes to LOG, shown when it fails
  local log=$1; shift
  "$@" > "$log" 2>&1 || { echo "FAILED: $*"; cat "$log"; exit 1; }
}

case $part in
models)
  rm -rf "$dir" && mkdir -p "$dir"
  export_all() {  # export_all CKPT OUT_DIR: the three graphs and the two references of one model
    local ckpt=$1 out=$2
    run "$out/convert_all.log" "$envit" convert --to onnx "$ckpt" --out "$out/all.onnx"
    for rule in confidence entropy; do
      run "$out/convert_$rule.log" "$envit" convert --to onnx --early-exit $rule "$ckpt" --out "$out/early_$rule.onnx"
      run "$out/ref_$rule.log" env OMP_NUM_THREADS=1 "$reference" "$ckpt" "$fmnist" $n "$out/ref_$rule.safetensors" $rule auto
    done
  }
  run "$dir/train.log" "$envit" train --preset readme --subset 2048 --val 0 --batch 64 --epochs 1 \
    --threads 1 --out "$dir/run"
  export_all "$dir/run/last.safetensors" "$dir"
  mkdir -p "$dir/lgvit"
  run "$dir/lgvit/train.log" "$envit" train --preset readme --scheme lgvit --exits 1,2,3,4,6 --subset 2560 --val 0 \
    --batch 64 --steps 40 --epochs 1 --lgvit-stage1-frac 0.5 --threads 1 --out "$dir/lgvit/run"
  export_all "$dir/lgvit/run/last.safetensors" "$dir/lgvit"
  grep -q "exit heads lgvit" "$dir/lgvit/convert_all.log" ||
    { echo "FAILED: the LGViT model was not exported with LGViT heads"; cat "$dir/lgvit/convert_all.log"; exit 1; }
  echo "onnx models: ok ($(grep -o 'exits \[[0-9,]*\]' "$dir/convert_all.log" | head -1);" \
       "LGViT $(grep -o 'exits \[[0-9,]*\].*lgvit' "$dir/lgvit/convert_all.log" | head -1))"
  ;;
checker)
  py=/usr/bin/python3
  [ -x $py ] && $py -c "import onnx" 2>/dev/null || { echo "python3-onnx not installed: skipped"; exit 77; }
  # README-shaped model: 6 blocks, exits after blocks 2, 4, 6; 10 classes; 28x28x1.
  $py "$here/onnx_check.py" "$dir/all.onnx" all 3 10 1 28
  $py "$here/onnx_check.py" "$dir/early_confidence.onnx" early 3 10 1 28
  $py "$here/onnx_check.py" "$dir/early_entropy.onnx" early 3 10 1 28
  # LGViT-headed model: exits after blocks 1, 2, 3, 4, 6 (heads conv1_1, conv2_1, attn_r2, attn_r3).
  $py "$here/onnx_check.py" "$dir/lgvit/all.onnx" all 5 10 1 28 lgvit
  $py "$here/onnx_check.py" "$dir/lgvit/early_confidence.onnx" early 5 10 1 28 lgvit
  $py "$here/onnx_check.py" "$dir/lgvit/early_entropy.onnx" early 5 10 1 28 lgvit
  ;;
checker_b16)
  py=/usr/bin/python3
  [ -x $py ] && $py -c "import onnx" 2>/dev/null || { echo "python3-onnx not installed: skipped"; exit 77; }
  # ViT-B/16-shaped random model: 12 blocks, 6 exits, 1000 classes, 224x224x3 (344 MB per file).
  b16=$dir
  rm -rf "$b16" && mkdir -p "$b16"
  run "$b16/random.log" "$reference" --random vit-b16 linear "$b16/ckpt.safetensors"
  run "$b16/convert_all.log" "$envit" convert --to onnx "$b16/ckpt.safetensors" --out "$b16/all.onnx"
  $py "$here/onnx_check.py" "$b16/all.onnx" all 6 1000 3 224
  rm -f "$b16/all.onnx"
  run "$b16/convert_early.log" "$envit" convert --to onnx --early-exit confidence "$b16/ckpt.safetensors" --out "$b16/early.onnx"
  $py "$here/onnx_check.py" "$b16/early.onnx" early 6 1000 3 224
  rm -rf "$b16"
  ;;
parity)
  node_dir=$5
  command -v node > /dev/null || { echo "node not installed: skipped"; exit 77; }
  if [ ! -f "$node_dir/node_modules/onnxruntime-node/package.json" ] ||
     ! grep -q "\"version\": \"$ORT_VERSION\"" "$node_dir/node_modules/onnxruntime-node/package.json"; then
    command -v npm > /dev/null || { echo "npm not installed: skipped"; exit 77; }
    mkdir -p "$node_dir"
    npm install --prefix "$node_dir" --ignore-scripts --no-audit --no-fund --no-save "onnxruntime-node@$ORT_VERSION" \
      > "$dir/npm.log" 2>&1 || { echo "npm install onnxruntime-node@$ORT_VERSION failed (offline?): skipped"; cat "$dir/npm.log"; exit 77; }
  fi
  for model in "$dir" "$dir/lgvit"; do
    for rule in confidence entropy; do
      echo "== $model: $rule"
      node "$here/onnx_parity.mjs" "$node_dir/node_modules" "$model/all.onnx" "$model/early_$rule.onnx" \
        "$model/ref_$rule.safetensors"
    done
  done
  ;;
refused)
  bad=$dir/refused
  rm -rf "$bad" && mkdir -p "$bad"
  expect_error() {  # expect_error CODE TEXT CMD...: fails unless CMD exits with CODE and says TEXT
    local code=$1 text=$2; shift 2
    local rc=0
    "$@" > "$bad/out.log" 2>&1 || rc=$?
    if [ $rc -ne "$code" ] || ! grep -qF -- "$text" "$bad/out.log"; then
      echo "FAILED: $* (exit $rc, expected $code with '$text')"; cat "$bad/out.log"; exit 1
    fi
    test ! -e "$bad/x.onnx" || { echo "FAILED: $* left $bad/x.onnx"; exit 1; }
  }
  # An exit-head kind envit does not know (the README checkpoint with config.exit_head rewritten):
  # refused naming the file and the head.
  py=/usr/bin/python3
  [ -x $py ] || py=$(command -v python3 || true)
  if [ -n "$py" ]; then
    $py - "$dir/run/last.safetensors" "$bad/odd_head.safetensors" <<'PY'
import json, struct, sys
src, dst = sys.argv[1:3]
b = open(src, "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
h["__metadata__"]["config.exit_head"] = "pooled"
j = json.dumps(h).encode()
j += b" " * (-len(j) % 8)
open(dst, "wb").write(struct.pack("<Q", len(j)) + j + b[8 + n:])
PY
    expect_error 1 "odd_head.safetensors" "$envit" convert --to onnx "$bad/odd_head.safetensors" --out "$bad/x.onnx"
    expect_error 1 "exit_head must be linear or lgvit, got 'pooled'" \
      "$envit" convert --to onnx --early-exit entropy "$bad/odd_head.safetensors" --out "$bad/x.onnx"
  else
    echo "python3 not found: the unknown exit-head check is not run"
  fi
  # An INT8 checkpoint (envit quantize) is refused by every export, naming the file and what it is.
  "$envit" quantize --checkpoint "$dir/run/last.safetensors" --out "$bad/q8.safetensors" > "$bad/quantize.log" 2>&1 ||
    { echo "FAILED: envit quantize"; cat "$bad/quantize.log"; exit 1; }
  for to in onnx timm hf; do
    expect_error 1 "q8.safetensors': an INT8-quantized checkpoint" \
      "$envit" convert --to $to "$bad/q8.safetensors" --out "$bad/x.onnx"
  done
  for rule in patience beem energy; do
    expect_error 2 "exit rule '$rule' is not exported" \
      "$envit" convert --to onnx --early-exit $rule "$dir/run/last.safetensors" --out "$bad/x.onnx"
    expect_error 2 "exit rule '$rule' is not exported" \
      "$envit" convert --to onnx --early-exit $rule "$dir/lgvit/run/last.safetensors" --out "$bad/x.onnx"
  done
  expect_error 2 "unknown exit rule 'fastest'" \
    "$envit" convert --to onnx --early-exit fastest "$dir/run/last.safetensors" --out "$bad/x.onnx"
  expect_error 2 "--early-exit needs --to onnx" \
    "$envit" convert --to envit --early-exit confidence "$dir/run/last.safetensors" --out "$bad/x.onnx"
  echo "onnx refusals: ok"
  ;;
*) echo "unknown part '$part'"; exit 2 ;;
esac
